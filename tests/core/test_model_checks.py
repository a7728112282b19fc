"""One suite of checks that every online model passes (as river's estimator checks do)."""
import pickle
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from pipeline.core.models import OnlineModel
from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import SentimentModel
from pipeline.core.versions import frozen_copy


@dataclass
class Case:
    """A model with what the suite needs to drive it."""

    make: Callable[[], Any]
    score: Callable[[Any, Any], float]  # a number in 0..1 (for churn) or -1..1 (for sentiment)
    lo: float
    hi: float
    examples: list[tuple[Any, Any]]  # (input, label)
    odd: list[Any]  # inputs at the edges


def _churn_x(recency: float, purchases: float) -> dict[str, float]:
    return {"recency_days": recency, "purchases": purchases, "log_recency": recency ** 0.5,
            "log_purchases": purchases ** 0.5}


CASES = {
    "sentiment": Case(
        make=SentimentModel, score=lambda m, x: m.score(x).score, lo=-1.0, hi=1.0,
        examples=[("정말 최고예요 또 살게요", "positive"), ("최악이에요 환불해 주세요", "negative"),
                  ("Love it, works perfectly", "positive"), ("Broken on arrival, awful", "negative")] * 30,
        odd=["", " ", "!!!!", "ㅋ" * 5000, "a" * 20000, "🙂🙃", "\x00\x01", "NaN"]),
    "churn": Case(
        make=lambda: ChurnModel(horizon_ms=1, warmup=10), score=lambda m, x: m.predict(x), lo=0.0, hi=1.0,
        examples=[(_churn_x(200.0, 1.0), True), (_churn_x(3.0, 9.0), False)] * 60,
        odd=[{}, _churn_x(0.0, 0.0), _churn_x(1e9, 1e9), {"recency_days": -5.0}, {"unknown": 1.0}]),
}


@pytest.fixture(params=sorted(CASES))
def case(request) -> Case:
    return CASES[request.param]


def test_it_follows_the_protocol(case):
    model = case.make()
    assert isinstance(model.version, str) and model.monitor is not None
    assert callable(getattr(model, "learn"))
    _: OnlineModel = model


def test_the_same_inputs_give_the_same_scores(case):
    a, b = case.make(), case.make()
    for x, y in case.examples[:20]:
        assert case.score(a, x) == case.score(b, x)
        a.learn(x, y)
        b.learn(x, y)
    assert [case.score(a, x) for x, _ in case.examples[:4]] == [case.score(b, x) for x, _ in case.examples[:4]]


def test_a_pickle_round_trip_scores_the_same(case):
    model = case.make()
    for x, y in case.examples[:40]:
        model.learn(x, y)
    again = pickle.loads(pickle.dumps(model))
    assert [case.score(again, x) for x, _ in case.examples[:4]] == [case.score(model, x) for x, _ in case.examples[:4]]


def test_a_published_copy_does_not_learn_with_the_original(case):
    model = case.make()
    copy = frozen_copy(model)
    before = [case.score(copy, x) for x, _ in case.examples[:4]]
    for x, y in case.examples:
        model.learn(x, y)
    assert [case.score(copy, x) for x, _ in case.examples[:4]] == before
    assert model.monitor is not None  # the original keeps its figures


def test_learning_moves_scores_toward_the_labels(case):
    model = case.make()
    (x_hi, y_hi), (x_lo, _) = case.examples[0], case.examples[1]
    gap_before = case.score(model, x_hi) - case.score(model, x_lo)
    for x, y in case.examples:
        model.learn(x, y)
    gap_after = case.score(model, x_hi) - case.score(model, x_lo)
    assert gap_after >= gap_before and gap_after > 0, (y_hi, gap_before, gap_after)


def test_scores_stay_in_range_whatever_the_input(case):
    model = case.make()
    for x in case.odd:
        assert case.lo <= case.score(model, x) <= case.hi
    for x, y in case.examples[:10]:
        model.learn(x, y)
    for x in case.odd:
        assert case.lo <= case.score(model, x) <= case.hi
