"""``rapport generate``: seeded, realistic multi-channel customer journeys, to a JSONL file or to Kafka.

Each simulated person browses anonymously, adds to carts, logs in, buys on the web or in a store
(loyalty card, the same email or phone written differently), writes reviews and notes in Korean or
English, changes consent, and eventually may go quiet (churn). A small share of events is malformed
or duplicated. The same seed gives the same file.
"""
from __future__ import annotations

import heapq
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson

from pipeline.drivers.texts import note_text, review_text

KST = timezone(timedelta(hours=9))
OFFSETS = [KST] * 8 + [timezone.utc, timezone(timedelta(hours=-5))]
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SKUS = [f"SKU-{i:04d}" for i in range(1, 121)]
PRICE = {sku: random.Random(sku).randrange(99, 1890) * 100 for sku in SKUS}  # KRW, whole hundreds


@dataclass(order=True)
class Generated:
    """One record to send: arrival order is ``at`` (event time plus any transport delay)."""

    at: int
    seq: int
    topic: str = field(compare=False)
    key: str | None = field(compare=False)
    value: dict | str = field(compare=False)

    def line(self) -> bytes:
        return orjson.dumps({"topic": self.topic, "key": self.key, "value": self.value}) + b"\n"

    def key_bytes(self) -> bytes | None:
        return None if self.key is None else self.key.encode()

    def value_bytes(self) -> bytes:
        """A string value is the record's raw bytes (how malformed input is written down)."""
        return self.value.encode() if isinstance(self.value, str) else orjson.dumps(self.value)


@dataclass
class Person:
    n: int
    rng: random.Random
    language: str
    mood: float  # -1 (unhappy) .. 1 (happy)
    rhythm_days: float
    quits_at: int | None
    user_id: str
    email: str
    phone: str
    loyalty_id: str | None
    cookies: list[str]
    device_id: str | None

    def email_variant(self) -> str:
        return self.rng.choice([self.email, self.email.upper(), f"  {self.email.title()} ", self.email.capitalize()])

    def phone_variant(self) -> str:
        d = self.phone  # 010XXXXXXXX
        return self.rng.choice([f"{d[:3]}-{d[3:7]}-{d[7:]}", f"+82 {d[1:3]}-{d[3:7]}-{d[7:]}", d, f"+82{d[1:]}"])


