"""Scripted journeys through the whole core, without a broker."""
import math
from datetime import timedelta

import orjson

from schemas.outbound import OUTBOUND
from tests.helpers import add, click, consent, make_engine, of, order, pos, raw, event, review, run

ANON = {"anonymous_id": "cookie-1"}
TICK = {"anonymous_id": "someone-else"}  # moves event time on, as other customers' traffic does


def test_cart_abandoned_fires_once_when_the_watermark_passes_the_window(engine):
    out = run(engine, add(0, ANON, "SKU-1", 25000, 2), add(1, ANON, "SKU-2", 9900))
    assert of(out, "triggers.cart_abandoned.v1") == []
    out = run(engine, click(31 + 5, TICK, "page_view"))  # window 30 min + lateness 5 min
    [t] = of(out, "triggers.cart_abandoned.v1")
    assert t.evidence.cart_value == 59900 and t.evidence.item_count == 3 and t.evidence.currency == "KRW"
    assert t.occurred_at.isoformat() == "2026-11-22T01:31:00+00:00"  # last activity + 30 min, in event time
    assert len(t.cause_event_ids) == 2 and "30 minutes" in t.reason and t.contactable
    assert of(run(engine, click(120, TICK, "page_view")), "triggers.cart_abandoned.v1") == []


def test_purchase_within_the_window_cancels_the_cart(engine):
    out = run(engine, add(0, ANON), order(10, ANON), click(200, TICK, "page_view"))
    assert of(out, "triggers.cart_abandoned.v1") == []


def test_store_purchase_by_loyalty_card_cancels_a_web_cart_once_identity_links_them(engine):
    out = run(
        engine,
        add(0, ANON, "SKU-9", 50000),
        click(2, {**ANON, "user_id": "minjun", "email": "minjun.kim@example.com"}, "login"),
        pos(20, {"loyalty_id": "L-777", "email": "  MinJun.Kim@Example.COM "}, 50000),
        click(200, TICK, "page_view"),
    )
    assert of(out, "triggers.cart_abandoned.v1") == []
    profiles = {p.customer_id: p for p in of(out, "profiles.v1") if p is not None}
    [buyer] = [p for p in profiles.values() if p.purchases]
    assert buyer.channels == ["store", "web"] and buyer.identifier_counts == {
        "user_id": 1, "email": 1, "anonymous_id": 1, "loyalty_id": 1}


def test_purchase_after_the_trigger_is_a_recovery(engine):
    run(engine, add(0, ANON, "SKU-1", 30000), click(40, TICK, "page_view"))
    out = run(engine, order(90, ANON, 30000))
    [r] = of(out, "triggers.cart_recovered.v1")
    assert r.evidence.recovered_value == 30000 and r.evidence.minutes_after_trigger == 60
    assert r.evidence.purchase_channel == "web"


def test_a_late_purchase_still_decides_the_cart_in_event_time(engine):
    # The purchase arrives after later traffic but within the allowed lateness: no abandonment.
    out = run(engine, add(0, ANON), click(33, TICK, "page_view"), order(20, ANON), click(60, TICK, "page_view"))
    assert of(out, "triggers.cart_abandoned.v1") == []


def test_duplicates_are_ignored(engine):
    rec = add(0, ANON)
    run(engine, rec, rec, rec)
    assert engine.stats["duplicates"] == 2 and engine.customers[next(iter(engine.customers))].carts.quantity == 1


def test_review_is_scored_before_the_model_learns_and_without_its_rating():
    a, b = make_engine(), make_engine()
    text = "The delivery was late and the box was damaged"
    [sa] = of(run(a, review(0, ANON, text, rating=5)), "scores.reviews.v1")
    [sb] = of(run(b, review(0, ANON, text, rating=1)), "scores.reviews.v1")
    assert (sa.score, sa.label, sa.model_version) == (sb.score, sb.label, sb.model_version)
    assert a.sentiment.version != sa.model_version  # it learned afterwards


def test_strongly_negative_text_raises_negative_emotion_with_tone(engine):
    out = run(engine, review(0, {"user_id": "u1"}, "Terrible, awful service. I am furious and want a refund!",
                             channel="call_center"))
    [t] = of(out, "triggers.negative_emotion.v1")
    assert t.channel == "call_center" and t.severity in ("medium", "high") and t.suggested_tone
    assert "English" in t.reason and t.evidence.score <= -0.5


def test_consent_withdrawal_takes_effect_at_once(engine):
    ids = {"user_id": "u1", "anonymous_id": "cookie-1"}
    out = run(engine, consent(0, ids, False), add(1, ANON), click(40, TICK, "page_view"))
    [t] = of(out, "triggers.cart_abandoned.v1")
    assert t.contactable is False
    profile = [p for p in of(out, "profiles.v1") if p and p.customer_id == t.customer_id][-1]
    assert profile.consent == {"marketing": False} and len(profile.consent_history) == 1


