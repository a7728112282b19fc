"""Helpers for tests against the embedded broker: a worker subprocess in its own topic namespace."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from pipeline.core.engine import TRIGGER_TOPICS
from pipeline.ops.broker import die_with_parent, free_port
from pipeline.ops.settings import Settings
from pipeline.ops.topics import ensure_topics

PII_KEY = "test-key"
#: Every trigger topic: none may depend on how the input was partitioned or interleaved.
COMPARED = list(TRIGGER_TOPICS.values())


class LiveWorker:
    """A namespace of topics on the broker and ``rapport worker`` processes reading it."""

    def __init__(self, bootstrap: str, log_dir: Path, partitions: int = 2, **env: str) -> None:
        self.ns = f"t{uuid.uuid4().hex[:8]}."
        self.env = {
            **os.environ, "RAPPORT_KAFKA_BOOTSTRAP": bootstrap, "RAPPORT_PII_KEY": PII_KEY,
            "RAPPORT_TOPIC_PREFIX": self.ns, "RAPPORT_APP_ID": f"rapport-{self.ns}", "RAPPORT_IDLE_ADVANCE_S": "0",
            "RAPPORT_PARTITIONS": str(partitions), "RAPPORT_STATE_DIR": str(log_dir), "RAPPORT_BATCH_WITHIN_S": "0.1",
            **env,
        }
        self.settings = Settings(kafka_bootstrap=bootstrap, pii_key=PII_KEY, topic_prefix=self.ns, partitions=partitions)
        ensure_topics(self.settings)
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.metrics_ports: list[int] = []

    def start(self) -> "LiveWorker":
        port, web = free_port(), free_port()
        env = {**self.env, "RAPPORT_METRICS_PORT": str(port), "RAPPORT_WEB_PORT": str(web)}
        log = open(self.log_dir / f"worker{len(self.procs)}.log", "ab")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker", "--loglevel", "warn"],
                                           env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                           preexec_fn=die_with_parent))
        self.metrics_ports.append(port)
        return self

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()

    def read_to_end(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        """``(key, value)`` of every record of ``topic`` (contract name) up to its end now, found by
        end-of-partition rather than by silence (the internal events topic gets progress markers all the time)."""
        name = self.ns + topic
        consumer = Consumer({**self.settings.kafka_client(), "group.id": f"read-{uuid.uuid4().hex}",
                             "enable.partition.eof": True, "enable.auto.commit": False})
        parts = consumer.list_topics(name, timeout=10).topics[name].partitions
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in parts])
        records, ended, deadline = [], set(), time.monotonic() + 60
        try:
            while len(ended) < len(parts) and time.monotonic() < deadline:
                for m in consumer.consume(1000, 0.5):
                    if m.error() and m.error().code() == KafkaError._PARTITION_EOF:
                        ended.add(m.partition())
                    elif not m.error():
                        records.append((m.key(), m.value()))
        finally:
            consumer.close()
        return records

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("worker*.log")))

    def collect(self, topics: list[str], until, timeout: float = 90.0) -> list[dict]:
        """Read ``topics`` (contract names) from the beginning until ``until(records)`` or the timeout."""
        consumer = Consumer({"bootstrap.servers": self.settings.bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
        consumer.subscribe([self.ns + t for t in topics])
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(got):
                for msg in consumer.consume(500, 0.5):
                    if msg.error():
                        continue
                    if msg.value() is None:  # a tombstone on a compacted topic
                        got.append({"topic": msg.topic().removeprefix(self.ns), "customer_id": msg.key().decode(),
                                    "dead": True})
                    else:
                        got.append({"topic": msg.topic().removeprefix(self.ns), **orjson.loads(msg.value())})
                if any(p.poll() not in (None, 0, -15) for p in self.procs):
                    raise AssertionError("a worker died:\n" + self.logs())
        finally:
            consumer.close()
        return got
