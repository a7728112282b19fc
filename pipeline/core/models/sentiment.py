"""Online text sentiment: a lexicon prior blended with a River model that learns from star ratings.

Stars map to labels as 1-2 negative, 3 neutral, 4-5 positive. The prior is VADER for Latin
script and a Korean seed lexicon for Hangul (mixed texts: both, by script share); text neither
lexicon can read gets a low-confidence neutral prior. Per language, the
learned model's weight grows from 0 to 1 over ``warmup`` rated texts.

>>> m = SentimentModel(warmup=100)
>>> m.score("Terrible service, never again!").label, m.score("I love it, excellent quality").label
('negative', 'positive')
>>> m.score("배송이 너무 늦고 상담원도 불친절해요 ㅠㅠ").label, m.score("정말 만족해요 ㅎㅎ").label
('negative', 'positive')
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from river import linear_model, optim
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from pipeline.core.models import korean
from pipeline.core.models.monitor import Prequential
from pipeline.core.models.text import language, script_share, tokens

LABELS = ("negative", "neutral", "positive")
FEATURE_BUCKETS = 2**17  # hashed text features: the model's size is bounded whatever the vocabulary
_NEUTRAL_PRIOR = {"negative": 0.2, "neutral": 0.6, "positive": 0.2}


def stars_to_label(rating: int) -> str:
    return "negative" if rating <= 2 else "neutral" if rating == 3 else "positive"


@dataclass(frozen=True, slots=True)
class Scored:
    label: str
    score: float  # P(positive) - P(negative), in -1..1
    confidence: float  # probability of the label
    language: str
    proba: dict[str, float]


class SentimentModel:
    """``score(text)`` then, when a rating exists, ``learn(text, label)``."""

    family = "sentiment-vader-softmax"

    def __init__(self, warmup: int = 300) -> None:
        self.warmup = warmup
        self.learned: dict[str, int] = {}
        self._vader = SentimentIntensityAnalyzer()
        self._model = linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05), l2=1e-5)
        self.monitor = Prequential(name="sentiment")

    @property
    def version(self) -> str:
        return f"{self.family}.{sum(self.learned.values())}"

    def _prior(self, text: str, lang: str) -> dict[str, float]:
        """Lexicon prior: VADER for Latin script, the Korean seed lexicon for Hangul, weighted by script share."""
        if lang == "und":
            return _NEUTRAL_PRIOR
        ko_share = script_share(text)
        c = 0.0
        if ko_share > 0:
            c += ko_share * korean.polarity(text)
        if ko_share < 1:
            c += (1 - ko_share) * self._vader.polarity_scores(text)["compound"]
        if c == 0.0:
            return _NEUTRAL_PRIOR  # nothing the lexicons know: a low-confidence neutral, not a guess
        neutral = max(0.0, 1.0 - 2.0 * abs(c)) * 0.6
        return {"negative": (1 - neutral) * (1 - c) / 2, "neutral": neutral, "positive": (1 - neutral) * (1 + c) / 2}

    def _features(self, text: str, prior: dict[str, float]) -> dict[str, float]:
        """Text features hashed into ``FEATURE_BUCKETS`` (bounded model state), plus the prior."""
        x: dict[str, float] = {}
        for name, value in tokens(text).items():
            bucket = f"h{zlib.crc32(name.encode()) & (FEATURE_BUCKETS - 1)}"
            x[bucket] = x.get(bucket, 0.0) + value
        x["prior:neg"], x["prior:pos"] = prior["negative"], prior["positive"]
        return x

    def score(self, text: str) -> Scored:
        lang = language(text)
        prior = self._prior(text, lang)
        w = min(1.0, self.learned.get(lang, 0) / self.warmup) if self.warmup else 1.0
        if w > 0:
            learned = self._model.predict_proba_one(self._features(text, prior))
            p = {k: (1 - w) * prior[k] + w * learned.get(k, 0.0) for k in LABELS}
        else:
            p = prior
        label = max(LABELS, key=lambda k: (p[k], k == "neutral"))
        score = max(-1.0, min(1.0, p["positive"] - p["negative"]))
        return Scored(label, round(score, 6), round(p[label], 6), lang, p)

    def learn(self, text: str, label: str, predicted: Scored | None = None) -> bool:
        """Learn one rated text; with the prediction made before, score it (prequential). True on drift."""
        drifted = predicted is not None and self.monitor.update(label, predicted.label, predicted.proba)
        lang = language(text)
        self._model.learn_one(self._features(text, self._prior(text, lang)), label)
        self.learned[lang] = self.learned.get(lang, 0) + 1
        return drifted
