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
    asked for (a heap per kind, so that one clock's timers can fire while another's wait). The pending
    times are kept by customer, so that a customer's timers are saved and restored in one step (a stage
    saves them before every event, to roll back a failure)."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[int, str, str]]] = {}
        self._by: dict[str, dict[str, int]] = {}  # customer -> kind -> pending fire time
        self._count = 0
        self._asked: dict[tuple[str, ...], list[tuple[str, list[tuple[int, str, str]]]]] = {}

    def __len__(self) -> int:
        return self._count

    def pending(self, kind: str) -> int:
        return sum(1 for kinds in self._by.values() if kind in kinds)

    def schedule(self, kind: str, customer: str, at: int) -> None:
        mine = self._by.get(customer)
        if mine is None:
            mine = self._by[customer] = {}
        elif mine.get(kind) == at:
            return
        if kind not in mine:
            self._count += 1
        mine[kind] = at
        heap = self._heaps.get(kind)
        if heap is None:
            heap = self._heaps[kind] = []
        heapq.heappush(heap, (at, kind, customer))
        if len(heap) > 2 * self._count + 1024:  # drop stale entries left by rescheduling
            heap[:] = [(a, kind, c) for c, kinds in self._by.items() if (a := kinds.get(kind)) is not None]
            heapq.heapify(heap)

    def _heaps_of(self, kinds: tuple[str, ...]) -> list[tuple[str, list[tuple[int, str, str]]]]:
        """(kind, heap) of each kind (every call of a stage asks for the same kinds: the list is kept)."""
        found = self._asked.get(kinds)
        if found is None:
            found = self._asked[kinds] = [(kind, self._heaps.setdefault(kind, [])) for kind in kinds]
        return found

    def cancel(self, kind: str, customer: str) -> None:
        mine = self._by.get(customer)
        if mine is not None and mine.pop(kind, None) is not None:
            self._count -= 1
            if not mine:
                del self._by[customer]

    def of(self, customer: str) -> dict[str, int]:
        """The customer's pending timers, by kind (a copy)."""
        mine = self._by.get(customer)
        return {} if mine is None else mine.copy()

    def cancel_all(self, customer: str) -> None:
        self._count -= len(self._by.pop(customer, ()))

    def next_due(self, watermark: int | None, kinds: tuple[str, ...]) -> tuple[int, str, str] | None:
        """Remove and return the earliest timer of these kinds at or before the watermark, or None."""
        if watermark is None:
            return None
        by = self._by
        best = None
        for kind, heap in self._heaps_of(kinds):
            while heap and heap[0][0] <= watermark:
                top = heap[0]
                mine = by.get(top[2])
                if mine is not None and mine.get(kind) == top[0]:
                    if best is None or top < best:
                        best = top
                    break
                heapq.heappop(heap)  # rescheduled or cancelled since
        if best is not None:
            heapq.heappop(self._heaps[best[1]])
            self.cancel(best[1], best[2])
        return best
