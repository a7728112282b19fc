"""``churn_risk``: the churn probability crossing the alert threshold upward.

State (its own): whether it is armed (hysteresis: re-armed below ``churn_rearm_below``) and when it
last alerted (cool-down). Called on every churn score: an event of the customer, or a quiet period's
re-score. Quiet until the model version in effect has learned ``churn_min_labels`` labels.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.profile import DAY_MS, CustomerState
from pipeline.core.records import to_dt
from pipeline.core.triggers.base import Stage, TriggerType, slice_of
from pipeline.core.triggers.wording import plural, trigger_id
from schemas.outbound import ChurnRisk, ChurnRiskEvidence

NAME = "churn_risk"


@dataclass(slots=True)
class State:
    armed: bool = True
    alerted_at: int | None = None

    def absorb(self, other: "State") -> "State":
        self.armed = self.armed and other.armed
        self.alerted_at = max(filter(None, (self.alerted_at, other.alerted_at)), default=None)
        return self


def on_churn(stage: Stage, st: CustomerState, p: float, ts: int, cause: str) -> None:
    r = stage.rules
    mine = slice_of(st, NAME, State)
    if p < r.churn_rearm_below:
        mine.armed = True
        return
    model = stage.churn_model(ts)
    cooled = mine.alerted_at is None or ts - mine.alerted_at >= r.churn_cooldown_days * DAY_MS
    if p >= r.churn_threshold and mine.armed and model.learned >= r.churn_min_labels and cooled:
        if stage.emit(st, record(st, p, ts, cause, model.version, stage), ts):
            mine.armed, mine.alerted_at = False, ts


def record(st: CustomerState, p: float, ts: int, cause: str, version: str, stage: Stage) -> ChurnRisk:
    rules = stage.rules
    recency = st.recency_days(ts)
    since = f"the last purchase was {recency:.0f} days ago" if recency is not None else "no purchase yet"
    return ChurnRisk(
        trigger_id=trigger_id(NAME, cause), customer_id=st.customer_id, occurred_at=to_dt(ts),
        emitted_at=stage.now(), cause_event_ids=[cause], contactable=st.contactable,
        reason=f"Churn probability rose to {p:.0%} (alert at {rules.churn_threshold:.0%}); {since}, "
               f"{plural(st.purchases, 'purchase')} in all.",
        evidence=ChurnRiskEvidence(
            churn_probability=round(p, 4), threshold=rules.churn_threshold,
            recency_days=None if recency is None else round(recency, 2), purchases=st.purchases,
            mean_interpurchase_days=None if (m := st.mean_interval_days()) is None else round(m, 2),
            sentiment_avg=None if st.sentiment_avg is None else round(st.sentiment_avg, 4), model_version=version,
        ),
    )


TRIGGER = TriggerType(NAME, ChurnRisk, on_churn=on_churn)
