"""``rapport tail``: show trigger records as they are emitted, one readable line each."""
from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable
from typing import TextIO

import orjson
from confluent_kafka import Consumer

from pipeline.core.engine import TRIGGER_TOPICS
from pipeline.drivers.kafka_io import Connection, client_config

COLOURS = {"cart_abandoned": "33", "cart_recovered": "32", "negative_emotion": "31", "churn_risk": "35"}


def describe(value: dict, colour: bool) -> str:
    """One readable line: a trigger's reason, a dead letter's error, a privacy result's outcome.

    >>> describe({"source_topic": "pos.v1", "error_type": "validation", "error_detail": "total: required"}, False)
    '                     dead_letter      pos.v1                   validation: total: required'
    """
    if "error_type" in value:  # dlq.v1
        kind, who = "dead_letter", value.get("source_topic", "?")
        what = f"{value['error_type']}: {value.get('error_detail', '')}"
    elif "request_id" in value:  # privacy.results.v1
        kind, who = f"privacy_{value.get('type', '?')}", value.get("customer_id") or "(nobody)"
        what = f"{value.get('status')} (request {value['request_id']}) {value.get('removed') or ''}".rstrip()
    else:
        kind, who = value.get("type", "?"), value.get("customer_id", "?")
        what = value.get("reason", "") + ("" if value.get("contactable", True) else "  [not contactable]")
    when = str(value.get("occurred_at", ""))[:19].replace("T", " ")
    head = f"{kind:<16}"
    if colour:
        head = f"\x1b[{COLOURS.get(kind, '0')}m{head}\x1b[0m"
    return f"{when:<19}  {head} {who:<24} {what}"


def tail(conn: Connection, topics: Iterable[str], out: TextIO = sys.stdout, limit: int | None = None) -> int:
    """Print records of ``topics`` from the beginning until interrupted (or ``limit`` records)."""
    consumer = Consumer(client_config(conn, **{"group.id": f"rapport-tail-{uuid.uuid4().hex[:8]}",
                                               "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                               "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}))
    consumer.subscribe(list(topics))
    colour, shown = out.isatty(), 0
    try:
        while limit is None or shown < limit:
            for msg in consumer.consume(100, 0.5):
                if msg.error() or msg.value() is None:
                    continue
                out.write(describe(orjson.loads(msg.value()), colour) + "\n")
                out.flush()
                shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return shown


def trigger_topics(prefix: str) -> list[str]:
    return [prefix + t for t in TRIGGER_TOPICS.values()]
