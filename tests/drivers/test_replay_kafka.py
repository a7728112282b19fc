"""`rapport replay --from-kafka` and `rapport dlq export/redrive` against the embedded broker."""
import orjson
import pytest

from pipeline.cli import main
from pipeline.drivers.codec import build_engine
from pipeline.drivers.generate import generate
from pipeline.drivers.kafka_io import Publisher, read_range
from pipeline.drivers.replay import read_records
from tests.drivers.live import COMPARED, LiveWorker
from tests.helpers import run

pytestmark = pytest.mark.broker


@pytest.fixture
def ns(broker, tmp_path, monkeypatch):
    w = LiveWorker(broker.bootstrap, tmp_path)  # topics only; no worker is started
    for k, v in w.env.items():
        if k.startswith("RAPPORT_"):
            monkeypatch.setenv(k, v)
    return w


def send(w, records):
    pub = Publisher(w.settings.bootstrap, w.ns)
    for r in records:
        pub.send(w.ns + r.topic, r.key, r.value)
    pub.flush()


def test_replay_from_kafka_gives_the_file_replay_triggers_in_a_file_or_a_namespace(ns, tmp_path):
    lines = [r.line() for r in generate(seed=51, customers=40, days=6)]
    engine = build_engine(ns.settings)
    expected = {e.value.trigger_id for e in run(engine, *read_records(iter(lines)))
                if e.topic in COMPARED}
    send(ns, read_records(iter(lines)))

    out = tmp_path / "range.jsonl"
    main(["replay", "--from-kafka", "--out", str(out), "--idle-s", "2", "--quiet"])
    got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {g["value"]["trigger_id"] for g in got if g["topic"] in COMPARED} == expected

    main(["replay", "--from-kafka", "--namespace", "rerun", "--idle-s", "2", "--quiet"])
    topic = ns.settings.topic("replay.rerun.triggers.cart_abandoned.v1")
    abandoned = [orjson.loads(m.value()) for m in read_range(ns.settings.bootstrap, [topic], idle_s=2)]
    assert {a["trigger_id"] for a in abandoned} <= expected and abandoned
    live = read_range(ns.settings.bootstrap, [ns.ns + "triggers.cart_abandoned.v1"], idle_s=1)
    assert list(live) == []  # the live trigger topics were never written


def test_dead_letters_can_be_exported_repaired_and_redriven(ns, tmp_path):
    broken = {"event_id": "e-fix", "occurred_at": "2026-11-22T10:00:00", "type": "page_view",
              "identifiers": {"email": "kim@example.com"}}
    dead = run(build_engine(ns.settings), *read_records(iter([
        orjson.dumps({"topic": "clickstream.v1", "key": "k", "value": broken})])))
    pub = Publisher(ns.settings.bootstrap, ns.ns)
    pub.send_emits(dead)
    pub.flush()

    exported = tmp_path / "dlq.jsonl"
    main(["dlq", "export", str(exported), "--idle-s", "2"])
    [line] = [orjson.loads(x) for x in exported.read_bytes().splitlines()]
    assert line["error"]["type"] == "validation" and "occurred_at" in line["error"]["detail"]
    assert "kim@example.com" not in exported.read_text()
    line["value"]["occurred_at"] += "+09:00"  # the repair
    exported.write_bytes(orjson.dumps(line) + b"\n")

    main(["dlq", "redrive", str(exported)])
    [m] = list(read_range(ns.settings.bootstrap, [ns.ns + "clickstream.v1"], idle_s=2))
    repaired = run(build_engine(ns.settings), *read_records(iter([
        orjson.dumps({"topic": "clickstream.v1", "key": None, "value": orjson.loads(m.value())})])))
    assert [e.topic for e in repaired] == ["profiles.v1"]
    original = run(build_engine(ns.settings), *read_records(iter([orjson.dumps(
        {"topic": "clickstream.v1", "key": None, "value": {**broken, "occurred_at": "2026-11-22T10:00:00+09:00"}})])))
    assert repaired[0].key == original[0].key  # the same customer as if it had never been broken