class Journeys:
    def __init__(self, seed: int, start: datetime, days: float, malformed: float, duplicates: float,
                 namespace: str = "") -> None:
        self.rng = random.Random(f"{seed}:{namespace}")
        self.seed = seed
        self.namespace = namespace or str(seed)
        self.start = int(start.timestamp() * 1000)
        self.end = self.start + int(days * DAY)
        self.malformed, self.duplicates = malformed, duplicates
        self.out: list[Generated] = []
        self._seq = 0
        self._ids = 0

    # ---- low-level emitters ----------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self.namespace}-{self._ids:07d}"

    def _stamp(self, ts: int) -> str:
        tz = self.rng.choice(OFFSETS)
        return datetime.fromtimestamp(ts / 1000, tz).isoformat(timespec="milliseconds")

    def emit(self, ts: int, topic: str, ids: dict, body: dict) -> dict:
        value = {"event_id": self._id("ev"), "occurred_at": self._stamp(ts), "identifiers": ids, **body}
        key = ids.get("user_id") or ids.get("anonymous_id") or ids.get("loyalty_id")
        delay = self.rng.choice([0] * 18 + [self.rng.randrange(1, 90_000), self.rng.randrange(90_000, 240_000)])
        self._push(ts + delay, topic, key, value)
        if self.rng.random() < self.duplicates:
            self._push(ts + delay + self.rng.randrange(1, 600_000), topic, key, value)
        if self.rng.random() < self.malformed:
            self._push(ts + delay, topic, key, self._break(value))
        return value

    def _push(self, at: int, topic: str, key: str | None, value: dict | str) -> None:
        self._seq += 1
        self.out.append(Generated(at, self._seq, topic, key, value))

    def _break(self, value: dict) -> dict | str:
        broken = orjson.loads(orjson.dumps(value))
        broken["event_id"] = self._id("bad")
        how = self.rng.randrange(5)
        if how == 0:
            return orjson.dumps(broken).decode()[:-7]  # truncated JSON
        if how == 1:
            del broken["occurred_at"]
        elif how == 2:
            broken["type"] = "teleport" if "type" in broken else 17
        elif how == 3:
            broken["occurred_at"] = broken["occurred_at"][:19]  # no UTC offset
        else:
            broken["identifiers"] = {"anonymous_id": "undefined"}  # a placeholder links nothing
        return broken

    # ---- people and journeys ---------------------------------------------------------------------

    def person(self, n: int) -> Person:
        rng = random.Random(f"{self.seed}:{n}")
        quits = self.start + int(rng.uniform(0.2, 1.0) * (self.end - self.start)) if rng.random() < 0.35 else None
        return Person(
            n=n, rng=rng, language="ko" if rng.random() < 0.6 else "en", mood=rng.uniform(-1, 1),
            rhythm_days=rng.choice([3, 7, 14, 30, 45]), quits_at=quits, user_id=f"u{self.seed}-{n:06d}",
            email=f"member{n}.s{self.seed}@example.co.kr", phone=f"010{rng.randrange(10**8):08d}",
            loyalty_id=f"L{self.seed}{n:07d}" if rng.random() < 0.6 else None,
            cookies=[f"anon-{self.seed}-{n}-{k}" for k in range(rng.randint(1, 3))],
            device_id=f"dev-{self.seed}-{n}" if rng.random() < 0.4 else None,
        )

    def journey(self, p: Person) -> None:
        t = self.start + int(self.rng.uniform(0, p.rhythm_days) * DAY)
        end = min(self.end, p.quits_at or self.end)
        withdraws = self.rng.random() < 0.1
        while t < end:
            self.visit(p, t)
            if withdraws and self.rng.random() < 0.15:
                self.emit(t + 5 * MIN, "consent.v1", {"user_id": p.user_id},
                          {"purpose": "marketing", "granted": self.rng.random() < 0.3})
            t += int(self.rng.expovariate(1 / (p.rhythm_days / 2)) * DAY) + 30 * MIN

    def visit(self, p: Person, t: int) -> None:
        rng = self.rng
        anon = {"anonymous_id": rng.choice(p.cookies)}
        if p.device_id and rng.random() < 0.5:
            anon["device_id"] = p.device_id
        session = self._id("s")
        if p.loyalty_id and rng.random() < 0.2:  # a store visit without going online first
            self.store_purchase(p, t, [rng.choice(SKUS)])
            return
        for _ in range(rng.randint(1, 4)):
            t += rng.randrange(10_000, 3 * MIN)
            kind = rng.choice(["page_view", "product_view", "product_view", "search"])
            body: dict = {"type": kind, "session_id": session, "url": f"https://shop.example.kr/{kind}"}
            if kind == "product_view":
                sku = rng.choice(SKUS)
                body["product"] = {"sku": sku, "price": PRICE[sku], "quantity": 1}
            if kind == "search":
                body["query"] = rng.choice(["원피스", "운동화", "가방", "coat", "sneakers", "선물"])
            self.emit(t, "clickstream.v1", anon, body)
        if rng.random() < 0.45:
            return
        skus = rng.sample(SKUS, rng.randint(1, 3))
        for sku in skus:
            t += rng.randrange(10_000, 2 * MIN)
            self.emit(t, "clickstream.v1", anon, {"type": "add_to_cart", "session_id": session,
                                                  "product": {"sku": sku, "price": PRICE[sku], "quantity": 1}})
        fate = rng.random()
        if fate < 0.45:  # log in and buy on the web
            t += rng.randrange(MIN, 5 * MIN)
            self.emit(t, "clickstream.v1", {**anon, "user_id": p.user_id}, {"type": "login", "session_id": session})
            self.emit(t + 30_000, "clickstream.v1", {"user_id": p.user_id}, {"type": "checkout_started", "session_id": session})
            total = float(sum(PRICE[s] for s in skus))
            order_ids = {"user_id": p.user_id, "email": p.email_variant()}
            self.emit(t + 2 * MIN, "clickstream.v1", order_ids, {"type": "order_completed", "session_id": session,
                      "order": {"order_id": self._id("o"), "total": total, "currency": "KRW"}})
            self.after_purchase(p, t + 2 * MIN)
        elif fate < 0.65 and p.loyalty_id:  # log in, leave, then buy in a store (cancels or recovers the cart)
            t += rng.randrange(MIN, 5 * MIN)
            self.emit(t, "clickstream.v1", {**anon, "user_id": p.user_id, "email": p.email_variant()},
                      {"type": "login", "session_id": session})
            later = t + rng.choice([rng.randrange(5 * MIN, 25 * MIN), rng.randrange(2 * HOUR, 30 * HOUR)])
            self.store_purchase(p, later, skus)
        # else: the cart is abandoned for good

    def store_purchase(self, p: Person, t: int, skus: list[str]) -> None:
        rng = self.rng
        ids = {"loyalty_id": p.loyalty_id}
        if rng.random() < 0.6:
            ids["email"] = p.email_variant()
        else:
            ids["phone"] = p.phone_variant()
        items = [{"sku": s, "quantity": 1, "unit_price": float(PRICE[s])} for s in skus]
        self.emit(t, "pos.v1", ids, {
            "type": "purchase", "transaction_id": self._id("tx"), "store_id": rng.choice(["GANGNAM-01", "HONGDAE-02", "BUSAN-03"]),
            "items": items, "total": float(sum(PRICE[s] for s in skus)), "currency": "KRW",
            "payment_method": rng.choice(["card", "cash", "kakaopay", "naverpay"]),
            **({"discount_code": "WELCOME10"} if rng.random() < 0.1 else {}),
        })
        self.after_purchase(p, t)

    def after_purchase(self, p: Person, t: int) -> None:
        rng = self.rng
        tone = self.tone(p)
        if rng.random() < 0.35:
            rating = {"positive": rng.choice([4, 5, 5]), "neutral": 3, "negative": rng.choice([1, 1, 2])}[tone]
            channel = rng.choice(["web", "app"])
            body = {"review_id": self._id("r"), "channel": channel, "text": review_text(rng, p.language, tone),
                    "sku": rng.choice(SKUS)}
            if rng.random() < 0.7:
                body["rating"] = rating
            if rng.random() < 0.3:
                body["language"] = p.language
            self.emit(t + rng.randrange(HOUR, 3 * DAY), "reviews.v1", {"user_id": p.user_id}, body)
        if rng.random() < 0.08:
            channel = rng.choice(["call_center", "chat", "sns"])
            text = note_text(rng, p.language, tone) if channel == "call_center" else review_text(rng, p.language, tone)
            ids = {"phone": p.phone_variant()} if channel == "call_center" else {"user_id": p.user_id}
            self.emit(t + rng.randrange(HOUR, 5 * DAY), "reviews.v1", ids,
                      {"review_id": self._id("r"), "channel": channel, "text": text})

    def tone(self, p: Person) -> str:
        x = p.mood + self.rng.gauss(0, 0.6)
        return "positive" if x > 0.25 else "negative" if x < -0.35 else "neutral"


