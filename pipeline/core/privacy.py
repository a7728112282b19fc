"""Privacy requests (``privacy.v1``): erase, suppress, unsuppress and export one person, in the stream.

A request is an inbound event like any other: hashed at the door, put in the canonical order, so live
and replay give the same results. The global stage resolves its identifiers to the customers that hold
them (a merged customer's identifiers all point at its survivor), then:

- ``erase`` forgets the customer's identifiers and merge aliases (tombstones in the state changelog),
  tombstones the dead letters that carry one of its identifiers (``DeadLetters``), and sends the request
  to the customer's partition, which deletes its state, timers, churn snapshots
  and remembered event ids (a tombstone for ``c/<customer>``) and tombstones its profile. Later events
  with those identifiers start a new customer (its id derives from an identifier, so it may be the same).
- ``suppress`` keeps the hashes of the request's identifiers and of every identifier of its customers:
  an event carrying any of them is dropped before identity (counted), and the customer emits no trigger
  and no profile. ``unsuppress`` lifts every suppression the request's identifiers belong to.
- ``export`` sends the customer's identifiers to its partition, which adds the profile, consent
  history, open carts and the triggers sent within the trigger topics' retention.

Each customer reached gives one ``privacy.results.v1`` record (``part`` of ``parts``); none gives one
``not_found`` record (``completed`` for a suppression: the identifiers are suppressed anyway).

>>> s = Suppressions()
>>> cd = Identifier("user_id", "cd")
>>> s.add(["email:ab", "user_id:cd"], "req-1"), s.blocks([cd]), s.release(["email:ab"])
(2, True, 2)
>>> s.blocks([cd]), s.take_changes()
(False, {'x/email:ab': None, 'x/user_id:cd': None})
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.core.records import Emit, Identifier, to_dt
from pipeline.core.triggers.policy import KEEP_SENT_MS
from schemas.inbound import PrivacyRequest
from schemas.outbound import CartItem, HeldIdentifier, PrivacyExport, PrivacyResult

if TYPE_CHECKING:
    from pipeline.core.customers import CustomerStage
    from pipeline.core.messages import Routed

TOPIC = "privacy.v1"
RESULTS = "privacy.results.v1"
#: Kafka deletes a tombstoned value of the internal topics and ``dlq.v1`` within this (their
#: ``max.compaction.lag.ms``): the bound an erase result gives in ``texts_expire_by``.
COMPACTION_LAG_MS = 3_600_000


class Suppressions:
    """Suppressed identifier keys (``kind:hash``), each with the request that suppressed it; persisted as
    ``x/<key>`` changelog entries."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self._changed: set[str] = set()

    def blocks(self, idents: Iterable[Identifier]) -> bool:
        """Whether any of these identifiers is suppressed (nothing to look up while none is)."""
        return bool(self.by_key) and any(i.key in self.by_key for i in idents)

    def add(self, keys: list[str], request_id: str) -> int:
        for k in keys:
            self.by_key[k] = request_id
            self._changed.add(k)
        return len(set(keys))

    def release(self, keys: list[str]) -> int:
        """Lift every suppression one of ``keys`` belongs to; returns how many identifiers it freed."""
        groups = {self.by_key[k] for k in keys if k in self.by_key}
        freed = [k for k, g in self.by_key.items() if g in groups]
        for k in freed:
            del self.by_key[k]
            self._changed.add(k)
        return len(freed)

    def take_changes(self) -> dict[str, object | None]:
        out: dict[str, object | None] = {f"x/{k}": self.by_key.get(k) for k in sorted(self._changed)}
        self._changed.clear()
        return out

    def restore(self, entries: dict[str, object]) -> None:
        for name, value in entries.items():
            if name.startswith("x/") and value is not None:
                self.by_key[name[2:]] = value  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Resolved:
    """What the global stage knows of a request for one customer it reached (``Routed.privacy``)."""

    identifiers: tuple[tuple[str, str], ...]  # (kind, hash) of every identifier the customer held
    merged: tuple[str, ...]  # the customers merged into it
    suppressed: int  # suppress / unsuppress: identifiers now (no longer) suppressed
    part: int
    parts: int
    dead_letters: int = 0  # erase: dead letters tombstoned

    @classmethod
    def of(cls, info: dict | Resolved) -> Resolved:
        """From the dict a release before this one routed (in a partition's pending messages)."""
        if isinstance(info, Resolved):
            return info
        return cls(tuple((k, h) for k, h in info.get("identifiers", [])), tuple(info.get("merged", [])),
                   info.get("suppressed", 0), info.get("part", 1), info.get("parts", 1), info.get("dead_letters", 0))


