"""Faust's aiokafka transport with a configurable fetch wait, registered as the ``rapport://`` scheme.

Faust fixes aiokafka's ``fetch_max_wait_ms`` at 1500 ms. A broker that holds a fetch until then
instead of answering when data arrives (the embedded broker does) makes every stage that long; the
worker has three. The wait comes from ``RAPPORT_FETCH_MAX_WAIT_MS``.
"""
from __future__ import annotations

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

SCHEME = "rapport"
FETCH_MAX_WAIT_MS = {"value": 20}


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001, ANN202 - Faust's signature
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS["value"]  # read when the consumer starts
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
