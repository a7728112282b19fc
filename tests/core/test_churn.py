"""Churn features (windows, regularity, no leakage, merges), the model, and the real-data eval's pieces."""
import math
import pickle
import random

import numpy as np
import pytest

from pipeline.core.models.churn import ChurnModel
from pipeline.core.profile import DAY_MS, KEEP_PURCHASES, CustomerState, Purchase


def customer(days: list[float], total: float = 10.0, cid: str = "c") -> CustomerState:
    st = CustomerState(cid, int(days[0] * DAY_MS), int(days[0] * DAY_MS))
    for n, d in enumerate(days):
        st.purchase(Purchase(int(d * DAY_MS), total, "store", f"{cid}-{n}"), "USD", 1)
    return st


def test_window_counts_and_spend():
    st = customer([0, 100, 200, 300, 330, 350], total=20.0)
    x = st.features(360 * DAY_MS)
    windows = {k: round(math.expm1(v)) for k, v in x.items() if k.startswith("log_purchases_")}
    assert windows == {"log_purchases_0_30d": 1, "log_purchases_30_90d": 2, "log_purchases_90_180d": 1,
                       "log_purchases_180_365d": 2, "log_purchases_before_365d": 0}  # days 350 | 300, 330 | 200 | 0, 100
    assert x["log_spend_0_90d"] == pytest.approx(math.log1p(60.0))
    assert x["log_spend_90_365d"] == pytest.approx(math.log1p(60.0))
    assert x["log_spend_before_365d"] == 0
    later = st.features(500 * DAY_MS)
    assert later["log_purchases_before_365d"] == pytest.approx(math.log1p(2))  # days 0 and 100
    assert x["log_revenue"] == pytest.approx(math.log1p(120.0))
    assert x["recency_days"] == 10 and x["purchases"] == 6
    assert x["log_tenure"] == pytest.approx(math.log1p(360))
    assert x["log_active_span"] == pytest.approx(math.log1p(350))


def test_regular_buyers_have_a_low_gap_cv_and_recency_is_relative_to_their_rhythm():
    regular = customer([0, 10, 20, 30, 40]).features(60 * DAY_MS)
    erratic = customer([0, 1, 2, 3, 40]).features(60 * DAY_MS)
    assert regular["gap_cv"] == 0 and erratic["gap_cv"] > 1
    assert regular["log_mean_gap"] == pytest.approx(math.log1p(10))
    assert regular["log_recency_over_rhythm"] == pytest.approx(math.log1p(20 / 10))
    assert regular["repeat_buyer"] == 1 and customer([5]).features(60 * DAY_MS)["repeat_buyer"] == 0


def test_features_at_t_ignore_later_purchases():
    st = customer([0, 10, 20])
    before = st.features(15 * DAY_MS)
    st.purchase(Purchase(40 * DAY_MS, 500.0, "store", "late"), "USD", 1)
    st.purchase(Purchase(50 * DAY_MS, 500.0, "store", "later"), "USD", 1)
    assert st.features(15 * DAY_MS) == before
    assert before["purchases"] == 2 and before["recency_days"] == 5


def test_first_purchase_is_exact_beyond_the_log_and_windows_are_lower_bounds():
    st = customer([float(d) for d in range(100)])
    assert len(st.purchase_log) == KEEP_PURCHASES and st.first_purchase == 0
    x = st.features(100 * DAY_MS)
    assert x["purchases"] == 100 and x["log_tenure"] == pytest.approx(math.log1p(100))
    # days 71-99 in (0, 30]; the log's days 68-70 and the 68 purchases before them in (30, 90]
    assert round(math.expm1(x["log_purchases_0_30d"])) == 29 and round(math.expm1(x["log_purchases_30_90d"])) == 71


def test_absorb_folds_the_churn_aggregates():
    a, b = customer([50, 60], cid="a"), customer([10, 30], cid="b")
    a.absorb(b, window=1, at=70 * DAY_MS)
    assert a.first_purchase == 10 * DAY_MS and a.purchases == 4
    x = a.features(80 * DAY_MS)
    assert x["purchases"] == 4 and x["log_active_span"] == pytest.approx(math.log1p(50))
    assert x["log_mean_gap"] == pytest.approx(math.log1p(50 / 3))
    empty = CustomerState("e", 0, 0)
    empty.absorb(customer([5], cid="f"), window=1, at=6 * DAY_MS)
    assert empty.first_purchase == 5 * DAY_MS


def separable(n: int, seed: int = 7) -> list[tuple[dict[str, float], bool]]:
    """Churned exactly when long overdue: a pattern any useful learner separates."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        recency = rng.uniform(0, 200)
        out.append((customer_state_features(recency), recency > 100))
    return out


def customer_state_features(recency: float) -> dict[str, float]:
    return customer([0, 20]).features(int((20 + recency) * DAY_MS))


def test_model_learns_a_separable_pattern():
    from pipeline.drivers.eval_churn import auc

    m = ChurnModel(horizon_ms=10, warmup=50)
    data = separable(3000)
    for x, y in data[:2000]:
        m.learn(x, y)
    test = data[2000:]
    p = np.array([m.predict(x) for x, _ in test])
    y = np.array([y for _, y in test])
    assert auc(p, y) > 0.97
    assert p[y].mean() > 0.7 and p[~y].mean() < 0.3


def test_model_is_deterministic_and_pickles():
    data = separable(300)
    m1, m2 = ChurnModel(horizon_ms=10, warmup=20), ChurnModel(horizon_ms=10, warmup=20)
    for x, y in data:
        m1.learn(x, y)
        m2.learn(x, y)
    clone = pickle.loads(pickle.dumps(m1))
    for x, _ in data[:20]:
        assert m1.predict(x) == m2.predict(x) == clone.predict(x)
    assert clone.version == m1.version


def test_model_blends_in_the_recency_prior_until_warm():
    m = ChurnModel(horizon_ms=10, warmup=100)
    x = customer_state_features(300)
    assert m.predict(x) == pytest.approx(300 / 20 / (1 + 300 / 20))  # overdue 15 rhythms: the prior alone
    assert 0 <= m.predict(customer_state_features(1)) < 0.5


def test_eval_records_are_valid_purchases_in_event_time_order():
    from datetime import date

    from pipeline.drivers.eval_churn import to_records
    from tests.helpers import make_engine

    rows = [("00002", date(1997, 1, 3), 2, 20.0), ("00001", date(1997, 1, 1), 1, 11.77),
            ("00001", date(1997, 1, 3), 1, 0.0), ("00001", date(1997, 1, 3), 1, 5.0)]
    records = to_records(rows)
    assert records == to_records(rows)  # deterministic ids
    engine = make_engine()
    engine.process_batch(records)
    engine.close_input()
    assert engine.stats["events:pos.v1"] == 4 and sum(st.purchases for st in engine.customers.values()) == 4


def test_bgnbd_probabilities_are_consistent():
    from pipeline.drivers.bgnbd import BGNBD

    bg = BGNBD()
    bg.r, bg.alpha, bg.a, bg.b = 0.24, 30.0, 0.79, 2.43  # a < 1, as on CDNOW
    x, t_x, T = np.array([0.0, 3, 3]), np.array([0.0, 100, 20]), np.array([120.0, 120, 120])
    e = bg.expected_purchases(90, x, t_x, T)
    p0 = bg.p_no_purchase(90, x, t_x, T)
    assert np.all(np.isfinite(e)) and np.all(e > 0) and np.all((0 < p0) & (p0 < 1))
    assert e[1] > e[2] and p0[1] < p0[2]  # a recent repeat buyer is more alive than a lapsed one