@dataclass(frozen=True, slots=True)
class DeadLetterLink:
    """A dead letter on ``dlq.v1`` (its record key) and whom it names: identifier keys (``kind:hash``) and
    customer keys (``customer_key``)."""

    key: str
    identifiers: tuple[str, ...]


class DeadLetters:
    """The dead letters that carry identifiers, by identifier key, while ``dlq.v1`` keeps them: an erase
    tombstones them. Persisted as ``l/<identifier key>`` changelog entries (dead letter keys with the wall
    time, in ms, after which the topic's retention has deleted them).

    >>> d = DeadLetters(retention_ms=100)
    >>> d.add(DeadLetterLink("dl1", ("email:ab", "user_id:cd")), now_ms=0)
    >>> d.take(["user_id:cd"]), d.take(["email:ab"])  # found by either identifier it carries, once
    (['dl1'], [])
    >>> d.add(DeadLetterLink("dl2", ("email:ab",)), now_ms=0); d.expire(now_ms=100); d.take(["email:ab"])
    []
    """

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self.by_ident: dict[str, list[tuple[str, int]]] = {}
        self._carries: dict[str, tuple[str, ...]] = {}  # dead letter key -> the identifier keys it is under
        self._expiry: deque[tuple[int, str]] = deque()  # (expires, identifier key), in the order added
        self._changed: set[str] = set()

    def add(self, link: DeadLetterLink, now_ms: int) -> None:
        expires = now_ms + self.retention_ms
        self._carries[link.key] = (*self._carries.get(link.key, ()), *link.identifiers)
        for k in link.identifiers:
            self.by_ident.setdefault(k, []).append((link.key, expires))
            self._expiry.append((expires, k))
            self._changed.add(k)

    def expire(self, now_ms: int) -> None:
        """Forget the dead letters the topic's retention has deleted by ``now_ms`` (amortised: each entry once)."""
        while self._expiry and self._expiry[0][0] <= now_ms:
            k = self._expiry.popleft()[1]
            letters = self.by_ident.get(k, ())
            kept = [(key, at) for key, at in letters if at > now_ms]
            for key, at in letters:
                if at <= now_ms:
                    self._carries.pop(key, None)
            if kept:
                self.by_ident[k] = kept
            else:
                self.by_ident.pop(k, None)
            self._changed.add(k)

    def take(self, keys: Iterable[str]) -> list[str]:
        """The keys of the dead letters carrying any of these identifiers, forgotten here (to be tombstoned)."""
        found = {key for k in keys for key, _ in self.by_ident.get(k, ())}
        for key in found:
            for k in self._carries.pop(key, ()):
                kept = [(other, at) for other, at in self.by_ident.get(k, ()) if other != key]
                if kept:
                    self.by_ident[k] = kept
                else:
                    self.by_ident.pop(k, None)
                self._changed.add(k)
        return sorted(found)

    def take_changes(self) -> dict[str, object | None]:
        out: dict[str, object | None] = {f"l/{k}": self.by_ident.get(k) for k in sorted(self._changed)}
        self._changed.clear()
        return out

    def restore(self, entries: dict[str, object]) -> None:
        for name, value in entries.items():
            if name.startswith("l/") and value:
                self.by_ident[name[2:]] = [(key, at) for key, at in value]  # type: ignore[attr-defined]
                for key, _ in value:  # type: ignore[attr-defined]
                    self._carries[key] = (*self._carries.get(key, ()), name[2:])
        self._expiry = deque(sorted((at, k) for k, letters in self.by_ident.items() for _, at in letters))