def test_consent_suppress_mode_holds_the_trigger_back():
    engine = make_engine(consent_mode="suppress")
    out = run(engine, consent(0, {"anonymous_id": "cookie-1"}, False), add(1, ANON), click(40, TICK, "page_view"))
    assert of(out, "triggers.cart_abandoned.v1") == [] and engine.stats["suppressed:cart_abandoned:no_consent"] == 1


def test_frequency_cap_per_customer_and_type():
    engine = make_engine(trigger_cap_per_day=2)
    texts = [review(m, {"user_id": "u1"}, "Awful, terrible, the worst. I hate it!") for m in (0, 10, 20)]
    out = run(engine, *texts)
    assert len(of(out, "triggers.negative_emotion.v1")) == 2
    assert engine.stats["suppressed:negative_emotion:capped"] == 1


def test_merge_folds_state_and_retires_the_absorbed_id(engine):
    run(engine, add(0, {"anonymous_id": "cookie-1"}, "SKU-1"), pos(5, {"loyalty_id": "L1", "user_id": "u1"}, 1000))
    out = run(engine, click(10, {"anonymous_id": "cookie-1", "user_id": "u1"}, "login"))
    [m] = of(out, "identity.merges.v1")
    survivor = engine.customers[m.surviving_customer_id]
    assert m.absorbed_customer_id not in engine.customers and survivor.purchases == 1
    assert m.linking_identifier.kind in ("anonymous_id", "user_id")
    assert any(e.topic == "profiles.v1" and e.key == m.absorbed_customer_id and e.value is None for e in out)
    later = run(engine, add(20, {"anonymous_id": "cookie-1"}, "SKU-2"))
    assert {p.customer_id for p in of(later, "profiles.v1")} == {m.surviving_customer_id}
    assert of(run(engine, click(21, {"anonymous_id": "cookie-1"}, "page_view")), "profiles.v1") == []  # no news


def test_profiles_are_coalesced_over_five_minutes_of_event_time(engine):
    kim = {"user_id": "u-kim"}
    [first] = of(run(engine, add(0, kim, "SKU-1"), add(1, kim, "SKU-2"), add(2, kim, "SKU-3")), "profiles.v1")
    assert first.cart_items == 1  # the first change at once; the next two wait for the interval's end (5 min)
    [coalesced] = of(run(engine, click(11, kim, "page_view")), "profiles.v1")  # the watermark (11 - 5 min) passes it
    assert coalesced.cart_items == 3 and coalesced.as_of == first.as_of + timedelta(minutes=2)
    assert [p.cart_items for p in of(run(engine, add(12, kim, "SKU-4")), "profiles.v1")] == [4]  # a new interval
    out = run(engine, add(13, kim, "SKU-5"), click(14, kim, "remove_from_cart", product={"sku": "SKU-5", "price": 1.0,
                                                                                        "quantity": 1}), click(30, kim, "page_view"))
    assert of(out, "profiles.v1") == []  # what the interval changed, it undid: nothing to say


def test_two_customers_with_different_user_ids_are_never_merged(engine):
    out = run(engine, click(0, {"user_id": "a", "anonymous_id": "shared-tablet"}, "login"),
              click(1, {"user_id": "b", "anonymous_id": "shared-tablet"}, "login"))
    assert of(out, "identity.merges.v1") == [] and len(engine.customers) == 2
    assert engine.stats["identifiers_dropped"] == 1


def test_bad_input_goes_to_the_dlq_and_processing_continues(engine):
    out = run(engine, raw("clickstream.v1", b"\xff\xfe garbage"), add(0, ANON),
              raw("pos.v1", event(1, {"user_id": "u"}, type="purchase")))
    dlq = of(out, "dlq.v1")
    assert [d.error_type for d in dlq] == ["invalid_json", "validation"] and len(engine.customers) == 1


def test_every_output_matches_its_contract_schema_and_holds_no_raw_pii():
    from pipeline.drivers.generate import generate
    from pipeline.drivers.replay import read_records

    records = generate(seed=3, customers=60)
    engine = make_engine()
    out = run(engine, *read_records(iter(r.line() for r in records)))
    raw_pii = set()
    for r in records:
        if isinstance(r.value, dict):
            ids = r.value.get("identifiers", {})
            raw_pii |= {v.strip().lower() for k, v in ids.items() if k in ("email", "phone") and isinstance(v, str)}
    assert raw_pii
    for e in out:
        if e.value is None:
            continue
        data = e.value.model_dump_json()
        OUTBOUND[e.topic].model_validate_json(data)
        lowered = data.lower()
        assert not any(p in lowered for p in raw_pii), e.topic
    assert {e.topic for e in out} >= {"profiles.v1", "scores.reviews.v1", "identity.merges.v1", "dlq.v1",
                                      "triggers.cart_abandoned.v1", "triggers.cart_recovered.v1"}


