"""``cart_abandoned``: a cart episode left for the abandonment window without a purchase on any channel.

State: the customer's cart episodes (``CustomerState.carts``, kept by the core). Timer: the earliest
episode deadline. Fires for every episode whose window the watermark has passed.
"""
from __future__ import annotations

from pipeline.core.cart import Cart
from pipeline.core.profile import CustomerState
from pipeline.core.records import to_dt
from pipeline.core.rules import Rules
from pipeline.core.triggers.base import Applied, Stage, TriggerType
from pipeline.core.triggers.wording import duration, money, plural, trigger_id
from schemas.outbound import CartAbandoned, CartAbandonedEvidence, CartItem

NAME = "cart_abandoned"


def window_ms(rules: Rules) -> int:
    return int(rules.cart_abandon_window_s * 1000)


def timer_at(stage: Stage, st: CustomerState) -> int | None:
    return st.carts.next_deadline(window_ms(stage.rules))


def on_event(stage: Stage, st: CustomerState, applied: Applied) -> None:
    if applied.cart_changed or applied.purchase is not None:
        stage.schedule(NAME, st, timer_at(stage, st))


def on_timer(stage: Stage, st: CustomerState, at: int) -> None:
    window = window_ms(stage.rules)
    for cart in st.carts.due(stage.watermark, window):
        deadline = cart.updated + window
        st.carts_abandoned += 1
        stage.emit(st, record(st, cart, deadline, stage), deadline)
    stage.schedule(NAME, st, timer_at(stage, st))


def after_merge(stage: Stage, st: CustomerState) -> None:
    stage.schedule(NAME, st, timer_at(stage, st))


def record(st: CustomerState, cart: Cart, fire_at: int, stage: Stage) -> CartAbandoned:
    rules = stage.rules
    items = [CartItem(sku=s, quantity=line.quantity, unit_price=line.unit_price) for s, line in sorted(cart.lines.items())]
    n, value = cart.quantity, cart.value
    currency = st.currency or rules.default_currency
    return CartAbandoned(
        trigger_id=trigger_id(NAME, cart.episode), customer_id=st.customer_id,
        occurred_at=to_dt(fire_at), emitted_at=stage.now(), cause_event_ids=list(cart.causes),
        contactable=st.contactable,
        reason=f"A cart with {plural(n, 'item')} worth {money(value, currency)} was left for "
               f"{duration(rules.cart_abandon_window_s)} without a purchase on any channel.",
        evidence=CartAbandonedEvidence(
            items=items, item_count=n, cart_value=round(value, 2), currency=currency,
            cart_started_at=to_dt(cart.started), last_activity_at=to_dt(cart.updated),
            window_minutes=rules.cart_abandon_window_s / 60,
        ),
    )


TRIGGER = TriggerType(NAME, CartAbandoned, on_event=on_event, on_timer=on_timer, after_merge=after_merge,
                      timer_at=timer_at)
