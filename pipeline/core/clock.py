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
>>> t.schedule("cart", "c1", 95); t.schedule("cart", "c2", 85); t.schedule("cart", "c1", 120)
>>> t.next_due(100, ("cart",)), t.next_due(100, ("cart",))   # c1 was rescheduled to 120
((85, 'cart', 'c2'), None)
>>> t.schedule("label", "c2", 90); t.pending("cart"), t.next_due(100, ("cart", "label"))
(1, (90, 'label', 'c2'))
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
    """One timer service for every kind: one pending fire time per (kind, customer); rescheduling
    replaces it, ``cancel`` drops it. Due timers come out in (time, kind, customer) order, of the kinds
    asked for (a heap per kind, so that one clock's timers can fire while another's wait)."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[int, str, str]]] = {}
        self._at: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._at)

    def pending(self, kind: str) -> int:
        return sum(1 for k, _ in self._at if k == kind)

    def schedule(self, kind: str, customer: str, at: int) -> None:
        if self._at.get((kind, customer)) == at:
            return
        self._at[(kind, customer)] = at
        heap = self._heaps.setdefault(kind, [])
        heapq.heappush(heap, (at, kind, customer))
        if len(heap) > 2 * len(self._at) + 1024:  # drop stale entries left by rescheduling
            heap[:] = [(a, k, c) for (k, c), a in self._at.items() if k == kind]
            heapq.heapify(heap)

    def cancel(self, kind: str, customer: str) -> None:
        self._at.pop((kind, customer), None)

    def of(self, customer: str, kinds: tuple[str, ...]) -> dict[str, int]:
        """The customer's pending timers of these kinds, by kind."""
        at = self._at
        return {k: at[(k, customer)] for k in kinds if (k, customer) in at}

    def cancel_all(self, customer: str, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self.cancel(kind, customer)

    def next_due(self, watermark: int | None, kinds: tuple[str, ...]) -> tuple[int, str, str] | None:
        """Remove and return the earliest timer of these kinds at or before the watermark, or None."""
        if watermark is None:
            return None
        at = self._at
        best = None
        for kind in kinds:
            heap = self._heaps.get(kind)
            while heap and heap[0][0] <= watermark:
                top = heap[0]
                if at.get((kind, top[2])) == top[0]:
                    if best is None or top < best:
                        best = top
                    break
                heapq.heappop(heap)  # rescheduled or cancelled since
        if best is not None:
            heapq.heappop(self._heaps[best[1]])
            self.cancel(best[1], best[2])
        return best
