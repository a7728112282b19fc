"""State survives a restart: changelog entries (through pickle) rebuild an engine that carries on."""
import pickle

from pipeline.core.engine import TRIGGER_TOPICS
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records
from tests.helpers import make_engine


def changelog(engine, log: dict) -> None:
    for key, value in {**engine.take_changes(), **engine.models()}.items():
        log[key] = None if value is None else pickle.dumps(value)


def restored(log: dict):
    engine = make_engine()
    engine.restore({k: pickle.loads(v) for k, v in log.items() if v is not None})
    return engine


def run(engine, records, log=None):
    out = []
    for i in range(0, len(records), 300):
        out += engine.process_batch(records[i:i + 300])
        if log is not None:
            changelog(engine, log)
    return out


def triggers(out):
    return sorted((e.value.trigger_id, e.value.customer_id) for e in out if e.topic in TRIGGER_TOPICS.values())


def merges(out):
    return [e.value for e in out if e.topic == "identity.merges.v1"]


def test_a_restored_engine_continues_as_if_never_stopped():
    records = list(read_records(iter(r.line() for r in generate(seed=4, customers=80, days=12))))
    cut = len(records) // 2
    whole = make_engine()
    expected = run(whole, records) + whole.close_input()

    log: dict = {}
    first = run(make_engine(), records[:cut], log)
    assert any(k.startswith("q/") and v is not None for k, v in log.items())  # events still held at the stop
    again = restored(log)
    second = run(again, records[cut:], log) + again.close_input()
    assert triggers(first + second) == triggers(expected)
    assert merges(first + second) == merges(expected)
    assert len(log) > 100


def test_records_read_again_after_a_restart_are_not_applied_twice():
    records = list(read_records(iter(r.line() for r in generate(seed=6, customers=30, days=5))))
    log: dict = {}
    engine = make_engine()
    run(engine, records, log)
    again = restored(log)
    out = run(again, records[-500:])  # the tail of the input, re-delivered (at-least-once)
    assert triggers(out) == []
    assert {cid: st.purchases for cid, st in again.customers.items()} == \
        {cid: st.purchases for cid, st in engine.customers.items()}
    assert again.identity.owner == engine.identity.owner
