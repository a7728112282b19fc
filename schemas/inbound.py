"""Inbound raw events (CONTRACT.md, "Inbound topics").

Strict: a wrong type is an error, never coerced; unknown extra fields are ignored so that
producers may add optional fields. Every error names the field and the reason.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator


def _rfc3339(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string with a UTC offset")
    return value


#: Event times outside these years are rejected: timers and windows computed from them stay representable.
YEARS = (1970, 2200)
#: Longest identifier value (longer ones are not identifiers, and would fill ingest's memory of values).
MAX_IDENTIFIER_CHARS = 512


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset, e.g. +09:00 or Z")
    if not YEARS[0] <= value.year < YEARS[1]:
        raise ValueError(f"must be in the years {YEARS[0]}-{YEARS[1] - 1}")
    return value


EventTime = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_aware)]
NonBlank = Annotated[StrictStr, Field(min_length=1, pattern=r"\S")]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
Quantity = Annotated[StrictInt, Field(ge=1)]
Currency = Annotated[StrictStr, Field(pattern=r"^[A-Za-z]{3}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


IdentifierValue = Annotated[StrictStr, Field(max_length=MAX_IDENTIFIER_CHARS)]


class Identifiers(_Model):
    """At least one value must be non-blank; ingest checks that (a Python validator here costs every event)."""

    anonymous_id: IdentifierValue | None = None
    device_id: IdentifierValue | None = None
    user_id: IdentifierValue | None = None
    email: IdentifierValue | None = None
    phone: IdentifierValue | None = None
    loyalty_id: IdentifierValue | None = None


class Envelope(_Model):
    event_id: NonBlank
    occurred_at: EventTime
    identifiers: Identifiers


class Product(_Model):
    sku: NonBlank
    price: Money | None = None
    quantity: Quantity = 1


class Order(_Model):
    order_id: NonBlank
    total: Money
    currency: Currency


ClickType = Literal[
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_started", "order_completed", "login"
]


class ClickEvent(Envelope):
    type: ClickType
    session_id: StrictStr | None = None
    url: StrictStr | None = None
    query: StrictStr | None = None
    product: Product | None = None
    order: Order | None = None

    @model_validator(mode="after")
    def _payload_fits_type(self) -> "ClickEvent":
        if self.type in ("add_to_cart", "remove_from_cart") and self.product is None:
            raise ValueError(f"product: required for type {self.type}")
        if self.type == "order_completed" and self.order is None:
            raise ValueError("order: required for type order_completed")
        return self


class PosItem(_Model):
    sku: NonBlank
    quantity: Quantity
    unit_price: Money


class PosEvent(Envelope):
    type: Literal["purchase", "return"]
    transaction_id: NonBlank
    store_id: NonBlank
    items: list[PosItem]
    total: Money
    currency: Currency
    payment_method: StrictStr | None = None
    discount_code: StrictStr | None = None


Channel = Literal["web", "app", "sns", "call_center", "chat", "survey"]


class ReviewEvent(Envelope):
    review_id: NonBlank
    channel: Channel
    text: StrictStr
    rating: Annotated[StrictInt, Field(ge=1, le=5)] | None = None
    sku: StrictStr | None = None
    language: StrictStr | None = None


class ConsentEvent(Envelope):
    purpose: NonBlank
    granted: StrictBool


PrivacyType = Literal["erase", "suppress", "unsuppress", "export"]


class PrivacyRequest(_Model):
    """A request about one person (CONTRACT.md): ``request_id`` plays the role of ``event_id``."""

    request_id: NonBlank
    occurred_at: EventTime
    identifiers: Identifiers
    type: PrivacyType

    @property
    def event_id(self) -> str:
        return f"privacy:{self.request_id}"


InboundEvent = Union[ClickEvent, PosEvent, ReviewEvent, ConsentEvent, PrivacyRequest]

#: Inbound topic name (without namespace prefix) -> its model.
INBOUND: dict[str, type[Envelope] | type[PrivacyRequest]] = {
    "clickstream.v1": ClickEvent,
    "pos.v1": PosEvent,
    "reviews.v1": ReviewEvent,
    "consent.v1": ConsentEvent,
    "privacy.v1": PrivacyRequest,
}
