"""Records that flow between the drivers and the core."""
from __future__ import annotations

import hashlib
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from schemas.inbound import InboundEvent

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One inbound Kafka record as bytes; ``topic`` is the contract name without namespace prefix;
    ``timestamp_ms``: when it was written (the Kafka record's timestamp), where known."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Identifier:
    """A pseudonymised identifier: its kind and the keyed hash of its normalised value; ``key`` is both."""

    kind: str
    hash: str
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.kind}:{self.hash}")


@dataclass(frozen=True, slots=True)
class Event:
    """A validated inbound event with hashed identifiers (highest priority first) and event time in ms."""

    topic: str
    ts: int
    identifiers: tuple[Identifier, ...]
    body: InboundEvent
    arrived_ms: int | None = field(default=None, compare=False)  # wall time ingest read it (live only; for metrics)

    def __setstate__(self, state: list) -> None:
        set_fields(self, dict(zip((f.name for f in fields(self)), state)))

    @property
    def event_id(self) -> str:
        return self.body.event_id


@dataclass(frozen=True, slots=True)
class Emit:
    """One outbound record; ``value=None`` is a tombstone."""

    topic: str
    key: str | None
    value: BaseModel | None


def set_fields(obj: object, values: dict) -> None:
    """Unpickling a dataclass: its fields from ``values``, with the defaults of fields added since the pickle
    was written (a format-0 changelog)."""
    for f in fields(obj):  # type: ignore[arg-type]
        value = values[f.name] if f.name in values else f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        object.__setattr__(obj, f.name, value)


def construct(cls: type[M], **values: Any) -> M:
    """``cls.model_construct(**values)`` for a record of ours built from typed state and given every field
    (no validation, no defaults to fill), at a fraction of its cost.

    >>> from schemas.outbound import ConsentChange
    >>> c = construct(ConsentChange, purpose="marketing", granted=True, at=to_dt(0), event_id="e-1")
    >>> c == ConsentChange.model_construct(purpose="marketing", granted=True, at=to_dt(0), event_id="e-1")
    True
    """
    n = _FIELD_COUNTS.get(cls)
    if n is None:
        n = _FIELD_COUNTS[cls] = len(cls.model_fields)
    assert len(values) == n, f"{cls.__name__}: give every field"
    m = cls.__new__(cls)
    _set(m, "__dict__", values)
    _set(m, "__pydantic_fields_set__", set(values))
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


_FIELD_COUNTS: dict[type, int] = {}  # (``model_fields`` is a property: counted once a model)


def shallow_copy(obj: object) -> object:
    """A new instance of a slotted class holding the same field values (faster than ``copy.copy``)."""
    cls = type(obj)
    new = cls.__new__(cls)
    for name in cls.__slots__:  # type: ignore[attr-defined]
        _set(new, name, getattr(obj, name))
    return new


def to_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def digest(value: object) -> int:
    """A 64-bit digest of a JSON-able value, the same in every process (unlike ``hash``).

    >>> digest((1, "a", [("email", 2)])) == digest([1, "a", [["email", 2]]]) != digest((1, "a", []))
    True
    """
    return int.from_bytes(hashlib.blake2b(orjson.dumps(value), digest_size=8).digest(), "big")