def test_same_input_same_output():
    from pipeline.drivers.generate import generate
    from pipeline.drivers.replay import read_records

    lines = [r.line() for r in generate(seed=5, customers=40)]

    def once() -> list[bytes]:
        engine = make_engine()
        return [orjson.dumps([e.topic, e.key, e.value and e.value.model_dump(mode="json")])
                for e in run(engine, *read_records(iter(lines)))]

    assert once() == once()


# ---- arrival order: outcomes are decided in event time, whatever is read first -----------------------


def test_a_purchase_read_before_the_cart_it_settles_still_settles_it(engine):
    out = run(engine, order(10, ANON), add(0, ANON), click(200, TICK, "page_view"))
    assert of(out, "triggers.cart_abandoned.v1") == []


def test_a_purchase_after_the_window_read_before_the_timer_is_abandonment_then_recovery(engine):
    out = run(engine, add(0, ANON, "SKU-1", 20000), order(50, ANON, 20000), click(200, TICK, "page_view"))
    [a] = of(out, "triggers.cart_abandoned.v1")
    [r] = of(out, "triggers.cart_recovered.v1")
    assert r.evidence.abandoned_trigger_id == a.trigger_id and r.evidence.minutes_after_trigger == 20


def test_a_lagging_partition_holds_the_event_time_order_back():
    from tests.helpers import make_engine

    for purchase, expected in (True, 0), (False, 1):
        engine = make_engine()
        engine.assign([("clickstream.v1", 0), ("pos.v1", 0)])
        out = engine.process_batch([add(0, ANON), click(300, TICK, "page_view")])
        assert out == [] and engine.sequencer.held == 2  # pos.v1 has said nothing yet: hold everything
        if purchase:  # the lagging till delivers a purchase made before the window closed
            out += engine.process_batch([pos(5, {"anonymous_id": "cookie-1"}, 10000)])
        engine.idle([("pos.v1", 0)])  # ...and has nothing more
        out += engine.end_batch() + engine.close_input()
        assert len(of(out, "triggers.cart_abandoned.v1")) == expected
        assert engine.stats["out_of_order"] == 0


def test_souring_sentiment_while_still_buying_raises_a_trend_alert(engine):
    ids = {"user_id": "u-sour"}
    happy = "I love it, excellent quality, great service"
    meh = "Not as good as before"
    records = [order(0, ids)]
    records += [review(10 + m, ids, happy) for m in range(6)]
    records += [order(60 * 24 * 20, ids)] + [review(60 * 24 * (21 + d), ids, meh) for d in range(6)]
    out = run(engine, *records)
    alerts = of(out, "triggers.negative_emotion.v1")
    assert [a.signal for a in alerts] == ["souring_trend"]
    a = alerts[0]
    assert a.evidence.sentiment_avg < 0 < a.evidence.sentiment_long and a.evidence.days_since_purchase <= 6
    assert "souring" in a.reason and a.evidence.score > -0.5


def test_no_souring_alert_for_a_customer_who_stopped_buying(engine):
    ids = {"user_id": "u-gone"}
    records = [order(0, ids)] + [review(10 + m, ids, "Excellent, love it") for m in range(6)]
    records += [review(60 * 24 * 100 + m, ids, "Not as good as before") for m in range(3)]
    assert of(run(engine, *records), "triggers.negative_emotion.v1") == []


def test_in_live_mode_the_wall_clock_fires_a_cart_when_all_input_is_silent():
    from tests.helpers import T0, make_engine

    engine = make_engine()
    sources = [("clickstream.v1", 0), ("pos.v1", 0)]
    engine.assign(sources)
    assert of(run(engine, add(0, ANON)), "triggers.cart_abandoned.v1") == []
    t0 = int(T0.timestamp() * 1000)
    engine.caught_up(sources, "ingest", t0 + 500, {"clickstream.v1": t0})  # the reader is live
    night = t0 + 60 * 60_000  # an hour later, nobody is shopping
    out = engine.sources_idle(sources, wall_ms=night)
    assert len(of(out, "triggers.cart_abandoned.v1")) == 1


