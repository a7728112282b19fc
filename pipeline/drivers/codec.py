"""Serialisation at the edges: engine outputs to bytes, and the engine a driver runs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from pipeline.core.engine import Engine
from pipeline.core.pii import Hasher
from pipeline.core.records import Emit, Event, Identifier
from pipeline.ops.settings import Settings
from schemas.inbound import INBOUND


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def build_engine(settings: Settings, now: Callable[[], datetime] = wall_clock) -> Engine:
    """The engine every driver runs."""
    return Engine(settings, Hasher(settings.pii_secret(), settings.default_country_code), now)


def value_bytes(emit: Emit) -> bytes | None:
    return None if emit.value is None else emit.value.model_dump_json().encode()


def key_bytes(emit: Emit) -> bytes | None:
    return None if emit.key is None else emit.key.encode()


def jsonl_line(topic: str, emit: Emit) -> bytes:
    """``{"topic": ..., "key": ..., "value": ...}`` + newline, the replay file format."""
    value = value_bytes(emit) or b"null"
    return b'{"topic":' + orjson.dumps(topic) + b',"key":' + orjson.dumps(emit.key) + b',"value":' + value + b"}\n"


@dataclass(frozen=True, slots=True)
class Progress:
    """On the internal events topic: the ingest ``reader``, at wall time ``wall_ms``, has forwarded everything
    written to these inbound partitions before ``as_of_ms``, and by then had forwarded each topic's events
    up to the event time in ``positions``."""

    sources: list[tuple[str, int]]
    wall_ms: int
    as_of_ms: int
    positions: dict[str, int]
    reader: str


def event_bytes(ev: Event, source: tuple[str, int], offset: int) -> bytes:
    """A decoded, pseudonymised event for the internal events topic, with where it was read."""
    return orjson.dumps({"s": source, "o": offset, "ts": ev.ts, "ids": [(i.kind, i.hash) for i in ev.identifiers],
                         "b": ev.body.model_dump(mode="json", exclude_none=True)})


def progress_bytes(p: Progress) -> bytes:
    return orjson.dumps({"caught_up": p.sources, "wall": p.wall_ms, "as_of": p.as_of_ms, "pos": p.positions,
                         "by": p.reader})


def internal_from_bytes(data: bytes) -> tuple[Event, tuple[str, int], int] | Progress:
    """A record of the internal events topic: an event with where it was read, or a progress marker."""
    d = orjson.loads(data)
    if "caught_up" in d:
        return Progress([(t, p) for t, p in d["caught_up"]], d["wall"], d["as_of"], d["pos"], d["by"])
    topic, partition = d["s"]
    body = INBOUND[topic].model_validate(d["b"])
    return Event(topic, d["ts"], tuple(Identifier(k, h) for k, h in d["ids"]), body), (topic, partition), d["o"]
