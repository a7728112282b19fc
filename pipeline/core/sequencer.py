"""One event-time order for every deployment: events from several sources, released canonically.

A source is one input partition, ``(topic, partition)``, and each one is read in the order it was
written. The sequencer
holds events until no source can still deliver an earlier one. Then it releases them in
(event time, event id) order. The core applies events in that order, so its outputs (merges, customer
ids, triggers, model updates) do not depend on how partitions are spread over workers or
interleaved in transit. That holds for every event that is not *out of order*.

Producers write roughly in event-time order: within a source, an event may follow later ones by up
to a *slack*. A source holds the release back at the latest event time it delivered, minus the
slack. A source the driver ``expect``s holds it back completely until it delivers.

A driver can report a source *caught up*: its reader had delivered everything written to it before
wall time ``a`` (*as of*: when the fetch that told the reader where the source ended was sent). Each
reader also reports its *positions* as of ``a``: the latest event time it had read of each topic by
then. Each topic's producer writes in event-time order, give or take the slack, so anything written
to the source later comes after every event of its topic that some reader had read by ``a``. The
source therefore promises nothing earlier than the highest position of its topic reported as of ``a``
or before, minus the slack (its *floor*). Producers of different topics may run at different speeds
(a backfill loaded topic by topic). A source reported idle holds nothing back until it delivers again.

The slack depends on the traffic. *Backfills* and replays, whose event time is behind the wall
clock, get ``slack_ms`` (the allowed lateness): waiting for data that is already there costs no
latency. *Live* traffic is traffic whose readers report positions within ``live_ms`` of the wall
clock. It gets ``grace_ms``, and its floor is at least ``a - grace``: an event written after ``a`` is
at most the grace late. So an event waits for the grace plus how old its reader's knowledge is.

An event that arrives behind the last released one is *out of order*. It is released at once: after
what was already released, so in arrival order.

>>> from pipeline.core.records import Event
>>> from schemas.inbound import ClickEvent
>>> def ev(ts, eid):
...     return Event("clickstream.v1", ts, (), ClickEvent.model_construct(event_id=eid))
>>> a, b = ("clickstream.v1", 0), ("clickstream.v1", 1)
>>> s = Sequencer(grace_ms=100, slack_ms=5, live_ms=60_000)
>>> s.expect(a); s.expect(b)
>>> s.push(ev(20, "x"), a); s.push(ev(10, "y"), a); s.release()   # b has not spoken: hold everything
[]
>>> s.push(ev(21, "z"), b); [e.event_id for e in s.release()]  # both passed 10 + slack
['y']
>>> read = {"clickstream.v1": 40}  # a reader's position per topic
>>> s.caught_up([b], "r1", as_of_ms=10**12, positions=read); s.release()  # a holds at 20 - 5
[]
>>> s.caught_up([a], "r1", as_of_ms=10**12, positions=read); [e.event_id for e in s.release()]
['x', 'z']
>>> s.behind(ev(12, "late")), s.held                                    # 12 sorts before z: out of order
(True, 0)
"""
from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable

from pipeline.core.records import Event

Source = tuple[str, int]

_NEVER = -(2**63)
#: A reader silent this long (by the reports' own clock) is gone: its reports are dropped.
READER_GONE_MS = 600_000
#: Reports kept per reader: a marker is matched with each other reader's latest report as of its own time.
REPORTS_KEPT = 64
_BUFFER = ("_heap", "_order", "_added", "_removed")  # held events: changelog entries of their own, not in the sequencer entry


