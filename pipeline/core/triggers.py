"""Trigger records: deterministic ids, readable reasons, evidence; and the contact policy (caps, consent)."""
from __future__ import annotations

import hashlib
from datetime import datetime

from pipeline.core.cart import Cart
from pipeline.core.models.sentiment import Scored
from pipeline.core.profile import DAY_MS, Abandoned, CustomerState
from pipeline.core.records import to_dt
from pipeline.core.rules import Rules
from schemas.inbound import ReviewEvent
from schemas.outbound import (
    CartAbandoned, CartAbandonedEvidence, CartItem, CartRecovered, CartRecoveredEvidence, ChurnRisk, ChurnRiskEvidence,
    NegativeEmotion, NegativeEmotionEvidence,
)

LANGUAGE_NAMES = {"ko": "Korean", "en": "English", "und": "an unrecognised language"}
CHANNEL_NAMES = {"web": "web review", "app": "app review", "sns": "social post", "call_center": "call-center note",
                 "chat": "chat message", "survey": "survey answer"}


def trigger_id(kind: str, anchor: str) -> str:
    """The same kind and anchor (an episode's or a cause's event id) always give the same id."""
    return hashlib.sha256(f"{kind}|{anchor}".encode()).hexdigest()[:32]


def _money(value: float, currency: str | None) -> str:
    return f"{value:,.0f} {currency or ''}".strip()


