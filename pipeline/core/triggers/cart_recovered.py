"""``cart_recovered``: the first purchase within the recovery window after a ``cart_abandoned`` trigger.

State (its own): the recent ``cart_abandoned`` triggers not yet recovered. Checked after every
purchase, every ``cart_abandoned`` that went out and every merge, whichever was read first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.profile import CustomerState
from pipeline.core.records import to_dt
from pipeline.core.triggers.base import Applied, Stage, TriggerType, slice_of
from pipeline.core.triggers.wording import duration, money, trigger_id
from schemas.outbound import CartAbandoned, CartRecovered, CartRecoveredEvidence, Trigger

NAME = "cart_recovered"
KEEP_ABANDONED = 5


@dataclass(slots=True)
class Abandoned:
    """A cart_abandoned trigger, kept until a purchase recovers it (or it is pushed out)."""

    trigger_id: str
    at: int
    value: float
    currency: str | None


@dataclass(slots=True)
class State:
    abandoned: list[Abandoned] = field(default_factory=list)

    def absorb(self, other: "State") -> "State":
        self.abandoned = sorted(self.abandoned + other.abandoned, key=lambda a: (a.at, a.trigger_id))[-KEEP_ABANDONED:]
        return self


def state(st: CustomerState) -> State:
    return slice_of(st, NAME, State)


def recover(stage: Stage, st: CustomerState) -> None:
    """Recover (once) every abandoned cart that a purchase followed within the window."""
    window = int(stage.rules.cart_recovery_window_s * 1000)
    mine = st.triggers.get(NAME)
    for ab in list(mine.abandoned if mine is not None else ()):
        p = next((p for p in st.purchase_log if ab.at < p.ts <= ab.at + window), None)
        if p is not None:
            mine.abandoned = [a for a in mine.abandoned if a is not ab]
            stage.emit(st, record(st, ab, p.ts, p.total, p.channel, p.event_id, stage), p.ts)


def on_event(stage: Stage, st: CustomerState, applied: Applied) -> None:
    if applied.purchase is not None:
        recover(stage, st)


def on_trigger(stage: Stage, st: CustomerState, trigger: Trigger, ts: int) -> None:
    if isinstance(trigger, CartAbandoned):
        ev, mine = trigger.evidence, state(st)
        mine.abandoned = (mine.abandoned + [Abandoned(trigger.trigger_id, ts, ev.cart_value, ev.currency)])[-KEEP_ABANDONED:]
        recover(stage, st)  # a purchase read before the watermark got here


def record(st: CustomerState, ab: Abandoned, ts: int, total: float, channel: str, event_id: str,
           stage: Stage) -> CartRecovered:
    minutes = (ts - ab.at) / 60_000
    return CartRecovered(
        trigger_id=trigger_id(NAME, ab.trigger_id), customer_id=st.customer_id, occurred_at=to_dt(ts),
        emitted_at=stage.now(), cause_event_ids=[event_id], contactable=st.contactable,
        reason=f"A {channel} purchase of {money(total, st.currency)} came {duration(minutes * 60)} after the "
               f"cart-abandoned alert for a cart worth {money(ab.value, ab.currency)}.",
        evidence=CartRecoveredEvidence(
            abandoned_trigger_id=ab.trigger_id, cart_value=round(ab.value, 2), recovered_value=round(total, 2),
            currency=st.currency, minutes_after_trigger=round(minutes, 2), purchase_channel=channel,
        ),
    )


TRIGGER = TriggerType(NAME, CartRecovered, on_event=on_event, on_trigger=on_trigger, after_merge=recover)
