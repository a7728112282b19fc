"""Online text sentiment: lexicon and learned priors combined with an online naive Bayes, per language.

Stars map to labels as 1-2 negative, 3 neutral, 4-5 positive. Three experts each give a
positive-vs-negative log-odds for a text:

- ``prior``: the learned Korean prior (:mod:`pipeline.core.models.prior`, shipped with the package),
  on Kiwi morphemes with negation and character n-grams; zero for English;
- ``lexicon``: VADER for Latin script and the hand-written Korean seed lexicon for Hangul (mixed texts:
  both, by script share);
- ``nb``: a naive Bayes learning online from the ratings, on hashed features (bounded state):
  Korean as for the prior, English word uni- and bigrams with negation scope.

Per language, a logistic combination of the three (a product of experts with learned exponents)
gives P(positive | not neutral); its weights start from the priors alone and are learned online
from each rating *before* the naive Bayes learns it, so the learned part takes over as far as it
predicts better. Neutral gets the share of neutral ratings seen, where the experts are unsure.
Text neither lexicon can read gets a low-confidence neutral.

>>> m = SentimentModel()
>>> m.score("Terrible service, never again!").label, m.score("I love it, excellent quality").label
('negative', 'positive')
>>> m.score("배송이 너무 늦고 상담원도 불친절해요 ㅠㅠ").label, m.score("정말 만족해요 ㅎㅎ").label
('negative', 'positive')
>>> m.score("안 좋아요").label, m.score("좋지 않아요").label
('negative', 'negative')
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from pipeline.core.models import korean, morphemes
from pipeline.core.models import prior as priors
from pipeline.core.models.monitor import Prequential
from pipeline.core.models.text import language_of, letters, tokens

LABELS = ("negative", "neutral", "positive")
FEATURE_BUCKETS = 2**18  # hashed naive Bayes features per language: bounded whatever the vocabulary
EXPERTS = ("prior", "lexicon", "nb")
_INIT = {"ko": [0.6, 1.0, 0.05, 0.0], "en": [0.0, 3.0, 0.05, 0.0]}  # weights of EXPERTS + bias, before learning
_STEP = 0.05  # Adagrad step of the combination
_CLIP = 15.0
_NB_ALPHA = 1.0  # Laplace: +0.002 (ko) and +0.001 (en) on the eval streams against 0.5
_COUNT_CAP = 2**16 - 1  # per-bucket counts saturate here (a table of their logs makes scoring cheap)
_LOG_A = [math.log(c + _NB_ALPHA) for c in range(_COUNT_CAP + 1)]
_HIGH, _LOW = 1 << 32, (1 << 32) - 1
_NEUTRAL_PRIOR = {"negative": 0.2, "neutral": 0.6, "positive": 0.2}
_vader = None


def stars_to_label(rating: int) -> str:
    return "negative" if rating <= 2 else "neutral" if rating == 3 else "positive"


def _load_analysers() -> None:
    """VADER and the shipped Korean word table, once per process, when a model is made or restored. Kiwi
    itself loads at the first word outside the table (once per process, about a second), or in ``preload``."""
    global _vader
    if _vader is None:
        from pipeline.core.models.vader import Vader

        _vader = Vader()  # VADER's scores, cheaper
    morphemes.load_table()


def preload() -> None:
    """Everything scoring may need, now, Kiwi included: a worker calls it before it holds partitions, so that
    no event waits for a load."""
    _load_analysers()
    morphemes.analyser()


def vader_compound(text: str) -> float:
    if _vader is None:
        _load_analysers()
    return _vader.polarity_scores(text)["compound"]


def _crc(feats: dict[str, float]) -> list[int]:
    """CRC-32 of each feature: the same in every process, unlike ``hash``."""
    crc = zlib.crc32
    return [crc(f.encode()) for f in feats]


@dataclass(frozen=True, slots=True)
class Scored:
    label: str
    score: float  # P(positive) - P(negative), in -1..1
    confidence: float  # probability of the label
    language: str
    proba: dict[str, float]


@dataclass(slots=True)
class _Read:
    """What a text gives before any learning: its language, hashed features and the fixed experts."""

    lang: str
    buckets: list[int] | tuple[int, ...]
    prior: float
    lexicon: float
    known: bool  # some expert found something it knows


class _Language:
    """Per-language learned state: naive Bayes counts (hashed), the combination's weights, the neutral share."""

    def __init__(self, lang: str) -> None:
        self.counts: dict[int, int] = {}  # per bucket: texts positive << 32 | texts negative, each capped
        self.n_pos = self.n_neg = self.n_neutral = 0
        self.w = list(_INIT.get(lang, _INIT["en"]))
        self.g = [0.0] * len(self.w)
        self.epoch = 0  # counts updates: inputs computed at an epoch stay valid until the next

    def __setstate__(self, state: dict) -> None:
        counts = state["counts"]
        if counts and isinstance(next(iter(counts.values())), tuple):  # checkpoints before the packed counts
            state["counts"] = {b: p << 32 | n for b, (p, n) in counts.items()}
        self.__dict__.update(state)

    def nb(self, buckets: list[int] | tuple[int, ...]) -> float:
        """Naive Bayes log-odds over the buckets present (a bucket absent from the text is not evidence)."""
        if not (self.n_pos and self.n_neg):
            return 0.0
        log_a, low = _LOG_A, _LOW
        found = [log_a[v >> 32] - log_a[v & low] for v in map(self.counts.get, buckets) if v is not None]
        norm = math.log(self.n_neg + 2 * _NB_ALPHA) - math.log(self.n_pos + 2 * _NB_ALPHA)
        z = sum(found) + math.log(self.n_pos / self.n_neg) + len(found) * norm
        return max(-_CLIP, min(_CLIP, z))

    def inputs(self, r: _Read) -> list[float]:
        return [r.prior, r.lexicon, self.nb(r.buckets), 1.0]

    def p_positive(self, x: list[float]) -> float:
        w = self.w
        z = max(-30.0, min(30.0, w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3]))
        return 1.0 / (1.0 + math.exp(-z))

    def neutral_share(self) -> float:
        return min(0.6, (self.n_neutral + 1.0) / (self.n_pos + self.n_neg + self.n_neutral + 5.0))

    def learn(self, r: _Read, x: list[float], label: str, update_weights: bool) -> None:
        """Learn from inputs ``x`` computed before this update (prequential), then update the counts."""
        self.epoch += 1
        if label == "neutral":
            self.n_neutral += 1
            return
        y = 1.0 if label == "positive" else 0.0
        if update_weights:
            err = self.p_positive(x) - y
            for i, v in enumerate(x):
                grad = err * v
                self.g[i] += grad * grad
                if self.g[i] > 0:
                    self.w[i] -= _STEP * grad / math.sqrt(self.g[i] + 1.0)
        counts, cap, low, high = self.counts, _COUNT_CAP, _LOW, _HIGH
        get = counts.get
        if y:
            self.n_pos += 1
            for b in r.buckets:
                v = get(b, 0)
                if v >> 32 < cap:
                    counts[b] = v + high
        else:
            self.n_neg += 1
            for b in r.buckets:
                v = get(b, 0)
                if v & low < cap:
                    counts[b] = v + 1


