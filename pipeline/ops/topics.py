"""Every topic the pipeline reads or writes, with partitions and configs; idempotent creation."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from pipeline.core.privacy import COMPACTION_LAG_MS
from pipeline.ops.settings import Settings
from schemas.inbound import INBOUND
from schemas.outbound import OUTBOUND

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None  # None: RAPPORT_PARTITIONS
    retention_hours: str | None = None  # the setting its retention.ms comes from (a privacy bound: see README)


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
#: Compacted topics: a value replaced or tombstoned is compacted away within a day
#: (``max.compaction.lag.ms``), and a tombstone itself is kept a day (``delete.retention.ms``) so that
#: every reader sees the deletion. An erased customer's last value is unreadable after at most two days.
COMPACTED = {"cleanup.policy": "compact", "max.compaction.lag.ms": str(DAY_MS), "delete.retention.ms": str(DAY_MS)}
#: ``dlq.v1``: kept for repair (``dlq_retention_hours``), and compacted: an erase tombstones the dead letters
#: carrying the person's identifiers, and their values are compacted away within an hour.
ERASABLE = {"cleanup.policy": "compact,delete", "max.compaction.lag.ms": str(COMPACTION_LAG_MS),
            "delete.retention.ms": str(HOUR_MS)}
#: Internal topics in transit: a record lives until its reader has processed it and tombstoned it
#: (``kafka_io.Transit``). A processed record's value is compacted away within an hour, its tombstone an
#: hour later; a record stays at least 10 minutes (a worker that crashed between a batch's tombstones and
#: its commit reads it again); the retention (``internal_retention_hours``) bounds one never processed.
TRANSIT = {**ERASABLE, "min.compaction.lag.ms": str(600_000)}
#: Outbound topics that differ from a week's retention.
_OUTBOUND_SPECS = {spec.name: spec for spec in (
    TopicSpec("profiles.v1", COMPACTED),
    TopicSpec("identity.merges.v1", {"retention.ms": str(30 * DAY_MS)}),
    TopicSpec("identity.blocked.v1", COMPACTED),
    TopicSpec("dlq.v1", ERASABLE, retention_hours="dlq_retention_hours"),
    TopicSpec("privacy.results.v1", {"retention.ms": str(400 * DAY_MS)}),  # the audit trail of privacy requests
)}
OUTBOUND_TOPICS = tuple(_OUTBOUND_SPECS.get(t) or TopicSpec(t, {"retention.ms": str(7 * DAY_MS)}) for t in OUTBOUND)
INTERNAL_TOPICS = (
    TopicSpec(EVENTS_TOPIC, TRANSIT, partitions=1, retention_hours="internal_retention_hours"),
    TopicSpec(STATE_TOPIC, COMPACTED, partitions=1),
    TopicSpec(CUSTOMERS_TOPIC, TRANSIT, retention_hours="internal_retention_hours"),
    TopicSpec(CUSTOMER_STATE_TOPIC, COMPACTED),
)
ALL_TOPICS = INBOUND_TOPICS + OUTBOUND_TOPICS + INTERNAL_TOPICS


def admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_client())


def expected_config(settings: Settings, spec: TopicSpec) -> dict[str, str]:
    """A topic's configs: its own, its retention when a setting gives it, and ``min.insync.replicas`` when it
    is replicated."""
    config = dict(spec.config)
    if spec.retention_hours is not None:
        config["retention.ms"] = str(int(getattr(settings, spec.retention_hours) * 3_600_000))
    if settings.replication_factor > 1:
        config["min.insync.replicas"] = str(settings.min_insync_replicas)
    return config


def ensure_topics(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS, timeout: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet (names get ``settings.topic_prefix``); returns those created."""
    client = admin(settings)
    existing = set(client.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(settings.topic(s.name), s.partitions or settings.partitions, settings.replication_factor,
                       config=expected_config(settings, s))
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


def align_configs(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS,
                  timeout: float = 15.0) -> dict[str, list[str]]:
    """Set the configs Rapport expects on existing topics where they differ (an upgrade: e.g. ``dlq.v1`` and the
    internal topics became compacted); returns topic name -> the configs set. Partition counts are not changed."""
    client = admin(settings)
    topics = client.list_topics(timeout=timeout).topics
    present = [s for s in specs if settings.topic(s.name) in topics]
    if not present:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, settings.topic(s.name)) for s in present]
    described = {r.name: f.result() for r, f in client.describe_configs(resources, request_timeout=timeout).items()}
    changes = []
    for spec in present:
        name = settings.topic(spec.name)
        actual = {k: v.value for k, v in described[name].items()}
        wrong = {k: v for k, v in expected_config(settings, spec).items() if actual.get(k) != v}
        if wrong:
            changes.append(ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in wrong.items()]))
    done: dict[str, list[str]] = {}
    for resource, future in (client.incremental_alter_configs(changes, request_timeout=timeout).items()
                             if changes else []):
        try:
            future.result()
        except Exception as e:
            raise RuntimeError(f"could not set the configs of topic {resource.name}: {e}") from e
        done[resource.name] = sorted(c.name for c in resource.incremental_configs)
    if done:
        log.info("set configs: %s", "; ".join(f"{n} {', '.join(k)}" for n, k in done.items()))
    return done


def partitions_of(settings: Settings, names: list[str], timeout: float = 15.0) -> list[tuple[str, int]]:
    """Every (topic, partition) of the given contract topics, as the cluster reports them."""
    topics = admin(settings).list_topics(timeout=timeout).topics
    return [(n, p) for n in names for p in sorted(topics[settings.topic(n)].partitions)]


def check_topics(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS,
                 timeout: float = 15.0) -> dict[str, list[str]]:
    """What differs between the cluster and the expected topics: topic name -> problems (empty when it matches).

    Checked: the topic exists, its partition count, its replication factor, and every config Rapport sets.
    """
    client = admin(settings)
    topics = client.list_topics(timeout=timeout).topics
    present = [s for s in specs if settings.topic(s.name) in topics]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, settings.topic(s.name)) for s in present]
    described = {r.name: f for r, f in client.describe_configs(resources, request_timeout=timeout).items()} \
        if resources else {}
    report: dict[str, list[str]] = {}
    for spec in specs:
        name = settings.topic(spec.name)
        problems = report[name] = []
        if name not in topics:
            problems.append("missing (rapport topics creates it)")
            continue
        partitions = topics[name].partitions
        want = spec.partitions or settings.partitions
        if len(partitions) != want:
            problems.append(f"{len(partitions)} partitions, expected {want}")
        replicas = min((len(p.replicas) for p in partitions.values()), default=0)
        if replicas < settings.replication_factor:
            problems.append(f"replication factor {replicas}, expected {settings.replication_factor}")
        try:
            actual = {k: v.value for k, v in described[name].result().items()}
        except Exception as e:  # noqa: BLE001 - reported, not raised: the check goes on with the next topic
            problems.append(f"configs not readable: {e}")
            continue
        for key, value in expected_config(settings, spec).items():
            if actual.get(key) != value:
                problems.append(f"{key}={actual.get(key)}, expected {value}")
    return report