def _plural(n: float, unit: str) -> str:
    return f"{n:g} {unit}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """``1800`` -> ``30 minutes``; ``20`` -> ``20 seconds``; ``7200`` -> ``2 hours``."""
    if seconds < 60:
        return _plural(round(seconds), "second")
    if seconds < 3600:
        return _plural(round(seconds / 60, 1), "minute")
    return _plural(round(seconds / 3600, 1), "hour")


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class Policy:
    """Frequency caps per customer and trigger type (event time), and consent."""

    def __init__(self, rules: Rules) -> None:
        self.cap = rules.trigger_cap_per_day
        self.suppress_without_consent = rules.consent_mode == "suppress"

    def admit(self, st: CustomerState, kind: str, ts: int) -> str | None:
        """None when the trigger may go out (and it is counted), else why it is held back."""
        recent = [t for t in st.fired.get(kind, []) if ts - DAY_MS < t <= ts]
        if len(recent) >= self.cap:
            return "capped"
        if self.suppress_without_consent and not st.contactable:
            return "no_consent"
        st.fired[kind] = recent + [ts]
        return None


def cart_abandoned(st: CustomerState, cart: Cart, fire_at: int, rules: Rules, now: datetime) -> CartAbandoned:
    items = [CartItem(sku=s, quantity=line.quantity, unit_price=line.unit_price) for s, line in sorted(cart.lines.items())]
    n, value, minutes = cart.quantity, cart.value, rules.cart_abandon_window_s / 60
    currency = st.currency or rules.default_currency
    return CartAbandoned(
        trigger_id=trigger_id("cart_abandoned", cart.episode), customer_id=st.customer_id,
        occurred_at=to_dt(fire_at), emitted_at=now, cause_event_ids=list(cart.causes), contactable=st.contactable,
        reason=f"A cart with {_plural(n, 'item')} worth {_money(value, currency)} was left for "
               f"{duration(rules.cart_abandon_window_s)} without a purchase on any channel.",
        evidence=CartAbandonedEvidence(
            items=items, item_count=n, cart_value=round(value, 2), currency=currency,
            cart_started_at=to_dt(cart.started), last_activity_at=to_dt(cart.updated),
            window_minutes=minutes,
        ),
    )


def cart_recovered(st: CustomerState, ab: Abandoned, ts: int, total: float, channel: str, event_id: str,
                   now: datetime) -> CartRecovered:
    minutes = (ts - ab.at) / 60_000
    return CartRecovered(
        trigger_id=trigger_id("cart_recovered", ab.trigger_id), customer_id=st.customer_id, occurred_at=to_dt(ts),
        emitted_at=now, cause_event_ids=[event_id], contactable=st.contactable,
        reason=f"A {channel} purchase of {_money(total, st.currency)} came {duration(minutes * 60)} after the "
               f"cart-abandoned alert for a cart worth {_money(ab.value, ab.currency)}.",
        evidence=CartRecoveredEvidence(
            abandoned_trigger_id=ab.trigger_id, cart_value=round(ab.value, 2), recovered_value=round(total, 2),
            currency=st.currency, minutes_after_trigger=round(minutes, 2), purchase_channel=channel,
        ),
    )


def negative_emotion(st: CustomerState, review: ReviewEvent, scored: Scored, ts: int, rules: Rules,
                     now: datetime, souring: bool = False) -> NegativeEmotion:
    """One strongly negative text, or (``souring``) the recent average falling while the customer buys."""
    what = CHANNEL_NAMES.get(review.channel, review.channel)
    read_as = LANGUAGE_NAMES.get(scored.language, scored.language)
    recency = st.recency_days(ts)
    if souring:
        high = (st.sentiment_avg or 0) <= -0.5
        reason = (f"Sentiment is souring while the customer keeps buying: the recent average is "
                  f"{st.sentiment_avg:.2f} against {st.sentiment_long:.2f} over time, and the last purchase was "
                  f"{recency:.0f} days ago; the latest, {_a(what)} read as {read_as}, scored {scored.score:.2f}.")
    else:
        high = scored.score <= (rules.negative_emotion_threshold - 1) / 2
        reason = (f"{_a(what).capitalize()} read as {read_as} scored {scored.score:.2f} "
                  f"(alert at {rules.negative_emotion_threshold:.2f} or below): "
                  f"{'high' if high else 'medium'} negative emotion.")
    tone = ("apologetic and personal: a person should reply and offer compensation" if high
            else "empathetic: acknowledge the problem and offer help")
    return NegativeEmotion(
        trigger_id=trigger_id("negative_emotion" + ("/souring" if souring else ""), review.event_id),
        customer_id=st.customer_id, occurred_at=to_dt(ts), emitted_at=now, cause_event_ids=[review.event_id],
        contactable=st.contactable, reason=reason, signal="souring_trend" if souring else "single_text",
        severity="high" if high else "medium", channel=review.channel, review_id=review.review_id,
        language=scored.language, suggested_tone=tone,
        evidence=NegativeEmotionEvidence(
            score=scored.score, threshold=rules.negative_emotion_threshold,
            sentiment_avg=None if st.sentiment_avg is None else round(st.sentiment_avg, 4),
            sentiment_long=None if st.sentiment_long is None else round(st.sentiment_long, 4),
            texts_scored=st.texts, days_since_purchase=None if recency is None else round(recency, 2),
        ),
    )


def churn_risk(st: CustomerState, p: float, ts: int, event_id: str, rules: Rules, version: str,
               now: datetime) -> ChurnRisk:
    recency = st.recency_days(ts)
    since = f"the last purchase was {recency:.0f} days ago" if recency is not None else "no purchase yet"
    return ChurnRisk(
        trigger_id=trigger_id("churn_risk", event_id), customer_id=st.customer_id, occurred_at=to_dt(ts),
        emitted_at=now, cause_event_ids=[event_id], contactable=st.contactable,
        reason=f"Churn probability rose to {p:.0%} (alert at {rules.churn_threshold:.0%}); {since}, "
               f"{_plural(st.purchases, 'purchase')} in all.",
        evidence=ChurnRiskEvidence(
            churn_probability=round(p, 4), threshold=rules.churn_threshold,
            recency_days=None if recency is None else round(recency, 2), purchases=st.purchases,
            mean_interpurchase_days=None if (m := st.mean_interval_days()) is None else round(m, 2),
            sentiment_avg=None if st.sentiment_avg is None else round(st.sentiment_avg, 4), model_version=version,
        ),
    )

