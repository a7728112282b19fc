"""The stateful stage's changelog: a compacted topic of state entries (``pipeline.core.encoding``), and its
restore.

Values larger than a Kafka record are split into parts (``key#0..n``) behind a manifest record.
A restore first produces a fence record and reads from the beginning until it sees it, so it
never depends on the broker's end-offset answers.
"""
from __future__ import annotations

import time
import uuid

import orjson

from confluent_kafka import Consumer, TopicPartition

from pipeline.core.encoding import StateFormatError, dumps, loads
from pipeline.drivers.kafka_io import Connection, Publisher, client_config

PART_BYTES = 512 * 1024
MANIFEST = b"rapport-parts:"


class StateStore:
    """One partition of a changelog topic: the state of one stage instance."""

    def __init__(self, conn: Connection, topic: str, partition: int = 0, publisher: Publisher | None = None) -> None:
        self.conn, self.topic, self.partition = conn, topic, partition
        self.publisher = publisher or Publisher(conn)
        self._parts: dict[str, list[str]] = {}  # key -> part keys of its last split value (deleted when replaced)
        self._sizes: dict[str, int] = {}  # key -> bytes of its latest value (what the compacted topic keeps)
        self.bytes = 0  # their sum

    def _sized(self, key: str, size: int) -> None:
        self.bytes += size - self._sizes.pop(key, 0)
        if size:
            self._sizes[key] = size

    def write(self, entries: dict[str, object | None]) -> None:
        """Send entries (``None`` deletes); the caller flushes with its batch."""
        for key, value in entries.items():
            if value is None:
                self.publisher.send(self.topic, key.encode(), None, self.partition)
                self._sized(key, 0)
                self._drop_parts(key)
                continue
            data = dumps(value)
            self._sized(key, len(key) + len(data))
            if len(data) <= PART_BYTES:
                self.publisher.send(self.topic, key.encode(), data, self.partition)
                self._drop_parts(key)
                continue
            generation = uuid.uuid4().hex[:12]
            names = [f"{key}#{generation}#{n}" for n in range(0, (len(data) + PART_BYTES - 1) // PART_BYTES)]
            for n, name in enumerate(names):
                self.publisher.send(self.topic, name.encode(), data[n * PART_BYTES:(n + 1) * PART_BYTES],
                                    self.partition)
            self.publisher.send(self.topic, key.encode(), MANIFEST + orjson.dumps(names), self.partition)
            self._drop_parts(key)
            self._parts[key] = names

    def _drop_parts(self, key: str) -> None:
        """Tombstone the parts of the key's previous split value (once the new value is written)."""
        for old in self._parts.pop(key, []):
            self.publisher.send(self.topic, old.encode(), None, self.partition)

    def flush(self) -> None:
        self.publisher.flush()

    def read_all(self, timeout: float = 120.0) -> dict[str, object]:
        """Every live entry, read from the beginning up to a fence produced now."""
        fence = f"fence/{uuid.uuid4().hex}".encode()
        self.publisher.send(self.topic, fence, b"", self.partition)
        self.flush()
        consumer = Consumer(client_config(self.conn, **{"group.id": f"rapport-restore-{uuid.uuid4().hex}",
                                                        "enable.auto.commit": False, "auto.offset.reset": "earliest"}))
        consumer.assign([TopicPartition(self.topic, self.partition, 0)])
        raw: dict[str, bytes | None] = {}
        deadline = time.monotonic() + timeout
        try:
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"state restore from {self.topic} did not reach its fence in {timeout}s")
                msgs = consumer.consume(1000, 1.0)
                done = False
                for m in msgs:
                    if m.error():
                        continue
                    if m.key() == fence:
                        done = True
                        break
                    raw[m.key().decode()] = m.value()
                if done:
                    break
        finally:
            consumer.close()
        self.publisher.send(self.topic, fence, None, self.partition)
        self._parts = {k: orjson.loads(v[len(MANIFEST):]) for k, v in raw.items()
                       if v is not None and v.startswith(MANIFEST)}
        referenced = {name for names in self._parts.values() for name in names}
        for k, v in raw.items():  # parts no manifest refers to (a crash between writes): tombstoned now
            if "#" in k and v is not None and k not in referenced:
                self.publisher.send(self.topic, k.encode(), None, self.partition)
        self._sizes = {k: len(k) + len(v) for k, v in raw.items()
                       if v is not None and "#" not in k and not k.startswith("fence/")}
        self.bytes = sum(self._sizes.values())
        try:
            return decode_entries(raw)
        except StateFormatError as e:
            raise StateFormatError(f"{self.topic}[{self.partition}]: {e}") from None


def decode_entries(raw: dict[str, bytes | None]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in raw.items():
        if value is None or "#" in key or key.startswith("fence/"):
            continue
        if value.startswith(MANIFEST):
            parts = [raw.get(name) for name in orjson.loads(value[len(MANIFEST):])]
            if any(p is None for p in parts):
                continue  # cannot happen when parts are written before their manifest; skip rather than fail
            value = b"".join(parts)  # type: ignore[arg-type]
        try:
            out[key] = loads(value)
        except StateFormatError as e:
            raise StateFormatError(f"entry {key!r}: {e}") from None
    return out
