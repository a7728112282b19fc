"""Prometheus metrics of a worker: counters from the engine's stats, gauges of its state, batch timing."""
from __future__ import annotations

import time
from collections import Counter

from prometheus_client import CollectorRegistry, Counter as PCounter, Gauge, Histogram, start_http_server

from pipeline.core.engine import Engine
from pipeline.core.records import Emit


class Metrics:
    """One registry per worker; ``observe`` after every batch."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.records = PCounter("rapport_records", "Inbound records read", registry=r)
        self.events = PCounter("rapport_events", "Valid, new inbound events", ["topic"], registry=r)
        self.dlq = PCounter("rapport_dlq_records", "Records sent to dlq.v1", ["error_type"], registry=r)
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
        self.customers = Gauge("rapport_customers", "Live customers in this worker's state", registry=r)
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
        self._seen: dict[str, Counter[str]] = {}

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

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

    def engine(self, engine: Engine) -> None:
        self.customers.set(len(engine.customers))
        self.identifiers.set(len(engine.identity.owner))
        wm = engine.watermark.current
        if wm is not None:
            self.watermark.set(wm / 1000)
            self.watermark_delay.set(time.time() - wm / 1000)
        self.timers.set(sum(p.timers.pending("cart_abandoned") for p in engine.partitions))
        self.held.set(engine.sequencer.held)
        self.snapshots.set(engine.pending_snapshots)
        self.learned.labels("sentiment").set(sum(engine.sentiment.learned.values()))
        self.learned.labels("churn").set(engine.churn.learned)
        for name, model in (("sentiment", engine.sentiment), ("churn", engine.churn)):
            for figure, value in model.monitor.figures().items():
                self.prequential.labels(name, figure).set(value)

    def _count(self, key: str, delta: int) -> None:
        head, _, rest = key.partition(":")
        simple = {"records": self.records, "duplicates": self.duplicates, "late": self.late,
                  "out_of_order": self.out_of_order, "merges": self.merges,
                  "identifiers_dropped": self.dropped, "churn_labels": self.labels}
        if head in simple:
            simple[head].inc(delta)
        elif head == "events":
            self.events.labels(rest).inc(delta)
        elif head == "drift":
            self.drifts.labels(rest).inc(delta)
        elif head == "identifiers_blocked":
            self.blocked.labels(rest).inc(delta)
        elif head == "dlq":
            self.dlq.labels(rest).inc(delta)
        elif head == "triggers":
            self.triggers.labels(rest).inc(delta)
        elif head == "suppressed":
            kind, _, reason = rest.partition(":")
            self.suppressed.labels(kind, reason).inc(delta)
