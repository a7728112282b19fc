"""Customers spread over partitions give the same outputs as one partition: merges hand state over,
timers fire per partition, and the churn model learns in one place and scores by event-time versions.

Compared as a consumer would see each topic (records in any order across customers), with the final
profile of every customer.
"""
import orjson
import pytest

from pipeline.core.customers import partition_of
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records
from tests.helpers import make_engine

#: Short horizons and epochs, so that churn labels are learned and churn_risk fires within the traffic.
RULES = {"churn_horizon_days": 3, "churn_snapshot_every_days": 1, "churn_min_labels": 5, "model_epoch_hours": 6}


def outputs(records, partitions: int):
    engine = make_engine(customer_partitions=partitions, **RULES)
    out = []
    for i in range(0, len(records), 500):
        out += engine.process_batch(records[i:i + 500])
    out += engine.close_input()
    streams: dict[str, list[bytes]] = {}
    for e in out:
        value = None if e.value is None else e.value.model_dump(mode="json")
        streams.setdefault(e.topic, []).append(orjson.dumps([e.key, value], option=orjson.OPT_SORT_KEYS))
    return {t: sorted(v) for t, v in streams.items()}, engine


@pytest.fixture(scope="module")
def traffic():
    records = list(read_records(iter(r.line() for r in generate(seed=5, customers=200, days=20))))
    return records, outputs(records, 1)


def test_the_traffic_exercises_merges_timers_and_learned_churn(traffic):
    _, (streams, engine) = traffic
    assert len(streams["identity.merges.v1"]) > 20 and engine.churn.learned > 100
    for topic in ("triggers.cart_abandoned.v1", "triggers.cart_recovered.v1", "triggers.negative_emotion.v1",
                  "triggers.churn_risk.v1", "scores.reviews.v1"):
        assert len(streams[topic]) > 3, topic


@pytest.mark.parametrize("partitions", [4, 8])
def test_every_output_is_the_same_on_any_number_of_customer_partitions(traffic, partitions):
    records, (expected, one) = traffic
    streams, engine = outputs(records, partitions)
    assert streams == expected
    assert engine.churn.learned == one.churn.learned
    shares = [len(p.customers) for p in engine.partitions]
    assert all(shares) and all(partition_of(c, partitions) == n for n, p in enumerate(engine.partitions)
                               for c in p.customers)
