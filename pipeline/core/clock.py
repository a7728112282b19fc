"""Event time: the watermark and timers that fire when it passes them.

The core applies events in one order (``pipeline.core.sequencer``), so the watermark is simply the
latest event time applied, minus the allowed lateness; it never goes back. In live mode, when all
input has been silent for a while, the wall clock may move it on (a cart still fires at night).

>>> wm = Watermark(lateness_ms=10)
>>> wm.observe(100), wm.current
(False, 90)
>>> wm.observe(50), wm.current           # behind the watermark: late for its timers
(True, 90)
>>> wm.advance_wall(500); wm.current
490
>>> t = Timers()
>>> t.schedule("c1", 95); t.schedule("c2", 85); t.schedule("c1", 120)
>>> t.due(100)   # c1 was rescheduled to 120
['c2']
"""
from __future__ import annotations

import heapq


class Watermark:
    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.current: int | None = None

    def observe(self, ts: int) -> bool:
        """Note an applied event time; True when the event is behind the watermark (late)."""
        late = self.current is not None and ts < self.current
        self._advance(ts - self.lateness_ms)
        return late

    def advance_wall(self, wall_ms: int) -> None:
        """Live mode, every input silent: the wall clock moves event time on."""
        self._advance(wall_ms - self.lateness_ms)

    def _advance(self, candidate: int) -> None:
        if self.current is None or candidate > self.current:
            self.current = candidate


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
