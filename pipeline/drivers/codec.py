"""Serialisation at the edges: engine outputs to bytes, the records between stages, and the engine a
driver runs.

Between stages (internal topics), plain values travel as JSON; customer state and model versions in a
hand-over or a publication travel in the state encoding (``pipeline.core.encoding``), like the
changelog's entries.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import datetime, timezone

import orjson

from pipeline.core.messages import (
    Expect, HandedOver, LabelReport, Message, Publish, Recount, Release, Routed, Tick,
)
from pipeline.core import encoding
from pipeline.core.engine import Engine
from pipeline.core.identity import Merge
from pipeline.core.models.sentiment import Scored
from pipeline.core.pii import Hasher
from pipeline.core.privacy import DeadLetterLink, Resolved
from pipeline.core.records import Emit, Event, Identifier
from pipeline.core.versions import Label
from pipeline.ops.settings import Settings
from schemas.inbound import INBOUND


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def build_engine(settings: Settings, now: Callable[[], datetime] = wall_clock, local: bool = True) -> Engine:
    """The engine every driver runs (``local=False``: its customer partitions run elsewhere)."""
    engine = Engine(settings, Hasher(settings.pii_secret(), settings.default_country_code), now, local=local)
    tune_gc()
    return engine


def tune_gc() -> None:
    """Garbage collection for a stream of short-lived objects: the young generation is collected every
    ``GC_YOUNG`` allocations instead of 700 (replay of 100k mixed records: 15.4 -> 13.5 s). Nothing is
    frozen: a frozen engine dropped at a rebalance would never be collected."""
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


GC_YOUNG = 20_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Cyclic garbage collection paused while a restore or a replay builds state: it makes no cyclic garbage,
    only objects that live on, which every collection would scan again (a restore of 100k customers: 5.1 ->
    3.1 s). Nested and concurrent pauses (partitions restore side by side) end with the last one.

    >>> with gc_paused():
    ...     gc.isenabled()
    False
    """
    with _PAUSES_LOCK:
        _PAUSES[0] += 1
        if _PAUSES[0] == 1:
            _PAUSES[1] = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _PAUSES_LOCK:
            _PAUSES[0] -= 1
            if _PAUSES[0] == 0 and _PAUSES[1]:
                gc.enable()


@contextmanager
def restoring() -> Iterator[None]:
    """A worker's restore: collection paused while it builds state (``gc_paused``), and what it built kept out of
    later collections (``gc.freeze``). A full collection scans every object it tracks, and restored customers
    are millions of them (200k customers: 1.5 s; a worker with a million would miss its group's session
    timeout). State makes no reference cycles, so a partition dropped at a rebalance is still freed, by
    reference counting.

    >>> with restoring():
    ...     state = [[n] for n in range(1000)]
    >>> gc.get_freeze_count() >= 1000, gc.isenabled()
    (True, True)
    >>> gc.unfreeze()
    """
    with gc_paused():
        yield
    gc.freeze()


_PAUSES: list = [0, False]  # pauses running; whether collection was enabled before the first
_PAUSES_LOCK = threading.Lock()


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
    up to the event time in ``positions``. The sequencer reads ``as_of_ms`` only; ``wall_ms`` stays on the
    wire for a global stage of a release before session 10 (its live floor was the wall time minus the
    grace), so that workers of both releases can run side by side during an upgrade."""

    sources: list[tuple[str, int]]
    wall_ms: int
    as_of_ms: int
    positions: dict[str, int]
    reader: str


def _event(ev: Event) -> dict:
    d = {"t": ev.topic, "ts": ev.ts, "ids": [(i.kind, i.hash) for i in ev.identifiers],
         "b": ev.body.model_dump(mode="json", exclude_none=True)}
    if ev.arrived_ms is not None:
        d["a"] = ev.arrived_ms
    return d


def _event_from(d: dict) -> Event:
    return Event(d["t"], d["ts"], tuple(Identifier(k, h) for k, h in d["ids"]), INBOUND[d["t"]].model_validate(d["b"]),
                 d.get("a"))


def event_bytes(ev: Event, source: tuple[str, int], offset: int, arrived_ms: int | None = None) -> bytes:
    """A decoded, pseudonymised event for the internal events topic, with where it was read (and when, live)."""
    d = {"s": source, "o": offset, **_event(ev)}
    if arrived_ms is not None:
        d["a"] = arrived_ms
    return orjson.dumps(d)


def progress_bytes(p: Progress) -> bytes:
    return orjson.dumps({"caught_up": p.sources, "wall": p.wall_ms, "as_of": p.as_of_ms, "pos": p.positions,
                         "by": p.reader})


def report_bytes(r: LabelReport) -> bytes:
    return orjson.dumps({"labels": [(lb.due, lb.ts, lb.x, lb.churned) for lb in r.labels],
                         "p": r.partition, "through": r.through})


def link_bytes(link: DeadLetterLink) -> bytes:
    """Ingest's note of a dead letter that carries identifiers, for the global stage (``DeadLetters``)."""
    return orjson.dumps({"dl": link.key, "ids": link.identifiers})


