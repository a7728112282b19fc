"""The per-customer stage: one instance per partition of customers, each holding its share of them.

It takes, in the canonical order, what the global stage routes to its customers: events (with the
watermark at their release and, for a text, its sentiment score), merges, and watermark ticks. It keeps
the customers' state, fires their timers (one timer service keyed by kind and customer: triggers, churn
re-scores, coalesced profiles, and the churn labels' due times, which need no model), applies events,
runs the trigger modules through the contact policy, scores churn with the model version in effect at
the event time, and returns its outputs at the end of a batch: outbound records, the profiles of the
customers it changed, and the churn labels its watermark has passed (for the learner).

A merge folds the absorbed customer's state into the survivor's. When both live on other partitions,
the absorbed one's partition ``release``s it and the survivor's ``fold``s it in (an explicit hand-over).
"""
from __future__ import annotations

import struct
import zlib
from array import array
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime
from itertools import islice

from pipeline.core import privacy
from pipeline.core.clock import Timers
from pipeline.core.failures import dead_lettered, failed_letter, fault_plan, inject, undecodable_letter
from pipeline.core.identity import Merge
from pipeline.core.messages import (
    Expect, HandedOver, Handover, LabelReport, Message, Publish, Recount, Release, Routed, Tick,
)
from pipeline.core.models.churn import ChurnModel
from pipeline.core.pii import Hasher
from pipeline.core.profile import DAY_MS, CustomerState, Purchase
from pipeline.core.records import Emit, Event, digest, to_dt
from pipeline.core.rules import Rules
from pipeline.core.triggers import BY_NAME, REGISTRY, Applied
from pipeline.core.triggers.policy import Policy
from pipeline.core.versions import Label, Versions
from schemas.inbound import ClickEvent, ConsentEvent, PosEvent, ReviewEvent
from schemas.outbound import OUTBOUND, ConsentChange, Profile, ReviewScore, Trigger

#: Trigger type -> its outbound topic, from the contract models.
TRIGGER_TOPICS = {m.model_fields["type"].default: t for t, m in OUTBOUND.items() if issubclass(m, Trigger)}
CHURN = "churn"  # timer kind: re-score a quiet customer
#: Re-score periods a quiet customer catches up one by one when event time moves on; a longer jump (a gap in
#: a backfill, a record from the future) re-scores once, at the latest period.
CATCH_UP = 4
PROFILE = "profile"  # timer kind: send the profile changes coalesced since the last one
TIMER_KINDS = (CHURN, PROFILE, *(t.name for t in REGISTRY))  # what ``fire_due`` fires (it needs the model)
LABEL = "label"  # timer kind: a customer's earliest pending churn snapshot is due (``observe``: no model needed)


#: The churn features' names, in the order ``CustomerState.features`` gives them.
FEATURES = tuple(CustomerState("", 0, 0).features(0))


def pack(x: dict[str, float]) -> bytes:
    """A pending churn snapshot's features, compactly (float16, in ``FEATURES`` order; a customer holds up to
    horizon / snapshot interval of them). The learner reads them at this precision (3 significant digits:
    the features are logs, rates and day counts), wherever the snapshot was restored or handed over.

    >>> x = {name: 0.5 for name in FEATURES}
    >>> unpack(pack(x)) == x, len(pack(x)) == 2 * len(FEATURES)
    (True, True)
    """
    try:
        return _HALF.pack(*map(x.__getitem__, FEATURES))
    except OverflowError:  # a feature beyond float16's range: clamped
        return _HALF.pack(*(min(HALF_MAX, max(-HALF_MAX, x[name])) for name in FEATURES))


def unpack(data: bytes) -> dict[str, float]:
    if len(data) == 4 * len(FEATURES):  # float32, from a changelog written before the features were halved
        return dict(zip(FEATURES, array("f", data).tolist(), strict=True))
    return dict(zip(FEATURES, _HALF.unpack(data), strict=True))


HALF_MAX = 65504.0
_HALF = struct.Struct(f"<{len(FEATURES)}e")
_TIMES = struct.Struct("<qq")  # a snapshot's due and event times, in the changelog


