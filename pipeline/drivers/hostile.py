"""Hostile inbound records, seeded: what a fuzz test and ``make bench`` feed every inbound topic.

Each record is ``(topic, key, value)`` as raw bytes, made from a valid generated event by one of
``MUTATIONS``: random bytes, near-misses of the schema (a field dropped, retyped or emptied), 100 KB+
fields, deep nesting, wrong encodings, extreme and malformed timestamps, huge arrays of identifiers
or items, records over the size limit. The same seed gives the same records.

>>> recs = list(hostile(seed=1, count=50))
>>> len(recs), {t for _, t, _, _ in recs} <= {"clickstream.v1", "pos.v1", "reviews.v1", "consent.v1"}
(50, True)
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime

import orjson

from pipeline.drivers.generate import generate

BIG = 100_000  # characters of a "100 KB+" field


def _drop(rng: random.Random, doc: dict) -> dict:
    doc.pop(rng.choice(sorted(doc)))
    return doc


def _retype(rng: random.Random, doc: dict) -> dict:
    doc[rng.choice(sorted(doc))] = rng.choice([None, 0, -1, 1.5e308, True, [], {}, "", " ", [1, 2], {"a": 1}])
    return doc


def _big_field(rng: random.Random, doc: dict) -> dict:
    filler = rng.choice(["a", "가", "x@", "0", "1 ", "é", "\\u0000", "a.b"]) * (BIG // 2)
    field = rng.choice(["text", "event_id", "session_id", "url", "query", "purpose", "store_id", "extra"])
    doc[field] = filler
    return doc


def _big_identifier(rng: random.Random, doc: dict) -> dict:
    doc["identifiers"] = {rng.choice(["email", "user_id", "phone"]): "k" * BIG + "@example.com"}
    return doc


def _many_identifiers(rng: random.Random, doc: dict) -> dict:
    doc["identifiers"] = {f"id{i}": f"v{i}" for i in range(20_000)} | {"user_id": f"u-{rng.random()}"}
    return doc


def _many_items(rng: random.Random, doc: dict) -> dict:
    doc["items"] = [{"sku": f"S{i}", "quantity": 1, "unit_price": 1.0} for i in range(rng.choice([5_000, 20_000]))]
    return doc


def _deep(rng: random.Random, doc: dict) -> bytes:
    depth = rng.choice([100, 1_000, 5_000])
    return b'{"event_id": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


def _time(rng: random.Random, doc: dict) -> dict:
    doc["occurred_at"] = rng.choice([
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999+14:00", "1969-12-31T23:59:59Z", "2026-13-40T25:61:00Z",
        "2026-11-22T10:00:00", "2026-11-22", "yesterday", "", 1764000000, -1, 1e30, "2026-11-22T10:00:00+99:00",
        "2026-11-22T10:00:00.123456789123456789Z", "+275760-09-13T00:00:00Z",
    ])
    return doc


def _encoding(rng: random.Random, doc: dict) -> bytes:
    text = orjson.dumps(doc).decode()
    return text.encode(rng.choice(["utf-16", "utf-32", "cp949", "latin-1"]), errors="replace")


def _bytes(rng: random.Random, doc: dict) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 7, 100, 5_000]))


def _truncated(rng: random.Random, doc: dict) -> bytes:
    raw = orjson.dumps(doc)
    return raw[:rng.randrange(len(raw))]


def _too_large(rng: random.Random, doc: dict) -> dict:
    doc["padding"] = "p" * 1_100_000
    return doc


def _not_object(rng: random.Random, doc: dict) -> bytes:
    return rng.choice([b"[]", b"null", b"42", b'"a string"', b"true", b"[" + orjson.dumps(doc) + b"]"])


Mutation = Callable[[random.Random, dict], "dict | bytes"]
MUTATIONS: dict[str, Mutation] = {
    "drop_field": _drop, "retype_field": _retype, "big_field": _big_field, "big_identifier": _big_identifier,
    "many_identifiers": _many_identifiers, "many_items": _many_items, "deep_nesting": _deep, "timestamp": _time,
    "encoding": _encoding, "random_bytes": _bytes, "truncated": _truncated, "too_large": _too_large,
    "not_an_object": _not_object,
}
#: Mutations that make large records: drawn less often, so that a run stays quick.
_HEAVY = {"big_field", "big_identifier", "many_identifiers", "many_items", "too_large"}


def hostile(seed: int = 1, count: int = 10_000, heavy_share: float = 0.03,
            start: datetime | None = None) -> Iterator[tuple[str, str, bytes | None, bytes]]:
    """``count`` hostile records as ``(mutation, topic, key, value)``, the mutation drawn from ``MUTATIONS``,
    made from generated events from ``start`` on (some mutations leave an event valid)."""
    rng = random.Random(seed)
    valid = [g for g in generate(seed=seed, customers=200, days=10, start=start) if isinstance(g.value, dict)]
    light = [m for m in MUTATIONS if m not in _HEAVY]
    heavy = sorted(_HEAVY)
    for i in range(count):
        g = valid[i % len(valid)]
        name = rng.choice(heavy) if rng.random() < heavy_share else rng.choice(light)
        out = MUTATIONS[name](rng, orjson.loads(orjson.dumps(g.value)))
        value = out if isinstance(out, bytes) else orjson.dumps(out)
        key = g.key_bytes() if rng.random() < 0.9 else rng.randbytes(rng.choice([0, 3, 2_000]))
        yield name, g.topic, key, value
