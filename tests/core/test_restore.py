"""State survives a restart: changelog entries (through the state encoding) rebuild an engine that carries on."""
import base64
import gzip
from pathlib import Path

import orjson
import pytest

from pipeline.core.encoding import StateFormatError, dumps, loads
from pipeline.ops.statestore import decode_entries

from pipeline.core.engine import TRIGGER_TOPICS
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records
from tests.helpers import make_engine


def changelog(engine, log: dict) -> None:
    for key, value in {**engine.take_changes(), **engine.models()}.items():
        log[key] = None if value is None else dumps(value)


def restored(log: dict):
    engine = make_engine()
    engine.restore(decode_entries(log))
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


FIXTURE = Path(__file__).parent.parent / "fixtures" / "changelog_format0.json.gz"


def test_a_changelog_written_in_the_previous_format_restores_and_carries_on():
    """Format 0 (pickled entries, before the versioned encoding): written by that release, kept as a fixture."""
    doc = orjson.loads(gzip.decompress(FIXTURE.read_bytes()))
    t = doc["traffic"]
    records = list(read_records(iter(r.line() for r in generate(seed=t["seed"], customers=t["customers"], days=t["days"]))))
    whole = make_engine()
    expected = run(whole, records) + whole.close_input()
    log = {k: None if v is None else base64.b64decode(v) for k, v in doc["entries"].items()}
    assert not any(v.startswith(b"rapport-state:") for v in log.values() if v)  # really the old format
    again = restored(log)
    second = run(again, records[t["cut"]:], log) + again.close_input()
    first = run(make_engine(), records[:t["cut"]])  # what the old release emitted before it stopped
    assert triggers(first + second) == triggers(expected)
    assert merges(first + second) == merges(expected)
    assert any(v.startswith(b"rapport-state:1\n") for v in log.values() if v)  # changed entries: the new format


def test_state_of_a_newer_format_is_refused_with_a_clear_error():
    with pytest.raises(StateFormatError, match=r"entry 'c/x': state written in format 2; this release reads formats 0-1"):
        decode_entries({"c/x": b"rapport-state:2\n{}"})
    with pytest.raises(StateFormatError, match="unknown type 'hologram'"):
        loads(b'rapport-state:1\n{"$": "hologram"}')


def test_the_event_id_memory_survives_a_restart():
    """A producer's retry, written again far from the original (a new offset), after the worker restarted."""
    from tests.helpers import add, raw

    first = add(0, {"anonymous_id": "cookie-retry"})
    log: dict = {}
    engine = make_engine()
    run(engine, [first] + [add(1 + n, {"anonymous_id": f"other-{n}"}) for n in range(80)], log)
    again = restored(log)
    retry = raw(first.topic, first.value)  # the same bytes at a new offset
    assert len(again.seen) == 81  # the global memory, not only the customer's recent ids
    run(again, [retry])
    assert again.stats["duplicates"] == 1


def test_a_partition_entry_written_before_labels_were_timers_restores():
    stage = make_engine().partitions[0]
    stage.restore({"p/0": {"_deferred": {"c-1": [(5, "c-1", 1), (3, "c-1", 2)]}}})  # (due, customer, ts) each
    assert stage._deferred == {"c-1": 3}  # when its labels fell due


def test_the_encoding_leaves_defaults_out_ignores_unknown_fields_and_refuses_a_missing_one():
    from collections import deque

    from pipeline.core.profile import CustomerState, Purchase

    st = CustomerState("c-1", 10, 20, channels={"web"})
    st.recent_events.append("e-1")
    body = orjson.loads(dumps(st).partition(b"\n")[2])
    assert set(body) == {"$", "customer_id", "first_seen", "last_seen", "channels", "recent_events"}
    assert loads(dumps(st)) == st and loads(dumps(CustomerState("c-2", 0, 0))).recent_events == deque(maxlen=32)
    newer = {**body, "loyalty_tier": "gold"}  # a field a newer release writes
    assert loads(b"rapport-state:1\n" + orjson.dumps(newer)) == st
    p = Purchase(5, 1.5, "web", "e-2")  # frozen
    assert loads(dumps(p)) == p and loads(dumps(Purchase(5, float("inf"), "web", "e-3"))).total == float("inf")
    with pytest.raises(StateFormatError, match="a purchase value lacks its field 'event_id'"):
        loads(b'rapport-state:1\n{"$": "purchase", "ts": 5, "total": 1.5, "channel": "web"}')


