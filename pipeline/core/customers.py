"""The per-customer stage: one instance per partition of customers, each holding its share of them.

It takes, in the canonical order, what the global stage routes to its customers: events (with the
watermark at their release and, for a text, its sentiment score), merges, and watermark ticks. It keeps
the customers' state, fires their timers (one timer service keyed by kind and customer), applies events,
runs the trigger modules through the contact policy, scores churn with the model version in effect at
the event time, and returns its outputs at the end of a batch: outbound records, the profiles of the
customers it changed, and the churn labels its watermark has passed (for the learner).

A merge folds the absorbed customer's state into the survivor's. When both live on other partitions,
the absorbed one's partition ``release``s it and the survivor's ``fold``s it in (an explicit hand-over).
"""
from __future__ import annotations

import heapq
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.core.identity import Merge
from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import Scored
from pipeline.core.profile import DAY_MS, CustomerState, Purchase
from pipeline.core.records import Emit, Event, to_dt
from pipeline.core.rules import Rules
from pipeline.core.clock import Timers
from pipeline.core.triggers import BY_NAME, REGISTRY, Applied
from pipeline.core.triggers.policy import Policy
from pipeline.core.versions import Label, Versions
from schemas.inbound import ClickEvent, ConsentEvent, PosEvent, ReviewEvent
from schemas.outbound import OUTBOUND, ConsentChange, ReviewScore, Trigger

#: Trigger type -> its outbound topic, from the contract models.
TRIGGER_TOPICS = {m.model_fields["type"].default: t for t, m in OUTBOUND.items() if issubclass(m, Trigger)}
CHURN = "churn"  # timer kind: re-score a quiet customer
TIMER_KINDS = (CHURN, *(t.name for t in REGISTRY))


def partition_of(customer_id: str, partitions: int) -> int:
    """The customer partition a customer lives on (stable, the same in every process)."""
    return zlib.crc32(customer_id.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Routed:
    """An event for one customer, as the global stage released it."""

    customer_id: str
    event: Event
    watermark: int | None
    kinds: dict[str, int]  # how many identifiers of each kind the customer holds (for the profile)
    scored: Scored | None = None
    sentiment_version: str | None = None


@dataclass(slots=True)
class Handover:
    """A customer merged away, with everything its partition kept of it."""

    state: CustomerState | None
    snapshots: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)  # (due, ts, features)


