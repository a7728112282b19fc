"""Every topic the pipeline reads or writes, with partitions and configs; idempotent creation."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.ops.settings import Settings
from schemas.inbound import INBOUND
from schemas.outbound import OUTBOUND

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None  # None: RAPPORT_PARTITIONS


#: Internal: decoded events, progress markers and label reports for the global stage (one partition: one
#: worker orders every event and resolves identity).
EVENTS_TOPIC = "rapport.events.v1"
#: Internal: the global stage's changelog (compacted).
STATE_TOPIC = "rapport.state.v1"
#: Internal: what the global stage and other partitions send the customer partitions (keyed by customer).
CUSTOMERS_TOPIC = "rapport.customers.v1"
#: Internal: each customer partition's changelog, in the partition of the same number (compacted).
CUSTOMER_STATE_TOPIC = "rapport.customer-state.v1"


INBOUND_TOPICS = tuple(TopicSpec(t, {"retention.ms": str(7 * DAY_MS)}) for t in INBOUND)
#: Configs of outbound topics that differ from a week's retention.
_OUTBOUND_CONFIG = {
    "profiles.v1": {"cleanup.policy": "compact"},
    "identity.merges.v1": {"retention.ms": str(30 * DAY_MS)},
    "identity.blocked.v1": {"cleanup.policy": "compact"},
    "dlq.v1": {"retention.ms": str(30 * DAY_MS)},
}
OUTBOUND_TOPICS = tuple(TopicSpec(t, _OUTBOUND_CONFIG.get(t, {"retention.ms": str(7 * DAY_MS)})) for t in OUTBOUND)
INTERNAL_TOPICS = (
    TopicSpec(EVENTS_TOPIC, {"retention.ms": str(7 * DAY_MS)}, partitions=1),
    TopicSpec(STATE_TOPIC, {"cleanup.policy": "compact"}, partitions=1),
    TopicSpec(CUSTOMERS_TOPIC, {"retention.ms": str(7 * DAY_MS)}),
    TopicSpec(CUSTOMER_STATE_TOPIC, {"cleanup.policy": "compact"}),
)
ALL_TOPICS = INBOUND_TOPICS + OUTBOUND_TOPICS + INTERNAL_TOPICS


def admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap})


def ensure_topics(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS, timeout: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet (names get ``settings.topic_prefix``); returns those created."""
    client = admin(settings)
    existing = set(client.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(settings.topic(s.name), s.partitions or settings.partitions, settings.replication_factor,
                       config=s.config)
              for s in specs if settings.topic(s.name) not in existing]
    created = []
    for name, future in (client.create_topics(wanted, request_timeout=timeout).items() if wanted else []):
        try:
            future.result()
            created.append(name)
        except Exception as e:  # a concurrent creator is fine; anything else is not
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise RuntimeError(f"could not create topic {name}: {e}") from e
    if created:
        log.info("created topics: %s", ", ".join(created))
    return created


def partitions_of(settings: Settings, names: list[str], timeout: float = 15.0) -> list[tuple[str, int]]:
    """Every (topic, partition) of the given contract topics, as the cluster reports them."""
    topics = admin(settings).list_topics(timeout=timeout).topics
    return [(n, p) for n in names for p in sorted(topics[settings.topic(n)].partitions)]
