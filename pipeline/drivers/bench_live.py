"""``rapport bench --live``: how long merges and triggers take to reach their topics, live, and how the
customers' work spreads over the workers.

Workers run on an embedded broker of their own (1, then 2, over 8 partitions). Generated journeys, restamped to the wall clock, are
sent at a fixed rate. For every merge record and every negative_emotion trigger, the figure is its
arrival on the outbound topic minus the moment its cause event was sent. For a merge that reaches
every output, the figure is the later of the merge record and the absorbed id's tombstone on
``profiles.v1``. The survivor's profile goes out in the same flush. The baseline, measured in
the same run, is one record's round trip through the broker: sent to a topic and read back by the
same consumer; its median in the first and the last 5 s of traffic shows how much the embedded broker
slowed down meanwhile (a fetch costs it more as its partition holds more batches).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.drivers import generate as g
from pipeline.drivers.bench import print_table
from pipeline.drivers.dev import spawn, stop
from pipeline.drivers.kafka_io import Publisher
from pipeline.ops.broker import EmbeddedBroker, free_port
from pipeline.ops.settings import Settings
from pipeline.ops.topics import ensure_topics

PING = "bench.ping"
WATCHED = {"identity.merges.v1": "merge record", "triggers.negative_emotion.v1": "negative_emotion",
           PING: "broker round trip"}
EVERY_OUTPUT = "merge, every output"


class Arrivals(threading.Thread):
    """Reads the watched topics; notes when each record's cause event id arrived."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": 10, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
        self.consumer.subscribe([*WATCHED, "profiles.v1"])
        self.seen: list[tuple[str, str, float]] = []  # (kind, cause event id, arrival)
        self.absorbed: dict[str, tuple[str, float]] = {}  # absorbed customer id -> (cause event id, merge arrival)
        self.tombstones: dict[str, float] = {}  # customer id -> arrival of its tombstone
        self.assigned = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for msg in self.consumer.consume(500, 0.05):
                now = time.time()
                if msg.error():
                    continue
                self.assigned.set()
                if msg.topic() == "profiles.v1":
                    if msg.value() is None:
                        self.tombstones.setdefault(msg.key().decode(), now)
                    continue
                doc = orjson.loads(msg.value())
                if msg.topic() == "identity.merges.v1":
                    self.absorbed[doc["absorbed_customer_id"]] = (doc["event_id"], now)
                causes = doc.get("cause_event_ids") or [doc.get("event_id")]
                self.seen.extend((WATCHED[msg.topic()], c, now) for c in causes if c)
            if self.consumer.assignment():
                self.assigned.set()
        self.consumer.close()


def _counters(port: int, names: tuple[str, ...]) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(names))
    return {n: float(values.get(n, "nan")) for n in names}


def _applied(port: int) -> float:
    """A worker's ``rapport_events_total``: the events its customer partitions applied."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("rapport_events_total{"))


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0],) * 3 if values else (float("nan"),) * 3
    q = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), q[98], max(values)


def run(rate: float, seconds: float, workers: int = 1, partitions: int = 8,
        seed: int = 5) -> list[tuple[str, str, str]]:
    """Rows of (measure, figure, ratio to the broker round trip)."""
    logs = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
    broker = EmbeddedBroker(free_port(), logs / "broker.log").start()
    settings = Settings(kafka_bootstrap=broker.bootstrap, pii_key="bench", partitions=partitions, state_dir=logs)
    ports = [free_port() for _ in range(workers)]
    env = {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": broker.bootstrap, "RAPPORT_PII_KEY": "bench",
           "RAPPORT_STATE_DIR": str(logs), "RAPPORT_PARTITIONS": str(partitions)}
    procs = []
    try:
        ensure_topics(settings)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(PING, 1, 1)])[PING].result()
        for n, port in enumerate(ports):
            procs.append(spawn(["worker", "--loglevel", "warn"],
                               {**env, "RAPPORT_METRICS_PORT": str(port), "RAPPORT_WEB_PORT": str(free_port())},
                               logs / f"worker{n}.log"))
        arrivals = Arrivals(broker.bootstrap)
        arrivals.start()
        arrivals.assigned.wait(30)
        pub = Publisher(broker.bootstrap)
        sent: dict[str, float] = {}
        warmup = 10.0 + 3.0 * workers  # the workers join their group and restore: traffic before is not measured
        started = time.monotonic()
        for n, rec in enumerate(g.pace(g.live_stream(seed), rate, int(rate * (seconds + warmup)))):
            pub.send(rec.topic, rec.key_bytes(), rec.value_bytes())
            if time.monotonic() - started >= warmup and isinstance(rec.value, dict):
                sent[rec.value.get("event_id", "")] = time.time()
                if n % 20 == 0:
                    ping = uuid.uuid4().hex
                    pub.send(PING, None, orjson.dumps({"event_id": ping}))
                    sent[ping] = time.time()
            if n % 100 == 0:
                pub.flush()
        pub.flush()
        time.sleep(3)  # stragglers
        arrivals.done.set()
        arrivals.join(5)
        names = ("rapport_records_total", "rapport_out_of_order_events_total", "rapport_identity_merges_total")
        counters = {k: sum(_counters(p, names)[k] for p in ports) for k in names}
        applied = [_applied(p) for p in ports]
    finally:
        stop(procs)
        broker.stop()
    latencies: dict[str, list[float]] = {kind: [] for kind in [*WATCHED.values(), EVERY_OUTPUT]}
    pings: list[tuple[float, float]] = []  # (sent, round trip in ms)
    first: set[tuple[str, str]] = set()
    for kind, cause, at in arrivals.seen:
        if cause in sent and (kind, cause) not in first:
            first.add((kind, cause))
            latencies[kind].append(1000 * (at - sent[cause]))
            if kind == WATCHED[PING]:
                pings.append((sent[cause], 1000 * (at - sent[cause])))
    for absorbed, (cause, at) in arrivals.absorbed.items():
        if cause in sent and absorbed in arrivals.tombstones:
            latencies[EVERY_OUTPUT].append(1000 * (max(at, arrivals.tombstones[absorbed]) - sent[cause]))
    base = _percentiles(latencies["broker round trip"])
    rows = []
    for kind, values in latencies.items():
        p50, p99, top = _percentiles(values)
        rows.append((f"{kind} (n={len(values)})", f"p50 {p50:,.0f} ms  p99 {p99:,.0f} ms  max {top:,.0f} ms",
                     f"{p50 / base[0]:.1f}x" if base[0] == base[0] and base[0] > 0 else "-"))
    if pings:
        pings.sort()
        early = [ms for at, ms in pings if at < pings[0][0] + 5]
        late = [ms for at, ms in pings if at > pings[-1][0] - 5]
        rows.append(("broker round trip p50, first / last 5 s (it slows as it fills)",
                     f"{statistics.median(early):,.0f} / {statistics.median(late):,.0f} ms", ""))
    rows.append(("offered load", f"{rate:g} events/s for {seconds:g} s, {workers} worker(s), "
                                 f"{partitions} partitions", ""))
    total = sum(applied) or 1.0
    rows.append(("events applied per worker", ", ".join(f"{n:,.0f} ({n / total:.0%})" for n in applied), ""))
    rows.append(("worker counted", ", ".join(f"{k.removeprefix('rapport_').removesuffix('_total')} {v:,.0f}"
                                             for k, v in counters.items()), ""))
    return rows


def main(rate: float, seconds: float) -> None:
    for workers in (1, 2):
        print_table(run(rate, seconds, workers), (f"live, {workers} worker(s) over 8 partitions, embedded broker",
                                                  "figure", "p50 vs round trip"))
