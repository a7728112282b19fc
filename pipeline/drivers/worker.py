"""``rapport worker``: three Faust agents around the core's stages; every worker runs all three, and
Kafka's consumer group spreads the partitions of each topic over the workers.

1. *ingest* reads the inbound topics (every worker takes a share of their partitions): decode,
   validate, pseudonymise; dead letters to ``dlq.v1``; valid events, with the partition they came
   from, to the internal single-partition topic ``rapport.events.v1`` (a batch's events in few
   records). After each batch, and while
   its stream is quiet, it adds a progress marker: which of its partitions are read to their end
   (the consumer's fetch high watermark), and when. The sequencer needs the markers to move a quiet
   partition's share of the event-time order on.
2. *global* reads ``rapport.events.v1`` (one worker at a time holds it): the canonical order,
   identity, text scores and the churn learner. It sends each event to its customer's partition of
   ``rapport.customers.v1``, with merges, watermark ticks and model versions. Its state is the
   ``rapport.state.v1`` changelog.
3. *customers* reads ``rapport.customers.v1``: each worker holds a share of its partitions, and with
   them a share of the customers (state, timers, triggers, profiles), restored from the partition of
   the same number of ``rapport.customer-state.v1``. Hand-overs of merged customers go to the
   survivor's partition; label reports go back to the global stage.

Outputs and state are produced with confluent-kafka and flushed before Faust acknowledges the
batch: at-least-once; trigger ids are deterministic and re-read records are not applied twice. A stage
tombstones the internal records it has processed in the same flush (``kafka_io.Transit``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable

import faust

from pipeline.core.customers import CustomerStage
from pipeline.core.encoding import StateFormatError
from pipeline.core.messages import LabelReport, Routed
from pipeline.core.engine import Engine
from pipeline.core.ingest import Ingest
from pipeline.core.models import sentiment
from pipeline.core.models.sentiment import SentimentModel
from pipeline.core.pii import Hasher
from pipeline.core.privacy import DeadLetterLink
from pipeline.core.records import Emit, Event, RawRecord
from pipeline.core.versions import Versions
from pipeline.drivers import faust_transport
from pipeline.drivers.codec import (
    Progress, build_engine, event_bytes, events_record, internal_from_bytes, link_bytes, message_bytes,
    messages_from_bytes, messages_record, progress_bytes, report_bytes, restoring, wall_clock,
)
from pipeline.drivers.kafka_io import CommittedOffsets, Publisher, Transit
from pipeline.ops import logs
from pipeline.ops.metrics import Metrics
from pipeline.ops.settings import Settings
from pipeline.ops.statestore import StateStore
from pipeline.ops.topics import CUSTOMER_STATE_TOPIC, CUSTOMERS_TOPIC, EVENTS_TOPIC, STATE_TOPIC, partitions_of
from schemas.inbound import INBOUND

log = logging.getLogger(__name__)
LOG_LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


async def _flush(*publishers: Publisher) -> None:
    loop = asyncio.get_running_loop()
    for p in publishers:
        await loop.run_in_executor(None, p.flush)


def writer_id() -> str:
    """This process, uniquely (the keys of the internal records it writes start with it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


#: A record read from an internal topic: ``(partition, offset, key, value)``.
InternalRecord = tuple[int, int, bytes | None, bytes]
#: Per inbound partition: (its high watermark, the wall time in ms before which everything written is below it).
Highwaters = Callable[[], dict[tuple[str, int], tuple[int | None, int | None]]]


def unprocessed(events: list) -> list[InternalRecord]:  # noqa: ANN001 - Faust's events
    """A batch of an internal topic's records, without the tombstones of records already processed."""
    return [(m.partition, m.offset, m.key, m.value) for m in (e.message for e in events) if m.value is not None]
#: Event times further ahead of the wall clock (a client clock off by hours) do not move an ingest's position.
FUTURE_MS = 3_600_000


class IngestStage:
    """Forwards valid events, then progress markers, to the internal events topic.

    ``highwaters()``: the inbound partitions this worker reads, each with the offset after the last
    record the broker reported in a fetch, and when that fetch was sent (both None until fetched).
    """

    def __init__(self, settings: Settings, publisher: Publisher, metrics: Metrics, highwaters: Highwaters) -> None:
        self.settings, self.publisher, self.metrics, self.highwaters = settings, publisher, metrics, highwaters
        self.ingest = Ingest(settings, Hasher(settings.pii_secret(), settings.default_country_code))
        self.events_topic = settings.topic(EVENTS_TOPIC)
        self.stats: Counter[str] = Counter()
        self.next_offset: dict[tuple[str, int], int] = {}  # partition -> offset after the last record forwarded
        self.positions: dict[str, int] = {}  # topic -> the latest event time forwarded
        self.history: deque[tuple[int, dict[str, int]]] = deque(maxlen=256)  # (wall ms, positions) after batches
        self.reader = writer_id()
        self.transit = Transit(publisher, f"{self.reader}/ingest")
        self.busy = False
        self.last_batch = time.monotonic()
        self.quiet_after_s = 2 * settings.batch_within_s + settings.fetch_max_wait_ms / 1000

    async def batch(self, records: list[RawRecord]) -> None:
        started, stats = time.perf_counter(), self.stats
        arrived = int(time.time() * 1000)
        horizon = arrived + FUTURE_MS
        self.busy = True
        try:
            dead: list[Emit] = []
            links: list[DeadLetterLink] = []
            events: list[bytes] = []
            for rec in records:
                ev = self.ingest.event_or_dead_letter(rec, stats, dead, links)
                if ev is not None:
                    events.append(event_bytes(ev, (rec.topic, rec.partition), rec.offset, arrived))
                    if ev.ts > self.positions.get(rec.topic, ev.ts - 1) and ev.ts <= horizon:
                        self.positions[rec.topic] = ev.ts
                self.next_offset[(rec.topic, rec.partition)] = rec.offset + 1
            self.transit.send(self.events_topic, 0, events + [link_bytes(k) for k in links], events_record)
            self.publisher.send_emits(dead)
            self.history.append((int(time.time() * 1000), dict(self.positions)))
            self._progress()
            await _flush(self.publisher)
        finally:
            self.busy, self.last_batch = False, time.monotonic()
        stats["records"] += len(records)
        self.metrics.count("ingest", stats)
        self.metrics.batch("ingest", len(records), time.perf_counter() - started)

    async def tick(self) -> None:
        """While the stream is quiet, keep saying which partitions are read to their end."""
        if not self.busy and time.monotonic() - self.last_batch >= self.quiet_after_s and self._progress():
            await _flush(self.publisher)

    def assigned(self, committed: dict[tuple[str, int], int]) -> None:
        """Newly assigned partitions start where the group committed (what was forwarded before)."""
        for s, offset in committed.items():
            self.next_offset.setdefault(s, offset)

    def revoked(self, sources: list[tuple[str, int]]) -> None:
        for s in sources:
            self.next_offset.pop(s, None)

    def _progress(self) -> bool:
        """Send a marker for the partitions read to their end (everything below the fetch high watermark is
        forwarded). It speaks for what was written before the oldest of their fetches was sent, with the
        positions this ingest had reached by then."""
        caught, now = [], int(time.time() * 1000)
        as_of = now
        for s, (high, seen) in self.highwaters().items():
            if high is not None and seen is not None and self.next_offset.get(s, -1) >= high:
                caught.append(s)
                as_of = min(as_of, seen)
        if caught:
            positions = next((p for at, p in reversed(self.history) if at <= as_of), {})
            marker = Progress(caught, now, as_of, positions, self.reader)
            self.transit.send(self.events_topic, 0, [progress_bytes(marker)])
        return bool(caught)


def read_or_refuse(store: StateStore) -> dict[str, object]:
    """The store's entries; state this release cannot read stops the worker with the reason (exit code 3),
    rather than a crash that restarts onto the same state."""
    try:
        return store.read_all()
    except StateFormatError as e:
        log.critical("refusing to start: %s", e)
        logging.shutdown()
        os._exit(3)


class EngineStage:
    """Holds the global stage while this worker owns ``rapport.events.v1``; feeds it batches and idle ticks,
    and sends what it routes to the customer partitions."""

    def __init__(self, settings: Settings, publisher: Publisher, store: StateStore, metrics: Metrics) -> None:
        self.settings, self.publisher, self.store, self.metrics = settings, publisher, store, metrics
        self.customers_topic = settings.topic(CUSTOMERS_TOPIC)
        self.events_topic = settings.topic(EVENTS_TOPIC)
        self.transit = Transit(publisher, f"{writer_id()}/global")
        self.engine: Engine | None = None
        self.lock = asyncio.Lock()
        self.last_input = time.monotonic()
        self.last_checkpoint = time.monotonic()
        self._heard: dict[tuple[str, int], float] = {}

    async def _ensure_engine(self) -> Engine:
        if self.engine is None:
            self.engine = await asyncio.get_running_loop().run_in_executor(None, self._restore)
        return self.engine

    def _restore(self) -> Engine:
        with self.metrics.health.restoring(), restoring():
            return self._restored()

    def _restored(self) -> Engine:
        started = time.monotonic()
        entries = read_or_refuse(self.store)
        n = len(partitions_of(self.settings, [CUSTOMERS_TOPIC]))
        engine = build_engine(self.settings.model_copy(update={"customer_partitions": n}), local=False)
        engine.restore(entries)
        sources = partitions_of(self.settings, list(INBOUND))
        engine.assign(sources)
        now = time.monotonic()
        self._heard = dict.fromkeys(sources, now)
        self.metrics.restored("global", now - started)
        self.metrics.global_held.set(1)
        log.info("global state restored: %d entries, %d identifiers, %d customer partitions, in %.1fs", len(entries),
                 len(engine.identity.owner), n, now - started)
        return engine

    async def drop(self) -> None:
        """This worker no longer owns the events partition: checkpoint the models, forget the state;
        whoever gets the partition restores from the changelog."""
        async with self.lock:
            if self.engine is not None:
                self.store.write(self.engine.models())
                await _flush(self.store.publisher)
            self.engine = None
            self.metrics.global_held.set(0)

    async def batch(self, records: list[InternalRecord]) -> None:
        """Records of the internal events topic; processed, they are tombstoned."""
        now = time.monotonic()

        def step(engine: Engine) -> list[Emit]:
            for partition, offset, _, data in records:
                try:
                    items = internal_from_bytes(data)
                except Exception as e:  # noqa: BLE001 - e.g. a record an older or newer release wrote
                    engine.undecodable(self.events_topic, partition, offset, data, e)
                    continue
                for item in items:
                    if isinstance(item, Progress):  # not "heard": a partition with markers alone goes idle
                        engine.caught_up(item.sources, item.reader, item.as_of_ms, item.positions)
                    elif isinstance(item, LabelReport):
                        engine.report(item)
                    elif isinstance(item, DeadLetterLink):
                        engine.link_dead_letters([item])
                    else:
                        ev, source, source_offset = item
                        self._heard[source] = self.last_input = now
                        engine.apply(ev, source, source_offset)
            return engine.end_batch()

        await self._run(step, len(records), [(partition, key) for partition, _, key, _ in records])

    async def tick(self) -> None:
        """Report partitions read to their end and without events for a while (the end of a backfill) and,
        after longer silence of all input, the wall clock to the engine."""
        if self.engine is None:
            return
        now = time.monotonic()
        engine = self.engine  # a partition behind its reader (a backlog, a rebalance, a paused broker) is not idle
        silent = [s for s, t in self._heard.items() if now - t >= self.settings.idle_partition_s and engine.caught(s)]
        for s in silent:
            del self._heard[s]  # reported once; delivering again makes it active again
        idle = self.settings.idle_advance_s
        wall = int(time.time() * 1000) if idle and now - self.last_input >= idle else None
        if silent or wall is not None:
            await self._run(lambda engine: engine.sources_idle(silent, wall), 0)

    async def _run(self, step: Callable[[Engine], list[Emit]], n: int,
                   processed: list[tuple[int, bytes | None]] | None = None) -> None:
        async with self.lock:
            engine = await self._ensure_engine()
            started = time.perf_counter()
            emits = step(engine)
            self.publisher.send_emits(emits)
            by_partition: dict[int, list[bytes]] = {}
            for partition, msg in engine.take_messages():
                by_partition.setdefault(partition, []).append(message_bytes(msg))
            for partition, msgs in by_partition.items():
                self.transit.send(self.customers_topic, partition, msgs, messages_record)
            self.transit.processed(self.events_topic, processed or [])
            self.store.write(engine.take_changes())
            if time.monotonic() - self.last_checkpoint >= self.settings.model_checkpoint_s:
                self.store.write(engine.models())
                self.last_checkpoint = time.monotonic()
            await _flush(self.publisher, self.store.publisher)
            self.metrics.state_size("global", self.store.bytes)
            self.metrics.count("global", engine.stats)
            self.metrics.outputs(emits, self.publisher.prefix)
            self.metrics.global_stage(engine)
            self.metrics.batch("global", n, time.perf_counter() - started)


class CustomerStages:
    """The customer partitions this worker holds: each restored from its changelog partition when it is first
    read, fed its messages in order, and forgotten when the partition goes to another worker."""

    def __init__(self, settings: Settings, publisher: Publisher, metrics: Metrics) -> None:
        self.settings, self.publisher, self.metrics = settings, publisher, metrics
        self.customers_topic = settings.topic(CUSTOMERS_TOPIC)
        self.events_topic = settings.topic(EVENTS_TOPIC)
        self.state_topic = settings.topic(CUSTOMER_STATE_TOPIC)
        self.transit = Transit(publisher, f"{writer_id()}/customers")
        self.stages: dict[int, tuple[CustomerStage, StateStore]] = {}
        self.lock = asyncio.Lock()

    def _restore(self, partition: int) -> tuple[CustomerStage, StateStore]:
        with self.metrics.health.restoring(), restoring():
            return self._restored(partition)

    def _restored(self, partition: int) -> tuple[CustomerStage, StateStore]:
        started = time.monotonic()
        n = len(partitions_of(self.settings, [CUSTOMERS_TOPIC]))
        rules = self.settings.model_copy(update={"customer_partitions": n})
        stage = CustomerStage(rules, wall_clock, Versions(int(rules.model_epoch_hours * 3_600_000)), partition, n,
                              Hasher(self.settings.pii_secret(), self.settings.default_country_code))
        store = StateStore(self.settings.kafka_client(), self.state_topic, partition, self.publisher)
        entries = read_or_refuse(store)
        stage.restore(entries)
        self.metrics.restored("customers", time.monotonic() - started)
        log.info("customer partition %d restored: %d customers in %.1fs", partition, len(stage.customers),
                 time.monotonic() - started)
        return stage, store

    async def restore(self, partitions: list[int]) -> None:
        """Restore newly assigned partitions side by side (each reads its changelog partition)."""
        async with self.lock:
            loop = asyncio.get_running_loop()
            todo = [p for p in partitions if p not in self.stages]
            for p, restored in zip(todo, await asyncio.gather(*(loop.run_in_executor(None, self._restore, p)
                                                                 for p in todo)), strict=True):
                self.stages[p] = restored

    async def batch(self, records: list[InternalRecord]) -> None:
        """Records of the customers topic, in order per partition; processed, they are tombstoned."""
        async with self.lock:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            touched: dict[int, CustomerStage] = {}
            applied: list[Event] = []
            for partition, offset, _, value in records:
                if partition not in self.stages:
                    self.stages[partition] = await loop.run_in_executor(None, self._restore, partition)
                stage = touched[partition] = self.stages[partition][0]
                try:
                    msgs = messages_from_bytes(value)
                except Exception as e:  # noqa: BLE001 - e.g. a record an older or newer release wrote
                    stage.undecodable(self.customers_topic, partition, offset, value, e)
                    continue
                stage.receive_record(msgs, offset)
                applied.extend(m.event for m in msgs if isinstance(m, Routed))
            for partition, stage in touched.items():
                emits = stage.end_batch()
                self.publisher.send_emits(emits)
                handovers: dict[int, list[bytes]] = {}
                for target, msg in stage.take_sent():
                    if target is None:
                        self.transit.send(self.events_topic, 0, [report_bytes(msg)])  # type: ignore[arg-type]
                    else:
                        handovers.setdefault(target, []).append(message_bytes(msg))  # type: ignore[arg-type]
                for target, msgs in handovers.items():
                    self.transit.send(self.customers_topic, target, msgs, messages_record)
                self.transit.send(self.events_topic, 0, [link_bytes(k) for k in stage.take_links()], events_record)
                self.stages[partition][1].write(stage.take_changes())
                self.metrics.count(f"customers/{partition}", stage.stats)
                self.metrics.outputs(emits, self.publisher.prefix)
            self.transit.processed(self.customers_topic, [(partition, key) for partition, _, key, _ in records])
            await _flush(self.publisher)  # the stores write through it too
            self.metrics.applied(applied, time.time())
            self.metrics.customer_stages([s for s, _ in self.stages.values()])
            self.metrics.state_size("customers", sum(store.bytes for _, store in self.stages.values()))
            self.metrics.batch("customers", len(records), time.perf_counter() - started)

    async def drop(self, partitions: list[int]) -> None:
        """These partitions went to another worker: forget them (their state is in the changelog)."""
        async with self.lock:
            for p in partitions:
                self.stages.pop(p, None)


def build_app(settings: Settings, publisher: Publisher, engine: EngineStage, customers: CustomerStages,
              metrics: Metrics) -> faust.App:
    scheme = faust_transport.register(settings.fetch_max_wait_ms)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id, broker=f"kafka://{settings.bootstrap}", broker_consumer=f"{scheme}://{settings.bootstrap}",
        value_serializer="raw", key_serializer="raw",
        web_enabled=settings.web_enabled, web_bind=settings.web_host, web_host=settings.web_host,
        web_port=settings.web_port, broker_session_timeout=settings.session_timeout_s,
        broker_credentials=settings.kafka_security.faust(),
        broker_heartbeat_interval=settings.heartbeat_interval_s, topic_disable_leader=True,
        topic_allow_declare=False, consumer_auto_offset_reset="earliest", store="memory://",
        datadir=str(settings.state_dir / "faust-{conf.name}"),  # not the working directory
    )
    prefix = settings.topic_prefix
    events_topic = settings.topic(EVENTS_TOPIC)

    def inbound(tps) -> dict:  # noqa: ANN001 - Faust's TP set; (contract topic, partition) -> TP
        return {(tp.topic.removeprefix(prefix), tp.partition): tp for tp in tps
                if tp.topic.startswith(prefix) and tp.topic.removeprefix(prefix) in INBOUND}

    def highwaters() -> dict[tuple[str, int], tuple[int | None, int | None]]:
        consumer = app.consumer
        return {source: (consumer.highwater(tp), faust_transport.highwater_as_of(tp.topic, tp.partition))
                for source, tp in inbound(consumer.assignment()).items()}

    ingest = IngestStage(settings, publisher, metrics, highwaters)

    @app.agent(app.topic(*(settings.topic(t) for t in INBOUND)))
    async def ingest_agent(stream):  # noqa: ANN001 - Faust's stream type
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await ingest.batch([RawRecord(m.topic.removeprefix(prefix), m.partition, m.offset, m.key, m.value,
                                          None if m.timestamp is None or m.timestamp < 0 else int(m.timestamp * 1000))
                                for m in (e.message for e in events)])

    @app.agent(app.topic(events_topic))
    async def engine_agent(stream):  # noqa: ANN001
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            if records := unprocessed(events):
                await engine.batch(records)

    customers_topic = settings.topic(CUSTOMERS_TOPIC)

    @app.agent(app.topic(customers_topic))
    async def customers_agent(stream):  # noqa: ANN001
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            if records := unprocessed(events):
                await customers.batch(records)

    @app.timer(1.0)
    async def idle_watermark() -> None:
        await engine.tick()

    @app.timer(settings.progress_interval_s)
    async def ingest_progress() -> None:
        await ingest.tick()

    committed = CommittedOffsets(settings.kafka_client(), settings.app_id)

    @app.timer(1.0)
    async def heartbeat() -> None:
        metrics.beat()

    lag_committed = CommittedOffsets(settings.kafka_client(), settings.app_id)  # its own client: read from another thread

    @app.timer(settings.lag_interval_s)
    async def consumer_lag() -> None:
        """Lag of the partitions this worker holds: the fetch high watermark (right on every broker, unlike the
        embedded one's ListOffsets) minus the group's committed offset."""
        consumer = app.consumer
        high = {(tp.topic, tp.partition): consumer.highwater(tp) for tp in consumer.assignment()}
        done = await asyncio.get_running_loop().run_in_executor(None, lag_committed.read, list(high))
        metrics.lags(settings.app_id, {s: max(0, h - done.get(s, 0)) for s, h in high.items() if h is not None})

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **_) -> None:  # noqa: ANN001
        metrics.rebalances.inc()
        metrics.health.joined = True
        sources = inbound(assigned)
        if sources:
            names = [(tp.topic, tp.partition) for tp in sources.values()]
            offsets = await asyncio.get_running_loop().run_in_executor(None, committed.read, names)
            ingest.assigned({(t.removeprefix(prefix), p): o for (t, p), o in offsets.items()})
        held = [tp.partition for tp in assigned if tp.topic == customers_topic]
        if held:  # restore them now, side by side, rather than one by one as their first records come
            asyncio.ensure_future(customers.restore(held))

    @app.on_before_shutdown.connect
    async def on_shutdown(app, **_) -> None:  # noqa: ANN001
        metrics.health.stopping = True  # /readyz answers 503 while the last batch finishes and the group is left

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **_) -> None:  # noqa: ANN001
        metrics.health.joined = False  # until the group assigns again
        ingest.revoked(list(inbound(revoked)))
        if any(tp.topic == events_topic for tp in revoked):
            await engine.drop()
        await customers.drop([tp.partition for tp in revoked if tp.topic == customers_topic])

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    SentimentModel()  # read the shipped Korean prior now, not while holding partitions
    sentiment.preload()  # and the analysers, Kiwi included
    metrics = Metrics()
    metrics_port = metrics.serve(settings.metrics_port, settings.metrics_host)
    publisher = Publisher(settings.kafka_client(), settings.topic_prefix)
    store = StateStore(settings.kafka_client(), settings.topic(STATE_TOPIC))
    engine = EngineStage(settings, Publisher(settings.kafka_client(), settings.topic_prefix), store, metrics)
    customers = CustomerStages(settings, Publisher(settings.kafka_client(), settings.topic_prefix), metrics)
    app = build_app(settings, publisher, engine, customers, metrics)
    log.info("worker on %s; metrics on http://%s:%d/metrics", settings.bootstrap, settings.metrics_host,
             metrics_port)
    faust.Worker(app, loglevel=loglevel, quiet=True,
                 logging_config=logs.logging_config(settings.log_format, LOG_LEVELS[loglevel])).execute_from_commandline()
