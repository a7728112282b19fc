import gc

import orjson

from pipeline.cli import main
from pipeline.drivers.generate import generate


def _cli(*args, monkeypatch, tmp_path):
    monkeypatch.setenv("RAPPORT_PII_KEY", "test-key")
    monkeypatch.setenv("RAPPORT_STATE_DIR", str(tmp_path / "state"))
    main(list(args))


def test_replay_command_is_deterministic_with_a_fixed_clock(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(r.line() for r in generate(seed=11, customers=40)))
    for name in ("a", "b"):
        _cli("replay", str(src), "--out", str(tmp_path / f"{name}.jsonl"), "--fixed-clock", "2026-11-22T00:00:00Z",
             "--quiet", monkeypatch=monkeypatch, tmp_path=tmp_path)
    a, b = (tmp_path / "a.jsonl").read_bytes(), (tmp_path / "b.jsonl").read_bytes()
    assert a == b and a
    topics = {orjson.loads(line)["topic"] for line in a.splitlines()}
    assert "triggers.cart_abandoned.v1" in topics and "profiles.v1" in topics
    assert "triggers" in capsys.readouterr().err
    assert gc.isenabled()  # paused while the replay ran, not after


def test_a_broken_input_line_is_dead_lettered_not_dropped(tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'this is not a record\n{"topic": "pos.v1", "key": null, "value": "{truncated"}\n')
    _cli("replay", str(src), "--out", str(tmp_path / "out.jsonl"), "--quiet", monkeypatch=monkeypatch, tmp_path=tmp_path)
    out = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [(o["topic"], o["value"]["source_topic"], o["value"]["error_type"]) for o in out] == [
        ("dlq.v1", "replay.input", "unknown_topic"), ("dlq.v1", "pos.v1", "invalid_json")]


def test_missing_input_file_is_a_clear_error(tmp_path, monkeypatch):
    import pytest

    with pytest.raises(SystemExit, match="no such input file"):
        _cli("replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl"),
             monkeypatch=monkeypatch, tmp_path=tmp_path)


def test_a_file_written_topic_by_topic_replays_like_one_in_event_time_order(tmp_path, monkeypatch):
    records = generate(seed=12, customers=60, days=6)
    by_topic = sorted(records, key=lambda r: r.topic)  # stable: each topic keeps its event-time order
    outputs = []
    for name, recs in (("sorted", records), ("blocks", by_topic)):
        src = tmp_path / f"{name}.in.jsonl"
        src.write_bytes(b"".join(r.line() for r in recs))
        _cli("replay", str(src), "--out", str(tmp_path / f"{name}.jsonl"), "--fixed-clock", "2026-11-22T00:00:00Z",
             "--quiet", monkeypatch=monkeypatch, tmp_path=tmp_path)
        lines = [orjson.loads(line) for line in (tmp_path / f"{name}.jsonl").read_bytes().splitlines()]
        outputs.append([r for r in lines if r["topic"] not in ("profiles.v1", "dlq.v1")])
    assert outputs[0] == outputs[1]
    assert any(r["topic"] == "identity.merges.v1" for r in outputs[0])
