"""What a worker's ``/healthz`` and ``/readyz`` answer, served with ``/metrics`` on the metrics port.

*Alive* (``/healthz``): the event loop has beaten within ``stale_after_s`` (a wedged loop fails it, and
Kubernetes restarts the pod). *Ready* (``/readyz``): alive, joined to its consumer group (partitions
assigned), no state restore running, and not stopping.

>>> h = Health(stale_after_s=30, now=lambda: 100.0)
>>> h.ready()
(False, 'not joined to the consumer group yet')
>>> h.joined = True
>>> with h.restoring():
...     h.ready()
(False, 'restoring state (1 restore running)')
>>> h.alive(), h.ready()
((True, 'alive'), (True, 'ready'))
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler


class Health:
    def __init__(self, stale_after_s: float = 30.0, now: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s, self._now = stale_after_s, now
        self.last_beat = now()
        self.joined = False
        self.stopping = False
        self._restores = 0
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The event loop is running (called from a timer on the loop)."""
        self.last_beat = self._now()

    @contextmanager
    def restoring(self) -> Iterator[None]:
        with self._lock:
            self._restores += 1
        try:
            yield
        finally:
            with self._lock:
                self._restores -= 1

    def alive(self) -> tuple[bool, str]:
        silent = self._now() - self.last_beat
        if silent > self.stale_after_s:
            return False, f"event loop silent for {silent:.0f}s"
        return True, "alive"

    def ready(self) -> tuple[bool, str]:
        ok, why = self.alive()
        if not ok:
            return ok, why
        if self.stopping:
            return False, "stopping"
        if not self.joined:
            return False, "not joined to the consumer group yet"
        if self._restores:
            return False, f"restoring state ({self._restores} restore{'s' if self._restores > 1 else ''} running)"
        return True, "ready"


def serve(registry: CollectorRegistry, health: Health, port: int, host: str = "127.0.0.1") -> ThreadingWSGIServer:
    """``/metrics`` (and any other path), ``/healthz`` and ``/readyz`` on ``host:port``, from a daemon thread."""
    metrics = make_wsgi_app(registry)
    checks = {"/healthz": health.alive, "/readyz": health.ready}

    def app(environ, start_response):  # noqa: ANN001, ANN202 - WSGI
        check = checks.get(environ.get("PATH_INFO", ""))
        if check is None:
            return metrics(environ, start_response)
        ok, why = check()
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
        return [why.encode() + b"\n"]

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http").start()
    return server
