"""What a trigger type is: its record and the hooks the customer stage calls, and what it may ask of it.

A trigger module holds one trigger type: its rules, its timer (keyed by its name and the customer), its
record (the outbound model of its topic) and its own slice of customer state, ``st.triggers[name]``: a
slotted dataclass with ``absorb(other) -> self`` for merges, whose containers a change replaces rather than
mutates (a roll-back's checkpoint copies it shallowly, ``CustomerState.checkpoint``) (the core's state holds behaviour, purchases,
carts, texts and consent, which modules read). The registry in ``pipeline.core.triggers`` lists them;
the customer stage calls every module's hooks in that order.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import Scored
from pipeline.core.profile import CustomerState, Purchase
from pipeline.core.records import Event
from pipeline.core.rules import Rules
from schemas.outbound import Trigger


class Stage(Protocol):
    """What a trigger module may ask of the stage that runs it."""

    rules: Rules
    watermark: int | None

    def now(self) -> datetime: ...

    def churn_model(self, ts: int) -> ChurnModel:
        """The churn model version in effect at event time ``ts``."""

    def emit(self, st: CustomerState, trigger: Trigger, ts: int) -> bool:
        """Send ``trigger`` through the contact policy; True when it went out."""

    def schedule(self, kind: str, st: CustomerState, at: int | None) -> None:
        """Fire ``kind``'s timer for this customer at event time ``at`` (None cancels it)."""


@dataclass(frozen=True, slots=True)
class Applied:
    """One event just applied to a customer's state, with what the stage learned from it."""

    event: Event
    purchase: Purchase | None = None
    scored: Scored | None = None
    cart_changed: bool = False


S = TypeVar("S")


def slice_of(st: CustomerState, name: str, make: Callable[[], S]) -> S:
    """The trigger module ``name``'s slice of the customer's state, made on first use (not made and thrown
    away on every later call, as ``dict.setdefault`` would: a module may ask at every event)."""
    mine = st.triggers.get(name)
    if mine is None:
        mine = st.triggers[name] = make()
    return mine  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TriggerType:
    """One trigger type and its hooks; each hook is optional."""

    name: str
    record: type[Trigger]
    on_event: Callable[[Stage, CustomerState, Applied], None] | None = None
    on_timer: Callable[[Stage, CustomerState, int], None] | None = None  # its timer (kind = name) is due
    on_churn: Callable[[Stage, CustomerState, float, int, str], None] | None = None  # (p, event time, cause)
    on_trigger: Callable[[Stage, CustomerState, Trigger, int], None] | None = None  # another went out
    after_merge: Callable[[Stage, CustomerState], None] | None = None  # the customer absorbed another
    timer_at: Callable[[Stage, CustomerState], int | None] | None = None  # when its timer is due (restore)