class Sequencer:
    def __init__(self, grace_ms: int, slack_ms: int, live_ms: int) -> None:
        self.grace_ms, self.slack_ms, self.live_ms = grace_ms, slack_ms, live_ms
        self.live = False  # the readers' positions were near the wall clock at the last marker
        self._latest: dict[Source, int | None] = {}  # None: expected, not heard yet
        self._floor: dict[Source, int] = {}  # caught-up promise: no event before this time
        self._idle: set[Source] = set()
        self._caught: set[Source] = set()  # reported caught up after the last event they delivered
        self._reports: dict[str, deque[tuple[int, dict[str, int]]]] = {}  # reader -> recent (as of, positions)
        self.last: tuple[int, str] | None = None  # (ts, event id) of the last event released
        self._init_buffer()

    def _init_buffer(self) -> None:
        self._heap: list[tuple[int, str, int, Event]] = []
        self._order = itertools.count()
        self._added: dict[str, Event] = {}  # held since the last ``take_changes``
        self._removed: set[str] = set()  # released since then (and held before it)

    @property
    def held(self) -> int:
        return len(self._heap)

    def expect(self, source: Source) -> None:
        """The driver now reads ``source``: hold everything until it delivers, is caught up or goes idle."""
        self._latest.setdefault(source, None)
        self._idle.discard(source)

    def behind(self, ev: Event) -> bool:
        """True when ``ev`` sorts before the last released event (it will be applied out of order)."""
        return self.last is not None and (ev.ts, ev.event_id) < self.last

    def push(self, ev: Event, source: Source) -> None:
        self._idle.discard(source)
        self._caught.discard(source)
        latest = self._latest.get(source)
        if latest is None or ev.ts > latest:
            self._latest[source] = ev.ts
        heapq.heappush(self._heap, (ev.ts, ev.event_id, next(self._order), ev))
        self._added[ev.event_id] = ev

    def caught_up(self, sources: Iterable[Source], reader: str, as_of_ms: int, positions: dict[str, int]) -> None:
        """``reader`` had delivered everything written to ``sources`` before wall time ``as_of_ms``, having read
        each topic in ``positions`` up to that event time by then. An idle source stays idle until it delivers."""
        if positions:
            self._reports.setdefault(reader, deque(maxlen=REPORTS_KEPT)).append((as_of_ms, positions))
        known: dict[str, int] = {}  # per topic, the highest position reported as of as_of_ms or before
        for gone in [r for r, reports in self._reports.items() if reports[-1][0] < as_of_ms - READER_GONE_MS]:
            del self._reports[gone]  # a worker that stopped (each start is a new reader)
        for reports in self._reports.values():
            reported = next((p for a, p in reversed(reports) if a <= as_of_ms), {})
            for topic, ts in reported.items():
                known[topic] = max(known.get(topic, ts), ts)
        if known:
            self.live = max(known.values()) >= as_of_ms - self.live_ms
        for source in sources:
            self._caught.add(source)
            self._latest.setdefault(source, None)
            floor = known[source[0]] + 1 - self.slack if source[0] in known else _NEVER
            if self.live:
                floor = max(floor, as_of_ms - self.grace_ms)
            if floor != _NEVER:
                self._floor[source] = max(self._floor.get(source, _NEVER), floor)

    def caught(self, source: Source) -> bool:
        """True when a reader reported ``source`` read to its end after the last event it delivered: its
        silence means it has nothing more (a source behind its reader is only slow, not idle)."""
        return source in self._caught

    def idle(self, sources: Iterable[Source]) -> None:
        """These sources went silent (or the input ended): stop waiting for them until they deliver again."""
        self._idle.update(s for s in sources if s in self._latest)

    @property
    def sources(self) -> list[Source]:
        return list(self._latest)

    @property
    def slack(self) -> int:
        return self.grace_ms if self.live else self.slack_ms

    def frontier(self) -> int | None:
        """Every event still to come is at or after this time (None: unknown, hold everything)."""
        low: int | None = None
        slack = self.slack
        for source, latest in self._latest.items():
            if source in self._idle:
                continue
            bound = max(_NEVER if latest is None else latest - slack, self._floor.get(source, _NEVER))
            if bound == _NEVER:
                return None
            low = bound if low is None else min(low, bound)
        return 2**63 - 1 if low is None else low

    def release(self) -> list[Event]:
        """Held events that sort before the frontier, in (event time, event id) order."""
        frontier = self.frontier()
        out: list[Event] = []
        heap = self._heap
        while heap and frontier is not None and heap[0][0] < frontier:
            ts, event_id, _, ev = heapq.heappop(heap)
            if self._added.pop(event_id, None) is None:
                self._removed.add(event_id)
            if self.last is None or (ts, event_id) > self.last:
                self.last = (ts, event_id)
            out.append(ev)
        return out

    # ---- persistence: the source state is one entry (pipeline.core.encoding); held events are entries ----

    def take_changes(self) -> dict[str, Event | None]:
        """``q/<event id>`` -> held event, or None once released; only what changed since the last call."""
        out: dict[str, Event | None] = {f"q/{k}": v for k, v in self._added.items()}
        out.update((f"q/{k}", None) for k in self._removed)
        self._added.clear()
        self._removed.clear()
        return out

    def restore_held(self, held: Iterable[Event]) -> None:
        for ev in held:
            heapq.heappush(self._heap, (ev.ts, ev.event_id, next(self._order), ev))

    def __getstate__(self) -> dict:
        """What the changelog keeps: each reader's latest report only (the entry is written at every batch; after a
        restart, markers speak of later times than any report before it)."""
        state = {k: v for k, v in self.__dict__.items() if k not in _BUFFER and k != "_caught"}
        state["_reports"] = {r: deque((reports[-1],), maxlen=REPORTS_KEPT) for r, reports in self._reports.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._caught = set()  # what readers reported before a restart says nothing of the readers after it
        self._init_buffer()