def test_messages_waiting_for_a_model_version_are_written_once_and_restored_in_order():
    from pipeline.core.customers import CustomerStage
    from pipeline.core.messages import Publish, Tick
    from pipeline.core.models.churn import ChurnModel
    from pipeline.core.rules import Rules
    from pipeline.core.versions import Versions
    from tests.helpers import FIXED_NOW

    def stage():
        return CustomerStage(Rules(), lambda: FIXED_NOW, Versions(3_600_000), 0, 1)

    log: dict = {}
    first = stage()
    for wm in (10, 20, 30):
        first.receive(Tick(wm))  # no model version is published: each waits
    changes = first.take_changes()
    assert [k for k in changes if k.startswith("i/")] == ["i/0/0", "i/0/1", "i/0/2"]
    log.update((k, dumps(v)) for k, v in changes.items())
    first.receive(Tick(40))
    assert [k for k in first.take_changes() if k.startswith("i/")] == ["i/0/3"]  # only what is new
    delivered = stage()
    delivered.restore(decode_entries(log))
    delivered.receive(Publish({0: ChurnModel(3_600_000)}))  # the version they waited for: all delivered
    assert not delivered._inbox
    assert {k: v for k, v in delivered.take_changes().items() if k.startswith("i/")} == dict.fromkeys(
        ["i/0/0", "i/0/1", "i/0/2"])  # tombstones
    restored = stage()
    restored.restore(decode_entries(log))
    assert [m.watermark for m in restored._inbox] == [10, 20, 30]
    half_written = {**log, "i/0/3": dumps(Tick(40))}  # a batch that failed after this entry, before its partition entry
    again = stage()
    again.restore(decode_entries(half_written))
    assert [m.watermark for m in again._inbox] == [10, 20, 30]
    gap = stage()  # an entry missing: what is left is kept in order and written again under new numbers
    gap.restore(decode_entries({k: v for k, v in log.items() if k != "i/0/1"}))
    assert [m.watermark for m in gap._inbox] == [10, 30]
    assert [k for k, v in gap.take_changes().items() if k.startswith("i/") and v is not None] == ["i/0/0", "i/0/1"]
    # A partition entry of an older release held its waiting messages: they become entries at the next write.
    legacy = {k: v for k, v in decode_entries(log).items() if not k.startswith("i/")}
    legacy["p/0"] = {k: v for k, v in legacy["p/0"].items() if k != "_saved"} | {"_inbox": restored._inbox.copy()}
    older = stage()
    older.restore(legacy)
    assert [m.watermark for m in older._inbox] == [10, 20, 30]
    assert [k for k in older.take_changes() if k.startswith("i/")] == ["i/0/0", "i/0/1", "i/0/2"]


def test_model_versions_are_entries_of_their_own_and_an_older_single_entry_restores():
    from pipeline.core.customers import CustomerStage
    from pipeline.core.messages import Publish
    from pipeline.core.models.churn import ChurnModel
    from pipeline.core.rules import Rules
    from pipeline.core.versions import Versions
    from tests.helpers import FIXED_NOW

    def stage():
        return CustomerStage(Rules(), lambda: FIXED_NOW, Versions(3_600_000), 0, 1)

    first = stage()
    first.receive(Publish({1: ChurnModel(3_600_000), 2: ChurnModel(3_600_000)}))
    log = {k: dumps(v) for k, v in first.take_changes().items() if v is not None}
    assert sorted(k for k in log if k.startswith("v/")) == ["v/0/1", "v/0/2"]
    first.receive(Publish({3: ChurnModel(3_600_000)}))
    assert sorted(k for k in first.take_changes() if k.startswith("v/")) == ["v/0/3"]  # only the new one
    restored = stage()
    restored.restore(decode_entries(log))
    assert sorted(restored.versions.by_epoch) == [1, 2]
    older = stage()  # an older release kept every version in one entry
    older.restore({"v/0": {1: ChurnModel(3_600_000), 2: ChurnModel(3_600_000)}})
    assert sorted(older.versions.by_epoch) == [1, 2]
    changes = {k: v for k, v in older.take_changes().items() if k.startswith("v/")}
    assert sorted(changes) == ["v/0", "v/0/1", "v/0/2"] and changes["v/0"] is None


def test_state_makes_no_reference_cycles_so_a_dropped_stage_is_freed_without_the_collector():
    """The worker keeps restored state out of garbage collection (``codec.restoring``): that is safe only as
    long as reference counting alone frees a dropped engine or customer partition."""
    import gc

    records = list(read_records(iter(r.line() for r in generate(seed=3, customers=60))))
    gc.collect()
    gc.disable()
    try:
        engine = make_engine()
        run(engine, records)
        log: dict = {}
        changelog(engine, log)
        del engine
        restored(log)  # built and dropped
        assert gc.collect() == 0  # nothing unreachable was left for the collector
    finally:
        gc.enable()
