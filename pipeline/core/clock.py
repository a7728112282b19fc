"""Event time: the watermark and timers that fire when it passes them.

>>> wm = Watermark(lateness_ms=10)
>>> wm.observe(100), wm.current
(False, 90)
>>> wm.observe(80)   # behind the watermark: late
True
>>> t = Timers()
>>> t.schedule("cart:c1", 95); t.schedule("cart:c2", 85); t.schedule("cart:c1", 120)
>>> t.due(wm.current)   # c1 was rescheduled to 120
['cart:c2']
"""
from __future__ import annotations

import heapq


class Watermark:
    """Latest event time seen minus the allowed lateness; never goes back."""

    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.max_event_ms: int | None = None

    @property
    def current(self) -> int | None:
        return None if self.max_event_ms is None else self.max_event_ms - self.lateness_ms

    def observe(self, ts: int) -> bool:
        """Note an event time; True when the event is behind the watermark (late)."""
        late = self.max_event_ms is not None and ts < self.max_event_ms - self.lateness_ms
        if self.max_event_ms is None or ts > self.max_event_ms:
            self.max_event_ms = ts
        return late

    def advance_idle(self, wall_ms: int) -> None:
        """Live mode only: an idle input lets the wall clock move event time on (carts fire at night)."""
        if self.max_event_ms is None or wall_ms > self.max_event_ms:
            self.max_event_ms = wall_ms


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
