"""Cart episodes in event time: lines added with no gap longer than the abandonment window.

Arrival order does not matter: an add joins the episode whose span it falls in (or opens one), a
purchase settles the lines added before it when it falls inside an episode's window, and an episode
is abandoned once the watermark passes its last activity plus the window.

>>> c, W = Carts(), 30
>>> c.add("A", 1, 10.0, ts=0, event_id="e1", window=W), c.add("B", 1, 5.0, ts=100, event_id="e2", window=W)
(True, True)
>>> [e.episode for e in c.episodes], c.next_deadline(W)
(['e1', 'e2'], 30)
>>> c.settle(ts=120, window=W); [e.episode for e in c.due(watermark=200, window=W)]
['e1']
"""
from __future__ import annotations

from dataclasses import dataclass, field

KEEP_CAUSES = 20
#: A cart episode keeps at most this many products, and a customer this many open episodes: a bot adding
#: products without end must not make every later event of its customer slower (each copies the carts).
MAX_LINES = 100
MAX_EPISODES = 20


@dataclass(slots=True)
class CartLine:
    quantity: int
    unit_price: float | None
    added_at: int


@dataclass(slots=True)
class Cart:
    """One episode; ``episode`` is the event id of its earliest add (stable whatever the arrival order)."""

    first: tuple[int, str]
    updated: int
    lines: dict[str, CartLine] = field(default_factory=dict)
    causes: list[str] = field(default_factory=list)

    @property
    def episode(self) -> str:
        return self.first[1]

    @property
    def started(self) -> int:
        return self.first[0]

    @property
    def value(self) -> float:
        return sum(line.quantity * (line.unit_price or 0.0) for line in self.lines.values())

    @property
    def quantity(self) -> int:
        return sum(line.quantity for line in self.lines.values())

    def covers(self, ts: int, window: int) -> bool:
        return self.started - window <= ts <= self.updated + window

    def join(self, other: Cart) -> None:
        self.first, self.updated = min(self.first, other.first), max(self.updated, other.updated)
        for sku, line in other.lines.items():
            mine = self.lines.setdefault(sku, CartLine(0, line.unit_price, line.added_at))
            mine.quantity += line.quantity
            mine.added_at = max(mine.added_at, line.added_at)
        self.causes = sorted(set(self.causes) | set(other.causes))[-KEEP_CAUSES:]


@dataclass(slots=True)
class Carts:
    episodes: list[Cart] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.episodes)

    def copy(self) -> Carts:
        """A copy that shares nothing a change mutates (``causes`` lists are replaced, never mutated)."""
        return Carts([Cart(e.first, e.updated, {sku: CartLine(line.quantity, line.unit_price, line.added_at)
                                                for sku, line in e.lines.items()}, e.causes) for e in self.episodes])

    @property
    def value(self) -> float:
        return sum(e.value for e in self.episodes)

    @property
    def quantity(self) -> int:
        return sum(e.quantity for e in self.episodes)

    def add(self, sku: str, quantity: int, price: float | None, ts: int, event_id: str, window: int) -> bool:
        """Add a line; True when it opened a new episode. A product past ``MAX_LINES`` in its episode, or an
        episode past ``MAX_EPISODES``, is not kept.

        >>> c = Carts()
        >>> sum(c.add(f"S{i}", 1, 1.0, ts=i, event_id=f"e{i}", window=1000) for i in range(150)), c.quantity
        (1, 100)
        """
        ep = next((e for e in reversed(self.episodes) if e.covers(ts, window)), None)
        if ep is None and len(self.episodes) >= MAX_EPISODES or ep is not None and sku not in ep.lines and len(
                ep.lines) >= MAX_LINES:
            return False
        opened = ep is None
        if ep is None:
            ep = Cart((ts, event_id), ts)
            self.episodes.append(ep)
        ep.first, ep.updated = min(ep.first, (ts, event_id)), max(ep.updated, ts)
        line = ep.lines.setdefault(sku, CartLine(0, price, ts))
        line.quantity += quantity
        line.added_at = max(line.added_at, ts)
        if price is not None:
            line.unit_price = price
        ep.causes = sorted(set(ep.causes) | {event_id})[-KEEP_CAUSES:]
        self._normalise(window)
        return opened

    def remove(self, sku: str, quantity: int, ts: int, event_id: str) -> None:
        ep = next((e for e in reversed(self.episodes) if sku in e.lines and e.started <= ts), None)
        if ep is None:
            return
        line = ep.lines[sku]
        line.quantity -= quantity
        if line.quantity <= 0:
            del ep.lines[sku]
        ep.updated = max(ep.updated, ts)
        ep.causes = sorted(set(ep.causes) | {event_id})[-KEEP_CAUSES:]
        self.episodes = [e for e in self.episodes if e.lines]

    def settle(self, ts: int, window: int, linked_at: int | None = None) -> None:
        """A purchase at ``ts`` settles the lines added before it in every episode whose window it falls in
        and that was still open when the purchase became this customer's (``linked_at``, after a merge)."""
        known = ts if linked_at is None else linked_at
        for ep in self.episodes:
            if ep.started <= ts and known <= ep.updated + window:
                ep.lines = {sku: line for sku, line in ep.lines.items() if line.added_at > ts}
        self.episodes = [e for e in self.episodes if e.lines]

    def next_deadline(self, window: int) -> int | None:
        return min((e.updated + window for e in self.episodes), default=None)

    def due(self, watermark: int, window: int) -> list[Cart]:
        """Remove and return the episodes whose window closed at or before the watermark, earliest first."""
        out = [e for e in self.episodes if e.updated + window <= watermark]
        self.episodes = [e for e in self.episodes if e.updated + window > watermark]
        return out

    def absorb(self, other: Carts, window: int) -> None:
        self.episodes.extend(other.episodes)
        self._normalise(window)

    def _normalise(self, window: int) -> None:
        """Keep episodes sorted and join those whose spans now touch."""
        self.episodes.sort(key=lambda e: e.first)
        merged: list[Cart] = []
        for ep in self.episodes:
            if merged and ep.started <= merged[-1].updated + window:
                merged[-1].join(ep)
            else:
                merged.append(ep)
        self.episodes = merged