def events_record(items: list[bytes]) -> bytes:
    """Several ``event_bytes`` and ``link_bytes`` in one record of the internal events topic (a JSON array)."""
    return b"[" + b",".join(items) + b"]"


InternalItem = tuple[Event, tuple[str, int], int] | DeadLetterLink | Progress | LabelReport


def internal_from_bytes(data: bytes) -> list[InternalItem]:
    """The items of a record of the internal events topic: events (each with where it was read) and dead
    letter notes, or one progress marker, or one customer partition's label report."""
    d = orjson.loads(data)
    if isinstance(d, list):
        return [DeadLetterLink(e["dl"], tuple(e["ids"])) if "dl" in e else (_event_from(e), (e["s"][0], e["s"][1]), e["o"])
                for e in d]
    if "caught_up" in d:
        return [Progress([(t, p) for t, p in d["caught_up"]], d["wall"], d["as_of"], d["pos"], d["by"])]
    if "labels" in d:
        return [LabelReport(d["p"], d["through"], [Label(*lb[-4:]) for lb in d["labels"]])]  # (older: a customer id 2nd)
    topic, partition = d["s"]  # one event per record (an older release)
    return [(_event_from(d), (topic, partition), d["o"])]


# ---- the customers topic: what the global stage and other partitions send a customer partition ------

def _merge(m: Merge) -> list:
    return [m.survivor, m.absorbed, m.link.kind, m.link.hash, m.ts, m.event_id]


def _merge_from(v: list) -> Merge:
    return Merge(v[0], v[1], Identifier(v[2], v[3]), v[4], v[5])


def _resolved(v: list) -> Resolved:
    ids, merged, *rest = v
    return Resolved(tuple((k, h) for k, h in ids), tuple(merged), *rest)


def message_bytes(msg: Message) -> bytes:
    if isinstance(msg, Routed):
        s = msg.scored
        return orjson.dumps({"k": "r", "c": msg.customer_id, "e": _event(msg.event), "w": msg.watermark,
                             "n": msg.kinds, "v": msg.sentiment_version,
                             "s": None if s is None else [s.label, s.score, s.confidence, s.language, s.proba],
                             **({} if msg.privacy is None else {"p": astuple(msg.privacy)})})
    if isinstance(msg, Tick):
        return orjson.dumps({"k": "t", "w": msg.watermark})
    if isinstance(msg, Expect):
        return orjson.dumps({"k": "x", "m": _merge(msg.merge), "w": msg.watermark})
    if isinstance(msg, Release):
        return orjson.dumps({"k": "rel", "m": _merge(msg.merge), "w": msg.watermark, "to": msg.to})
    if isinstance(msg, Recount):
        return orjson.dumps({"k": "n", "c": msg.customer_id, "n": msg.kinds})
    if isinstance(msg, (HandedOver, Publish)):
        return b"S" + encoding.dumps(msg)
    raise TypeError(f"not a message for a customer partition: {type(msg).__name__}")


def messages_record(messages: list[bytes]) -> bytes:
    """Several ``message_bytes`` in one record of the customers topic: ``F``, then each with its length.

    >>> [type(m).__name__ for m in messages_from_bytes(messages_record([message_bytes(Tick(5))] * 2))]
    ['Tick', 'Tick']
    """
    return b"F" + b"".join(len(m).to_bytes(4, "big") + m for m in messages)


def messages_from_bytes(data: bytes) -> list[Message]:
    """The messages of a record of the customers topic (an older release wrote one per record)."""
    if data[:1] != b"F":
        return [message_from_bytes(data)]
    out, at, end = [], 1, len(data)
    while at < end:
        n = int.from_bytes(data[at:at + 4], "big")
        out.append(message_from_bytes(data[at + 4:at + 4 + n]))
        at += 4 + n
    if at != end:
        raise ValueError(f"truncated message frame at byte {at} of {end}")
    return out


def message_from_bytes(data: bytes) -> Message:
    if data[:1] in (b"S", b"P"):  # P: pickled, by a release before the state encoding
        return encoding.loads(data[1:])  # type: ignore[return-value]
    d = orjson.loads(data)
    kind = d["k"]
    if kind == "r":
        s = d["s"]
        p = d.get("p")
        return Routed(d["c"], _event_from(d["e"]), d["w"], d["n"], None if s is None else Scored(*s), d["v"],
                      None if p is None else Resolved.of(p) if isinstance(p, dict) else _resolved(p))
    if kind == "t":
        return Tick(d["w"])
    if kind == "x":
        return Expect(_merge_from(d["m"]), d["w"])
    if kind == "rel":
        return Release(_merge_from(d["m"]), d["w"], d["to"])
    return Recount(d["c"], d["n"])
