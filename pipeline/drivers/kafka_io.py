"""Batched Kafka output with confluent-kafka: produce a batch, flush, and only then let offsets commit."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, Producer, TopicPartition

from pipeline.core.records import Emit
from pipeline.drivers.codec import key_bytes, value_bytes


#: Where and how to connect: ``"host:port"``, or librdkafka settings (``Settings.kafka_client()``: servers and security).
Connection = str | Mapping[str, str]


def client_config(conn: Connection, **extra: object) -> dict[str, object]:
    """librdkafka settings for a client of ``conn``, plus its own ``extra`` settings."""
    base: dict[str, object] = {"bootstrap.servers": conn} if isinstance(conn, str) else dict(conn)
    return {**base, **extra}


def written_ms(timestamp: tuple[int, int]) -> int | None:
    """A confluent-kafka message's ``timestamp()`` (type, ms) as ms, or None when the broker gave none."""
    kind, ms = timestamp
    return None if kind == TIMESTAMP_NOT_AVAILABLE or ms < 0 else ms


class PublishError(RuntimeError):
    """Some records of a batch were not acknowledged; the batch must not be committed."""


class Publisher:
    def __init__(self, conn: Connection, prefix: str = "") -> None:
        self.prefix = prefix
        self._producer = Producer(client_config(conn, **{"linger.ms": 5, "batch.num.messages": 10000,
                                  "queue.buffering.max.messages": 500_000, "enable.idempotence": False}))
        self._errors: list[str] = []

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
             timestamp_ms: int | None = None) -> None:
        """Queue one record (to ``partition``, or where the key hashes; written now, or at ``timestamp_ms``)."""
        extra: dict[str, int] = {} if partition is None else {"partition": partition}
        if timestamp_ms is not None:
            extra["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered, **extra)
                return
            except BufferError:  # local queue full: let it drain
                self._producer.poll(0.1)

    def send_emits(self, emits: list[Emit]) -> None:
        for e in emits:
            self.send(self.prefix + e.topic, key_bytes(e), value_bytes(e))
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record sent so far is acknowledged; raise if any failed or timed out."""
        left = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if left or errors:
            raise PublishError(f"{left} records unacknowledged after {timeout}s; errors: {errors[:5]}")


#: The items of one record on an internal topic stay under this many bytes (Kafka's default limit is 1 MB).
TRANSIT_RECORD_BYTES = 256 * 1024


class Transit:
    """Records on the internal topics live until their reader has processed them.

    A writer packs a batch's items into few records (at most ``TRANSIT_RECORD_BYTES`` of items each), each
    under a key of its own (``writer/sequence``). The reader, once it has processed a batch, tombstones the
    records it read, in the same flush as its outputs. The internal topics are compacted: a compacted reader
    finds only records not processed yet, and Kafka deletes the values within ``max.compaction.lag.ms``. So
    an erased person's pseudonymised events and texts do not outlive their processing by more than that.
    """

    def __init__(self, publisher: Publisher, writer: str) -> None:
        self.publisher, self._writer, self._seq = publisher, writer.encode(), 0

    def send(self, topic: str, partition: int, items: Iterable[bytes],
             pack: Callable[[list[bytes]], bytes] = b"".join) -> None:
        """Queue ``items`` for ``partition`` of ``topic``, packed into records by ``pack``."""
        chunk: list[bytes] = []
        size = 0
        for item in items:
            if chunk and size + len(item) > TRANSIT_RECORD_BYTES:
                self._send(topic, partition, pack(chunk))
                chunk, size = [], 0
            chunk.append(item)
            size += len(item)
        if chunk:
            self._send(topic, partition, pack(chunk))

    def _send(self, topic: str, partition: int, value: bytes) -> None:
        self._seq += 1
        self.publisher.send(topic, b"%s/%d" % (self._writer, self._seq), value, partition)

    def processed(self, topic: str, records: Iterable[tuple[int, bytes | None]]) -> None:
        """Tombstone the ``(partition, key)`` records this reader has processed (a record without a key, from an
        older release, expires with the topic's retention)."""
        for partition, key in records:
            if key is not None:
                self.publisher.send(topic, key, None, partition)


class CommittedOffsets:
    """A consumer group's committed offsets (OffsetFetch), read without joining the group."""

    def __init__(self, conn: Connection, group: str) -> None:
        self._consumer = Consumer(client_config(conn, **{"group.id": group, "enable.auto.commit": False}))

    def read(self, partitions: list[tuple[str, int]], timeout: float = 10.0) -> dict[tuple[str, int], int]:
        """Next offset to read per partition; a partition without a commit starts at 0."""
        got = self._consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in got}


def read_range(conn: Connection, topics: list[str], start_ms: int | None = None, until_ms: int | None = None,
               offsets: dict[tuple[str, int], int] | None = None, idle_s: float = 5.0,
               on_end: Callable[[str, int], None] | None = None) -> Iterator[Message]:
    """Records of every partition of ``topics`` whose record timestamp is in [start_ms, until_ms], from the
    given offsets (else from ``start_ms`` or the beginning), until nothing has come for ``idle_s``.
    ``on_end(topic, partition)`` is called whenever a partition has been read to its current end.

    The end is found by silence, not by the broker's end offsets (which some brokers answer wrongly).
    """
    consumer = Consumer(client_config(conn, **{"group.id": f"rapport-range-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": on_end is not None}))
    try:
        meta = consumer.list_topics(timeout=15).topics
        missing = [t for t in topics if t not in meta]
        if missing:
            raise RuntimeError(f"no such topic(s): {', '.join(missing)}")
        tps = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in sorted(meta[t].partitions)]
        for tp in tps:
            if offsets and (tp.topic, tp.partition) in offsets:
                tp.offset = offsets[(tp.topic, tp.partition)]
        consumer.assign(tps)
        last = time.monotonic()
        while True:
            msgs = consumer.consume(1000, 0.5)
            if not msgs:
                if time.monotonic() - last > idle_s:
                    return
                continue
            last = time.monotonic()
            for m in msgs:
                if m.error():
                    if on_end is not None and m.error().code() == KafkaError._PARTITION_EOF:
                        on_end(m.topic(), m.partition())
                    continue
                ts = m.timestamp()[1]
                if (start_ms is not None and ts < start_ms) or (until_ms is not None and ts > until_ms):
                    continue
                yield m
    finally:
        consumer.close()
