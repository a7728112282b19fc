"""``negative_emotion``: one strongly negative text, or sentiment souring while the customer keeps buying.

State (its own): whether the souring alert is armed; it reads the customer's sentiment averages.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.models.sentiment import Scored
from pipeline.core.profile import CustomerState
from pipeline.core.records import to_dt
from pipeline.core.triggers.base import Applied, Stage, TriggerType, slice_of
from pipeline.core.triggers.wording import CHANNEL_NAMES, LANGUAGE_NAMES, a, trigger_id
from schemas.inbound import ReviewEvent
from schemas.outbound import NegativeEmotion, NegativeEmotionEvidence

NAME = "negative_emotion"


@dataclass(slots=True)
class State:
    souring_armed: bool = True

    def absorb(self, other: "State") -> "State":
        self.souring_armed = self.souring_armed and other.souring_armed
        return self


def souring(st: CustomerState, now: int, drop: float, min_texts: int, buying_days: float) -> bool:
    """True once per episode: the recent sentiment average has fallen ``drop`` below the long-run one,
    below zero, while the customer buys; re-armed when it recovers to half that gap."""
    if st.sentiment_avg is None or st.sentiment_long is None:
        return False
    mine = slice_of(st, NAME, State)
    gap = st.sentiment_long - st.sentiment_avg
    if gap < drop / 2:
        mine.souring_armed = True
    recency = st.recency_days(now)
    if (mine.souring_armed and st.texts >= min_texts and st.sentiment_avg < 0 and gap >= drop
            and recency is not None and recency <= buying_days):
        mine.souring_armed = False
        return True
    return False


def on_event(stage: Stage, st: CustomerState, applied: Applied) -> None:
    scored, body, ts, r = applied.scored, applied.event.body, applied.event.ts, stage.rules
    if scored is None or not isinstance(body, ReviewEvent):
        return
    if scored.score <= r.negative_emotion_threshold:
        stage.emit(st, record(st, body, scored, ts, stage), ts)
    elif souring(st, ts, r.souring_drop, r.souring_min_texts, r.souring_buying_days):
        stage.emit(st, record(st, body, scored, ts, stage, souring=True), ts)


def record(st: CustomerState, review: ReviewEvent, scored: Scored, ts: int, stage: Stage,
           souring: bool = False) -> NegativeEmotion:
    rules = stage.rules
    what = CHANNEL_NAMES.get(review.channel, review.channel)
    read_as = LANGUAGE_NAMES.get(scored.language, scored.language)
    recency = st.recency_days(ts)
    if souring:
        high = (st.sentiment_avg or 0) <= -0.5
        reason = (f"Sentiment is souring while the customer keeps buying: the recent average is "
                  f"{st.sentiment_avg:.2f} against {st.sentiment_long:.2f} over time, and the last purchase was "
                  f"{recency:.0f} days ago; the latest, {a(what)} read as {read_as}, scored {scored.score:.2f}.")
    else:
        high = scored.score <= (rules.negative_emotion_threshold - 1) / 2
        reason = (f"{a(what).capitalize()} read as {read_as} scored {scored.score:.2f} "
                  f"(alert at {rules.negative_emotion_threshold:.2f} or below): "
                  f"{'high' if high else 'medium'} negative emotion.")
    tone = ("apologetic and personal: a person should reply and offer compensation" if high
            else "empathetic: acknowledge the problem and offer help")
    return NegativeEmotion(
        trigger_id=trigger_id(NAME + ("/souring" if souring else ""), review.event_id),
        customer_id=st.customer_id, occurred_at=to_dt(ts), emitted_at=stage.now(), cause_event_ids=[review.event_id],
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


TRIGGER = TriggerType(NAME, NegativeEmotion, on_event=on_event)
