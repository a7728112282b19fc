"""Bounded memory of event ids: the most recent ``capacity`` ids are remembered, and survive a restart.

Persisted as changelog entries of one batch each: ``d/<n>`` holds the ids first seen since the entry
before it; an entry is deleted once the ids after it fill the memory on their own.

>>> d = Dedup(2)
>>> d.add("a"), d.add("a"), d.add("b"), d.add("c"), d.add("a")
(True, False, True, True, True)
>>> again = Dedup(2); again.restore(d.take_changes()); again.add("c"), again.add("b")
(False, True)
"""
from __future__ import annotations

from collections import OrderedDict, deque


class Dedup:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._fresh: list[str] = []  # first seen since the last ``take_changes``
        self._entries: deque[tuple[int, int]] = deque()  # (n, ids) of the live d/<n> entries, oldest first
        self._kept = 0  # ids in the live entries
        self._next = 0

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, event_id: str) -> bool:
        """True the first time an id is seen (within the memory), False for a duplicate."""
        if event_id in self._seen:
            return False
        self._remember(event_id)
        self._fresh.append(event_id)
        return True

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def take_changes(self) -> dict[str, list[str] | None]:
        """The ids first seen since the last call as a new entry, and deletions of entries no longer needed."""
        if not self._fresh:
            return {}
        out: dict[str, list[str] | None] = {f"d/{self._next}": self._fresh}
        self._entries.append((self._next, len(self._fresh)))
        self._kept += len(self._fresh)
        self._next, self._fresh = self._next + 1, []
        while self._kept - self._entries[0][1] >= self.capacity:
            n, size = self._entries.popleft()
            self._kept -= size
            out[f"d/{n}"] = None
        return out

    def restore(self, entries: dict[str, object]) -> None:
        chunks = sorted((int(k[2:]), v) for k, v in entries.items() if k.startswith("d/") and v is not None)
        for n, ids in chunks:
            for event_id in ids:  # type: ignore[attr-defined]
                self._remember(event_id)
            self._entries.append((n, len(ids)))  # type: ignore[arg-type]
            self._kept += len(ids)  # type: ignore[arg-type]
            self._next = n + 1
