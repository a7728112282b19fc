"""What /healthz and /readyz answer in each state of a worker (served next to /metrics)."""
from prometheus_client import CollectorRegistry, Counter

from pipeline.ops.broker import free_port
from pipeline.ops.health import Health, serve
from tests.helpers import http_get as answer


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_each_state_answers_as_a_probe_expects():
    clock = Clock()
    health = Health(stale_after_s=30, now=clock)
    registry = CollectorRegistry()
    Counter("rapport_records", "Inbound records read", registry=registry).inc(3)
    port = free_port()
    server = serve(registry, health, port)
    base = f"http://127.0.0.1:{port}"
    try:
        # Started, not joined yet: alive, not ready.
        assert answer(base + "/healthz") == (200, "alive\n")
        assert answer(base + "/readyz") == (503, "not joined to the consumer group yet\n")
        # Joined, restoring two partitions' state: not ready until both are done.
        health.joined = True
        with health.restoring(), health.restoring():
            assert answer(base + "/readyz") == (503, "restoring state (2 restores running)\n")
        assert answer(base + "/readyz") == (200, "ready\n")
        # The event loop stops beating (wedged): neither alive nor ready.
        clock.t += 31
        assert answer(base + "/healthz") == (503, "event loop silent for 31s\n")
        assert answer(base + "/readyz")[0] == 503
        health.beat()
        assert answer(base + "/readyz") == (200, "ready\n")
        # A rebalance takes the partitions away; stopping (SIGTERM) is never ready.
        health.joined = False
        assert answer(base + "/readyz")[0] == 503
        health.joined, health.stopping = True, True
        assert answer(base + "/readyz") == (503, "stopping\n")
        # Every other path is the metrics page.
        assert "rapport_records_total 3.0" in answer(base + "/metrics")[1]
    finally:
        server.shutdown()
