"""The engine: raw records in, outbound records out, in stages. Every driver (worker, replay) calls this.

Stages, each with one job:
1. *ingest* (``pipeline.core.ingest``): decode or dead-letter; pseudonymise identifiers.
2. *order* (``pipeline.core.sequencer``): drop re-deliveries and duplicates; release events in one
   event-time order whatever the partitioning; the watermark follows the released events.
3. *identity* (``pipeline.core.identity``): the customer of each event; merges and shared identifiers.
   Texts are scored here too, in the canonical order (the sentiment model learns in one place).
4. *customers* (``pipeline.core.customers``): one stage per customer partition: state, timers,
   triggers through the contact policy, churn scores, profiles.
The churn model learns from the partitions' labels in one place and publishes versions that take
effect at an event time (``pipeline.core.versions``), so outputs do not depend on the partition count.

``Engine`` runs stages 1-3 and, in this process, the customer stages of ``customer_partitions``
partitions, passing messages between them directly. Outputs depend only on the events and their order
per source, never on the wall clock (``now`` only stamps ``emitted_at``), except for events that arrive
out of order.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from pipeline.core import privacy
from pipeline.core.clock import Watermark
from pipeline.core.customers import TRIGGER_TOPICS, CustomerStage, partition_of
from pipeline.core.messages import Expect, LabelReport, Message, Publish, Recount, Release, Routed, Tick
from pipeline.core.dedup import Dedup
from pipeline.core.failures import dead_lettered, dlq_record, failed_letter, fault_plan, inject, undecodable_letter
from pipeline.core.identity import Block, IdentityGraph, Merge
from pipeline.core.ingest import Ingest
from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import SentimentModel, stars_to_label
from pipeline.core.pii import Hasher, redact
from pipeline.core.profile import DAY_MS, CustomerState
from pipeline.core.records import Emit, Event, RawRecord, to_dt, to_ms
from pipeline.core.rules import Rules
from pipeline.core.sequencer import Sequencer, Source
from pipeline.core.versions import ChurnLearner, Versions
from schemas.inbound import PrivacyRequest, ReviewEvent
from schemas.outbound import DeadLetter, IdentifierBlocked, IdentityMerge, LinkingIdentifier

__all__ = ["Engine", "TRIGGER_TOPICS"]


class Engine:
    """All processing state of one worker (or one replay) and the logic that moves it."""

    def __init__(self, rules: Rules, hasher: Hasher, now: Callable[[], datetime],
                 sentiment: SentimentModel | None = None, churn: ChurnModel | None = None, local: bool = True) -> None:
        """``local``: run the customer stages here; else ``take_messages`` gives what to send to them, and
        ``report`` takes their label reports."""
        self.rules = rules
        self.now = now
        self.ingest = Ingest(rules, hasher)
        self.identity = IdentityGraph(rules)
        self.seen = Dedup(rules.dedup_capacity)
        self.sequencer = Sequencer(int(rules.order_grace_s * 1000), int(rules.allowed_lateness_s * 1000),
                                   int(rules.order_live_within_s * 1000))
        self.watermark = Watermark(int(rules.allowed_lateness_s * 1000))
        self.sentiment = sentiment or SentimentModel(rules.sentiment_warmup)
        epoch_ms = int(rules.model_epoch_hours * 3_600_000)
        n = rules.customer_partitions
        self.learner = ChurnLearner(churn or ChurnModel(int(rules.churn_horizon_days * DAY_MS),
                                                        warmup=rules.churn_min_labels), n, epoch_ms)
        self.versions = Versions(epoch_ms)
        self.n_partitions = n
        self.hasher = hasher
        self._faults = fault_plan(rules.inject_faults)
        self.partitions = [CustomerStage(rules, now, self.versions, p, n, hasher) for p in range(n)] if local else []
        self._messages: list[tuple[int, Message]] = []  # for customer partitions in other processes
        self._stats: Counter[str] = Counter()
        self.applied: dict[Source, int] = {}  # source partition -> last offset read (worker)
        self._epoch: int | None = None  # epoch of the watermark the partitions were last told
        self._ticked: int | None = None  # the watermark remote partitions were last told
        self._out: list[Emit] = []  # outputs of the global stages in the batch in progress
        self.suppressions = privacy.Suppressions()
        self.dead_letters = privacy.DeadLetters(int(rules.dlq_retention_hours * 3_600_000))

    # ---- views over the stages -------------------------------------------------------------------

    @property
    def churn(self) -> ChurnModel:
        """The churn model as the learner has it (the partitions score with published versions)."""
        return self.learner.model

    @property
    def customers(self) -> dict[str, CustomerState]:
        return {cid: st for p in self.partitions for cid, st in p.customers.items()}

    @property
    def pending_snapshots(self) -> int:
        return sum(p.pending_snapshots for p in self.partitions)

    @property
    def stats(self) -> Counter[str]:
        """Running totals of every stage."""
        out = Counter(self._stats)
        for p in self.partitions:
            out.update(p.stats)
        return out

    def stage_of(self, customer_id: str) -> CustomerStage:
        return self.partitions[partition_of(customer_id, self.n_partitions)]

    def take_messages(self) -> list[tuple[int, Message]]:
        """What to deliver to customer partitions in other processes, in order (``local=False``)."""
        out, self._messages = self._messages, []
        return out

    def report(self, r: LabelReport) -> None:
        """A customer partition's labels: the learner publishes the model versions they complete."""
        self._publish(self.learner.report(r.partition, r.through, r.labels))

    def _publish(self, versions: dict) -> None:
        if not versions:
            return
        self.versions.publish(versions)
        if not self.partitions:  # one version a message: a long jump of the watermark publishes many
            self._messages += [(p, Publish({e: m})) for e, m in sorted(versions.items()) for p in range(self.n_partitions)]

    def _send(self, customer_id: str, msg: Message) -> None:
        self._messages.append((partition_of(customer_id, self.n_partitions), msg))

    # ---- driver entry points ---------------------------------------------------------------------

    def process_batch(self, records: Iterable[RawRecord]) -> list[Emit]:
        for rec in records:
            self.process(rec)
        return self.end_batch()

    def process(self, rec: RawRecord) -> None:
        """Take one inbound record (outputs wait for ``end_batch``); its source is its topic and partition."""
        self._stats["records"] += 1
        links: list[privacy.DeadLetterLink] = []
        ev = self.ingest.event_or_dead_letter(rec, self._stats, self._out, links)
        if ev is not None:
            self.apply(ev, (rec.topic, rec.partition))
        self.link_dead_letters(links)

    def link_dead_letters(self, links: Iterable[privacy.DeadLetterLink]) -> None:
        """Dead letters that name someone, as their writers (ingest, a stage) sent them to ``dlq.v1``: an erase of
        that person tombstones them. Indexed as they arrive, not in event-time order (a rejected record may
        have no event time)."""
        if not links:
            return
        now = to_ms(self.now())
        for link in links:
            self.dead_letters.add(link, now)

    def apply(self, ev: Event, source: Source, offset: int | None = None) -> None:
        """Take one decoded event read from ``source`` at ``offset``, and apply whatever the sequencer now
        releases. An offset at or below the last one read from that source is a re-delivery and is skipped."""
        if offset is not None:
            if offset <= self.applied.get(source, -1):
                self._stats["redelivered"] += 1
                return
            self.applied[source] = offset
        if not self.seen.add(ev.event_id):
            self._stats["duplicates"] += 1
            return
        self._stats[f"ordered:{ev.topic}"] += 1
        if self.sequencer.behind(ev):
            self._stats["out_of_order"] += 1
        self.sequencer.push(ev, source)
        self._release()

    def end_batch(self) -> list[Emit]:
        """Everything the batch caused (after applying what progress reports released), with the latest
        profile of every customer it changed."""
        self._release()
        self._tell_partitions(force=True)
        self._partition_dead_letters()
        self.dead_letters.expire(to_ms(self.now()))
        out, self._out = self._out, []
        for stage in self.partitions:
            out += stage.end_batch()
        return out

    def assign(self, sources: Iterable[Source]) -> None:
        """The driver now reads these partitions: hold events until each delivers, is caught up or idles."""
        for source in sources:
            self.sequencer.expect(source)

    def caught_up(self, sources: Iterable[Source], reader: str, as_of_ms: int, positions: dict[str, int]) -> None:
        """``reader`` had read everything written to ``sources`` before wall time ``as_of_ms``, and each topic up
        to the event time in ``positions`` by then. Takes effect at the next event or ``end_batch``."""
        self.sequencer.caught_up(sources, reader, as_of_ms, positions)

    def caught(self, source: Source) -> bool:
        """The source's reader reported it read to its end after its last event (see ``Sequencer.caught``)."""
        return self.sequencer.caught(source)

    def idle(self, sources: Iterable[Source]) -> None:
        """These partitions have nothing more for now (or for good: the end of a range). Takes effect at the
        next event or ``end_batch``."""
        self.sequencer.idle(sources)

    def sources_idle(self, sources: Iterable[Source], wall_ms: int | None = None) -> list[Emit]:
        """These partitions sent nothing for a while (or the input ended). With ``wall_ms``, all input is
        silent and nothing is held: if the traffic is live (its readers last reported positions near the
        wall clock), the wall clock moves event time on, so a cart still fires at night. A backfill's event
        time never moves but by its own events: a pause between its parts fires nothing early."""
        self.idle(sources)
        self._release()
        if wall_ms is not None and not self.sequencer.held and self.sequencer.live:
            self.watermark.advance_wall(wall_ms)
        return self.end_batch()

    def advance_to(self, ts: int) -> list[Emit]:
        """The input says that nothing happened before event time ``ts`` (an evaluation's cutoff): move the
        watermark there, as the wall clock moves it for live traffic."""
        self._release()
        self.watermark.advance_wall(ts)
        return self.end_batch()

    def close_input(self) -> list[Emit]:
        """The input is over (a replay's end): release and apply everything held."""
        return self.sources_idle(self.sequencer.sources)

    # ---- the global stages: order, identity, texts -----------------------------------------------

    def _release(self) -> None:
        for ev in self.sequencer.release():
            if self.watermark.observe(ev.ts):
                self._stats["late"] += 1
            self._tell_partitions()
            self._apply(ev)

    def _apply(self, ev: Event) -> None:
        """Identity, then the text's score, then the customer's partition. A stage that fails sends the event
        to ``dlq.v1`` (``pipeline.core.failures``) and the later stages never see it. Privacy requests, and
        events of suppressed people, stop here (``pipeline.core.privacy``)."""
        if ev.topic == privacy.TOPIC:
            return self._privacy(ev)
        if self.suppressions.blocks(ev.identifiers):
            self._stats["privacy_dropped"] += 1
            return
        try:
            if self._faults:
                inject(self._faults, "identity", ev.event_id)
            res = self.identity.resolve(ev.identifiers, ev.ts, ev.event_id)
        except Exception as e:  # noqa: BLE001 - a poison event must not stop the partition
            return self._failed("identity", ev, e)
        self._stats["identifiers_dropped"] += len(res.dropped)
        for block in res.blocked:
            self._blocked(block)
        if res.customer_id is None:
            self._unattributable(ev)
            return
        for merge in res.merges:
            self._merge(merge)
        scored, version = None, None
        if isinstance(ev.body, ReviewEvent):
            text = ev.body.text[:self.rules.max_text_chars]
            try:
                if self._faults:
                    inject(self._faults, "sentiment", ev.event_id)
                scored, version = self.sentiment.score(text), self.sentiment.version  # before it learns
                rating = ev.body.rating
                if rating is not None and self.sentiment.learn(text, stars_to_label(rating), scored):
                    self._stats["drift:sentiment"] += 1
            except Exception as e:  # noqa: BLE001
                return self._failed("sentiment", ev, e)
        cid = res.customer_id
        if scored is not None:  # the customer stage needs the score, not the text: it goes no further
            ev = replace(ev, body=ev.body.model_copy(update={"text": ""}))
        self._route(Routed(cid, ev, self.watermark.current, self.identity.kinds(cid), scored, version))

    def _route(self, routed: Routed) -> None:
        """To the customer's partition: in this process, or as a message."""
        if self.partitions:
            self.stage_of(routed.customer_id).apply(routed)
        else:
            self._send(routed.customer_id, routed)

    def _privacy(self, ev: Event) -> None:
        """Resolve a request to the customers holding its identifiers; suppressions take effect here, and each
        customer's partition carries out the rest (``pipeline.core.privacy.apply``)."""
        req: PrivacyRequest = ev.body  # type: ignore[assignment]
        self._partition_dead_letters()
        keys = [i.key for i in ev.identifiers]
        ident = self.identity
        customers = sorted({ident.owner[k] for k in keys if k in ident.owner})
        suppressed = 0
        if req.type == "suppress":
            held = [i.key for c in customers for i in ident.members.get(c, ())]
            suppressed = self.suppressions.add(keys + held, req.request_id)
        elif req.type == "unsuppress":
            suppressed = self.suppressions.release(keys)
        self._stats[f"privacy_requests:{req.type}"] += 1
        letters = self._erase_dead_letters(keys) if req.type == "erase" else 0  # also those nobody holds
        if not customers:
            self._out.append(privacy.result(req, self.now(), suppressed=suppressed,
                                            removed={"dead_letters": letters} if req.type == "erase" else {}))
            return
        for part, cid in enumerate(customers, 1):
            idents, merged = ident.forget(cid) if req.type == "erase" else (ident.members.get(cid, []),
                                                                             ident.merged_into(cid))
            erased = 0
            if req.type == "erase":  # the request's own dead letters count in the first part
                named = [i.key for i in idents] + [privacy.customer_key(c) for c in (cid, *merged)]
                erased = self._erase_dead_letters(named) + (letters if part == 1 else 0)
            info = privacy.Resolved(tuple((i.kind, i.hash) for i in idents), tuple(sorted(merged)), suppressed, part,
                                    len(customers), erased)
            self._route(Routed(cid, ev, self.watermark.current, {}, privacy=info))

    def _partition_dead_letters(self) -> None:
        """Index the dead letters the customer partitions in this process wrote (others send them)."""
        for stage in self.partitions:
            self.link_dead_letters(stage.take_links())

    def _erase_dead_letters(self, keys: Iterable[str]) -> int:
        """Tombstone the dead letters naming any of these identifier or customer keys; how many."""
        letters = self.dead_letters.take(keys)
        self._out += [Emit("dlq.v1", key, None) for key in letters]
        return len(letters)

    def _tell_partitions(self, force: bool = False) -> None:
        """Every partition learns the watermark when it enters a new epoch (``force``: at a batch's end too):
        first each computes the labels it passed and reports them, then the learner publishes the model
        versions they complete, then each fires its due timers."""
        wm = self.watermark.current
        if wm is None:
            return
        epoch = self.versions.epoch(wm)
        if not force and epoch == self._epoch:
            return
        if self.learner.learned_through is None:  # the first watermark, or restored without a model checkpoint
            self._publish(self.learner.start(wm))
            for stage in self.partitions:
                stage.through = None  # report again to this learner
        if not self.partitions:
            if epoch != self._epoch or (force and wm != self._ticked):
                self._messages += [(p, Tick(wm)) for p in range(self.n_partitions)]
                self._ticked = wm
            self._epoch = epoch
            return
        self._epoch = epoch
        for stage in self.partitions:
            stage.observe(wm)
            report = stage.take_labels()
            if report is not None:
                self.report(LabelReport(stage.partition, *report))
        for stage in self.partitions:
            stage.fire_due()
        self._stats["churn_labels"] = self.learner.model.learned
        self._stats["churn_labels_dropped"] = self.learner.dropped

    def _blocked(self, b: Block) -> None:
        """Record an identifier found shared (hashed, with the reason); its former customer's profile changes."""
        self._stats[f"identifiers_blocked:{b.reason.partition(':')[0]}"] += 1
        if b.detached_from is not None:
            kinds = self.identity.kinds(b.detached_from)
            if self.partitions:
                self.stage_of(b.detached_from).recount(b.detached_from, kinds)
            else:
                self._send(b.detached_from, Recount(b.detached_from, kinds))
        why = ("it was seen with a second user_id" if b.reason == "several_user_ids" else
               f"with it one customer would hold more {b.reason.partition(':')[2]} values than one person has")
        self._out.append(Emit("identity.blocked.v1", b.ident.key, IdentifierBlocked(
            identifier=LinkingIdentifier(kind=b.ident.kind, hash=b.ident.hash), reason=b.reason,
            detail=f"{b.ident.kind} is shared by several people: {why}; it links nothing from now on.",
            detached_customer_id=b.detached_from, occurred_at=to_dt(b.ts), event_id=b.event_id,
        )))

    def undecodable(self, topic: str, partition: int, offset: int, data: bytes, error: Exception) -> None:
        """An internal record at ``offset`` did not decode: it goes to ``dlq.v1``, and processing goes on."""
        dead_lettered(self._stats, self._out, "internal",
                      undecodable_letter(topic, partition, offset, data, error, self.hasher))

    def _failed(self, stage: str, ev: Event, error: Exception) -> None:
        raw = ev.body.model_dump_json().encode()
        key = dead_lettered(self._stats, self._out, stage, failed_letter(stage, ev.topic, raw, error, self.hasher))
        self.link_dead_letters([privacy.DeadLetterLink(key, tuple(i.key for i in ev.identifiers))])

    def _unattributable(self, ev: Event) -> None:
        """Every identifier of the event is shared by several people: it belongs to nobody, so it is dead-lettered."""
        self._stats["dlq:shared_identifiers_only"] += 1
        kinds = ", ".join(i.kind for i in ev.identifiers)
        self._out.append(dlq_record(DeadLetter(
            source_topic=ev.topic, partition=-1, offset=-1, key=None,
            raw=redact(ev.body.model_dump_json().encode(), self.hasher).decode(),
            raw_encoding="utf-8", error_type="shared_identifiers_only",
            error_detail=f"identifiers: {kinds} are each shared by several people, so the event names no one customer",
        )))

    def _merge(self, m: Merge) -> None:
        """Hand the absorbed customer over to the survivor's partition; record the merge."""
        self._stats["merges"] += 1
        wm = self.watermark.current
        if self.partitions:
            self.stage_of(m.survivor).fold(m, self.stage_of(m.absorbed).release(m.absorbed, wm), wm)
        else:
            self._send(m.survivor, Expect(m, wm))
            self._send(m.absorbed, Release(m, wm, partition_of(m.survivor, self.n_partitions)))
        merge_id = hashlib.sha256(f"merge|{m.absorbed}|{m.survivor}".encode()).hexdigest()[:32]
        self._out.append(Emit("identity.merges.v1", m.survivor, IdentityMerge(
            merge_id=merge_id, surviving_customer_id=m.survivor, absorbed_customer_id=m.absorbed,
            linking_identifier=LinkingIdentifier(kind=m.link.kind, hash=m.link.hash), occurred_at=to_dt(m.ts),
            event_id=m.event_id,
        )))

    # ---- persistence ----------------------------------------------------------------------------

    def take_changes(self) -> dict[str, object | None]:
        """State entries changed since the last call, for a changelog (``None`` deletes an entry)."""
        out: dict[str, object | None] = self.identity.take_changes()
        out.update(self.suppressions.take_changes())
        out.update(self.dead_letters.take_changes())
        out.update(self.sequencer.take_changes())
        out.update(self.seen.take_changes())
        for stage in self.partitions:
            out.update(stage.take_changes())
        out["w"] = self.watermark
        out["s"] = self.sequencer
        out["o"] = dict(self.applied)
        out["e"] = self._epoch
        return out

    def models(self) -> dict[str, object]:
        """Model checkpoints (large; a driver writes them less often than ``take_changes``)."""
        return {"m/sentiment": self.sentiment, "m/churn": self.learner, "m/versions": self.versions}

    def restore(self, entries: dict[str, object]) -> None:
        """Rebuild the state from changelog entries (the latest value of each key)."""
        for name, value in entries.items():
            if name == "w":
                self.watermark = value  # type: ignore[assignment]
            elif name == "s":
                self.sequencer = value  # type: ignore[assignment]
            elif name == "o":
                self.applied = dict(value)  # type: ignore[call-overload]
            elif name == "e":
                self._epoch = value  # type: ignore[assignment]
            elif name == "m/sentiment":
                self.sentiment = value  # type: ignore[assignment]
            elif name == "m/churn":
                self.learner = value  # type: ignore[assignment]
            elif name == "m/versions":
                self.versions.by_epoch = value.by_epoch  # type: ignore[attr-defined]
        self.identity.restore(entries)
        self.suppressions.restore(entries)
        self.dead_letters.restore(entries)
        self.seen.restore(entries)
        self.sequencer.restore_held(v for k, v in entries.items() if k.startswith("q/"))  # type: ignore[misc]
        for stage in self.partitions:
            stage.restore(entries)