def customer_key(customer_id: str) -> str:
    """How a dead letter naming a customer (not an identifier) is indexed in ``DeadLetters``."""
    return f"customer/{customer_id}"


def result(req: PrivacyRequest, completed_at: datetime, customer_id: str | None = None, part: int = 1,
           parts: int = 1, **fields: object) -> Emit:
    """The ``privacy.results.v1`` record (keyed by request id)."""
    found = customer_id is not None or req.type == "suppress"
    return Emit(RESULTS, req.request_id, PrivacyResult(
        request_id=req.request_id, type=req.type, status="completed" if found else "not_found",
        customer_id=customer_id, merged_customer_ids=fields.get("merged", []), part=part, parts=parts,
        removed=fields.get("removed", {}), suppressed_identifiers=fields.get("suppressed", 0),
        export=fields.get("export"), texts_expire_by=fields.get("texts_expire_by"),
        occurred_at=req.occurred_at, completed_at=completed_at))


# ---- the customer partition's part -----------------------------------------------------------------

def apply(stage: CustomerStage, r: Routed) -> None:
    """Carry out a routed request on its customer and emit its result."""
    req: PrivacyRequest = r.event.body  # type: ignore[assignment]
    info, cid, now = Resolved.of(r.privacy), r.customer_id, stage.now()  # type: ignore[arg-type]
    st = stage.customers.get(cid)
    fields: dict[str, object] = {"merged": list(info.merged), "suppressed": info.suppressed}
    if req.type == "erase":
        fields["removed"] = {"identifiers": len(info.identifiers), "merged_customers": len(info.merged),
                             "dead_letters": info.dead_letters, **erase(stage, cid)}
        fields["texts_expire_by"] = now + timedelta(milliseconds=COMPACTION_LAG_MS)
    elif req.type in ("suppress", "unsuppress") and st is not None:
        st.suppressed = req.type == "suppress"
        stage._changed[cid] = None
    elif req.type == "export":
        fields["export"] = export(stage, cid, info, r.event.ts)
    stage._out.append(result(req, now, cid, info.part, info.parts, **fields))


def erase(stage: CustomerStage, cid: str) -> dict[str, int]:
    """Delete everything the partition keeps of the customer; counts of what went."""
    from pipeline.core.customers import TIMER_KINDS

    st = stage.customers.pop(cid, None)
    snapshots = stage.snapshots.pop(cid, [])
    timers = [kind for kind in stage.timers.of(cid) if kind in TIMER_KINDS]
    stage.timers.cancel_all(cid)
    stage.kinds.pop(cid, None)
    stage._emitted.pop(cid, None)
    stage._changed[cid] = None  # its changelog entry becomes a tombstone
    stage._out.append(Emit("profiles.v1", cid, None))  # and so does its profile
    return {"customer_state": int(st is not None), "open_cart_lines": sum(len(c.lines) for c in st.carts.episodes)
            if st else 0, "timers": len(timers), "churn_snapshots": len(snapshots),
            "consent_changes": len(st.consent_history) if st else 0,
            "recent_event_ids": len(st.recent_events) if st else 0}


def export(stage: CustomerStage, cid: str, info: Resolved, ts: int) -> PrivacyExport:
    st = stage.customers.get(cid)
    return PrivacyExport(
        identifiers=[HeldIdentifier(kind=k, hash=h) for k, h in info.identifiers],
        profile=stage.profile(cid) if st is not None else None,
        consent_history=list(st.consent_history) if st else [],
        open_carts=[CartItem(sku=sku, quantity=line.quantity, unit_price=line.unit_price)
                    for cart in (st.carts.episodes if st else []) for sku, line in sorted(cart.lines.items())],
        triggers_sent={kind: [to_dt(t) for t in times if t > ts - KEEP_SENT_MS]
                       for kind, times in sorted((st.fired if st else {}).items())})
