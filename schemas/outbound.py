"""Outbound records (CONTRACT.md, "Outbound topics"). Times serialise as RFC 3339 in UTC."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["positive", "neutral", "negative"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)


# ---- triggers -------------------------------------------------------------------------------


class CartItem(_Out):
    sku: str
    quantity: int
    unit_price: float | None = None


class Trigger(_Out):
    """Fields every trigger carries."""

    trigger_id: str = Field(description="Deterministic: the same input gives the same id.")
    type: str
    customer_id: str
    occurred_at: datetime = Field(description="Event time at which the trigger fired.")
    emitted_at: datetime = Field(description="Wall clock when it was emitted.")
    cause_event_ids: list[str]
    reason: str = Field(description="Why it fired, in a sentence a person can read.")
    contactable: bool = Field(description="False when the customer withdrew marketing consent.")


class CartAbandonedEvidence(_Out):
    items: list[CartItem]
    item_count: int
    cart_value: float
    currency: str | None
    cart_started_at: datetime
    last_activity_at: datetime
    window_minutes: float


class CartAbandoned(Trigger):
    type: Literal["cart_abandoned"] = "cart_abandoned"
    evidence: CartAbandonedEvidence


class CartRecoveredEvidence(_Out):
    abandoned_trigger_id: str
    cart_value: float
    recovered_value: float
    currency: str | None
    minutes_after_trigger: float
    purchase_channel: Literal["web", "store"]


class CartRecovered(Trigger):
    type: Literal["cart_recovered"] = "cart_recovered"
    evidence: CartRecoveredEvidence


class NegativeEmotionEvidence(_Out):
    score: float
    threshold: float
    sentiment_avg: float | None = Field(description="Recent (fast) average of the customer's text scores.")
    sentiment_long: float | None = Field(description="Long-run (slow) average of the customer's text scores.")
    texts_scored: int
    days_since_purchase: float | None


class NegativeEmotion(Trigger):
    type: Literal["negative_emotion"] = "negative_emotion"
    signal: Literal["single_text", "souring_trend"] = Field(
        description="One strongly negative text, or sentiment souring while the customer keeps buying.")
    severity: Literal["medium", "high"]
    channel: str
    review_id: str
    language: str
    suggested_tone: str
    evidence: NegativeEmotionEvidence


class ChurnRiskEvidence(_Out):
    churn_probability: float
    threshold: float
    recency_days: float | None
    purchases: int
    mean_interpurchase_days: float | None
    sentiment_avg: float | None
    model_version: str


class ChurnRisk(Trigger):
    type: Literal["churn_risk"] = "churn_risk"
    evidence: ChurnRiskEvidence


# ---- scores, profiles, merges, dead letters -------------------------------------------------------


class ReviewScore(_Out):
    review_id: str
    customer_id: str
    label: Label
    score: float = Field(ge=-1, le=1)
    confidence: float = Field(ge=0, le=1)
    language: str
    model_version: str
    channel: str
    event_id: str
    occurred_at: datetime


class ConsentChange(_Out):
    purpose: str
    granted: bool
    at: datetime
    event_id: str


class Profile(_Out):
    customer_id: str
    as_of: datetime = Field(description="Event time of the latest event folded in.")
    first_seen_at: datetime
    last_seen_at: datetime
    journey_stage: Literal["awareness", "consideration", "purchase", "retention"]
    channels: list[str]
    identifier_counts: dict[str, int]
    # behaviour
    recency_days: float | None
    tenure_days: float
    purchases: int
    returns: int
    revenue: float
    currency: str | None
    avg_order_value: float | None
    mean_interpurchase_days: float | None
    sessions: int
    page_views: int
    product_views: int
    searches: int
    cart_items: int
    cart_value: float
    carts_started: int
    carts_abandoned: int
    cart_abandonment_rate: float | None
    # emotion
    texts_scored: int
    sentiment_avg: float | None = Field(description="Exponentially weighted mean of text scores (emotion index), -1..1.")
    sentiment_last: float | None
    sentiment_trend: float | None = Field(description="Recent minus long-run sentiment average.")
    # consent and prediction
    contactable: bool
    consent: dict[str, bool]
    consent_history: list[ConsentChange]
    churn_probability: float = Field(ge=0, le=1)
    churn_model_version: str


class LinkingIdentifier(_Out):
    kind: str
    hash: str


class IdentityMerge(_Out):
    merge_id: str
    surviving_customer_id: str
    absorbed_customer_id: str
    linking_identifier: LinkingIdentifier
    occurred_at: datetime
    event_id: str


class IdentifierBlocked(_Out):
    """An identifier value found shared by several people: from ``occurred_at`` on it links nothing."""

    identifier: LinkingIdentifier
    reason: str = Field(description="several_user_ids, or over_limit:<kind> (one customer would hold more values of "
                                    "that kind than one person has).")
    detail: str = Field(description="Why, in a sentence a person can read.")
    detached_customer_id: str | None = Field(description="The customer that held the identifier until then.")
    occurred_at: datetime
    event_id: str


class DeadLetter(_Out):
    source_topic: str
    partition: int = Field(description="-1 when the event was rejected after ordering (no single source record).")
    offset: int = Field(description="-1 when the event was rejected after ordering.")
    key: str | None
    raw: str = Field(description="The input, UTF-8 or base64 (raw_encoding), email and phone values replaced by hmac: tokens.")
    raw_encoding: Literal["utf-8", "base64"]
    error_type: str
    error_detail: str
    stage: str | None = Field(None, description="For error_type processing_error: the stage that failed "
                              "(ingest, identity, sentiment, customers, timers).")


#: Outbound topic (without namespace prefix) -> its model. Triggers share the base fields.
class HeldIdentifier(_Out):
    kind: str
    hash: str = Field(description="The keyed hash Rapport holds (HMAC-SHA256 of the normalised value).")


class PrivacyExport(_Out):
    """Everything Rapport holds about the customer (the right of access); no raw personal data."""

    identifiers: list[HeldIdentifier]
    profile: Profile | None = Field(description="None when no event of the customer was applied.")
    consent_history: list[ConsentChange]
    open_carts: list[CartItem]
    triggers_sent: dict[str, list[datetime]] = Field(
        description="Trigger type -> event times it fired for the customer in the 7 days before the request "
                    "(the trigger topics' retention).")


class PrivacyResult(_Out):
    """The outcome of a ``privacy.v1`` request, for one customer it resolved to (``part`` of ``parts``)."""

    request_id: str
    type: Literal["erase", "suppress", "unsuppress", "export"]
    status: Literal["completed", "not_found"]
    customer_id: str | None = Field(description="The pseudonymous customer; None when no customer holds the identifiers.")
    merged_customer_ids: list[str] = Field(description="Customers merged into it earlier (erased with it).")
    part: int
    parts: int
    removed: dict[str, int] = Field(description="erase: what was deleted, by kind (identifiers, merged_customers, "
                                    "dead_letters, customer_state, open_cart_lines, timers, churn_snapshots, "
                                    "consent_changes, recent_event_ids)")
    suppressed_identifiers: int = Field(description="suppress/unsuppress: identifiers now (no longer) suppressed.")
    export: PrivacyExport | None
    texts_expire_by: datetime | None = Field(description="erase: by when Kafka has deleted the tombstoned copies of "
                                             "the customer's texts (internal topics, dlq.v1): one "
                                             "max.compaction.lag.ms after completed_at. A compacted reader sees none "
                                             "from completed_at on.")
    occurred_at: datetime = Field(description="The request's event time.")
    completed_at: datetime = Field(description="Wall clock when the request took effect.")


OUTBOUND: dict[str, type[_Out]] = {
    "triggers.cart_abandoned.v1": CartAbandoned,
    "triggers.cart_recovered.v1": CartRecovered,
    "triggers.negative_emotion.v1": NegativeEmotion,
    "triggers.churn_risk.v1": ChurnRisk,
    "scores.reviews.v1": ReviewScore,
    "profiles.v1": Profile,
    "identity.merges.v1": IdentityMerge,
    "identity.blocked.v1": IdentifierBlocked,
    "dlq.v1": DeadLetter,
    "privacy.results.v1": PrivacyResult,
}
