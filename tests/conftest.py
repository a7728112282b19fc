import pytest

from tests.helpers import make_engine


@pytest.fixture
def engine():
    return make_engine()


@pytest.fixture(scope="session")
def broker():
    """The embedded Kafka-protocol broker (Tansu), started by the tests themselves."""
    from pipeline.ops.broker import EmbeddedBroker, free_port

    with EmbeddedBroker(free_port()) as b:
        yield b
