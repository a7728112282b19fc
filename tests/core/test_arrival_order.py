"""Outputs do not depend on the deployment: partitions, their interleaving, batches, progress markers.

The generated traffic is split over 4 partitions per topic, each read in the order it was written;
the partitions are interleaved in random chunks and cut into random batches, as workers and the
internal topic would deliver them. Every output must equal a replay of the file. That covers merge
records, customer ids, triggers (churn_risk too: the models learn in the same order), scores and
the final profiles.
"""
import random
import zlib
from datetime import datetime

import orjson
import pytest

from pipeline.core.records import RawRecord
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records
from tests.helpers import make_engine

PARTITIONS = 4
CLOSE = orjson.dumps({"topic": "clickstream.v1", "key": None, "value": {
    "event_id": "close", "occurred_at": "2027-06-01T00:00:00+09:00", "identifiers": {"anonymous_id": "close"},
    "type": "page_view"}})


def canonical(emits) -> dict:
    """What a consumer of the outbound topics ends up with: every record but the intermediate profiles,
    in order."""
    streams: dict = {}
    profiles: dict = {}
    for e in emits:
        value = None if e.value is None else e.value.model_dump(mode="json")
        if e.topic == "profiles.v1":
            profiles[e.key] = value
        else:
            streams.setdefault(e.topic, []).append((e.key, value))
    # Dead letters are written as read (not sequenced) and name the partition and offset they came from.
    streams["dlq.v1"] = sorted(orjson.dumps({k: v for k, v in d.items() if k not in ("partition", "offset")})
                               for _, d in streams.get("dlq.v1", []))
    return {"streams": streams, "profiles": profiles}


def event_time(rec: RawRecord) -> int | None:
    try:
        return int(datetime.fromisoformat(orjson.loads(rec.value)["occurred_at"]).timestamp() * 1000)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def replayed(records) -> dict:
    engine = make_engine()
    return canonical(engine.process_batch(records) + engine.close_input())


def partitioned(records, rng: random.Random, markers: bool) -> dict:
    """The records spread over partitions by key, delivered in random interleavings and batches."""
    parts: dict[tuple[str, int], list[RawRecord]] = {}
    for r in records:
        source = (r.topic, zlib.crc32(r.key or r.value) % PARTITIONS)
        log = parts.setdefault(source, [])
        log.append(RawRecord(r.topic, source[1], len(log), r.key, r.value))
    engine = make_engine()
    engine.assign(parts)
    pos = dict.fromkeys(parts, 0)
    out = []
    wall = 1_900_000_000_000  # the markers' wall clock: long after the traffic
    positions: dict[str, int] = {}  # per topic, the latest event time the (one) reader has delivered
    while any(pos[s] < len(parts[s]) for s in parts):
        for _ in range(rng.randint(1, 6)):  # one delivered batch: a few chunks of partitions
            source = rng.choice([s for s in parts if pos[s] < len(parts[s])] or list(parts))
            n = rng.randint(1, 300)
            for rec in parts[source][pos[source]:pos[source] + n]:
                engine.process(rec)
                ts = event_time(rec)
                if ts is not None and ts > positions.get(rec.topic, ts - 1):
                    positions[rec.topic] = ts
            pos[source] += n
            if markers and pos[source] >= len(parts[source]):  # read to its end: a caught-up marker
                engine.caught_up([source], "reader", wall, dict(positions))
        out += engine.end_batch()
    return canonical(out + engine.close_input())


@pytest.fixture(scope="module")
def traffic():
    lines = [r.line() for r in generate(seed=21, customers=150, days=12)] + [CLOSE]
    records = list(read_records(iter(lines)))
    return records, replayed(records)


def test_the_traffic_exercises_what_is_compared(traffic):
    _, expected = traffic
    streams = expected["streams"]
    assert len(streams["identity.merges.v1"]) > 20
    for topic in ("triggers.cart_abandoned.v1", "triggers.cart_recovered.v1", "triggers.negative_emotion.v1",
                  "scores.reviews.v1", "dlq.v1"):
        assert len(streams[topic]) > 3, topic


@pytest.mark.parametrize("seed", range(4))
def test_every_output_is_the_same_however_partitions_interleave(traffic, seed):
    records, expected = traffic
    assert partitioned(records, random.Random(seed), markers=seed % 2 == 1) == expected