class CustomerStage:
    """One partition's customers and the logic that moves them (see the module docstring)."""

    def __init__(self, rules: Rules, now: Callable[[], datetime], versions: Versions, partition: int = 0,
                 partitions: int = 1) -> None:
        self.rules, self.now, self.versions = rules, now, versions
        self.partition, self.partitions = partition, partitions
        self.customers: dict[str, CustomerState] = {}
        self.kinds: dict[str, dict[str, int]] = {}  # customer -> identifier counts by kind
        self.snapshots: dict[str, list[tuple[int, int, dict[str, float]]]] = {}  # customer -> pending churn snapshots
        self._due: list[tuple[int, str, int]] = []  # (due, customer, ts) of every pending snapshot
        self.timers = Timers()
        self.policy = Policy(rules)
        self.watermark: int | None = None
        self.through: int | None = None  # labels complete through this epoch (reported)
        self.stats: Counter[str] = Counter()
        self._labels: list[Label] = []  # computed, not reported yet
        self._out: list[Emit] = []
        self._dirty: dict[str, None] = {}  # customers whose profile is due
        self._changed: dict[str, None] = {}  # customers whose state entry is due (released ones: deleted)
        self._window_ms = int(rules.cart_abandon_window_s * 1000)
        self._snapshot_ms = int(rules.churn_snapshot_every_days * DAY_MS)
        self._horizon_ms = int(rules.churn_horizon_days * DAY_MS)

    # ---- what the trigger modules may ask (``triggers.base.Stage``) ------------------------------

    def churn_model(self, ts: int) -> ChurnModel:
        model = self.versions.at(ts)
        assert model is not None, f"no churn model version for event time {ts} (the driver publishes first)"
        return model

    def emit(self, st: CustomerState, trigger: Trigger, ts: int) -> bool:
        held = self.policy.admit(st, trigger.type, ts)
        if held is not None:
            self.stats[f"suppressed:{trigger.type}:{held}"] += 1
            return False
        self.stats[f"triggers:{trigger.type}"] += 1
        self._out.append(Emit(TRIGGER_TOPICS[trigger.type], st.customer_id, trigger))
        for t in REGISTRY:
            if t.on_trigger is not None:
                t.on_trigger(self, st, trigger, ts)
        return True

    def schedule(self, kind: str, st: CustomerState, at: int | None) -> None:
        if at is None:
            self.timers.cancel(kind, st.customer_id)
        else:
            self.timers.schedule(kind, st.customer_id, at)

    # ---- time ------------------------------------------------------------------------------------

    def observe(self, watermark: int | None) -> None:
        """Move the watermark; compute the churn labels it passed (they need no model)."""
        if watermark is None or (self.watermark is not None and watermark <= self.watermark):
            return
        self.watermark = watermark
        while self._due and self._due[0][0] <= watermark:
            due, cid, ts = heapq.heappop(self._due)
            st = self.customers.get(cid)
            if st is not None:
                x = next(x for d, t, x in self.snapshots[cid] if (d, t) == (due, ts))
                self.snapshots[cid] = [s for s in self.snapshots[cid] if (s[0], s[1]) != (due, ts)]
                self._labels.append(Label(due, cid, ts, x, not st.purchased_between(ts, due)))
                self._changed[cid] = None

    def take_labels(self) -> tuple[int, list[Label]] | None:
        """Labels computed since the last call, and the epoch they are complete through; None if nothing new."""
        if self.watermark is None:
            return None
        through = self.versions.epoch(self.watermark) - 1
        if through == self.through and not self._labels:
            return None
        self.through, labels, self._labels = through, self._labels, []
        return through, labels

    def fire_due(self) -> None:
        """Fire every timer the watermark has passed, earliest first (a re-score schedules the next one)."""
        while (due := self.timers.next_due(self.watermark)) is not None:
            at, kind, cid = due
            st = self.customers.get(cid)
            if st is None:
                continue
            if kind == CHURN:
                if st.scored_at is not None:
                    at = st.scored_at + self._snapshot_ms
                    self._churn(st, at, f"quiet:{cid}:{at}")
            else:
                BY_NAME[kind].on_timer(self, st, at)
            self._dirty[cid] = None

    def advance(self, watermark: int | None) -> None:
        self.observe(watermark)
        self.fire_due()

    # ---- events ----------------------------------------------------------------------------------

    def apply(self, r: Routed) -> None:
        """Apply one routed event (after the timers its watermark passed)."""
        self.advance(r.watermark)
        ev = r.event
        st = self.customers.get(r.customer_id)
        if st is None:
            st = self.customers[r.customer_id] = CustomerState(r.customer_id, ev.ts, ev.ts)
        self.kinds[r.customer_id] = r.kinds
        if not st.first_time(ev.event_id):
            self.stats["duplicates"] += 1
            return
        self.stats["events"] += 1
        applied = self._state(st, ev, r)
        for t in REGISTRY:
            if t.on_event is not None:
                t.on_event(self, st, applied)
        self._churn(st, ev.ts, ev.event_id)
        self._dirty[st.customer_id] = None

    def _state(self, st: CustomerState, ev: Event, r: Routed) -> Applied:
        """The event's effect on the customer's behaviour, purchases, texts and consent."""
        body = ev.body
        if isinstance(body, ClickEvent):
            st.touch(ev.ts, "web")
            st.visit(ev.ts, body.session_id)
            kind = body.type
            if kind == "page_view":
                st.page_views += 1
            elif kind == "product_view":
                st.product_views += 1
            elif kind == "search":
                st.searches += 1
            elif kind == "add_to_cart" and body.product:
                p = body.product
                st.add_to_cart(p.sku, p.quantity, p.price, ev.ts, ev.event_id, self._window_ms)
                return Applied(ev, cart_changed=True)
            elif kind == "remove_from_cart" and body.product:
                st.carts.remove(body.product.sku, body.product.quantity, ev.ts, ev.event_id)
                return Applied(ev, cart_changed=True)
            elif kind == "order_completed" and body.order:
                return Applied(ev, purchase=self._purchase(st, ev, body.order.total, "web", body.order.currency))
        elif isinstance(body, PosEvent):
            st.touch(ev.ts, "store")
            if body.type == "purchase":
                return Applied(ev, purchase=self._purchase(st, ev, body.total, "store", body.currency))
            st.returned(body.total)
        elif isinstance(body, ReviewEvent):
            s = r.scored
            assert s is not None, "the global stage scores every text"
            st.touch(ev.ts, body.channel)
            st.text_scored(s.score)
            self._out.append(Emit("scores.reviews.v1", st.customer_id, ReviewScore(
                review_id=body.review_id, customer_id=st.customer_id, label=s.label, score=s.score,
                confidence=s.confidence, language=s.language, model_version=r.sentiment_version or "",
                channel=body.channel, event_id=body.event_id, occurred_at=to_dt(ev.ts),
            )))
            return Applied(ev, scored=s)
        elif isinstance(body, ConsentEvent):
            st.touch(ev.ts, "consent")
            st.consent_changed(ConsentChange(purpose=body.purpose, granted=body.granted, at=to_dt(ev.ts),
                                             event_id=body.event_id))
        return Applied(ev)

    def _purchase(self, st: CustomerState, ev: Event, total: float, channel: str, currency: str) -> Purchase:
        p = Purchase(ev.ts, total, channel, ev.event_id)
        st.purchase(p, currency.upper(), self._window_ms)
        return p

    def _churn(self, st: CustomerState, ts: int, cause: str) -> None:
        """Score churn at event time ``ts`` (an event of the customer, or a quiet period's timer), snapshot
        features for a later label, and let the trigger modules see the score."""
        if st.scored_at is not None and ts < st.scored_at:
            return  # a late event: the customer was already scored at a later time
        x = st.features(ts)
        p = st.churn_probability = self.churn_model(ts).predict(x)
        st.scored_at = ts
        self.timers.schedule(CHURN, st.customer_id, ts + self._snapshot_ms)
        if st.last_snapshot is None or ts - st.last_snapshot >= self._snapshot_ms:
            self._snapshot(st.customer_id, (ts + self._horizon_ms, ts, x))
            st.last_snapshot = ts
        for t in REGISTRY:
            if t.on_churn is not None:
                t.on_churn(self, st, p, ts, cause)

    def _snapshot(self, cid: str, snap: tuple[int, int, dict[str, float]]) -> None:
        self.snapshots.setdefault(cid, []).append(snap)
        heapq.heappush(self._due, (snap[0], cid, snap[1]))

    # ---- merges: release on the absorbed one's partition, fold on the survivor's ------------------

    def release(self, customer_id: str, watermark: int | None) -> Handover:
        """Hand over a customer merged away (after the timers the merge's watermark passed)."""
        self.advance(watermark)
        self.timers.cancel_all(customer_id, TIMER_KINDS)
        self._dirty.pop(customer_id, None)
        state = self.customers.pop(customer_id, None)
        self.kinds.pop(customer_id, None)
        if state is not None:
            self._changed[customer_id] = None
        return Handover(state, self.snapshots.pop(customer_id, []))

    def recount(self, customer_id: str, kinds: dict[str, int]) -> None:
        """The customer's identifiers changed without an event of theirs (one was found shared)."""
        if customer_id in self.customers:
            self.kinds[customer_id] = kinds
            self._dirty[customer_id] = None

    def fold(self, m: Merge, handover: Handover, watermark: int | None) -> None:
        """Fold a customer merged into one of ours at event time ``m.ts``."""
        self.advance(watermark)
        absorbed = handover.state
        survivor = self.customers.get(m.survivor)
        if survivor is None and absorbed is not None:
            survivor = self.customers[m.survivor] = CustomerState(m.survivor, absorbed.first_seen, absorbed.last_seen)
        for snap in handover.snapshots:  # labels of the absorbed one's snapshots read the survivor's purchases
            self._snapshot(m.survivor, snap)
        if absorbed is None or survivor is None:
            return
        survivor.absorb(absorbed, self._window_ms, m.ts)
        for t in REGISTRY:
            if t.after_merge is not None:
                t.after_merge(self, survivor)
        if survivor.scored_at is not None:
            self.timers.schedule(CHURN, survivor.customer_id, survivor.scored_at + self._snapshot_ms)
        self._dirty[m.survivor] = None

    # ---- outputs and persistence -----------------------------------------------------------------

    def end_batch(self) -> list[Emit]:
        """Everything since the last call, with the latest profile of every customer it changed."""
        out, self._out = self._out, []
        self._changed.update(self._dirty)
        for cid in self._dirty:
            st = self.customers[cid]
            as_of = max(st.last_seen, st.scored_at or st.last_seen)
            version = self.churn_model(as_of).version
            out.append(Emit("profiles.v1", cid, st.to_profile(as_of, dict(self.kinds.get(cid, {})), version)))
        self._dirty.clear()
        return out

    def take_changes(self) -> dict[str, object | None]:
        """Changed entries: ``c/<customer>`` -> (state, pending snapshots, identifier counts), None once
        released; ``p/<partition>`` -> (watermark, labels complete through)."""
        out: dict[str, object | None] = {}
        for cid in self._changed:
            st = self.customers.get(cid)
            out[f"c/{cid}"] = None if st is None else (st, self.snapshots.get(cid, []), self.kinds.get(cid, {}))
        self._changed.clear()
        out[f"p/{self.partition}"] = (self.watermark, self.through)
        return out

    @property
    def pending_snapshots(self) -> int:
        return len(self._due)

    def restore(self, entries: dict[str, object]) -> None:
        """Rebuild this partition's customers from changelog entries (others' entries are skipped)."""
        for name, value in entries.items():
            if name.startswith("c/") and partition_of(name[2:], self.partitions) == self.partition:
                st, snaps, self.kinds[name[2:]] = value  # type: ignore[misc]
                self.customers[name[2:]] = st
                for snap in snaps:
                    self._snapshot(name[2:], snap)
            elif name == f"p/{self.partition}":
                self.watermark, self.through = value  # type: ignore[misc]
        for st in self.customers.values():
            for t in REGISTRY:
                if t.timer_at is not None and (at := t.timer_at(self, st)) is not None:
                    self.timers.schedule(t.name, st.customer_id, at)
            if st.scored_at is not None:
                self.timers.schedule(CHURN, st.customer_id, st.scored_at + self._snapshot_ms)
