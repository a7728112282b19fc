"""Prometheus metrics of a worker: counters from the engine's stats, gauges of its state, batch timing."""
from __future__ import annotations

import time
from collections import Counter

from prometheus_client import CollectorRegistry, Counter as PCounter, Gauge, Histogram

from pipeline.core.customers import CustomerStage
from pipeline.core.engine import TRIGGER_TOPICS, Engine
from pipeline.core.records import Emit, Event
from pipeline.ops.health import Health, serve


class Metrics:
    """One registry per worker; ``observe`` after every batch."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.records = PCounter("rapport_records", "Inbound records read", registry=r)
        self.ordered = PCounter("rapport_ordered_events", "Valid, new inbound events put in the canonical order "
                                "(the global stage)", ["topic"], registry=r)
        self.events = PCounter("rapport_events", "Events applied to customers by this worker's customer partitions",
                               ["topic"], registry=r)
        self.dlq = PCounter("rapport_dlq_records", "Records sent to dlq.v1", ["error_type"], registry=r)
        self.errors = PCounter("rapport_processing_errors", "Events (or timers) a stage failed on: each went to "
                               "dlq.v1 and processing went on", ["stage"], registry=r)
        self.duplicates = PCounter("rapport_duplicate_events", "Events ignored as duplicates", registry=r)
        self.late = PCounter("rapport_late_events", "Events behind the watermark when applied", registry=r)
        self.out_of_order = PCounter("rapport_out_of_order_events", "Events read behind the event-time order already "
                                     "applied (applied on arrival)", registry=r)
        self.triggers = PCounter("rapport_triggers", "Triggers emitted", ["type"], registry=r)
        self.suppressed = PCounter("rapport_triggers_suppressed", "Triggers held back", ["type", "reason"], registry=r)
        self.merges = PCounter("rapport_identity_merges", "Customer profiles merged", registry=r)
        self.dropped = PCounter("rapport_identifiers_dropped", "Identifiers an event did not link (limits, shared)",
                                registry=r)
        self.blocked = PCounter("rapport_identifiers_blocked", "Identifier values found shared by several people "
                                "(they link nothing from then on)", ["reason"], registry=r)
        self.labels = PCounter("rapport_churn_labels", "Delayed churn labels learned", registry=r)
        self.outbound = PCounter("rapport_outbound_records", "Records produced", ["topic"], registry=r)
        self.batch_seconds = Histogram("rapport_batch_seconds", "Processing and publishing time of one batch",
                                       ["stage"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                       registry=r)
        self.batch_size = Histogram("rapport_batch_records", "Records per batch", ["stage"],
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 5000), registry=r)
        self.customers = Gauge("rapport_customers", "Live customers in this worker's customer partitions", registry=r)
        self.partitions_held = Gauge("rapport_customer_partitions", "Customer partitions this worker holds",
                                     registry=r)
        self.restore_seconds = Histogram("rapport_restore_seconds", "Time to restore a stage's state from its "
                                         "changelog", ["stage"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
                                         registry=r)
        self.identifiers = Gauge("rapport_identifiers", "Identifiers in the identity graph", registry=r)
        self.watermark = Gauge("rapport_watermark_seconds", "Event-time watermark (unix seconds)", registry=r)
        self.watermark_delay = Gauge("rapport_watermark_delay_seconds", "Wall clock minus watermark", registry=r)
        self.timers = Gauge("rapport_pending_cart_timers", "Cart timers waiting for the watermark", registry=r)
        self.held = Gauge("rapport_sequencer_held_events", "Events held until every partition has passed them",
                          registry=r)
        self.snapshots = Gauge("rapport_pending_churn_snapshots", "Churn snapshots waiting for their label", registry=r)
        self.learned = Gauge("rapport_model_labels_learned", "Labels a model has learned", ["model"], registry=r)
        self.prequential = Gauge("rapport_model_prequential", "Rolling prequential figure of a model (last 1000 labels)",
                                 ["model", "figure"], registry=r)
        self.drifts = PCounter("rapport_model_drifts", "Drifts ADWIN detected in a model's error rate", ["model"],
                               registry=r)
        self.privacy = PCounter("rapport_privacy_requests", "Privacy requests carried out (privacy.v1)", ["type"],
                                registry=r)
        self.privacy_dropped = PCounter("rapport_privacy_dropped_events", "Events dropped because they carry a "
                                        "suppressed identifier", registry=r)
        self.lag = Gauge("rapport_consumer_lag_records", "Records behind the end of a partition: its high watermark "
                         "minus the group's committed offset", ["group", "topic", "partition"], registry=r)
        self.latency = Histogram("rapport_event_latency_seconds", "From an event's occurred_at, or its arrival at "
                                 "ingest, to its outputs being flushed by the customer stage", ["since"],
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400), registry=r)
        self.rebalances = PCounter("rapport_rebalances", "Partition assignments this worker received", registry=r)
        self.state_bytes = Gauge("rapport_state_bytes", "Bytes of this worker's state in its changelogs (latest value "
                                 "per key)", ["stage"], registry=r)
        self.global_held = Gauge("rapport_global_stage_held", "1 while this worker holds the global stage (order, "
                                 "identity, texts; its watermark gauges are the live ones)", registry=r)
        self.ready = Gauge("rapport_ready", "1 when the worker has joined its group, restored its state and is "
                           "processing (what /readyz answers)", registry=r)
        self.health = Health()  # what /healthz and /readyz answer
        self.ready.set_function(lambda: 1.0 if self.health.ready()[0] else 0.0)  # computed at each scrape
        # Known label values start at zero, so that the first error or restore is an increase to rate() and alerts.
        for stage in ("ingest", "identity", "sentiment", "customers", "timers", "internal"):
            self.errors.labels(stage)
        for kind in TRIGGER_TOPICS:
            self.triggers.labels(kind)
        for stage in ("global", "customers"):
            self.restore_seconds.labels(stage)
        for since in ("occurred", "arrival"):
            self.latency.labels(since)
        self._seen: dict[str, Counter[str]] = {}
        self._lag_labels: set[tuple[str, str, str]] = set()

    def series_names(self) -> set[str]:
        """Every series name this worker exports (``_total``, ``_bucket`` ... included): what dashboards and
        alert rules may query."""
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
        names = set()
        for family in self.registry.collect():
            names.add(family.name)
            names.update(family.name + s for s in suffixes.get(family.type, ()))
        return names

    def serve(self, port: int, host: str = "127.0.0.1", tries: int = 16) -> int:
        """Serve /metrics (with /healthz and /readyz) on ``port``, or the next free one (several workers on one
        host); returns the port."""
        for candidate in range(port, port + tries):
            try:
                serve(self.registry, self.health, candidate, host)
                return candidate
            except OSError:
                continue
        raise OSError(f"no free port for metrics in {port}..{port + tries - 1} on {host}")

    def batch(self, stage: str, records: int, seconds: float) -> None:
        self.batch_seconds.labels(stage).observe(seconds)
        self.batch_size.labels(stage).observe(records)

    def outputs(self, emits: list[Emit], prefix: str) -> None:
        for e in emits:
            self.outbound.labels(prefix + e.topic).inc()

    def count(self, source: str, stats: Counter[str]) -> None:
        """Add what the running totals in ``stats`` gained since the last call for ``source``."""
        seen = self._seen.setdefault(source, Counter())
        if any(total < seen[key] for key, total in stats.items()):
            seen.clear()  # a new engine (restored after a rebalance) counts from zero
        for key, total in stats.items():
            delta = total - seen[key]
            if delta:
                self._count(key, delta)
        self._seen[source] = Counter(stats)

    def applied(self, events: list[Event], now_s: float) -> None:
        """Latency of events whose outputs were just flushed: from occurred_at, and from arrival (live only)."""
        occurred, arrival = self.latency.labels("occurred"), self.latency.labels("arrival")
        now_ms = now_s * 1000
        for ev in events:
            occurred.observe(max(0.0, now_ms - ev.ts) / 1000)
            if ev.arrived_ms is not None:
                arrival.observe(max(0.0, now_ms - ev.arrived_ms) / 1000)

    def beat(self) -> None:
        """The event loop is running (liveness)."""
        self.health.beat()

    def state_size(self, stage: str, size: int) -> None:
        self.state_bytes.labels(stage).set(size)

    def lags(self, group: str, lags: dict[tuple[str, int], int]) -> None:
        """Set the lag of the partitions this worker holds; forget the series of those it no longer holds."""
        held = {(group, t, str(p)) for t, p in lags}
        for labels in list(self._lag_labels - held):
            self.lag.remove(*labels)
        for (t, p), lag in lags.items():
            self.lag.labels(group, t, str(p)).set(lag)
        self._lag_labels = held

    def restored(self, stage: str, seconds: float) -> None:
        self.restore_seconds.labels(stage).observe(seconds)

    def global_stage(self, engine: Engine) -> None:
        self.identifiers.set(len(engine.identity.owner))
        wm = engine.watermark.current
        if wm is not None:
            self.watermark.set(wm / 1000)
            self.watermark_delay.set(time.time() - wm / 1000)
        self.held.set(engine.sequencer.held)
        self.learned.labels("sentiment").set(sum(engine.sentiment.learned.values()))
        self.learned.labels("churn").set(engine.churn.learned)
        for name, model in (("sentiment", engine.sentiment), ("churn", engine.churn)):
            for figure, value in model.monitor.figures().items():
                self.prequential.labels(name, figure).set(value)

    def customer_stages(self, stages: list[CustomerStage]) -> None:
        self.customers.set(sum(len(s.customers) for s in stages))
        self.partitions_held.set(len(stages))
        self.timers.set(sum(s.timers.pending("cart_abandoned") for s in stages))
        self.snapshots.set(sum(s.pending_snapshots for s in stages))

    def _count(self, key: str, delta: int) -> None:
        head, _, rest = key.partition(":")
        simple = {"records": self.records, "duplicates": self.duplicates, "late": self.late,
                  "out_of_order": self.out_of_order, "merges": self.merges,
                  "identifiers_dropped": self.dropped, "churn_labels": self.labels,
                  "privacy_dropped": self.privacy_dropped}
        if head in simple:
            simple[head].inc(delta)
        elif head == "events":
            self.events.labels(rest).inc(delta)
        elif head == "ordered":
            self.ordered.labels(rest).inc(delta)
        elif head == "drift":
            self.drifts.labels(rest).inc(delta)
        elif head == "identifiers_blocked":
            self.blocked.labels(rest).inc(delta)
        elif head == "dlq":
            self.dlq.labels(rest).inc(delta)
        elif head == "privacy_requests":
            self.privacy.labels(rest).inc(delta)
        elif head == "errors":
            self.errors.labels(rest).inc(delta)
        elif head == "triggers":
            self.triggers.labels(rest).inc(delta)
        elif head == "suppressed":
            kind, _, reason = rest.partition(":")
            self.suppressed.labels(kind, reason).inc(delta)
