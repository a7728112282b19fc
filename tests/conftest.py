import pytest

from tests.helpers import make_engine


@pytest.fixture
def engine():
    return make_engine()
