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


# ---- the same, with the customer partitions in other processes: messages in transit ------------------

def _final(emits, stages):
    """Every record but profiles (as multisets per topic), which customers have a live profile, and every
    customer's final profile. (When a profile goes out depends on batches: only meaningful changes send one.)"""
    streams: dict[str, list[bytes]] = {}
    alive: dict[str, bool] = {}
    for e in emits:
        if e.topic == "profiles.v1":
            alive[e.key] = e.value is not None
            continue
        value = None if e.value is None else e.value.model_dump(mode="json")
        streams.setdefault(e.topic, []).append(orjson.dumps([e.key, value], option=orjson.OPT_SORT_KEYS))
    final = {cid: s.profile(cid).model_dump(mode="json") for s in stages for cid in s.customers}
    return {t: sorted(v) for t, v in streams.items()}, {k for k, v in alive.items() if v}, final


def remote(records, partitions: int, rng, restarts: bool = False):
    """The global stage and the customer partitions as separate processes would run them: each partition
    reads its own queue in order, at its own pace; hand-overs and label reports arrive whenever. With
    ``restarts``, a partition now and then starts afresh from its changelog (through the state encoding)."""
    from pipeline.core.encoding import dumps
    from pipeline.ops.statestore import decode_entries

    from pipeline.core.customers import CustomerStage
    from pipeline.core.messages import LabelReport
    from pipeline.core.engine import Engine
    from pipeline.core.pii import Hasher
    from pipeline.core.rules import Rules
    from pipeline.core.versions import Versions
    from tests.helpers import FIXED_NOW

    rules = Rules(customer_partitions=partitions, **RULES)
    engine = Engine(rules, Hasher(b"test-key"), lambda: FIXED_NOW, local=False)
    assert engine.partitions == []
    stages = [CustomerStage(rules, lambda: FIXED_NOW, Versions(engine.versions.epoch_ms), p, partitions)
              for p in range(partitions)]
    queues: list[list] = [[] for _ in range(partitions)]  # each partition's input, in order
    logs: list[dict] = [{} for _ in range(partitions)]  # each partition's changelog, as compaction keeps it
    reports: list[LabelReport] = []
    out, pos = [], 0
    while pos < len(records) or any(queues) or reports:
        step = rng.random()
        if step < 0.3 and pos < len(records):
            n = rng.randint(1, 400)
            out += engine.process_batch(records[pos:pos + n])
            pos += n
            if pos >= len(records):
                out += engine.close_input()
        elif step < 0.45 and reports:
            engine.report(reports.pop(0))
        else:
            p = rng.randrange(partitions)
            n = rng.randint(1, 50)
            taken, queues[p] = queues[p][:n], queues[p][n:]
            for msg in taken:
                stages[p].receive(msg)
            for target, msg in stages[p].take_sent():
                (reports if target is None else queues[target]).append(msg)
            if rng.random() < 0.3:
                out += stages[p].end_batch()
                logs[p].update((k, None if v is None else dumps(v)) for k, v in stages[p].take_changes().items())
                if restarts and rng.random() < 0.3:
                    stages[p] = CustomerStage(rules, lambda: FIXED_NOW, Versions(engine.versions.epoch_ms), p, partitions)
                    stages[p].restore(decode_entries(logs[p]))
        for p, msg in engine.take_messages():
            queues[p].append(msg)
    for stage in stages:
        out += stage.end_batch()
    return out, stages


@pytest.mark.parametrize("partitions, seed, restarts", [(1, 0, False), (4, 1, False), (8, 2, False), (4, 3, True)])
def test_partitions_in_other_processes_give_the_same_outputs(traffic, partitions, seed, restarts):
    import random

    records, _ = traffic
    engine = make_engine(**RULES)
    expected = _final(engine.process_batch(records) + engine.close_input(), engine.partitions)
    assert _final(*remote(records, partitions, random.Random(seed), restarts)) == expected
