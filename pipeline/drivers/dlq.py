"""``rapport dlq export`` and ``rapport dlq redrive``: get dead letters out, repair them, send them back.

``export`` writes one replay-format line per dead letter (``topic`` = its source topic, ``value`` = the
raw input, parsed when it is JSON) plus ``error`` (type and detail) to guide the repair. Email and
phone values are ``hmac:`` tokens there, which ingest accepts back, so the repaired record joins
the same customer. ``redrive`` sends the lines' values back to their inbound topics; a record that is
still broken simply returns to the DLQ with its new reason.
"""
from __future__ import annotations

import base64
from pathlib import Path

import orjson

from pipeline.drivers.kafka_io import Publisher, read_range
from pipeline.ops.settings import Settings
from schemas.inbound import INBOUND


def export(settings: Settings, out: Path, error_type: str | None = None, idle_s: float = 5.0) -> int:
    """Write the live dead letters to ``out`` (the topic as a compacted reader sees it: an erased one is
    tombstoned, one written twice is there once); returns how many."""
    latest: dict[object, bytes | None] = {}
    for m in read_range(settings.kafka_client(), [settings.topic("dlq.v1")], idle_s=idle_s):
        key = m.key() if m.key() is not None else (m.partition(), m.offset())  # (an older release wrote no key)
        latest.pop(key, None)  # a letter written again goes where it was last
        latest[key] = m.value()
    n = 0
    with open(out, "wb") as f:
        for value in latest.values():
            if value is None:
                continue
            d = orjson.loads(value)
            if error_type and d["error_type"] != error_type:
                continue
            if d["raw_encoding"] == "base64":
                value: object = {"_base64": d["raw"]}
            else:
                try:
                    value = orjson.loads(d["raw"])
                except orjson.JSONDecodeError:
                    value = d["raw"]
            f.write(orjson.dumps({"topic": d["source_topic"], "key": d["key"], "value": value,
                                  "error": {"type": d["error_type"], "detail": d["error_detail"],
                                            "partition": d["partition"], "offset": d["offset"]}}) + b"\n")
            n += 1
    return n


def redrive(settings: Settings, path: Path) -> tuple[int, list[str]]:
    """Send every line back to its inbound topic; returns (sent, problems with lines not sent)."""
    publisher, sent, problems = Publisher(settings.kafka_client()), 0, []
    for lineno, line in enumerate(open(path, "rb"), 1):
        if not line.strip():
            continue
        try:
            d = orjson.loads(line)
            topic, key, value = d["topic"], d.get("key"), d["value"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            problems.append(f"line {lineno}: not a record line ({e})")
            continue
        if topic not in INBOUND:
            problems.append(f"line {lineno}: {topic!r} is not an inbound topic")
            continue
        if isinstance(value, dict) and set(value) == {"_base64"}:
            raw = base64.b64decode(value["_base64"])
        else:
            raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
        publisher.send(settings.topic(topic), None if key is None else str(key).encode(), raw)
        sent += 1
    publisher.flush()
    return sent, problems
