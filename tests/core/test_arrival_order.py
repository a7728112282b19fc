"""Live partitions deliver topics in any interleaving; triggers must not depend on it.

Each topic keeps its own order (as a partition does); the topics are interleaved in random chunks,
the engine runs with per-partition watermarks, and its triggers must equal a replay of the file.
churn_risk is left out: it follows the online churn model, whose learning order is the arrival order.
"""
import random

import orjson
import pytest

from pipeline.core.engine import TRIGGER_TOPICS
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records
from tests.helpers import make_engine

TOPICS = ("clickstream.v1", "pos.v1", "reviews.v1", "consent.v1")
CLOSE = orjson.dumps({"topic": "clickstream.v1", "key": None, "value": {
    "event_id": "close", "occurred_at": "2027-06-01T00:00:00+09:00", "identifiers": {"anonymous_id": "close"},
    "type": "page_view"}})


def triggers(records, per_partition: bool) -> dict[str, str]:
    engine = make_engine(per_partition)
    if per_partition:
        for t in TOPICS:
            engine.watermark.expect((t, 0))
    out = []
    for i in range(0, len(records), 250):
        out += engine.process_batch(records[i:i + 250])
    out += engine.sources_idle([(t, 0) for t in TOPICS])
    return {e.value.trigger_id: e.value.type for e in out
            if e.topic in TRIGGER_TOPICS.values() and e.topic != TRIGGER_TOPICS["churn_risk"]}


def interleave(records, rng: random.Random):
    streams = {t: [r for r in records if r.topic == t] for t in TOPICS}
    pos = dict.fromkeys(TOPICS, 0)
    out = []
    while any(pos[t] < len(streams[t]) for t in TOPICS):
        t = rng.choice([t for t in TOPICS if pos[t] < len(streams[t])])
        n = rng.randint(1, 400)
        out += streams[t][pos[t]:pos[t] + n]
        pos[t] += n
    return out


@pytest.mark.parametrize("seed", [21, 9])
def test_triggers_do_not_depend_on_how_topics_interleave(seed):
    lines = [r.line() for r in generate(seed=seed, customers=120, days=10)] + [CLOSE]
    records = list(read_records(iter(lines)))
    expected = triggers(records, per_partition=False)
    assert sum(1 for k in expected.values() if k == "cart_recovered") > 3
    for n in range(3):
        assert triggers(interleave(records, random.Random(n)), per_partition=True) == expected
