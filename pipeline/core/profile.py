"""Per-customer state: behaviour, cart, emotion, consent; folding on merge; features and the profile record."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from pipeline.core.cart import Carts
from pipeline.core.records import construct, set_fields, shallow_copy, to_dt
from schemas.outbound import ConsentChange, Profile

DAY_MS = 86_400_000
SESSION_GAP_MS = 30 * 60_000
KEEP_PURCHASES = 32
KEEP_CONSENT = 20
CHURN_WINDOWS_DAYS = (30, 90, 180, 365)  # purchase count and spend windows of the churn features
KEEP_RECENT_EVENTS = 32
FAST, SLOW = 0.3, 0.05  # EWMA weights of the recent and long-run sentiment averages


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else old + alpha * (new - old)


@dataclass(frozen=True, slots=True)
class Purchase:
    ts: int
    total: float
    channel: str
    event_id: str
    linked_at: int | None = None  # event time from which it was known to be this customer's (after a merge)


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    first_seen: int
    last_seen: int
    channels: set[str] = field(default_factory=set)
    purchases: int = 0
    returns: int = 0
    revenue: float = 0.0
    currency: str | None = None
    purchase_log: list[Purchase] = field(default_factory=list)
    first_purchase: int | None = None  # event time of the first purchase ever (the log keeps only the latest)
    sessions: int = 0
    last_session: str | None = None
    last_click: int | None = None
    page_views: int = 0
    product_views: int = 0
    searches: int = 0
    carts: Carts = field(default_factory=Carts)
    carts_started: int = 0
    carts_abandoned: int = 0
    texts: int = 0
    sentiment_avg: float | None = None
    sentiment_long: float | None = None
    sentiment_last: float | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    consent_history: list[ConsentChange] = field(default_factory=list)
    churn_probability: float = 0.5
    churn_high: bool = False  # at or above the alert threshold, until below the re-arm level (its profile's news)
    last_snapshot: int | None = None
    scored_at: int | None = None  # event time of the latest churn score (an event, or a quiet period's timer)
    fired: dict[str, list[int]] = field(default_factory=dict)
    triggers: dict[str, Any] = field(default_factory=dict)  # trigger type -> its module's state (``absorb``s)
    recent_events: deque[str] = field(default_factory=lambda: deque(maxlen=KEEP_RECENT_EVENTS))
    suppressed: bool = False  # a privacy request stopped its processing: no trigger, no profile
    profiled_at: int | None = None  # event time of the latest profile sent (coalescing: ``CustomerStage._touched``)
    profile_due: int | None = None  # the changes since then go out in one profile when the watermark passes this

    def __setstate__(self, state: tuple | dict) -> None:
        set_fields(self, state[1] if isinstance(state, tuple) else state)  # (None, slots) from object.__getstate__

    def checkpoint(self) -> tuple[tuple, tuple]:
        """What ``rewind`` needs to undo a failed change, cheaply: a change replaces the purchase log, the
        consent history and ``fired``'s lists rather than mutating them, so they are shared; the containers a
        change mutates in place are copied (the trigger modules' states shallowly: see ``triggers.base``).

        >>> st = CustomerState("c", 0, 0)
        >>> cp = st.checkpoint(); st.touch(5, "web"); st.purchases += 1
        >>> st.rewind(cp); (st.last_seen, st.channels, st.purchases)
        (0, set(), 0)
        """
        return _values(self), (set(self.channels), dict(self.fired), self.recent_events.copy(), self.carts.copy(),
                               {name: shallow_copy(state) for name, state in self.triggers.items()})

    def rewind(self, checkpoint: tuple[tuple, tuple]) -> None:
        values, (channels, fired, recent, carts, triggers) = checkpoint
        for name, value in zip(_FIELDS, values, strict=True):
            setattr(self, name, value)
        self.channels, self.fired, self.recent_events, self.carts = channels, fired, recent, carts
        self.triggers = triggers

    def first_time(self, event_id: str) -> bool:
        """Remember an applied event; False if it was applied already (e.g. re-read after a restart)."""
        if event_id in self.recent_events:
            return False
        self.recent_events.append(event_id)
        return True

    # ---- behaviour -------------------------------------------------------------------------------

    def touch(self, ts: int, channel: str) -> None:
        self.first_seen = min(self.first_seen, ts)
        self.last_seen = max(self.last_seen, ts)
        self.channels.add(channel)

    def visit(self, ts: int, session_id: str | None) -> None:
        """Count a session when the session id changes, or after 30 idle minutes without one."""
        if session_id is not None:
            new = session_id != self.last_session
            self.last_session = session_id
        else:
            new = self.last_click is None or ts - self.last_click > SESSION_GAP_MS
        self.sessions += new
        self.last_click = ts if self.last_click is None else max(self.last_click, ts)

    def add_to_cart(self, sku: str, quantity: int, price: float | None, ts: int, event_id: str, window: int) -> None:
        """Add a line to its episode; purchases already read settle it as if they had come after it."""
        self.carts_started += self.carts.add(sku, quantity, price, ts, event_id, window)
        self._settle(window, since=ts)

    def _settle(self, window: int, since: int | None = None) -> None:
        """Let the purchases read so far settle cart lines that arrived after them (from ``since`` on)."""
        for p in self.purchase_log:
            if since is None or p.ts >= since:
                self.carts.settle(p.ts, window, p.linked_at)

    def purchase(self, p: Purchase, currency: str, window: int) -> None:
        """Count a purchase; it settles the cart lines added before it inside an episode's window."""
        self.purchases += 1
        self.revenue += p.total
        self.currency = currency
        self.first_purchase = p.ts if self.first_purchase is None else min(self.first_purchase, p.ts)
        self.purchase_log = sorted(self.purchase_log + [p], key=lambda x: (x.ts, x.event_id))[-KEEP_PURCHASES:]
        self.carts.settle(p.ts, window)

    @property
    def purchase_times(self) -> list[int]:
        return [p.ts for p in self.purchase_log]

    def returned(self, total: float) -> None:
        self.returns += 1
        self.revenue -= total

    def purchased_between(self, after: int, until: int) -> bool:
        return any(after < t <= until for t in self.purchase_times)

    # ---- emotion and consent ---------------------------------------------------------------------

    def text_scored(self, score: float) -> None:
        self.texts += 1
        self.sentiment_last = score
        self.sentiment_avg = _ewma(self.sentiment_avg, score, FAST)
        self.sentiment_long = _ewma(self.sentiment_long, score, SLOW)

    def consent_changed(self, change: ConsentChange) -> None:
        history = sorted(self.consent_history + [change], key=lambda c: (c.at, c.event_id))[-KEEP_CONSENT:]
        self.consent_history = history
        self.consent = {}
        for c in history:  # the latest change per purpose, in event time, wins
            self.consent[c.purpose] = c.granted

    @property
    def contactable(self) -> bool:
        return self.consent.get("marketing", True)

    # ---- merge -----------------------------------------------------------------------------------

    def absorb(self, other: CustomerState, window: int, at: int) -> None:
        """Fold everything of a customer merged away at event time ``at`` into this one."""
        self.first_seen, self.last_seen = min(self.first_seen, other.first_seen), max(self.last_seen, other.last_seen)
        self.channels |= other.channels
        for name in ("purchases", "returns", "revenue", "sessions", "page_views", "product_views", "searches",
                     "carts_started", "carts_abandoned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.currency = self.currency or other.currency
        self.first_purchase = min((t for t in (self.first_purchase, other.first_purchase) if t is not None), default=None)
        linked = [replace(p, linked_at=max(p.linked_at or p.ts, at)) for p in other.purchase_log]
        self.purchase_log = sorted(self.purchase_log + linked, key=lambda x: (x.ts, x.event_id))[-KEEP_PURCHASES:]
        if other.last_click is not None and (self.last_click is None or other.last_click > self.last_click):
            self.last_click, self.last_session = other.last_click, other.last_session
        self.carts.absorb(other.carts, window)
        self._settle(window)
        if other.texts:
            total = self.texts + other.texts
            for name in ("sentiment_avg", "sentiment_long"):
                mine, theirs = getattr(self, name), getattr(other, name)
                setattr(self, name, theirs if mine is None else (mine * self.texts + theirs * other.texts) / total)
            self.texts = total
            self.sentiment_last = self.sentiment_last if self.sentiment_last is not None else other.sentiment_last
        for change in other.consent_history:
            self.consent_changed(change)
        self.churn_probability = max(self.churn_probability, other.churn_probability)
        self.churn_high = self.churn_high or other.churn_high
        for name, theirs in other.triggers.items():  # each trigger module's own state folds itself
            mine = self.triggers.get(name)
            self.triggers[name] = theirs if mine is None else mine.absorb(theirs)
        self.last_snapshot = max(filter(None, (self.last_snapshot, other.last_snapshot)), default=None)
        self.scored_at = max(filter(None, (self.scored_at, other.scored_at)), default=None)
        for kind, times in other.fired.items():
            self.fired[kind] = sorted(self.fired.get(kind, []) + times)

    # ---- features and output ---------------------------------------------------------------------

    def mean_interval_days(self) -> float | None:
        t = self.purchase_times
        return None if len(t) < 2 else (t[-1] - t[0]) / (len(t) - 1) / DAY_MS

    def recency_days(self, now: int) -> float | None:
        return None if not self.purchase_times else max(0.0, (now - self.purchase_times[-1]) / DAY_MS)

    def features(self, now: int) -> dict[str, float]:
        """Churn-model inputs at event time ``now``: only purchases at or before ``now`` count.

        Counts, spend and gaps come from the purchase log (the latest ``KEEP_PURCHASES``); a window
        longer than the log reaches is a lower bound (32 or more purchases in it). Lifetime count,
        revenue and the first purchase time are exact. Heavy-tailed values are log-transformed, ratios
        bounded, so that an online logistic regression over standardised inputs learns them well.
        """
        if not self.purchase_log and not self.purchases:
            return self._features_before_buying(now)
        return self._features_bought(now)

    def _features_bought(self, now: int) -> dict[str, float]:
        log = self.purchase_log
        if log and log[-1].ts > now:  # purchases after ``now`` (a late event's score) are all in the log
            log = [p for p in log if p.ts <= now]
        later = len(self.purchase_log) - len(log)
        n = max(len(log), self.purchases - later)  # purchases up to now
        first = self.first_purchase if self.first_purchase is not None and self.first_purchase <= now else None
        if log and first is None:
            first = log[0].ts
        last = log[-1].ts if log else None
        recency = (now - (last if last is not None else self.first_seen)) / DAY_MS
        tenure = (now - (first if first is not None else self.first_seen)) / DAY_MS
        span = (last - first) / DAY_MS if log and first is not None else 0.0  # BG/NBD's t_x
        repeat = max(0, n - 1)  # BG/NBD's x
        ln = math.log1p
        gap_mean = gap_cv = 0.0
        if len(log) > 1:
            gaps = [(b.ts - a.ts) / DAY_MS for a, b in zip(log, log[1:])]
            gap_mean = sum(gaps) / len(gaps)
            if len(gaps) > 1 and gap_mean > 0:
                gap_cv = min(3.0, math.sqrt(sum((g - gap_mean) ** 2 for g in gaps) / len(gaps)) / gap_mean)
        revenue = max(0.0, self.revenue - sum(p.total for p in self.purchase_log[len(log):]))
        log_recency = ln(recency)
        x = {  # the raw day and purchase counts are for the recency prior; the learner takes the logs
            "recency_days": recency,
            "purchases": float(n),
            "log_recency": log_recency,
            "log_purchases": ln(n),
            "log_tenure": ln(tenure),
            "log_active_span": ln(span),
            "log_revenue": ln(revenue),
            "log_order_value": ln(revenue / n) if n else 0.0,
            "log_mean_gap": ln(gap_mean),
            "gap_cv": gap_cv,
            "log_recency_over_rhythm": ln(recency / max(1.0, gap_mean)) if len(log) > 1 else 0.0,
            "log_missed_purchases": ln(recency * repeat / max(1.0, span)) if repeat else 0.0,
            "repeat_buyer": 1.0 if repeat else 0.0,
            "rate_90d": 90.0 * repeat / (tenure + 30.0),
            "log_recency_x_log_repeat": log_recency * ln(repeat),
        }
        # Disjoint windows back from now: (0, 30], (30, 90], (90, 180], (180, 365] days, and before. Disjoint,
        # so that what a young customer base never shows (purchases over a year old) has a weight of its
        # own, which stays near 0 until labels inform it, instead of shifting the weights of the others.
        # Purchases older than the log (a customer with more than KEEP_PURCHASES) count in the window of
        # the oldest one it holds: they are at least that old.
        counts = [0] * len(_WINDOW_NAMES)
        spend_90 = spend_365 = 0.0
        for p in log:
            age = now - p.ts
            counts[_window(age)] += 1
            if age < 365 * DAY_MS:  # (``p.ts > now - days``, as ages are whole milliseconds)
                spend_365 += p.total
                if age < 90 * DAY_MS:
                    spend_90 += p.total
        if log:
            counts[_window(now - log[0].ts)] += n - len(log)
        for name, c in zip(_WINDOW_NAMES, counts):
            x[name] = ln(c)
        x["log_spend_0_90d"] = ln(spend_90)
        x["log_spend_90_365d"] = ln(spend_365 - spend_90)
        x["log_spend_before_365d"] = ln(max(0.0, revenue - spend_365))
        return self._behaviour(x)

    def _behaviour(self, x: dict[str, float]) -> dict[str, float]:
        """The features that do not depend on purchases, added to ``x``."""
        x["log_sessions"] = math.log1p(self.sessions)
        x["cart_abandon_rate"] = self.carts_abandoned / self.carts_started if self.carts_started else 0.0
        x["sentiment_avg"] = self.sentiment_avg or 0.0
        x["sentiment_trend"] = (self.sentiment_avg - self.sentiment_long) if self.texts > 1 else 0.0  # type: ignore[operator]
        x["log_returns"] = math.log1p(self.returns)
        return x

    def _features_before_buying(self, now: int) -> dict[str, float]:
        """``features`` of a customer who never bought, which most events are of: the same values, without the
        purchase log's arithmetic.

        >>> st = CustomerState("c", 0, 0, sessions=2, carts_started=1, carts_abandoned=1, returns=1, revenue=-3.0)
        >>> st._features_before_buying(5 * DAY_MS) == st._features_bought(5 * DAY_MS)
        True
        """
        recency = (now - self.first_seen) / DAY_MS
        ln = math.log1p
        log_recency, log_revenue = ln(recency), ln(max(0.0, self.revenue))
        x = dict(_NOT_BOUGHT)
        x["recency_days"], x["log_recency"], x["log_tenure"] = recency, log_recency, log_recency
        x["log_revenue"], x["log_spend_before_365d"] = log_revenue, log_revenue
        x["rate_90d"] = 0.0 / (recency + 30.0)
        x["log_recency_x_log_repeat"] = log_recency * 0.0
        return self._behaviour(x)

    def journey_stage(self) -> str:
        if self.purchases >= 2:
            return "retention"
        if self.purchases == 1:
            return "purchase"
        return "consideration" if self.carts_started or self.product_views or self.searches else "awareness"

    def as_of(self) -> int:
        """Event time of its latest event or churn score (what its profile is as of)."""
        return max(self.last_seen, self.scored_at or self.last_seen)

    def to_profile(self, as_of: int, identifier_counts: dict[str, int], churn_version: str) -> Profile:
        r = round
        return construct(  # our own record, built from typed state: no second validation
            Profile,
            customer_id=self.customer_id, as_of=to_dt(as_of), first_seen_at=to_dt(self.first_seen),
            last_seen_at=to_dt(self.last_seen), journey_stage=self.journey_stage(), channels=sorted(self.channels),
            identifier_counts=identifier_counts,
            recency_days=None if (d := self.recency_days(as_of)) is None else r(d, 3),
            tenure_days=r((as_of - self.first_seen) / DAY_MS, 3), purchases=self.purchases, returns=self.returns,
            revenue=r(self.revenue, 2), currency=self.currency,
            avg_order_value=r(self.revenue / self.purchases, 2) if self.purchases else None,
            mean_interpurchase_days=None if (m := self.mean_interval_days()) is None else r(m, 3),
            sessions=self.sessions, page_views=self.page_views, product_views=self.product_views, searches=self.searches,
            cart_items=self.carts.quantity, cart_value=r(self.carts.value, 2),
            carts_started=self.carts_started, carts_abandoned=self.carts_abandoned,
            cart_abandonment_rate=r(self.carts_abandoned / self.carts_started, 4) if self.carts_started else None,
            texts_scored=self.texts,
            sentiment_avg=None if self.sentiment_avg is None else r(self.sentiment_avg, 4),
            sentiment_last=self.sentiment_last,
            sentiment_trend=r(self.sentiment_avg - self.sentiment_long, 4) if self.texts > 1 else None,
            contactable=self.contactable, consent=dict(self.consent), consent_history=list(self.consent_history),
            churn_probability=r(self.churn_probability, 6), churn_model_version=churn_version,
        )


_EDGES = (0, *CHURN_WINDOWS_DAYS)
_WINDOW_NAMES = (*(f"log_purchases_{lo}_{hi}d" for lo, hi in zip(_EDGES, _EDGES[1:])), f"log_purchases_before_{_EDGES[-1]}d")
_UPPER_MS = tuple(days * DAY_MS for days in CHURN_WINDOWS_DAYS)


def _window(age_ms: int) -> int:
    """The churn window an age falls in (an index into ``_WINDOW_NAMES``)."""
    for i, hi in enumerate(_UPPER_MS):
        if age_ms < hi:
            return i
    return len(_UPPER_MS)


#: ``features`` of a customer who never bought, in their order; ``_features_before_buying`` fills the rest in.
_NOT_BOUGHT = dict.fromkeys(CustomerState("", 0, 0)._features_bought(DAY_MS), 0.0)
_FIELDS = CustomerState.__slots__
_values = attrgetter(*_FIELDS)
