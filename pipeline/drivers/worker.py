"""``rapport worker``: two Faust agents around the one core.

1. *ingest* reads the inbound topics (every worker takes a share of their partitions): decode,
   validate, pseudonymise; dead letters to ``dlq.v1``; valid events, with the partition they came
   from, to the internal single-partition topic ``rapport.events.v1``.
2. *engine* reads ``rapport.events.v1``: one worker at a time holds it and sees every event, so
   identity and profiles are global. It restores its state from the ``rapport.state.v1`` changelog
   when it gets the partition, and writes the entries each batch changed.

Outputs and state are produced with confluent-kafka and flushed before Faust acknowledges the
batch: at-least-once; trigger ids are deterministic and re-read events are not applied twice.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

import faust

from pipeline.core.engine import Engine
from pipeline.core.ingest import Ingest
from pipeline.core.pii import Hasher
from pipeline.core.records import Emit, RawRecord
from pipeline.drivers import faust_transport
from pipeline.drivers.codec import build_engine, event_bytes, event_from_bytes
from pipeline.drivers.kafka_io import Publisher
from pipeline.ops.metrics import Metrics
from pipeline.ops.settings import Settings
from pipeline.ops.statestore import StateStore
from pipeline.ops.topics import EVENTS_TOPIC, STATE_TOPIC, partitions_of
from schemas.inbound import INBOUND
from schemas.outbound import DeadLetter

log = logging.getLogger(__name__)


async def _flush(*publishers: Publisher) -> None:
    loop = asyncio.get_running_loop()
    for p in publishers:
        await loop.run_in_executor(None, p.flush)


class IngestStage:
    def __init__(self, settings: Settings, publisher: Publisher, metrics: Metrics) -> None:
        self.settings, self.publisher, self.metrics = settings, publisher, metrics
        self.ingest = Ingest(settings, Hasher(settings.pii_secret(), settings.default_country_code))
        self.events_topic = settings.topic(EVENTS_TOPIC)
        self.stats: Counter[str] = Counter()

    async def batch(self, records: list[RawRecord]) -> None:
        started, stats = time.perf_counter(), self.stats
        for rec in records:
            decoded = self.ingest.decode(rec)
            if isinstance(decoded, DeadLetter):
                stats[f"dlq:{decoded.error_type}"] += 1
                self.publisher.send_emits([Emit("dlq.v1", decoded.key, decoded)])
            else:
                self.publisher.send(self.events_topic, None,
                                    event_bytes(decoded, (rec.topic, rec.partition), rec.offset))
        await _flush(self.publisher)
        stats["records"] += len(records)
        self.metrics.count("ingest", stats)
        self.metrics.batch("ingest", len(records), time.perf_counter() - started)


class EngineStage:
    """Holds the engine while this worker owns ``rapport.events.v1``; feeds it batches and idle ticks."""

    def __init__(self, settings: Settings, publisher: Publisher, store: StateStore, metrics: Metrics) -> None:
        self.settings, self.publisher, self.store, self.metrics = settings, publisher, store, metrics
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
        started = time.monotonic()
        entries = self.store.read_all()
        engine = build_engine(self.settings, per_partition=True)
        engine.restore(entries)
        sources = partitions_of(self.settings, list(INBOUND))
        engine.assign(sources)
        now = time.monotonic()
        self._heard = dict.fromkeys(sources, now)
        log.info("engine state restored: %d entries, %d customers, in %.1fs", len(entries), len(engine.customers),
                 now - started)
        return engine

    async def drop(self) -> None:
        """This worker no longer owns the events partition: checkpoint the models, forget the state;
        whoever gets the partition restores from the changelog."""
        async with self.lock:
            if self.engine is not None:
                self.store.write(self.engine.models())
                await _flush(self.store.publisher)
            self.engine = None

    async def batch(self, values: list[bytes]) -> None:
        self.last_input = now = time.monotonic()

        def step(engine: Engine) -> list[Emit]:
            out: list[Emit] = []
            for data in values:
                ev, source, offset = event_from_bytes(data)
                self._heard[source] = now
                engine.apply(ev, source, out, offset)
            out.extend(engine.end_batch())
            return out

        await self._run(step, len(values))

    async def tick(self) -> None:
        """Report silent partitions (and, after longer silence, the wall clock) to the engine."""
        if self.engine is None:
            return
        now = time.monotonic()
        silent = [s for s, t in self._heard.items() if now - t >= self.settings.idle_partition_s]
        for s in silent:
            del self._heard[s]  # reported once; delivering again makes it active again
        idle = self.settings.idle_advance_s
        wall = int(time.time() * 1000) if idle and now - self.last_input >= idle else None
        if silent or wall is not None:
            await self._run(lambda engine: engine.sources_idle(silent, wall), 0)

    async def _run(self, step: Callable[[Engine], list[Emit]], n: int) -> None:
        async with self.lock:
            engine = await self._ensure_engine()
            started = time.perf_counter()
            emits = step(engine)
            self.publisher.send_emits(emits)
            self.store.write(engine.take_changes())
            if time.monotonic() - self.last_checkpoint >= self.settings.model_checkpoint_s:
                self.store.write(engine.models())
                self.last_checkpoint = time.monotonic()
            await _flush(self.publisher, self.store.publisher)
            self.metrics.count("engine", engine.stats)
            self.metrics.outputs(emits, self.publisher.prefix)
            self.metrics.engine(engine)
            self.metrics.batch("engine", n, time.perf_counter() - started)


def build_app(settings: Settings, ingest: IngestStage, engine: EngineStage) -> faust.App:
    scheme = faust_transport.register(settings.fetch_max_wait_ms)
    app = faust.App(
        settings.app_id, broker=f"kafka://{settings.bootstrap}", broker_consumer=f"{scheme}://{settings.bootstrap}",
        value_serializer="raw", key_serializer="raw",
        web_host=settings.web_host, web_port=settings.web_port, broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s, topic_disable_leader=True,
        topic_allow_declare=False, consumer_auto_offset_reset="earliest", store="memory://",
    )
    prefix = settings.topic_prefix
    events_topic = settings.topic(EVENTS_TOPIC)

    @app.agent(app.topic(*(settings.topic(t) for t in INBOUND)))
    async def ingest_agent(stream):  # noqa: ANN001 - Faust's stream type
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await ingest.batch([RawRecord(e.message.topic.removeprefix(prefix), e.message.partition,
                                          e.message.offset, e.message.key, e.message.value) for e in events])

    @app.agent(app.topic(events_topic))
    async def engine_agent(stream):  # noqa: ANN001
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await engine.batch([e.message.value for e in events])

    @app.timer(1.0)
    async def idle_watermark() -> None:
        await engine.tick()

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **_) -> None:  # noqa: ANN001
        if any(tp.topic == events_topic for tp in revoked):
            await engine.drop()

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    metrics = Metrics()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    publisher = Publisher(settings.bootstrap, settings.topic_prefix)
    store = StateStore(settings.bootstrap, settings.topic(STATE_TOPIC))
    app = build_app(settings, IngestStage(settings, publisher, metrics),
                    EngineStage(settings, Publisher(settings.bootstrap, settings.topic_prefix), store, metrics))
    log.info("worker on %s; metrics on http://%s:%d/metrics", settings.bootstrap, settings.metrics_host,
             settings.metrics_port)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