class SentimentModel:
    """``score(text)`` then, when a rating exists, ``learn(text, label)``.

    ``warmup``: rated texts of a language before the combination's weights start to move (the naive
    Bayes counts from the first one). ``prior``: the Korean prior; the shipped one by default.
    """

    family = "sentiment-poe-nb"

    def __init__(self, warmup: int = 300, prior: priors.KoreanPrior | None = None) -> None:
        self.warmup = warmup
        self.learned: dict[str, int] = {}
        self.langs: dict[str, _Language] = {}
        self._shipped_prior = prior is None
        self._prior = priors.shipped() if prior is None else prior
        self._prior_hashed = self._prior.hashed()
        _load_analysers()
        self._last: tuple | None = None  # (text, its _Read, state key, inputs): score then learn
        self.monitor = Prequential(name="sentiment")

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_last", "_prior_hashed")}
        if self._shipped_prior:
            del state["_prior"]  # a process reads the shipped prior once; checkpoints stay small
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._last = None
        if self._shipped_prior:
            self._prior = priors.shipped()
        self._prior_hashed = self._prior.hashed()
        _load_analysers()

    @property
    def version(self) -> str:
        return f"{self.family}.{sum(self.learned.values())}"

    def _read(self, text: str) -> _Read:
        """The text's language, features and fixed experts (remembered for the ``learn`` that follows ``score``)."""
        if self._last is not None and self._last[0] == text:
            return self._last[1]
        hangul, latin = letters(text)
        lang = language_of(hangul, latin)
        if lang == "und":
            r = _Read(lang, (), 0.0, 0.0, False)
        else:
            feats = tokens(text, hangul=lang != "ko")
            ko_share = 3 * hangul / (3 * hangul + latin)
            lexicon = 0.0
            if ko_share > 0:
                lexicon += ko_share * korean.polarity(text)
            if ko_share < 1:
                lexicon += (1 - ko_share) * vader_compound(text)
            prior, known = 0.0, lexicon != 0.0
            hashed = _crc(feats)
            if lang == "ko":
                kf = priors.korean_features(text)
                kh = _crc(kf)
                found = [v for v in map(self._prior_hashed.get, kh) if v is not None]
                if found:
                    prior, known = max(-_CLIP, min(_CLIP, round(self._prior.bias + sum(found), 6))), True
                hashed += kh  # the two feature families never share a name
            mask = FEATURE_BUCKETS - 1
            r = _Read(lang, [h & mask for h in hashed], prior, lexicon, known)
        self._last = (text, r, None, None)
        return r

    def _state(self, lang: str) -> _Language:
        st = self.langs.get(lang)
        if st is None:
            st = self.langs[lang] = _Language(lang)
        return st

    def _inputs(self, r: _Read, st: _Language) -> list[float]:
        """The experts' log-odds for a text; computed once per text and state (``score`` then ``learn``)."""
        key = (id(st), st.epoch)
        if self._last is not None and self._last[1] is r and self._last[2] == key:
            return self._last[3]
        x = st.inputs(r)
        self._last = (self._last[0] if self._last else "", r, key, x)
        return x

    def score(self, text: str) -> Scored:
        r = self._read(text)
        st = self.langs.get(r.lang) or _Language(r.lang)
        if r.lang == "und" or not (r.known or st.n_pos + st.n_neg):
            p = dict(_NEUTRAL_PRIOR)  # nothing the model knows: a low-confidence neutral, not a guess
        else:
            pp = st.p_positive(self._inputs(r, st))
            neutral = st.neutral_share() * (1.0 - abs(2.0 * pp - 1.0))
            p = {"negative": (1 - neutral) * (1 - pp), "neutral": neutral, "positive": (1 - neutral) * pp}
        label = max(LABELS, key=lambda k: (p[k], k == "neutral"))
        score = max(-1.0, min(1.0, p["positive"] - p["negative"]))
        return Scored(label, round(score, 6), round(p[label], 6), r.lang, p)

    def learn(self, text: str, label: str, predicted: Scored | None = None) -> bool:
        """Learn one rated text; with the prediction made before, score it (prequential). True on drift."""
        drifted = predicted is not None and self.monitor.update(label, predicted.label, predicted.proba)
        r = self._read(text)
        if r.lang != "und":
            n = self.learned.get(r.lang, 0)
            st = self._state(r.lang)
            st.learn(r, self._inputs(r, st), label, update_weights=n >= self.warmup)
        self.learned[r.lang] = self.learned.get(r.lang, 0) + 1
        return drifted
