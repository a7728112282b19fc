"""The engine: one raw record in, outbound records out. Every driver (worker, replay) calls this.

Per record: decode or dead-letter; drop re-deliveries and duplicates; hand the event to the sequencer,
which releases events in one event-time order whatever the partitioning (``pipeline.core.sequencer``).
Per released event, as soon as it is released: advance the watermark and fire what it passed (cart
timers, churn labels); stitch identity (merges fold state); apply the event to the customer; score
texts; evaluate triggers. ``end_batch`` returns everything the batch caused, with the profiles that
changed. Outputs depend only on the events and their order per source, never on the wall clock (``now``
only stamps ``emitted_at``), except for events that arrive out of order.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from pipeline.core import triggers
from pipeline.core.clock import Timers, Watermark
from pipeline.core.dedup import Dedup
from pipeline.core.identity import Block, IdentityGraph, Merge
from pipeline.core.ingest import Ingest
from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import SentimentModel, stars_to_label
from pipeline.core.pii import Hasher
from pipeline.core.profile import DAY_MS, KEEP_ABANDONED, Abandoned, CustomerState, Purchase
from pipeline.core.records import Emit, Event, RawRecord, to_dt
from pipeline.core.rules import Rules
from pipeline.core.sequencer import Sequencer, Source
from schemas.inbound import ClickEvent, ConsentEvent, PosEvent, ReviewEvent
from schemas.outbound import (
    OUTBOUND, ConsentChange, DeadLetter, IdentifierBlocked, IdentityMerge, LinkingIdentifier, ReviewScore, Trigger,
)

#: Trigger type -> its outbound topic, from the contract models.
TRIGGER_TOPICS = {m.model_fields["type"].default: t for t, m in OUTBOUND.items() if issubclass(m, Trigger)}


class Engine:
    """All processing state of one worker (or one replay) and the logic that moves it."""

    def __init__(self, rules: Rules, hasher: Hasher, now: Callable[[], datetime],
                 sentiment: SentimentModel | None = None, churn: ChurnModel | None = None) -> None:
        self.rules = rules
        self.now = now
        self.ingest = Ingest(rules, hasher)
        self.identity = IdentityGraph(rules)
        self.customers: dict[str, CustomerState] = {}
        self.seen = Dedup(rules.dedup_capacity)
        self.sequencer = Sequencer(int(rules.order_grace_s * 1000), int(rules.allowed_lateness_s * 1000),
                                   int(rules.order_live_within_s * 1000))
        self.watermark = Watermark(int(rules.allowed_lateness_s * 1000))
        self.cart_timers = Timers()
        self.churn_timers = Timers()  # re-score quiet customers every churn_snapshot_every_days of event time
        self.policy = triggers.Policy(rules)
        self.sentiment = sentiment or SentimentModel(rules.sentiment_warmup)
        self.churn = churn or ChurnModel(int(rules.churn_horizon_days * DAY_MS), warmup=rules.churn_min_labels)
        self.stats: Counter[str] = Counter()
        self._window_ms = int(rules.cart_abandon_window_s * 1000)
        self._recovery_ms = int(rules.cart_recovery_window_s * 1000)
        self._snapshot_ms = int(rules.churn_snapshot_every_days * DAY_MS)
        self._cooldown_ms = int(rules.churn_cooldown_days * DAY_MS)
        self.applied: dict[Source, int] = {}  # source partition -> last offset read (worker)
        self._out: list[Emit] = []  # outputs of the batch in progress
        self._dirty: dict[str, None] = {}  # customers whose profile is due
        self._changed: dict[str, None] = {}  # customers whose state entry is due (absorbed ones: deleted)

    # ---- driver entry points ---------------------------------------------------------------------

    def process_batch(self, records: Iterable[RawRecord]) -> list[Emit]:
        for rec in records:
            self.process(rec)
        return self.end_batch()

    def process(self, rec: RawRecord) -> None:
        """Take one inbound record (outputs wait for ``end_batch``); its source is its topic and partition."""
        self.stats["records"] += 1
        ev = self.ingest.event_or_dead_letter(rec, self.stats, self._out)
        if ev is not None:
            self.apply(ev, (rec.topic, rec.partition))

    def apply(self, ev: Event, source: Source, offset: int | None = None) -> None:
        """Take one decoded event read from ``source`` at ``offset``, and apply whatever the sequencer now
        releases. An offset at or below the last one read from that source is a re-delivery and is skipped."""
        if offset is not None:
            if offset <= self.applied.get(source, -1):
                self.stats["redelivered"] += 1
                return
            self.applied[source] = offset
        if not self.seen.add(ev.event_id):
            self.stats["duplicates"] += 1
            return
        self.stats[f"events:{ev.topic}"] += 1
        if self.sequencer.behind(ev):
            self.stats["out_of_order"] += 1
        self.sequencer.push(ev, source)
        self._release(self._out)

    def end_batch(self) -> list[Emit]:
        """Everything the batch caused (after applying what progress reports released), with the latest
        profile of every customer it changed."""
        out = self._out
        self._release(out)
        self._changed.update(self._dirty)
        for cid in self._dirty:
            st = self.customers[cid]
            kinds = Counter(i.kind for i in self.identity.members[cid])
            as_of = max(st.last_seen, st.scored_at or st.last_seen)
            out.append(Emit("profiles.v1", cid, st.to_profile(as_of, dict(kinds), self.churn.version)))
        self._dirty.clear()
        self._out = []
        return out

    def assign(self, sources: Iterable[Source]) -> None:
        """The driver now reads these partitions: hold events until each delivers, is caught up or idles."""
        for source in sources:
            self.sequencer.expect(source)

    def caught_up(self, sources: Iterable[Source], reader: str, wall_ms: int, as_of_ms: int,
                  positions: dict[str, int]) -> None:
        """``reader`` (at wall time ``wall_ms``) had read everything written to ``sources`` before ``as_of_ms``,
        and each topic up to the event time in ``positions`` by then. Takes effect at the next event or
        ``end_batch``."""
        self.sequencer.caught_up(sources, reader, wall_ms, as_of_ms, positions)

    def idle(self, sources: Iterable[Source]) -> None:
        """These partitions have nothing more for now (or for good: the end of a range). Takes effect at the
        next event or ``end_batch``."""
        self.sequencer.idle(sources)

    def sources_idle(self, sources: Iterable[Source], wall_ms: int | None = None) -> list[Emit]:
        """These partitions sent nothing for a while (or the input ended). With ``wall_ms``, all input is
        silent and nothing is held: the wall clock moves event time on."""
        self.idle(sources)
        self._release(self._out)
        if wall_ms is not None and not self.sequencer.held:
            self.watermark.advance_wall(wall_ms)
            self.fire_due(self._out)
        return self.end_batch()

    def close_input(self) -> list[Emit]:
        """The input is over (a replay's end): release and apply everything held."""
        return self.sources_idle(self.sequencer.sources)

    def _release(self, out: list[Emit]) -> None:
        for ev in self.sequencer.release():
            if self.watermark.observe(ev.ts):
                self.stats["late"] += 1
            self.fire_due(out)
            self._apply(ev, out)

    def fire_due(self, out: list[Emit]) -> None:
        """Fire cart timers and learn churn labels that the watermark has passed."""
        wm = self.watermark.current
        for key in self.cart_timers.due(wm):
            st = self.customers.get(self.identity.canonical(key))
            if st is not None:
                self._check_cart(st, wm, out)
        while keys := self.churn_timers.due(wm):  # a re-score schedules the next one: repeat up to the watermark
            for key in keys:
                st = self.customers.get(self.identity.canonical(key))
                if st is not None and st.scored_at is not None:
                    at = st.scored_at + self._snapshot_ms
                    self._churn(st, at, f"quiet:{st.customer_id}:{at}", out)
                    self._dirty[st.customer_id] = None
        for snap in self.churn.due(wm):
            st = self.customers.get(self.identity.canonical(snap.customer_id))
            if st is not None:
                if self.churn.learn(snap.x, not st.purchased_between(snap.ts, snap.due)):
                    self.stats["drift:churn"] += 1
                self.stats["churn_labels"] += 1

    # ---- persistence ----------------------------------------------------------------------------

    def take_changes(self) -> dict[str, object | None]:
        """State entries changed since the last call, for a changelog (``None`` deletes an entry)."""
        out: dict[str, object | None] = self.identity.take_changes()
        out.update(self.sequencer.take_changes())
        for cid in self._changed:
            st = self.customers.get(cid)
            out[f"c/{cid}"] = None if st is None else (st, self.identity.born[cid])
        self._changed.clear()
        out["w"] = self.watermark
        out["s"] = self.sequencer
        out["o"] = dict(self.applied)
        return out

    def models(self) -> dict[str, object]:
        """Model checkpoints (large; a driver writes them less often than ``take_changes``)."""
        return {"m/sentiment": self.sentiment, "m/churn": self.churn}

    def restore(self, entries: dict[str, object]) -> None:
        """Rebuild the state from changelog entries (the latest value of each key)."""
        born: dict[str, int] = {}
        for name, value in entries.items():
            if name.startswith("c/"):
                st, born[name[2:]] = value  # type: ignore[misc]
                self.customers[name[2:]] = st
            elif name == "w":
                self.watermark = value  # type: ignore[assignment]
            elif name == "s":
                self.sequencer = value  # type: ignore[assignment]
            elif name == "o":
                self.applied = dict(value)  # type: ignore[call-overload]
            elif name == "m/sentiment":
                self.sentiment = value  # type: ignore[assignment]
            elif name == "m/churn":
                self.churn = value  # type: ignore[assignment]
        self.identity.restore(entries, born)
        self.sequencer.restore_held(v for k, v in entries.items() if k.startswith("q/"))  # type: ignore[misc]
        for st in self.customers.values():
            self._schedule_cart(st)
            if st.scored_at is not None:
                self.churn_timers.schedule(st.customer_id, st.scored_at + self._snapshot_ms)

    # ---- applying one event ----------------------------------------------------------------------

    def _apply(self, ev: Event, out: list[Emit]) -> None:
        res = self.identity.resolve(ev.identifiers, ev.ts, ev.event_id)
        self.stats["identifiers_dropped"] += len(res.dropped)
        for block in res.blocked:
            self._blocked(block, out)
        if res.customer_id is None:
            self._unattributable(ev, out)
            return
        for merge in res.merges:
            self._merge(merge, out)
        st = self.customers.get(res.customer_id)
        if st is None:
            st = self.customers[res.customer_id] = CustomerState(res.customer_id, ev.ts, ev.ts)
        if not st.first_time(ev.event_id):
            self.stats["duplicates"] += 1
            return
        body = ev.body
        if isinstance(body, ClickEvent):
            self._click(st, ev, body, out)
        elif isinstance(body, PosEvent):
            st.touch(ev.ts, "store")
            if body.type == "purchase":
                self._purchase(st, Purchase(ev.ts, body.total, "store", ev.event_id), body.currency, out)
            else:
                st.returned(body.total)
        elif isinstance(body, ReviewEvent):
            self._review(st, ev, body, out)
        elif isinstance(body, ConsentEvent):
            st.touch(ev.ts, "consent")
            st.consent_changed(ConsentChange(purpose=body.purpose, granted=body.granted, at=to_dt(ev.ts),
                                             event_id=body.event_id))
        self._churn(st, ev.ts, ev.event_id, out)
        self._dirty[st.customer_id] = None

    def _click(self, st: CustomerState, ev: Event, body: ClickEvent, out: list[Emit]) -> None:
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
            self._schedule_cart(st)
        elif kind == "remove_from_cart" and body.product:
            st.carts.remove(body.product.sku, body.product.quantity, ev.ts, ev.event_id)
            self._schedule_cart(st)
        elif kind == "order_completed" and body.order:
            self._purchase(st, Purchase(ev.ts, body.order.total, "web", ev.event_id), body.order.currency, out)

    def _purchase(self, st: CustomerState, p: Purchase, currency: str, out: list[Emit]) -> None:
        st.purchase(p, currency.upper(), self._window_ms)
        self._schedule_cart(st)
        self._recover(st, out)

    def _recover(self, st: CustomerState, out: list[Emit]) -> None:
        """The first purchase after a cart_abandoned trigger, within the recovery window, recovers it (once),
        whichever was read first: the purchase, the trigger's timer, or the merge that linked them."""
        for ab in list(st.abandoned):
            p = next((p for p in st.purchase_log if ab.at < p.ts <= ab.at + self._recovery_ms), None)
            if p is not None:
                st.abandoned.remove(ab)
                trigger = triggers.cart_recovered(st, ab, p.ts, p.total, p.channel, p.event_id, self.now())
                self._emit(st, trigger, p.ts, out)

    def _review(self, st: CustomerState, ev: Event, body: ReviewEvent, out: list[Emit]) -> None:
        st.touch(ev.ts, body.channel)
        scored = self.sentiment.score(body.text)  # before learning from this event's rating
        st.text_scored(scored.score)
        out.append(Emit("scores.reviews.v1", st.customer_id, ReviewScore(
            review_id=body.review_id, customer_id=st.customer_id, label=scored.label, score=scored.score,
            confidence=scored.confidence, language=scored.language, model_version=self.sentiment.version,
            channel=body.channel, event_id=body.event_id, occurred_at=to_dt(ev.ts),
        )))
        r = self.rules
        if scored.score <= r.negative_emotion_threshold:
            self._emit(st, triggers.negative_emotion(st, body, scored, ev.ts, r, self.now()), ev.ts, out)
        elif st.souring(ev.ts, r.souring_drop, r.souring_min_texts, r.souring_buying_days):
            self._emit(st, triggers.negative_emotion(st, body, scored, ev.ts, r, self.now(), souring=True), ev.ts, out)
        if body.rating is not None and self.sentiment.learn(body.text, stars_to_label(body.rating), scored):
            self.stats["drift:sentiment"] += 1

    def _schedule_cart(self, st: CustomerState) -> None:
        deadline = st.carts.next_deadline(self._window_ms)
        if deadline is None:
            self.cart_timers.cancel(st.customer_id)
        else:
            self.cart_timers.schedule(st.customer_id, deadline)

    def _check_cart(self, st: CustomerState, watermark: int | None, out: list[Emit]) -> None:
        """Fire cart_abandoned for every episode whose window the watermark has passed."""
        if watermark is None:
            return
        for cart in st.carts.due(watermark, self._window_ms):
            deadline = cart.updated + self._window_ms
            trigger = triggers.cart_abandoned(st, cart, deadline, self.rules, self.now())
            st.carts_abandoned += 1
            if self._emit(st, trigger, deadline, out):
                st.abandoned = (st.abandoned + [Abandoned(trigger.trigger_id, deadline, cart.value,
                                                          trigger.evidence.currency)])[-KEEP_ABANDONED:]
                self._recover(st, out)  # a purchase read before the watermark got here
            self._dirty[st.customer_id] = None
        self._schedule_cart(st)

    def _churn(self, st: CustomerState, ts: int, cause: str, out: list[Emit]) -> None:
        """Score churn at event time ``ts`` (an event of the customer, or a quiet period's timer), snapshot
        features for a later label, and alert on an upward threshold crossing."""
        if st.scored_at is not None and ts < st.scored_at:
            return  # a late event: the customer was already scored at a later time
        x = st.features(ts)
        p = st.churn_probability = self.churn.predict(x)
        st.scored_at = ts
        self.churn_timers.schedule(st.customer_id, ts + self._snapshot_ms)
        if st.last_snapshot is None or ts - st.last_snapshot >= self._snapshot_ms:
            self.churn.snapshot(st.customer_id, ts, x)
            st.last_snapshot = ts
        if p < self.rules.churn_rearm_below:
            st.churn_armed = True
        elif (p >= self.rules.churn_threshold and st.churn_armed and self.churn.learned >= self.rules.churn_min_labels
              and (st.churn_alerted_at is None or ts - st.churn_alerted_at >= self._cooldown_ms)):
            trigger = triggers.churn_risk(st, p, ts, cause, self.rules, self.churn.version, self.now())
            if self._emit(st, trigger, ts, out):
                st.churn_armed, st.churn_alerted_at = False, ts

    def _emit(self, st: CustomerState, trigger: Trigger, ts: int, out: list[Emit]) -> bool:
        held = self.policy.admit(st, trigger.type, ts)
        if held is not None:
            self.stats[f"suppressed:{trigger.type}:{held}"] += 1
            return False
        self.stats[f"triggers:{trigger.type}"] += 1
        out.append(Emit(TRIGGER_TOPICS[trigger.type], st.customer_id, trigger))
        return True

    # ---- identity ----------------------------------------------------------------------------------

    def _blocked(self, b: Block, out: list[Emit]) -> None:
        """Record an identifier found shared (hashed, with the reason); its former customer's profile changes."""
        self.stats[f"identifiers_blocked:{b.reason.partition(':')[0]}"] += 1
        if b.detached_from in self.customers:
            self._dirty[b.detached_from] = None
        why = ("it was seen with a second user_id" if b.reason == "several_user_ids" else
               f"with it one customer would hold more {b.reason.partition(':')[2]} values than one person has")
        out.append(Emit("identity.blocked.v1", b.ident.key, IdentifierBlocked(
            identifier=LinkingIdentifier(kind=b.ident.kind, hash=b.ident.hash), reason=b.reason,
            detail=f"{b.ident.kind} is shared by several people: {why}; it links nothing from now on.",
            detached_customer_id=b.detached_from, occurred_at=to_dt(b.ts), event_id=b.event_id,
        )))

    def _unattributable(self, ev: Event, out: list[Emit]) -> None:
        """Every identifier of the event is shared by several people: it belongs to nobody, so it is dead-lettered."""
        self.stats["dlq:shared_identifiers_only"] += 1
        kinds = ", ".join(i.kind for i in ev.identifiers)
        out.append(Emit("dlq.v1", None, DeadLetter(
            source_topic=ev.topic, partition=-1, offset=-1, key=None, raw=ev.body.model_dump_json(),
            raw_encoding="utf-8", error_type="shared_identifiers_only",
            error_detail=f"identifiers: {kinds} are each shared by several people, so the event names no one customer",
        )))

    # ---- merges ----------------------------------------------------------------------------------

    def _merge(self, m: Merge, out: list[Emit]) -> None:
        self.stats["merges"] += 1
        survivor = self.customers.get(m.survivor)
        absorbed = self.customers.pop(m.absorbed, None)
        if survivor is None and absorbed is not None:
            survivor = self.customers[m.survivor] = CustomerState(m.survivor, absorbed.first_seen, absorbed.last_seen)
        self.cart_timers.cancel(m.absorbed)
        self.churn_timers.cancel(m.absorbed)
        if absorbed is not None and survivor is not None:
            survivor.absorb(absorbed, self._window_ms, m.ts)
            self._schedule_cart(survivor)
            self._recover(survivor, out)
        self._dirty.pop(m.absorbed, None)
        self._changed[m.absorbed] = None
        merge_id = hashlib.sha256(f"merge|{m.absorbed}|{m.survivor}".encode()).hexdigest()[:32]
        out.append(Emit("identity.merges.v1", m.survivor, IdentityMerge(
            merge_id=merge_id, surviving_customer_id=m.survivor, absorbed_customer_id=m.absorbed,
            linking_identifier=LinkingIdentifier(kind=m.link.kind, hash=m.link.hash), occurred_at=to_dt(m.ts),
            event_id=m.event_id,
        )))
        out.append(Emit("profiles.v1", m.absorbed, None))  # compaction forgets the absorbed id
