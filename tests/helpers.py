"""Builders for scripted journeys: raw records from plain dicts, and an engine with a fixed clock."""
from __future__ import annotations

import itertools
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import orjson

from pipeline.core.engine import Engine
from pipeline.core.pii import Hasher
from pipeline.core.records import Emit, RawRecord
from pipeline.core.rules import Rules

KST = timezone(timedelta(hours=9))
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=KST)
FIXED_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
_offsets = itertools.count()
_ids = itertools.count()


def make_engine(**rules: object) -> Engine:
    return Engine(Rules(**rules), Hasher(b"test-key"), lambda: FIXED_NOW)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def raw(topic: str, value: dict | bytes | str, key: str | None = None) -> RawRecord:
    data = value if isinstance(value, bytes) else value.encode() if isinstance(value, str) else orjson.dumps(value)
    return RawRecord(topic, 0, next(_offsets), None if key is None else key.encode(), data)


def event(minutes: float, ids: dict, event_id: str | None = None, **body: object) -> dict:
    return {"event_id": event_id or f"e{next(_ids)}", "occurred_at": at(minutes), "identifiers": ids, **body}


def click(minutes: float, ids: dict, kind: str, **body: object) -> RawRecord:
    return raw("clickstream.v1", event(minutes, ids, type=kind, **body))


def add(minutes: float, ids: dict, sku: str = "SKU-1", price: float = 10000.0, qty: int = 1) -> RawRecord:
    return click(minutes, ids, "add_to_cart", product={"sku": sku, "price": price, "quantity": qty})


def order(minutes: float, ids: dict, total: float = 10000.0) -> RawRecord:
    return click(minutes, ids, "order_completed", order={"order_id": f"o{next(_ids)}", "total": total, "currency": "KRW"})


def pos(minutes: float, ids: dict, total: float = 10000.0, kind: str = "purchase") -> RawRecord:
    return raw("pos.v1", event(minutes, ids, type=kind, transaction_id=f"t{next(_ids)}", store_id="GANGNAM-01",
                               items=[{"sku": "SKU-1", "quantity": 1, "unit_price": total}], total=total, currency="KRW"))


def review(minutes: float, ids: dict, text: str, rating: int | None = None, channel: str = "web") -> RawRecord:
    body: dict = {"review_id": f"r{next(_ids)}", "channel": channel, "text": text}
    if rating is not None:
        body["rating"] = rating
    return raw("reviews.v1", event(minutes, ids, **body))


def consent(minutes: float, ids: dict, granted: bool) -> RawRecord:
    return raw("consent.v1", event(minutes, ids, purpose="marketing", granted=granted))


def run(engine: Engine, *records: RawRecord) -> list[Emit]:
    """Everything ``records`` cause, as if nothing else were still on its way."""
    return engine.process_batch(records) + engine.close_input()


def of(emits: list[Emit], topic: str) -> list:
    return [e.value for e in emits if e.topic == topic]


def privacy(minutes: float, ids: dict, kind: str, request_id: str | None = None) -> RawRecord:
    return raw("privacy.v1", {"request_id": request_id or f"req{next(_ids)}", "occurred_at": at(minutes),
                              "identifiers": ids, "type": kind})


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET (error statuses included); ``(0, "")`` while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""
