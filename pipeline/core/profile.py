"""Per-customer state: behaviour, cart, emotion, consent; folding on merge; features and the profile record."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.records import to_dt
from schemas.outbound import ConsentChange, Profile

DAY_MS = 86_400_000
SESSION_GAP_MS = 30 * 60_000
KEEP_PURCHASES = 32
KEEP_CONSENT = 20
KEEP_CAUSES = 20
FAST, SLOW = 0.3, 0.05  # EWMA weights of the recent and long-run sentiment averages


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else old + alpha * (new - old)


@dataclass(slots=True)
class CartLine:
    quantity: int
    unit_price: float | None
    added_at: int


@dataclass(frozen=True, slots=True)
class Purchase:
    ts: int
    total: float
    channel: str
    event_id: str


@dataclass(slots=True)
class Abandoned:
    """The last cart_abandoned trigger, kept until a purchase recovers it or the recovery window ends."""

    trigger_id: str
    at: int
    value: float
    currency: str | None


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
    sessions: int = 0
    last_session: str | None = None
    last_click: int | None = None
    page_views: int = 0
    product_views: int = 0
    searches: int = 0
    cart: dict[str, CartLine] = field(default_factory=dict)
    cart_started: int | None = None
    cart_updated: int | None = None
    cart_episode: str | None = None
    cart_causes: list[str] = field(default_factory=list)
    carts_started: int = 0
    carts_abandoned: int = 0
    abandoned: Abandoned | None = None
    texts: int = 0
    sentiment_avg: float | None = None
    sentiment_long: float | None = None
    sentiment_last: float | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    consent_history: list[ConsentChange] = field(default_factory=list)
    churn_probability: float = 0.5
    churn_armed: bool = True
    churn_alerted_at: int | None = None
    last_snapshot: int | None = None
    fired: dict[str, list[int]] = field(default_factory=dict)

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

    @property
    def cart_value(self) -> float:
        return sum(line.quantity * (line.unit_price or 0.0) for line in self.cart.values())

    def add_to_cart(self, sku: str, quantity: int, price: float | None, ts: int, event_id: str, window_ms: int) -> bool:
        """Add a line; False when a purchase inside this add's window, read first, already settled it."""
        if self.purchased_between(ts - 1, ts + window_ms):
            return False
        if not self.cart:
            self.cart_started, self.cart_episode, self.cart_causes = ts, event_id, []
            self.carts_started += 1
        self.cart_started = min(self.cart_started or ts, ts)
        line = self.cart.setdefault(sku, CartLine(0, price, ts))
        line.quantity += quantity
        line.added_at = max(line.added_at, ts)
        if price is not None:
            line.unit_price = price
        self._cart_touched(ts, event_id)
        return True

    def remove_from_cart(self, sku: str, quantity: int, ts: int, event_id: str) -> None:
        line = self.cart.get(sku)
        if line is None:
            return
        line.quantity -= quantity
        if line.quantity <= 0:
            del self.cart[sku]
        if self.cart:
            self._cart_touched(ts, event_id)
        else:
            self.clear_cart()

    def _cart_touched(self, ts: int, event_id: str) -> None:
        self.cart_updated = ts if self.cart_updated is None else max(self.cart_updated, ts)
        self.cart_causes = (self.cart_causes + [event_id])[-KEEP_CAUSES:]

    def clear_cart(self) -> None:
        self.cart, self.cart_started, self.cart_updated, self.cart_episode, self.cart_causes = {}, None, None, None, []

    def purchase(self, p: Purchase, currency: str, window_ms: int) -> None:
        """Count a purchase; it settles the cart lines added before it if it falls inside the cart's window."""
        self.purchases += 1
        self.revenue += p.total
        self.currency = currency
        self.purchase_log = sorted(self.purchase_log + [p], key=lambda x: (x.ts, x.event_id))[-KEEP_PURCHASES:]
        if self.cart and self.cart_started is not None and self.cart_updated is not None \
                and self.cart_started <= p.ts <= self.cart_updated + window_ms:
            self.cart = {sku: line for sku, line in self.cart.items() if line.added_at > p.ts}
            if self.cart:
                self.cart_started = min(line.added_at for line in self.cart.values())
            else:
                self.clear_cart()

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

    def absorb(self, other: CustomerState) -> None:
        """Fold everything of a merged-away customer into this one."""
        self.first_seen, self.last_seen = min(self.first_seen, other.first_seen), max(self.last_seen, other.last_seen)
        self.channels |= other.channels
        for name in ("purchases", "returns", "revenue", "sessions", "page_views", "product_views", "searches",
                     "carts_started", "carts_abandoned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.currency = self.currency or other.currency
        self.purchase_log = sorted(self.purchase_log + other.purchase_log, key=lambda x: (x.ts, x.event_id))[-KEEP_PURCHASES:]
        if other.last_click is not None and (self.last_click is None or other.last_click > self.last_click):
            self.last_click, self.last_session = other.last_click, other.last_session
        self._absorb_cart(other)
        if other.abandoned and (self.abandoned is None or other.abandoned.at > self.abandoned.at):
            self.abandoned = other.abandoned
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
        self.churn_armed = self.churn_armed and other.churn_armed
        self.churn_alerted_at = max(filter(None, (self.churn_alerted_at, other.churn_alerted_at)), default=None)
        self.last_snapshot = max(filter(None, (self.last_snapshot, other.last_snapshot)), default=None)
        for kind, times in other.fired.items():
            self.fired[kind] = sorted(self.fired.get(kind, []) + times)

    def _absorb_cart(self, other: CustomerState) -> None:
        if not other.cart:
            return
        if not self.cart or (other.cart_started or 0) < (self.cart_started or 0):
            self.cart_started, self.cart_episode = other.cart_started, other.cart_episode
        for sku, line in other.cart.items():
            mine = self.cart.setdefault(sku, CartLine(0, line.unit_price, line.added_at))
            mine.quantity += line.quantity
            mine.added_at = max(mine.added_at, line.added_at)
        self.cart_updated = max(filter(None, (self.cart_updated, other.cart_updated)))
        self.cart_causes = sorted(set(self.cart_causes + other.cart_causes))[-KEEP_CAUSES:]

    # ---- features and output ---------------------------------------------------------------------

    def mean_interval_days(self) -> float | None:
        t = self.purchase_times
        return None if len(t) < 2 else (t[-1] - t[0]) / (len(t) - 1) / DAY_MS

    def recency_days(self, now: int) -> float | None:
        return None if not self.purchase_times else max(0.0, (now - self.purchase_times[-1]) / DAY_MS)

    def features(self, now: int) -> dict[str, float]:
        """Churn-model inputs at event time ``now`` (only what is known by then)."""
        t = [x for x in self.purchase_times if x <= now]
        interval = None if len(t) < 2 else (t[-1] - t[0]) / (len(t) - 1) / DAY_MS
        last_gap = None if len(t) < 2 else (t[-1] - t[-2]) / DAY_MS
        return {
            "recency_days": (now - t[-1]) / DAY_MS if t else (now - self.first_seen) / DAY_MS,
            "purchases": float(len(t)),
            "monetary": self.revenue / max(1, self.purchases),
            "mean_interpurchase_days": interval or 0.0,
            "interval_trend": (last_gap / interval) if interval and last_gap is not None else 1.0,
            "tenure_days": (now - self.first_seen) / DAY_MS,
            "sessions": float(self.sessions),
            "cart_abandon_rate": self.carts_abandoned / self.carts_started if self.carts_started else 0.0,
            "sentiment_avg": self.sentiment_avg or 0.0,
            "sentiment_trend": (self.sentiment_avg - self.sentiment_long) if self.texts > 1 else 0.0,
            "returns": float(self.returns),
        }

    def journey_stage(self) -> str:
        if self.purchases >= 2:
            return "retention"
        if self.purchases == 1:
            return "purchase"
        return "consideration" if self.carts_started or self.product_views or self.searches else "awareness"

    def to_profile(self, as_of: int, identifier_counts: dict[str, int], churn_version: str) -> Profile:
        r = round
        return Profile(
            customer_id=self.customer_id, as_of=to_dt(as_of), first_seen_at=to_dt(self.first_seen),
            last_seen_at=to_dt(self.last_seen), journey_stage=self.journey_stage(), channels=sorted(self.channels),
            identifier_counts=identifier_counts,
            recency_days=None if (d := self.recency_days(as_of)) is None else r(d, 3),
            tenure_days=r((as_of - self.first_seen) / DAY_MS, 3), purchases=self.purchases, returns=self.returns,
            revenue=r(self.revenue, 2), currency=self.currency,
            avg_order_value=r(self.revenue / self.purchases, 2) if self.purchases else None,
            mean_interpurchase_days=None if (m := self.mean_interval_days()) is None else r(m, 3),
            sessions=self.sessions, page_views=self.page_views, product_views=self.product_views, searches=self.searches,
            cart_items=sum(line.quantity for line in self.cart.values()), cart_value=r(self.cart_value, 2),
            carts_started=self.carts_started, carts_abandoned=self.carts_abandoned,
            cart_abandonment_rate=r(self.carts_abandoned / self.carts_started, 4) if self.carts_started else None,
            texts_scored=self.texts,
            sentiment_avg=None if self.sentiment_avg is None else r(self.sentiment_avg, 4),
            sentiment_last=self.sentiment_last,
            sentiment_trend=r(self.sentiment_avg - self.sentiment_long, 4) if self.texts > 1 else None,
            contactable=self.contactable, consent=dict(self.consent), consent_history=list(self.consent_history),
            churn_probability=r(self.churn_probability, 6), churn_model_version=churn_version,
        )
