"""What the stages say to each other: the global stage to customer partitions, partition to partition,
and partitions to the learner. In one process the engine calls the stages directly; across processes
these travel on the internal topics (``pipeline.drivers.codec``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.identity import Merge
from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import Scored
from pipeline.core.privacy import Resolved
from pipeline.core.profile import CustomerState
from pipeline.core.records import Event
from pipeline.core.versions import Label


@dataclass(frozen=True, slots=True)
class Routed:
    """An event for one customer, as the global stage released it."""

    customer_id: str
    event: Event
    watermark: int | None
    kinds: dict[str, int]  # how many identifiers of each kind the customer holds (for the profile)
    scored: Scored | None = None
    sentiment_version: str | None = None
    privacy: Resolved | None = None  # a privacy request: what the global stage knows of it for this customer


@dataclass(slots=True)
class Handover:
    """A customer merged away, with everything its partition kept of it."""

    state: CustomerState | None
    snapshots: list[tuple[int, int, bytes]] = field(default_factory=list)  # (due, ts, packed features)


@dataclass(frozen=True, slots=True)
class Tick:
    """The watermark moved (every partition hears it: timers fire and labels are computed without events)."""

    watermark: int


@dataclass(frozen=True, slots=True)
class Expect:
    """To the survivor's partition: fold ``merge.absorbed`` in when its partition hands it over."""

    merge: Merge
    watermark: int | None


@dataclass(frozen=True, slots=True)
class Release:
    """To the absorbed customer's partition: hand it over to ``to`` (the survivor's partition)."""

    merge: Merge
    watermark: int | None
    to: int


@dataclass(slots=True)
class HandedOver:
    """A released customer, on its way to the survivor's partition."""

    merge: Merge
    handover: Handover


@dataclass(frozen=True, slots=True)
class Recount:
    customer_id: str
    kinds: dict[str, int]


@dataclass(frozen=True, slots=True)
class Publish:
    """New churn model versions, by the epoch they take effect from."""

    versions: dict[int, ChurnModel]


@dataclass(frozen=True, slots=True)
class LabelReport:
    """To the learner: a partition's new labels, and the epoch it is complete through."""

    partition: int
    through: int
    labels: list[Label]


Message = Routed | Tick | Expect | Release | HandedOver | Recount | Publish
