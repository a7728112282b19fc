"""Event time: per-source watermarks and timers that fire when the watermark passes them.

A source is one input partition (the worker) or the whole ordered input (replay). The watermark is
the smallest of the active sources' latest event times, minus the allowed lateness, and never goes
back. A source the driver ``expect``s holds the watermark until it delivers; a source the driver
reports ``idle`` stops holding it back until it delivers again.

>>> wm = Watermark(lateness_ms=10)
>>> wm.observe("a", 100), wm.current
(False, 90)
>>> wm.observe("b", 50), wm.current      # b lags: it holds the watermark back (never below 90)
(True, 90)
>>> wm.observe("a", 200), wm.current
(False, 90)
>>> wm.idle("b"); wm.current             # b has nothing more to say for now
190
>>> wm.expect("c"); wm.observe("a", 300), wm.current   # c is assigned but unheard: wait for it
(False, 190)
>>> t = Timers()
>>> t.schedule("c1", 95); t.schedule("c2", 85); t.schedule("c1", 120)
>>> t.due(100)   # c1 was rescheduled to 120
['c2']
"""
from __future__ import annotations

import heapq
from collections.abc import Hashable


class Watermark:
    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self._latest: dict[Hashable, int | None] = {}  # None: expected, not heard yet
        self._idle: set[Hashable] = set()
        self._current: int | None = None

    @property
    def current(self) -> int | None:
        return self._current

    @property
    def sources(self) -> int:
        return len(self._latest)

    def expect(self, source: Hashable) -> None:
        """A source the driver was (re)assigned: the watermark waits for it until it delivers or goes idle
        (after a restart it may hold a backlog, whatever it was before)."""
        self._latest.setdefault(source, None)
        self._idle.discard(source)

    def observe(self, source: Hashable, ts: int) -> bool:
        """Note an event time from ``source``; True when the event is behind the watermark (late)."""
        self._idle.discard(source)
        latest = self._latest.get(source)
        if latest is None or ts > latest:
            self._latest[source] = ts
        self._recompute()
        return self._current is not None and ts < self._current

    def idle(self, source: Hashable) -> None:
        """The driver saw no input from ``source`` for a while: stop waiting for it."""
        if source in self._latest:
            self._idle.add(source)
            self._recompute()

    def advance_wall(self, wall_ms: int) -> None:
        """Live mode, every input idle: the wall clock moves event time on (a cart still fires at night)."""
        candidate = wall_ms - self.lateness_ms
        if self._current is None or candidate > self._current:
            self._current = candidate

    def _recompute(self) -> None:
        active = [ts for s, ts in self._latest.items() if s not in self._idle]
        if None in active:
            return
        heard = [ts for ts in self._latest.values() if ts is not None]
        if not heard:
            return
        candidate = (min(active) if active else max(heard)) - self.lateness_ms
        if self._current is None or candidate > self._current:
            self._current = candidate


class Timers:
    """One pending fire time per key; rescheduling replaces it, ``cancel`` drops it."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._at)

    def schedule(self, key: str, at: int) -> None:
        if self._at.get(key) != at:
            self._at[key] = at
            heapq.heappush(self._heap, (at, key))

    def cancel(self, key: str) -> None:
        self._at.pop(key, None)

    def due(self, watermark: int | None) -> list[str]:
        """Keys whose time is at or before the watermark, earliest first; they are removed."""
        out = []
        while self._heap and watermark is not None and self._heap[0][0] <= watermark:
            at, key = heapq.heappop(self._heap)
            if self._at.get(key) == at:
                del self._at[key]
                out.append(key)
        if len(self._heap) > 2 * len(self._at) + 1024:  # drop stale entries left by rescheduling
            self._heap = [(a, k) for k, a in self._at.items()]
            heapq.heapify(self._heap)
        return out