def generate(seed: int = 7, customers: int = 500, start: datetime | None = None, days: float = 30.0,
             malformed: float = 0.01, duplicates: float = 0.01, first_customer: int = 0) -> list[Generated]:
    """All records of ``customers`` people over ``days``, in arrival order."""
    start = start or datetime(2026, 10, 1, tzinfo=KST)
    j = Journeys(seed, start, days, malformed, duplicates, namespace=f"{seed}.{first_customer}" if first_customer else "")
    for n in range(first_customer, first_customer + customers):
        j.journey(j.person(n))
    heapq.heapify(j.out)
    return [heapq.heappop(j.out) for _ in range(len(j.out))]


def live_stream(seed: int, chunk_customers: int = 50) -> Iterator[Generated]:
    """An endless stream of journeys, chunk after chunk (for sending to Kafka at a rate)."""
    chunk = 0
    while True:
        yield from generate(seed, chunk_customers, days=1.0, first_customer=chunk * chunk_customers)
        chunk += 1


def restamp(g: Generated, now_ms: int) -> Generated:
    """The record with its event time moved to ``now`` (live traffic), in Korean time."""
    if isinstance(g.value, dict) and "occurred_at" in g.value:
        value = {**g.value, "occurred_at": datetime.fromtimestamp(now_ms / 1000, KST).isoformat(timespec="milliseconds")}
        return Generated(now_ms, g.seq, g.topic, g.key, value)
    return g


def pace(records: Iterator[Generated], rate: float, count: int | None) -> Iterator[Generated]:
    """Yield at most ``count`` records at ``rate`` per second, restamped to the wall clock."""
    interval, next_at = 1.0 / rate, time.monotonic()
    for n, g in enumerate(records):
        if count is not None and n >= count:
            return
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at += interval
        yield restamp(g, int(time.time() * 1000))
