"""Bounded memory of event ids: the most recent ``capacity`` ids are remembered.

>>> d = Dedup(2)
>>> d.add("a"), d.add("a"), d.add("b"), d.add("c"), d.add("a")
(True, False, True, True, True)
"""
from __future__ import annotations

from collections import OrderedDict


class Dedup:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, event_id: str) -> bool:
        """True the first time an id is seen (within the memory), False for a duplicate."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True