def test_a_pause_in_a_backfill_fires_nothing_early():
    """Months-old traffic, produced in parts: the wall clock during a pause never moves its event time."""
    from tests.helpers import T0, make_engine

    engine = make_engine()
    sources = [("clickstream.v1", 0), ("pos.v1", 0)]
    engine.assign(sources)
    t0 = int(T0.timestamp() * 1000)
    assert of(run(engine, add(0, ANON)), "triggers.cart_abandoned.v1") == []
    months_later = t0 + 270 * 86_400_000
    engine.caught_up(sources, "ingest", months_later - 500, {"clickstream.v1": t0})
    out = engine.sources_idle(sources, wall_ms=months_later)
    assert of(out, "triggers.cart_abandoned.v1") == [] and engine.watermark.current < t0
    out = run(engine, add(10, ANON))  # the next part goes on filling the cart, in event time
    assert of(out, "triggers.cart_abandoned.v1") == []
    assert engine.customers[next(iter(engine.customers))].carts.quantity == 2


class ScriptedChurn:
    """A churn model that answers a scripted probability per day of the customer's tenure (the interface the
    customer stage scores with; published versions are copies, so the answer depends on the input alone)."""

    version, learned = "scripted", 10**6

    def __init__(self, answers=None):
        self.answers = answers or {}

    def predict(self, x):
        return self.answers[round(math.expm1(x["log_tenure"]))]

    def learn(self, x, churned):
        return False


def test_churn_risk_fires_on_an_upward_crossing_with_hysteresis_and_cool_down():
    from pipeline.core.engine import Engine
    from pipeline.core.pii import Hasher
    from pipeline.core.rules import Rules
    from tests.helpers import FIXED_NOW

    day = 60 * 24
    probabilities = [0.2, 0.75, 0.8, 0.65, 0.5, 0.9, 0.5, 0.9]
    days = [0, 1, 2, 3, 4, 5, 40, 41]
    rules = Rules(churn_threshold=0.7, churn_rearm_below=0.6, churn_cooldown_days=30, churn_snapshot_every_days=1000)
    engine = Engine(rules, Hasher(b"k"), lambda: FIXED_NOW, churn=ScriptedChurn(dict(zip(days, probabilities))))
    out = run(engine, *[click(d * day, {"user_id": "u-churn"}, "page_view") for d in days])
    alerts = of(out, "triggers.churn_risk.v1")
    # day 1: crosses up; day 2: still above, no repeat; day 4: re-armed below 0.6; day 5: within the
    # 30-day cool-down, held; day 40: re-armed again; day 41: crosses up after the cool-down.
    assert [a.evidence.churn_probability for a in alerts] == [0.75, 0.9]
    assert [a.occurred_at.date().isoformat() for a in alerts] == ["2026-11-23", "2027-01-02"]
    assert "75%" in alerts[0].reason and alerts[0].evidence.model_version == "scripted"


def test_negative_emotion_fires_on_korean_text_and_says_which_language_it_read(engine):
    out = run(engine, review(0, {"user_id": "u-ko"}, "상담원이 너무 불친절하고 환불도 안 해줘요. 정말 화가 나네요 ㅠㅠ",
                             channel="call_center"))
    [t] = of(out, "triggers.negative_emotion.v1")
    [s] = of(out, "scores.reviews.v1")
    assert s.language == "ko" and s.label == "negative"
    assert t.language == "ko" and "Korean" in t.reason and t.suggested_tone


class RecencyChurn(ScriptedChurn):
    """Churn probability = days since the last purchase / 30 (capped): rises while a customer is quiet."""

    def predict(self, x):
        return min(1.0, x["recency_days"] / 30)


def test_a_customer_who_goes_quiet_is_rescored_and_gets_churn_risk_without_any_event_of_their_own():
    from pipeline.core.engine import Engine
    from pipeline.core.pii import Hasher
    from pipeline.core.rules import Rules
    from tests.helpers import FIXED_NOW

    day = 60 * 24
    churn = RecencyChurn()
    engine = Engine(Rules(churn_snapshot_every_days=7, churn_threshold=0.7, churn_rearm_below=0.5), Hasher(b"k"),
                    lambda: FIXED_NOW, churn=churn)
    run(engine, order(0, {"user_id": "quiet"}))
    out = run(engine, *[click(d * day, TICK, "page_view") for d in (10, 20, 30, 40)])  # only others are active
    [alert] = [a for a in of(out, "triggers.churn_risk.v1") if a.evidence.purchases == 1]
    assert alert.evidence.recency_days == 21 and alert.cause_event_ids[0].startswith("quiet:")
    quiet_id = alert.customer_id
    assert [ts for _, ts, _ in engine.stage_of(quiet_id).snapshots[quiet_id]][:4] == [
        int(engine.customers[quiet_id].first_seen) + k * 7 * day * 60_000 for k in range(4)]
    profile = [p for p in of(out, "profiles.v1") if p.customer_id == quiet_id][-1]
    assert profile.churn_probability == 0.7 and profile.recency_days == 21  # the level's change is news, not the drift
