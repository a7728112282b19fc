"""Batched Kafka output with confluent-kafka: produce a batch, flush, and only then let offsets commit."""
from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from pipeline.core.records import Emit
from pipeline.drivers.codec import key_bytes, value_bytes


class PublishError(RuntimeError):
    """Some records of a batch were not acknowledged; the batch must not be committed."""


class Publisher:
    def __init__(self, bootstrap: str, prefix: str = "") -> None:
        self.prefix = prefix
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000,
                                   "queue.buffering.max.messages": 500_000, "enable.idempotence": False})
        self._errors: list[str] = []

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
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
