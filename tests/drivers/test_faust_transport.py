"""The worker's consumer notes when the fetch that set each partition's high watermark was sent."""
import asyncio
import time
import uuid

import aiokafka
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.drivers.faust_transport import TimedConsumer, highwater_as_of

pytestmark = pytest.mark.broker


def test_a_high_watermark_is_dated_by_the_fetch_that_reported_it(broker):
    topic = f"timed-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()

    async def read_one() -> tuple[int, int, int | None, int | None]:
        consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=20,
                                             auto_offset_reset="earliest", group_id=None)
        consumer.__class__ = TimedConsumer  # as the worker's transport does to Faust's consumer
        await consumer.start()
        try:
            before = int(time.time() * 1000)
            producer = Producer({"bootstrap.servers": broker.bootstrap})
            producer.produce(topic, b"x")
            producer.flush(10)
            written = int(time.time() * 1000)
            got: dict = {}
            deadline = time.monotonic() + 20
            while not got and time.monotonic() < deadline:
                got = await consumer.getmany(timeout_ms=500)
            await asyncio.sleep(0.2)  # a few more fetches: the latest one dates the high watermark
            tp = aiokafka.TopicPartition(topic, 0)
            return before, written, consumer.highwater(tp), highwater_as_of(topic, 0)
        finally:
            await consumer.stop()

    before, written, high, as_of = asyncio.run(read_one())
    assert high == 1
    assert as_of is not None and written <= as_of <= int(time.time() * 1000)  # sent after the record was written
    assert as_of > before
