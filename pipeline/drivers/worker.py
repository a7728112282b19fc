"""``rapport worker``: Faust reads the inbound topics in batches; the core engine processes them; outputs
are produced with confluent-kafka and flushed before the batch is acknowledged (at-least-once; trigger
ids are deterministic so consumers de-duplicate)."""
from __future__ import annotations

import asyncio
import logging
import time

import faust

from pipeline.core.engine import Engine
from pipeline.core.records import Emit, RawRecord
from pipeline.drivers.kafka_io import Publisher
from pipeline.ops.metrics import Metrics
from pipeline.ops.settings import Settings
from schemas.inbound import INBOUND

log = logging.getLogger(__name__)


class Runner:
    """Feeds batches (and idle ticks) to the engine and publishes what comes out; one at a time."""

    def __init__(self, settings: Settings, engine: Engine, publisher: Publisher, metrics: Metrics) -> None:
        self.settings, self.engine, self.publisher, self.metrics = settings, engine, publisher, metrics
        self.lock = asyncio.Lock()
        self.last_input = time.monotonic()
        self._heard: dict[tuple[str, int], float] = {}  # source -> when it last delivered (monotonic)

    async def batch(self, records: list[RawRecord]) -> None:
        self.last_input = now = time.monotonic()
        for r in records:
            self._heard[(r.topic, r.partition)] = now
        await self._run(lambda: self.engine.process_batch(records), len(records))

    def assigned(self, sources: list[tuple[str, int]]) -> None:
        now = time.monotonic()
        for s in sources:
            self._heard.setdefault(s, now)  # an assigned partition that stays silent goes idle like any other
        self.engine.assign(sources)

    def revoked(self, sources: list[tuple[str, int]]) -> None:
        for s in sources:
            self._heard.pop(s, None)
        self.engine.revoke(sources)

    async def tick(self) -> None:
        """Report silent partitions (and, after longer silence, the wall clock) to the engine."""
        now = time.monotonic()
        silent = [s for s, t in self._heard.items() if now - t >= self.settings.idle_partition_s]
        for s in silent:
            del self._heard[s]  # reported once; delivering again makes it active again
        idle = self.settings.idle_advance_s
        wall = int(time.time() * 1000) if idle and now - self.last_input >= idle else None
        if silent or wall is not None:
            await self._run(lambda: self.engine.sources_idle(silent, wall), 0)

    async def _run(self, step, n: int) -> None:
        async with self.lock:
            started = time.perf_counter()
            emits: list[Emit] = step()
            self.publisher.send_emits(emits)
            await asyncio.get_running_loop().run_in_executor(None, self.publisher.flush)
            self.metrics.observe(self.engine, emits, self.publisher.prefix, n, time.perf_counter() - started)


def build_app(settings: Settings, runner: Runner) -> faust.App:
    app = faust.App(
        settings.app_id, broker=f"kafka://{settings.bootstrap}", value_serializer="raw", key_serializer="raw",
        web_host=settings.web_host, web_port=settings.web_port, broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s, topic_disable_leader=True,
        topic_allow_declare=False, consumer_auto_offset_reset="earliest", store="memory://",
    )
    prefix = settings.topic_prefix
    source = app.topic(*(settings.topic(t) for t in INBOUND))

    @app.agent(source)
    async def process(stream):  # noqa: ANN001 - Faust's stream type
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            records = [
                RawRecord(e.message.topic.removeprefix(prefix), e.message.partition, e.message.offset,
                          e.message.key, e.message.value)
                for e in events
            ]
            await runner.batch(records)

    @app.timer(1.0)
    async def idle_watermark() -> None:
        await runner.tick()

    def sources(tps) -> list[tuple[str, int]]:  # noqa: ANN001 - Faust's TP set
        inbound = {settings.topic(t) for t in INBOUND}
        return [(tp.topic.removeprefix(prefix), tp.partition) for tp in tps if tp.topic in inbound]

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **_) -> None:  # noqa: ANN001
        runner.assigned(sources(assigned))

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **_) -> None:  # noqa: ANN001
        runner.revoked(sources(revoked))

    return app


def run_worker(settings: Settings, engine: Engine, loglevel: str = "info") -> None:
    metrics = Metrics()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    publisher = Publisher(settings.bootstrap, settings.topic_prefix)
    app = build_app(settings, Runner(settings, engine, publisher, metrics))
    log.info("worker on %s; metrics on http://%s:%d/metrics", settings.bootstrap, settings.metrics_host,
             settings.metrics_port)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