def pack_snapshots(snapshots: list[tuple[int, int, bytes]]) -> bytes:
    """A customer's pending snapshots as one value for the changelog (fixed-size entries).

    >>> s = [(9, 1, pack({name: 1.0 for name in FEATURES}))]
    >>> unpack_snapshots(pack_snapshots(s)) == s
    True
    """
    return b"".join(_TIMES.pack(due, ts) + (x if len(x) == _HALF.size else pack(unpack(x))) for due, ts, x in snapshots)


def unpack_snapshots(data: bytes | list) -> list[tuple[int, int, bytes]]:
    if type(data) is list:  # a changelog written before they were packed: (due, ts, features) each
        return [(due, ts, x if len(x) == _HALF.size else pack(unpack(x))) for due, ts, x in data]
    size = _TIMES.size + _HALF.size
    return [(*_TIMES.unpack_from(data, i), data[i + _TIMES.size:i + size]) for i in range(0, len(data), size)]


def partition_of(customer_id: str, partitions: int) -> int:
    """The customer partition a customer lives on (stable, the same in every process)."""
    return zlib.crc32(customer_id.encode()) % partitions


#: A partition's own entry: its clock, its input position, and what still waits (small: a hand-over's round trip).
#: The messages waiting for a model version are entries of their own (``take_changes``): a backfill can hold
#: thousands of them for a while, and this entry is written at every batch.
_PENDING = ("watermark", "through", "offset", "_saved", "_waiting", "_parked", "_arrived", "_deferred", "_labels")


