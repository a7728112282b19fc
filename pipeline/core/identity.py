"""The identity graph: hashed identifiers -> one customer id, with merges.

Rules (``Rules``): identifiers are taken in priority order; a customer holds at most
``identifier_limits[kind]`` identifiers of a kind. An identifier whose customer cannot join the ones
already taken without breaking a limit is dropped from that event alone: the rest of the event still
stitches, so two customers holding different ``user_id`` values are never merged and a person's own
cookie still joins them. An identifier that ties the event to another customer this way is shared
by several people (a store tablet, a household email, an unknown placeholder): it is *blocked*,
detached from its customer and links nothing from then on. The customer first seen earliest
survives a merge (ties: the smaller id).

>>> from pipeline.core.records import Identifier as I
>>> g = IdentityGraph(Rules())
>>> a = g.resolve((I("anonymous_id", "c1"),), ts=1, event_id="e1").customer_id
>>> r = g.resolve((I("user_id", "u1"), I("anonymous_id", "c1")), ts=2, event_id="e2")
>>> r.customer_id == a and r.merges == []
True
>>> b = g.resolve((I("email", "m1"),), ts=3, event_id="e3").customer_id
>>> r = g.resolve((I("user_id", "u1"), I("email", "m1")), ts=4, event_id="e4")
>>> [(m.survivor, m.absorbed) for m in r.merges] == [(a, b)] and g.canonical(b) == a
True

A shared device seen with a second user id is blocked; the second person's own cookie still joins them:

>>> tablet = g.resolve((I("user_id", "u1"), I("device_id", "tab")), ts=5, event_id="e5")
>>> r = g.resolve((I("user_id", "u2"), I("device_id", "tab"), I("anonymous_id", "c2")), ts=6, event_id="e6")
>>> [(x.ident.hash, x.reason) for x in r.blocked], r.customer_id == g.owner["anonymous_id:c2"]
([('tab', 'several_user_ids')], True)
>>> g.resolve((I("device_id", "tab"),), ts=7, event_id="e7").customer_id is None
True
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from pipeline.core.records import Identifier
from pipeline.core.rules import Rules


def customer_id_for(ident: Identifier) -> str:
    """A new customer's id, derived from the identifier that created it (deterministic)."""
    return "c-" + hashlib.sha256(ident.key.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Merge:
    survivor: str
    absorbed: str
    link: Identifier
    ts: int  # event time at which the link was complete: the event's, or a later one its identifiers joined at
    event_id: str


@dataclass(frozen=True, slots=True)
class Block:
    """An identifier value found shared by several people: it links nothing from event time ``ts`` on."""

    ident: Identifier
    reason: str  # ``several_user_ids``, or ``over_limit:<kind>``: with it one customer would hold too many of a kind
    detached_from: str | None  # the customer that held it until then
    ts: int
    event_id: str


@dataclass(slots=True)
class Resolution:
    customer_id: str | None  # None: every identifier of the event is blocked as shared
    merges: list[Merge] = field(default_factory=list)
    dropped: list[Identifier] = field(default_factory=list)  # not linked by this event (conflict, limit, blocked)
    blocked: list[Block] = field(default_factory=list)  # found shared by this event


class IdentityGraph:
    """In-memory identity state; every mutation goes through ``resolve``."""

    def __init__(self, rules: Rules) -> None:
        self._limits = rules.identifier_limits
        self.owner: dict[str, str] = {}  # identifier key -> customer id
        self.members: dict[str, list[Identifier]] = {}  # customer id -> identifiers
        self.born: dict[str, int] = {}  # customer id -> earliest event time seen
        self.since: dict[str, int] = {}  # identifier key -> event time from which it is known to be its owner's
        self.alias: dict[str, str] = {}  # absorbed id -> the id that absorbed it
        self.blocked: dict[str, str] = {}  # identifier key -> why it is shared (it links nothing)
        self.changed: set[str] = set()  # identifier keys and absorbed ids changed since ``take_changes``
        self.born_changed: set[str] = set()  # customers whose ``born`` changed since then
        self._kinds: dict[str, dict[str, int]] = {}  # customer -> identifiers held per kind (derived, cached)

    def canonical(self, customer_id: str) -> str:
        """The live customer an id now refers to (follows merges, compressing the path)."""
        root = customer_id
        while root in self.alias:
            root = self.alias[root]
        while customer_id != root:
            parent = self.alias[customer_id]
            self.alias[customer_id] = root
            customer_id = parent
        return root

    def kinds(self, customer_id: str) -> dict[str, int]:
        """How many identifiers of each kind the customer holds (do not change the dict)."""
        counts = self._kinds.get(customer_id)
        if counts is None:
            counts = self._kinds[customer_id] = dict(Counter(i.kind for i in self.members.get(customer_id, ())))
        return counts

    def resolve(self, idents: tuple[Identifier, ...], ts: int, event_id: str) -> Resolution:
        """Attach an event's identifiers (priority order) to one customer; merge customers they join."""
        kept, dropped, blocks = self._select(idents, ts, event_id)
        if not kept:
            return Resolution(None, dropped=dropped, blocked=blocks)
        owners = self._owners(kept)
        if not owners:
            cid = customer_id_for(kept[0])
            self.members[cid], self.born[cid] = [], ts
            self.born_changed.add(cid)
        else:
            cid = min(owners, key=lambda c: (self.born[c], c))
        res = Resolution(cid, dropped=dropped, blocked=blocks)
        before = {i.key: self.owner.get(i.key) for i in kept}

        def since(customer: str) -> int:  # the earliest this event's identifiers are known to be ``customer``'s
            return min(self.since[k] for k, c in before.items() if c == customer)

        for other in owners:
            if other != cid:
                known = max(ts, since(other))  # what ``other`` holds reaches this event's link from then on
                link = next(i for i in kept if before[i.key] == other)
                self._absorb(cid, other, known)
                res.merges.append(Merge(cid, other, link, known, event_id))
        for ident in kept:
            owner = self.owner.get(ident.key)
            if owner is None:
                self.owner[ident.key], self.since[ident.key] = cid, ts
                self.members[cid].append(ident)
                self.changed.add(ident.key)
                self._kinds.pop(cid, None)
            elif before[ident.key] == cid and ts < self.since[ident.key]:
                self.since[ident.key] = ts  # seen with this customer earlier in event time than first read
                self.changed.add(ident.key)
        if ts < self.born[cid]:
            self.born[cid] = ts
            self.born_changed.add(cid)
        return res

    def _owners(self, idents: list[Identifier]) -> list[str]:
        seen: dict[str, None] = {}
        for i in idents:
            c = self.owner.get(i.key)
            if c is not None:
                seen[c] = None
        return list(seen)

    def _select(self, idents: tuple[Identifier, ...], ts: int,
                event_id: str) -> tuple[list[Identifier], list[Identifier], list[Block]]:
        """Take identifiers in priority order while the customers they join fit the limits together.

        One left out that ties the event to another customer is shared by several people: blocked at once
        (a ``user_id`` is only left out: it names its person). Returns (taken, left out, blocked)."""
        owned = {self.owner.get(i.key) for i in idents}
        if len(owned) == 1 and (None not in owned or (len({i.kind for i in idents}) == len(idents)
                                                      and not any(i.key in self.blocked for i in idents))):
            return list(idents), [], []  # one customer's identifiers, or all new and one of each kind: they fit
        kept: list[Identifier] = []
        dropped: list[Identifier] = []
        blocks: list[Block] = []
        owners: set[str] = set()
        keys: set[str] = set()
        counts: Counter[str] = Counter()
        for ident in idents:
            if ident.key in self.blocked:
                dropped.append(ident)
                continue
            owner = self.owner.get(ident.key)
            joins = self.members[owner] if owner is not None and owner not in owners else (ident,)
            new = Counter(m.kind for m in joins if m.key not in keys)
            over = [k for k, n in new.items() if counts[k] + n > self._limits.get(k, counts[k] + n)]
            if over:
                dropped.append(ident)
                if owner is not None and ident.kind != "user_id":
                    blocks.append(self._block(ident, "user_id" if "user_id" in over else over[0], ts, event_id))
                continue
            kept.append(ident)
            keys.update(m.key for m in joins)
            counts.update(new)
            if owner is not None:
                owners.add(owner)
        return kept, dropped, blocks

    def _block(self, ident: Identifier, over: str, ts: int, event_id: str) -> Block:
        """Stop ``ident`` linking: it ties together customers that one person cannot be."""
        owner = self.owner.pop(ident.key, None)
        if owner is not None:
            self.members[owner].remove(ident)
            del self.since[ident.key]
            self._kinds.pop(owner, None)
        reason = self.blocked[ident.key] = "several_user_ids" if over == "user_id" else f"over_limit:{over}"
        self.changed.add(ident.key)
        return Block(ident, reason, owner, ts, event_id)

    def _absorb(self, survivor: str, absorbed: str, known: int) -> None:
        for ident in self.members.pop(absorbed):
            self.owner[ident.key] = survivor
            self.since[ident.key] = max(self.since[ident.key], known)
            self.members[survivor].append(ident)
            self.changed.add(ident.key)
        self.born[survivor] = min(self.born[survivor], self.born.pop(absorbed))
        self.born_changed.update((survivor, absorbed))
        self._kinds.pop(survivor, None)
        self._kinds.pop(absorbed, None)
        self.alias[absorbed] = survivor
        self.changed.add(absorbed)

    def merged_into(self, customer_id: str) -> list[str]:
        """Every customer id absorbed, directly or not, into this one (linear in the merge aliases)."""
        return [a for a in list(self.alias) if self.canonical(a) == customer_id]

    def forget(self, customer_id: str) -> tuple[list[Identifier], list[str]]:
        """Erase a customer: its identifiers and the ids merged into it are forgotten (tombstones at the next
        ``take_changes``); returns them. Linear in the merge aliases."""
        idents = self.members.pop(customer_id, [])
        for ident in idents:
            del self.owner[ident.key]
            self.since.pop(ident.key, None)
            self.changed.add(ident.key)
        merged = self.merged_into(customer_id)
        for a in merged:
            del self.alias[a]
            self.changed.add(a)
        self.born.pop(customer_id, None)
        self.born_changed.add(customer_id)
        self._kinds.pop(customer_id, None)
        return idents, merged

    # ---- persistence: entries a changelog can hold, and the graph rebuilt from them -----------------

    def take_changes(self) -> dict[str, object]:
        """``i/<identifier key>`` -> (customer, since), ``b/<identifier key>`` -> why it is blocked and
        ``a/<absorbed id>`` -> survivor, ``n/<customer>`` -> born, changed since the last call (``None``
        deletes an entry)."""
        out: dict[str, object] = {}
        for key in self.changed:
            if key in self.owner:
                out[f"i/{key}"] = (self.owner[key], self.since[key])
            elif key in self.blocked:
                out[f"i/{key}"], out[f"b/{key}"] = None, self.blocked[key]
            elif key in self.alias:
                out[f"a/{key}"] = self.alias[key]
            else:  # forgotten (erased): an identifier key has a kind, an absorbed customer id has none
                out[f"i/{key}" if ":" in key else f"a/{key}"] = None
        self.changed.clear()
        for cid in self.born_changed:
            out[f"n/{cid}"] = self.born.get(cid)
        self.born_changed.clear()
        return out

    def restore(self, entries: dict[str, object]) -> None:
        for name, value in entries.items():
            kind, _, key = name.partition("/")
            if kind == "i":
                owner, since = value  # type: ignore[misc]
                self.owner[key], self.since[key] = owner, since
                ident_kind, _, ident_hash = key.partition(":")
                self.members.setdefault(owner, []).append(Identifier(ident_kind, ident_hash))
            elif kind == "a":
                self.alias[key] = value  # type: ignore[assignment]
            elif kind == "b":
                self.blocked[key] = value  # type: ignore[assignment]
            elif kind == "n":
                self.born[key] = value  # type: ignore[assignment]
