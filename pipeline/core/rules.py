"""Thresholds, windows and identity rules of the processing logic, as one frozen model.

Every field is also an environment setting (``RAPPORT_<FIELD>``, see ``pipeline.ops.settings``).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Identifier kinds, highest priority first.
IDENTIFIER_KINDS: tuple[str, ...] = ("user_id", "email", "phone", "loyalty_id", "device_id", "anonymous_id")


class Rules(BaseModel):
    """What the core needs to know; defaults are the documented product defaults."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Time
    allowed_lateness_s: float = Field(300.0, ge=0, description="Watermark = latest event time minus this.")
    order_grace_s: float = Field(0.15, ge=0, description=(
        "Live traffic: how late (after its event time) an event may be written and still be applied in event-time "
        "order. The canonical order waits this long, plus how old the readers' knowledge of their partitions' "
        "ends is (about a fetch)."))
    order_live_within_s: float = Field(60.0, ge=0, description=(
        "Traffic whose latest event time is this close to the wall clock counts as live (see order_grace_s); "
        "older traffic is a backfill, ordered by event time alone."))
    # Ingest
    max_future_s: float = Field(3600.0, gt=0, description=(
        "An event whose occurred_at is further ahead of its record's Kafka timestamp (when it was written) goes "
        "to dlq.v1 as future_event_time: it would move event time on for everyone (a client clock far off)."))
    max_record_bytes: int = Field(960_000, ge=1024, description=(
        "Larger inbound records (value or key), and records that pseudonymising would make larger (an email "
        "or phone in a text becomes a 69-character token), go to dlq.v1 as too_large, with a bounded, "
        "redacted excerpt. Below Kafka's default limit of 1,000,000 bytes a record, with room for what an "
        "internal record or a dead letter adds."))
    max_text_chars: int = Field(20_000, ge=100, description=(
        "Texts are scored and learned from on their first this many characters (scoring is linear in length)."))
    dedup_capacity: int = Field(500_000, ge=1, description="Most recent event ids remembered for de-duplication.")
    internal_retention_hours: float = Field(24.0, gt=0, description=(
        "Retention of the internal topics (rapport.events.v1, rapport.customers.v1): how long an erased "
        "customer's texts and hashed identifiers can still be read there."))
    dlq_retention_hours: float = Field(72.0, gt=0, description="Retention of dlq.v1 (redacted inputs, free text).")
    default_country_code: str = Field("82", pattern=r"^\d{1,3}$", description="Country code for national phone numbers.")
    default_currency: str = Field("KRW", pattern=r"^[A-Z]{3}$", description="Currency of prices that carry none (web carts).")
    # Identity
    identifier_priority: tuple[str, ...] = IDENTIFIER_KINDS
    identifier_limits: dict[str, int] = Field(
        default_factory=lambda: {"user_id": 1, "email": 5, "phone": 3, "loyalty_id": 3, "device_id": 10, "anonymous_id": 50},
        description="Most identifiers of each kind one customer may hold.",
    )
    blocked_identifier_pattern: str = Field(
        r"^(?:|null|none|nil|undefined|unknown|anonymous|guest|test|n/?a|-1|0+)$",
        description="Case-insensitive regex; matching identifier values never link anything (on top of the "
                    "placeholder shapes in pipeline.core.placeholders).",
    )
    # Carts
    cart_abandon_window_s: float = Field(1800.0, gt=0)
    cart_recovery_window_s: float = Field(72 * 3600.0, gt=0)
    # Emotion
    negative_emotion_threshold: float = Field(-0.5, ge=-1, le=0, description="Score at or below which a text alerts.")
    souring_drop: float = Field(0.4, gt=0, le=2, description="Souring: recent sentiment this far below the long-run average...")
    souring_min_texts: int = Field(3, ge=2, description="...after at least this many texts...")
    souring_buying_days: float = Field(60.0, gt=0, description="...while the customer bought within this many days.")
    sentiment_warmup: int = Field(300, ge=0, description="Rated texts (per language) before the sentiment combination's weights start learning; its naive Bayes learns from the first.")
    # Churn
    churn_horizon_days: float = Field(90.0, gt=0, description="Churned = no purchase in the next H days.")
    churn_snapshot_every_days: float = Field(7.0, gt=0, description="At most one pending churn snapshot per customer per this many days.")
    churn_rescore_for_days: float = Field(730.0, gt=0, description=(
        "A quiet customer is re-scored every churn_snapshot_every_days for this long after its last event, "
        "then no more (a jump of event time by years costs each customer this many re-scores at most)."))
    churn_threshold: float = Field(0.7, gt=0, lt=1)
    churn_rearm_below: float = Field(0.6, gt=0, lt=1, description="Hysteresis: re-arm churn_risk once the probability falls below this.")
    churn_cooldown_days: float = Field(30.0, ge=0)
    churn_min_labels: int = Field(50, ge=0, description="Learned labels before churn_risk may fire (an untrained model stays quiet).")
    model_epoch_hours: float = Field(24.0, gt=0, description=(
        "Learned models take effect per this much event time: the version in effect has learned every label "
        "due before the previous epoch, so every deployment scores with the same version (must exceed the "
        "allowed lateness)."))
    # Profiles
    profile_coalesce_s: float = Field(300.0, ge=0, description=(
        "Profiles are coalesced per customer over this much event time: the first meaningful change after a quiet "
        "interval goes out at once, later ones in one record when the watermark passes the interval's end "
        "(0 = every meaningful change at once)."))
    # Scale-out
    customer_partitions: int = Field(1, ge=1, le=1024, description=(
        "Partitions of customers (the stateful per-customer stage); a customer lives on one of them."))
    # Testing
    inject_faults: str = Field("", pattern=r"^[\w:.,\s-]*$", description=(
        "Fault injection, for tests and chaos runs only: 'stage:needle,...' makes a stage (ingest, identity, "
        "sentiment, customers, timers) raise on the events whose id holds the needle (timers: whose kind does)."))
    # Contact policy
    trigger_cap_per_day: int = Field(3, ge=1, description="Triggers of one type per customer per 24 h of event time.")
    consent_mode: str = Field("flag", pattern=r"^(flag|suppress)$", description="flag: contactable=false; suppress: not emitted.")