class CustomerStage:
    """One partition's customers and the logic that moves them (see the module docstring)."""

    def __init__(self, rules: Rules, now: Callable[[], datetime], versions: Versions, partition: int = 0,
                 partitions: int = 1, hasher: Hasher | None = None) -> None:
        """``hasher`` redacts the free text of events dead-lettered after a failure."""
        self.rules, self.now, self.versions, self.hasher = rules, now, versions, hasher
        self._faults = fault_plan(rules.inject_faults)
        self.partition, self.partitions = partition, partitions
        self.customers: dict[str, CustomerState] = {}
        self.kinds: dict[str, dict[str, int]] = {}  # customer -> identifier counts by kind
        self._emitted: dict[str, int] = {}  # customer -> what its last profile said that matters (``_meaning``)
        self.snapshots: dict[str, list[tuple[int, int, bytes]]] = {}  # customer -> pending churn snapshots
        self.timers = Timers()
        self.policy = Policy(rules)
        self.watermark: int | None = None
        self.through: int | None = None  # labels complete through this epoch (reported)
        self.offset = -1  # the last message applied from this partition's input (a driver's)
        self._published = False  # versions came by message since the last ``take_changes`` (theirs to keep)
        self.stats: Counter[str] = Counter()
        self._labels: list[Label] = []  # computed, not reported yet
        self._out: list[Emit] = []
        self._sent: list[tuple[int | None, object]] = []  # messages for other partitions (None: the learner)
        self._links: list[privacy.DeadLetterLink] = []  # this partition's dead letters, for the global stage
        self._inbox: deque[Message] = deque()  # waiting for a model version
        self._head = 0  # the sequence number of the inbox's first message (each one queued takes the next)
        self._saved = (0, 0)  # the inbox's sequence numbers [first, last + 1) as the changelog holds them (and
        # as this partition's entry says, written after them: a restore reads that range, whatever a batch that
        # failed half-written left beyond it)
        self._saved_epochs: set[int] = set()  # the model versions the changelog holds
        self._one_entry = False  # restored from an older release's one entry of every version (to delete)
        self._waiting: dict[str, Expect] = {}  # survivor -> the merge whose hand-over it waits for
        self._parked: dict[str, list[Message]] = {}  # survivor -> its messages since, in order
        self._arrived: dict[tuple[str, str], HandedOver] = {}  # (survivor, absorbed) -> hand-over before its Expect
        self._deferred: dict[str, int] = {}  # waiting survivor -> when its labels fell due (labelled after the fold)
        self._changed: dict[str, None] = {}  # customers whose state entry is due (released ones: deleted)
        self._window_ms = int(rules.cart_abandon_window_s * 1000)
        self._snapshot_ms = int(rules.churn_snapshot_every_days * DAY_MS)
        self._rescore_for_ms = int(rules.churn_rescore_for_days * DAY_MS)
        self._horizon_ms = int(rules.churn_horizon_days * DAY_MS)
        self._coalesce_ms = int(rules.profile_coalesce_s * 1000)

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
        while (due := self.timers.next_due(watermark, (LABEL,))) is not None:
            at, _, cid = due
            if cid in self._waiting:  # its purchases are not all here yet: labelled after the fold
                self._deferred[cid] = min(at, self._deferred.get(cid, at))
                continue
            st, pending = self.customers.get(cid), self.snapshots.get(cid, [])
            if st is None:  # snapshots handed over to a survivor that never was (nothing to label against)
                continue
            for due_at, ts, x in pending:
                if due_at <= watermark:
                    self._labels.append(Label(due_at, ts, unpack(x), not st.purchased_between(ts, due_at)))
            self.snapshots[cid] = [s for s in pending if s[0] > watermark]
            self._label_timer(cid)
            self._changed[cid] = None

    def take_labels(self) -> tuple[int, list[Label]] | None:
        """Labels computed since the last call, and the epoch they are complete through; None if nothing new."""
        if self.watermark is None:
            return None
        through = self.versions.epoch(self.watermark) - 1
        for deferred in self._deferred.values():
            through = min(through, self.versions.epoch(deferred) - 1)
        for expect in self._waiting.values():  # snapshots on their way with a hand-over are due after its merge
            if expect.watermark is not None:
                through = min(through, self.versions.epoch(expect.watermark) - 1)
        if through == self.through and not self._labels:
            return None
        self.through, labels, self._labels = through, self._labels, []
        return through, labels

    def fire_due(self) -> None:
        """Fire every timer the watermark has passed, earliest first (a re-score schedules the next one);
        none before the model version of the watermark's epoch is published."""
        if self.watermark is None or self.versions.at(self.watermark) is None:
            return
        while (due := self.timers.next_due(self.watermark, TIMER_KINDS)) is not None:
            at, kind, cid = due
            st = self.customers.get(cid)
            if st is None or cid in self._waiting:  # a waiting survivor's timers are set again by the fold
                continue
            saved = self._save(cid)
            try:
                if self._faults:
                    inject(self._faults, "timers", kind)
                if kind == CHURN:
                    if st.scored_at is not None:
                        at = st.scored_at + self._snapshot_ms
                        behind = (self.watermark - at) // self._snapshot_ms
                        if behind > CATCH_UP:  # event time jumped ahead: one re-score, at the latest period
                            at += behind * self._snapshot_ms
                        self._churn(st, at, f"quiet:{cid}:{at}")
                elif kind == PROFILE:
                    st.profile_due = None  # the coalescing interval is over: ``_touched`` sends what changed
                else:
                    BY_NAME[kind].on_timer(self, st, at)
                self._touched(cid, at)
            except Exception as e:  # noqa: BLE001 - a failing timer must not stop the partition
                self._roll_back(cid, saved)
                raw = f'{{"timer": "{kind}", "customer_id": "{cid}", "at": "{to_dt(at).isoformat()}"}}'.encode()
                self._failed("timers", f"timer:{kind}", raw, e, (privacy.customer_key(cid),), "timer")

    def advance(self, watermark: int | None) -> None:
        self.observe(watermark)
        self.fire_due()

    # ---- events ----------------------------------------------------------------------------------

    def apply(self, r: Routed) -> None:
        """Apply one routed event (after the timers its watermark passed), whole or not at all: if it fails,
        the customer is as before and the event goes to ``dlq.v1`` (``pipeline.core.failures``)."""
        self.advance(r.watermark)
        saved = self._save(r.customer_id)
        try:
            self._apply(r)
        except Exception as e:  # noqa: BLE001 - a poison event must not stop the partition
            self._roll_back(r.customer_id, saved)
            carries = (*(i.key for i in r.event.identifiers), privacy.customer_key(r.customer_id))
            self._failed("customers", r.event.topic, r.event.body.model_dump_json().encode(), e, carries)

    def _save(self, cid: str) -> tuple:
        """What applying an event or a timer may change of one customer (to roll back on a failure)."""
        st = self.customers.get(cid)
        return (None if st is None else (st, st.checkpoint()), self.kinds.get(cid),
                list(self.snapshots.get(cid, ())), len(self._out), self.timers.of(cid),
                self._emitted.get(cid))

    def _roll_back(self, cid: str, saved: tuple) -> None:
        state, kinds, snapshots, emitted, timers, meaning = saved
        if state is None:
            self.customers.pop(cid, None)
        else:
            st, checkpoint = state
            st.rewind(checkpoint)
            self.customers[cid] = st
        if kinds is None:
            self.kinds.pop(cid, None)
        else:
            self.kinds[cid] = kinds
        if snapshots or cid in self.snapshots:
            self.snapshots[cid] = snapshots
        del self._out[emitted:]
        if meaning is None:
            self._emitted.pop(cid, None)
        else:
            self._emitted[cid] = meaning
        self.timers.cancel_all(cid)
        for kind, at in timers.items():
            self.timers.schedule(kind, cid, at)

    def undecodable(self, topic: str, partition: int, offset: int, data: bytes, error: Exception) -> None:
        """An internal record at ``offset`` did not decode: it goes to ``dlq.v1``, and processing goes on."""
        dead_lettered(self.stats, self._out, "internal",
                      undecodable_letter(topic, partition, offset, data, error, self.hasher))

    def _failed(self, stage: str, source: str, raw: bytes, error: Exception, carries: tuple[str, ...],
                what: str = "event") -> None:
        """Dead-letter what failed; the global stage learns whom it names (``carries``: identifier and
        customer keys), so that their erase tombstones it."""
        key = dead_lettered(self.stats, self._out, stage, failed_letter(stage, source, raw, error, self.hasher, what))
        self._links.append(privacy.DeadLetterLink(key, carries))

    def take_links(self) -> list[privacy.DeadLetterLink]:
        """The dead letters this partition wrote since the last call, with whom they name."""
        links, self._links = self._links, []
        return links

    def _apply(self, r: Routed) -> None:
        if r.privacy is not None:
            return privacy.apply(self, r)
        ev = r.event
        st = self.customers.get(r.customer_id)
        if st is None:
            st = self.customers[r.customer_id] = CustomerState(r.customer_id, ev.ts, ev.ts)
        self.kinds[r.customer_id] = r.kinds
        if not st.first_time(ev.event_id):
            self.stats["duplicates"] += 1
            return
        self.stats[f"events:{ev.topic}"] += 1
        applied = self._state(st, ev, r)
        for t in REGISTRY:
            if t.on_event is not None:
                t.on_event(self, st, applied)
        if self._faults:  # after the state changed: a failure here must roll it back
            inject(self._faults, "customers", ev.event_id)
        self._churn(st, ev.ts, ev.event_id)
        self._touched(st.customer_id, ev.ts)

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
            self._out.append(Emit("scores.reviews.v1", st.customer_id, ReviewScore.model_construct(
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
        st.churn_high = p >= (self.rules.churn_rearm_below if st.churn_high else self.rules.churn_threshold)
        st.scored_at = ts
        self._rescore_timer(st)
        if st.last_snapshot is None or ts - st.last_snapshot >= self._snapshot_ms:
            self._snapshot(st.customer_id, (ts + self._horizon_ms, ts, pack(x)))
            st.last_snapshot = ts
        for t in REGISTRY:
            if t.on_churn is not None:
                t.on_churn(self, st, p, ts, cause)

    def _rescore_timer(self, st: CustomerState) -> None:
        """The quiet customer's next churn re-score, while it is within ``Rules.churn_rescore_for_days`` of its
        last event (none after: a watermark jumping years ahead must not re-score everyone week by week)."""
        if st.scored_at is None:
            return
        at = st.scored_at + self._snapshot_ms
        if at <= st.last_seen + self._rescore_for_ms:
            self.timers.schedule(CHURN, st.customer_id, at)
        else:
            self.timers.cancel(CHURN, st.customer_id)

    def _snapshot(self, cid: str, snap: tuple[int, int, bytes]) -> None:
        self.snapshots.setdefault(cid, []).append(snap)
        self._label_timer(cid)

    def _label_timer(self, cid: str) -> None:
        """The customer's label timer at its earliest pending snapshot's due time (none: no timer)."""
        pending = self.snapshots.get(cid)
        if pending:
            self.timers.schedule(LABEL, cid, min(s[0] for s in pending))
        else:
            self.timers.cancel(LABEL, cid)

    # ---- merges: release on the absorbed one's partition, fold on the survivor's ------------------

    def release(self, customer_id: str, watermark: int | None) -> Handover:
        """Hand over a customer merged away (after the timers the merge's watermark passed)."""
        self.advance(watermark)
        self.timers.cancel_all(customer_id)
        state = self.customers.pop(customer_id, None)
        self.kinds.pop(customer_id, None)
        self._emitted.pop(customer_id, None)
        if state is not None:
            self._changed[customer_id] = None
            self._out.append(Emit("profiles.v1", customer_id, None))  # after its last profile: compaction forgets it
        return Handover(state, self.snapshots.pop(customer_id, []))

    def recount(self, customer_id: str, kinds: dict[str, int]) -> None:
        """The customer's identifiers changed without an event of theirs (one was found shared)."""
        if customer_id in self.customers:
            self.kinds[customer_id] = kinds
            self._touched(customer_id, self.customers[customer_id].as_of())

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
        self._schedule_all(survivor)
        self._touched(m.survivor, m.ts)

    def _schedule_all(self, st: CustomerState) -> None:
        """Every timer of the customer, from its state (after a restore or a fold)."""
        for t in REGISTRY:
            if t.timer_at is not None and (at := t.timer_at(self, st)) is not None:
                self.timers.schedule(t.name, st.customer_id, at)
        self._rescore_timer(st)
        if st.profile_due is not None:
            self.timers.schedule(PROFILE, st.customer_id, st.profile_due)

    # ---- messages, when the stages run in different processes -------------------------------------

    def receive_record(self, msgs: list[Message], offset: int) -> None:
        """The messages of one record of this partition's input, read at ``offset``: a record at or below the
        last one is a re-delivery, skipped."""
        if offset <= self.offset:
            self.stats["redelivered"] += len(msgs)
            return
        self.offset = offset
        for msg in msgs:
            self.receive(msg)

    def receive(self, msg: Message) -> None:
        """Take one message from the global stage or another partition, in the order they were sent to this
        partition. Model versions and hand-overs take effect at once; anything else waits, in order, for the
        model version its event time needs, and a survivor's messages wait for its hand-over."""
        if isinstance(msg, Publish):
            self.versions.publish(msg.versions)
            self._published = True
        elif isinstance(msg, HandedOver):
            self._arrived[(msg.merge.survivor, msg.merge.absorbed)] = msg
            expect = self._waiting.get(msg.merge.survivor)
            if expect is not None and expect.merge.absorbed == msg.merge.absorbed:
                self._complete(msg.merge.survivor)
        else:
            self._inbox.append(msg)
        while self._inbox:
            msg = self._inbox[0]
            wm = None if isinstance(msg, (Recount, HandedOver, Publish)) else msg.watermark
            self.observe(wm)
            self._report()
            needed = max((t for t in (wm, msg.event.ts if isinstance(msg, Routed) else None) if t is not None),
                         default=None)
            if needed is not None and self.versions.at(needed) is None:
                return  # the learner has not published the version this needs yet
            self._inbox.popleft()
            self._head += 1
            self._deliver(msg)

    def take_sent(self) -> list[tuple[int | None, object]]:
        """Messages for other partitions (hand-overs) and for the learner (label reports, partition None)."""
        sent, self._sent = self._sent, []
        return sent

    def _report(self) -> None:
        report = self.take_labels()
        if report is not None:
            self._sent.append((None, LabelReport(self.partition, *report)))

    def _deliver(self, msg: Message) -> None:
        target = (msg.customer_id if isinstance(msg, (Routed, Recount)) else msg.merge.survivor
                  if isinstance(msg, Expect) else msg.merge.absorbed if isinstance(msg, Release) else None)
        if target is not None and target in self._waiting:
            self._parked.setdefault(target, []).append(msg)
            return
        if isinstance(msg, Routed):
            self.apply(msg)
        elif isinstance(msg, Tick):
            self.advance(msg.watermark)
        elif isinstance(msg, Recount):
            self.recount(msg.customer_id, msg.kinds)
        elif isinstance(msg, Release):
            self._sent.append((msg.to, HandedOver(msg.merge, self.release(msg.merge.absorbed, msg.watermark))))
        elif isinstance(msg, Expect):
            self.advance(msg.watermark)
            self._waiting[msg.merge.survivor] = msg
            if (msg.merge.survivor, msg.merge.absorbed) in self._arrived:
                self._complete(msg.merge.survivor)

    def _complete(self, survivor: str) -> None:
        """The hand-over a survivor waited for is here. Its time is replayed from the merge on: fold, then its
        parked messages each at its own watermark (timers and labels of the survivor in between), then on
        to where the partition is."""
        expect = self._waiting.pop(survivor)
        arrived = self._arrived.pop((survivor, expect.merge.absorbed))
        now, self.watermark = self.watermark, expect.watermark
        self.fold(expect.merge, arrived.handover, expect.watermark)
        if self._deferred.pop(survivor, None) is not None:
            self._label_timer(survivor)
        for msg in self._parked.pop(survivor, []):
            self._deliver(msg)
        if now is not None and (self.watermark is None or now > self.watermark):
            self.advance(now)

    # ---- outputs and persistence -----------------------------------------------------------------

    def end_batch(self) -> list[Emit]:
        """Everything since the last call."""
        out, self._out = self._out, []
        return out

    def _touched(self, cid: str, now: int) -> None:
        """The customer changed at event time ``now`` (an event, a timer, a merge): its state entry is due, and a
        profile when something meaningful changed, coalesced: the first change after a quiet interval
        (``Rules.profile_coalesce_s``) goes out at once; the changes within the interval after it go out in one
        profile when the watermark passes its end (a timer). A profile is the state at that change or that
        timer, so it is the same whatever the batches (clicks alone update the next one)."""
        self._changed[cid] = None
        st = self.customers.get(cid)
        if st is None or st.suppressed:  # erased by a request, or its processing stopped: no profile
            return
        if st.profile_due is not None:  # an open interval: its end sends what changed
            return
        meaning = self._meaning(st)
        if self._emitted.get(cid) == meaning:
            return
        if self._coalesce_ms and st.profiled_at is not None and now < st.profiled_at + self._coalesce_ms:
            st.profile_due = st.profiled_at + self._coalesce_ms
            self.timers.schedule(PROFILE, cid, st.profile_due)
            return
        st.profiled_at = now
        self._emitted[cid] = meaning
        self._out.append(Emit("profiles.v1", cid, self.profile(cid)))

    def profile(self, customer_id: str) -> Profile:
        """The customer's profile as of its latest event or churn score."""
        st = self.customers[customer_id]
        as_of = st.as_of()
        version = self.churn_model(st.scored_at or as_of).version  # the version of its churn score
        return st.to_profile(as_of, dict(self.kinds.get(customer_id, {})), version)

    def _meaning(self, st: CustomerState) -> int:
        """What a profile says that is worth a new record, as a 64-bit digest (kept per customer in the changelog:
        8 bytes rather than the fields): purchases, returns, revenue, journey stage, channels, identifiers, cart,
        abandonments, texts, consent, and the churn risk level. The level is high from ``Rules.churn_threshold``
        until the probability falls below ``Rules.churn_rearm_below``; the probability's drift alone, as a quiet
        customer is re-scored every week, is not news (it updates the next profile)."""
        return digest((st.purchases, st.returns, round(st.revenue, 2), st.journey_stage(), len(st.channels),
                       sorted(self.kinds.get(st.customer_id, {}).items()), st.carts.quantity, st.carts_started,
                       st.carts_abandoned, st.texts, st.contactable, len(st.consent_history), st.churn_high))

    def take_changes(self) -> dict[str, object | None]:
        """Changed entries: ``c/<customer>`` -> (state, pending snapshots packed, identifier counts, last profile's
        digest), None once released; ``p/<partition>`` -> the partition's clock, position and messages still
        waiting."""
        out: dict[str, object | None] = {}
        for cid in self._changed:
            st = self.customers.get(cid)
            out[f"c/{cid}"] = None if st is None else (st, pack_snapshots(self.snapshots.get(cid, [])),
                                                       self.kinds.get(cid, {}), self._emitted.get(cid))
        self._changed.clear()
        out.update(self._inbox_changes())
        out[f"p/{self.partition}"] = {k: getattr(self, k) for k in _PENDING}
        if self._published:
            out.update(self._version_changes())
        return out

    def _version_changes(self) -> dict[str, object | None]:
        """``v/<partition>/<epoch>``: each model version published since the last call; None for those dropped
        since (``versions.KEEP_EPOCHS``). One entry a version: a backfill publishes one a day of event time."""
        kept = set(self.versions.by_epoch)
        out: dict[str, object | None] = {f"v/{self.partition}/{e}": None for e in sorted(self._saved_epochs - kept)}
        out.update((f"v/{self.partition}/{e}", self.versions.by_epoch[e]) for e in sorted(kept - self._saved_epochs))
        if self._one_entry:
            out[f"v/{self.partition}"], self._one_entry = None, False
        self._saved_epochs, self._published = kept, False
        return out

    def _inbox_changes(self) -> dict[str, Message | None]:
        """``i/<partition>/<seq>``: each message queued since the last call and still waiting; None for those
        written before and delivered since (a message in and out between two calls is never written)."""
        head, tail = self._head, self._head + len(self._inbox)
        saved_head, saved_tail = self._saved
        new = max(saved_tail, head)
        out: dict[str, Message | None] = {f"i/{self.partition}/{seq}": None for seq in range(saved_head, min(head, saved_tail))}
        queued = list(islice(reversed(self._inbox), tail - new))[::-1]
        out.update((f"i/{self.partition}/{seq}", msg) for seq, msg in enumerate(queued, new))
        self._saved = (head, tail)
        return out

    @property
    def pending_snapshots(self) -> int:
        return sum(len(snaps) for snaps in self.snapshots.values())

    def restore(self, entries: dict[str, object]) -> None:
        """Rebuild this partition's customers from changelog entries (others' entries are skipped)."""
        waiting: dict[int, Message] = {}
        inbox, versions = f"i/{self.partition}/", f"v/{self.partition}/"
        for name, value in entries.items():
            if name.startswith("c/") and partition_of(name[2:], self.partitions) == self.partition:
                st, snaps, self.kinds[name[2:]] = value[:3]  # type: ignore[index]
                self.customers[name[2:]] = st
                if len(value) > 3 and value[3] is not None:  # type: ignore[arg-type]
                    meaning = value[3]  # type: ignore[index]
                    self._emitted[name[2:]] = meaning if type(meaning) is int else digest(meaning)  # (older: fields)
                for snap in unpack_snapshots(snaps):
                    self._snapshot(name[2:], snap)
            elif name == f"p/{self.partition}":
                for k, v in value.items():  # type: ignore[attr-defined]
                    setattr(self, k, v)
                self._deferred = {cid: due if type(due) is int else min(d for d, _, _ in due)  # (older: every entry)
                                  for cid, due in self._deferred.items()}
            elif name.startswith(versions):
                self.versions.by_epoch[int(name[len(versions):])] = value  # type: ignore[assignment]
            elif name == f"v/{self.partition}":  # every version in one entry (an older release): rewritten as entries
                self.versions.by_epoch.update(value)  # type: ignore[call-overload]
                self._one_entry = self._published = True
            elif name.startswith(inbox):
                waiting[int(name[len(inbox):])] = value  # type: ignore[assignment]
        self._saved_epochs = set() if self._one_entry else set(self.versions.by_epoch)
        if self._inbox:  # in the partition's entry (an older release): written as entries at the next call
            self._head, self._saved = 0, (0, 0)
        else:
            self._head = self._saved[0]
            self._inbox = deque(waiting[seq] for seq in range(*self._saved) if seq in waiting)
            if len(self._inbox) != self._saved[1] - self._head:  # an entry missing: all written again, renumbered
                self._saved = (self._head, self._head)
        for st in self.customers.values():
            self._schedule_all(st)
