"""Faust's aiokafka transport with a configurable fetch wait, registered as the ``rapport://`` scheme.

Faust fixes aiokafka's ``fetch_max_wait_ms`` at 1500 ms. A broker that holds a fetch until then
instead of answering when data arrives (the embedded broker does) makes every stage that long; the
worker has three. The wait comes from ``RAPPORT_FETCH_MAX_WAIT_MS``.

The consumer also notes, per partition, when the fetch that last reported its high watermark was
sent (``highwater_as_of``): everything written to the partition before then is below that high
watermark. A slow broker or a busy event loop makes that time older, never wrong.
"""
from __future__ import annotations

import time

import aiokafka
from aiokafka.structs import TopicPartition
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

SCHEME = "rapport"
FETCH_MAX_WAIT_MS = {"value": 20}
#: (topic, partition) -> wall time (ms) at which the fetch that last set its high watermark was sent.
HIGHWATER_AS_OF: dict[tuple[str, int], int] = {}


def highwater_as_of(topic: str, partition: int) -> int | None:
    """Everything written to the partition before this wall time (ms) is below its known high watermark."""
    return HIGHWATER_AS_OF.get((topic, partition))


class TimedConsumer(aiokafka.AIOKafkaConsumer):
    """An aiokafka consumer whose fetches note when they were sent, for the partitions whose high watermark
    they set (``HIGHWATER_AS_OF``)."""

    async def start(self) -> None:
        await super().start()
        fetch = self._fetcher._proc_fetch_request

        async def timed(assignment, node_id, request):  # noqa: ANN001, ANN202 - aiokafka's signature
            sent = int(time.time() * 1000)
            try:
                return await fetch(assignment, node_id, request)
            finally:
                for topic, partitions in request.topics:
                    for partition, *_ in partitions:
                        state = assignment.state_value(TopicPartition(topic, partition))
                        if state is not None and state.timestamp is not None and state.timestamp >= sent:
                            HIGHWATER_AS_OF[(topic, partition)] = sent  # this response set its high watermark

        self._fetcher._proc_fetch_request = timed


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001, ANN202 - Faust's signature
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS["value"]  # read when the consumer starts
        consumer.__class__ = TimedConsumer  # Faust builds a plain one; this one only adds the timing
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer


def register(fetch_max_wait_ms: int) -> str:
    """Make ``rapport://`` URLs use this transport; returns the scheme."""
    FETCH_MAX_WAIT_MS["value"] = fetch_max_wait_ms
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    return SCHEME
