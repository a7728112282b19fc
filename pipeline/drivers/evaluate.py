"""``rapport eval`` (``make eval``): each model's prequential figures next to its baseline, in one table.

Sentiment data is what the project can produce offline (its text composer): it shows
that the learning machinery works and how it compares to the baselines on the same stream, not how
it does on real customers (see the README for what real data would change).

- Sentiment: texts arrive in order; a rated text is predicted, then learned; an unrated text is only
  predicted. Accuracy on positive vs negative texts *without* a rating (after learning only from
  the rated ones before them), per language, against VADER alone and a character n-gram naive Bayes.
- Churn: measured on a real purchase log (CDNOW) through the engine, at calibration cutoffs, against
  BG/NBD and recency alone: see ``pipeline.drivers.eval_churn``.
"""
from __future__ import annotations

import random

from river import feature_extraction, naive_bayes

from pipeline.core.models.sentiment import SentimentModel, stars_to_label
from pipeline.drivers import eval_churn, eval_texts
from pipeline.drivers.texts import note_text, review_text


def auc(scores: list[float], labels: list[bool]) -> float:
    """ROC AUC by ranks (ties get the mean rank)."""
    pairs = sorted(zip(scores, labels, strict=True))
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mean_rank = (i + j + 1) / 2
        rank_sum += mean_rank * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def text_stream(seed: int, n: int) -> list[tuple[str, str, str, int | None]]:
    """(language, tone, text, rating or None): reviews and notes, 60 % Korean, 70 % of reviews rated."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lang = "ko" if rng.random() < 0.6 else "en"
        tone = rng.choice(["positive", "positive", "negative", "negative", "neutral"])
        if rng.random() < 0.1:
            out.append((lang, tone, note_text(rng, lang, tone), None))
            continue
        text = review_text(rng, lang, tone)
        rating = {"positive": rng.choice([4, 5]), "neutral": 3, "negative": rng.choice([1, 2])}[tone]
        out.append((lang, tone, text, rating if rng.random() < 0.7 else None))
    return out


class CharNB:
    """Baseline: multinomial naive Bayes over character 1-3-grams, learning from the same ratings."""

    def __init__(self) -> None:
        # strip_accents would NFKD-decompose Hangul syllables into jamo; characters are the tokens
        bag = feature_extraction.BagOfWords(strip_accents=False, tokenizer=list, ngram_range=(1, 3))
        self.model = bag | naive_bayes.MultinomialNB()

    def label(self, text: str) -> str:
        return self.model.predict_one(text) or "neutral"

    def learn(self, text: str, label: str) -> None:
        self.model.learn_one(text, label)


def sentiment_rows(seed: int, n: int = 4000) -> list[tuple[str, ...]]:
    model, lexicon, nb = SentimentModel(), SentimentModel(warmup=10**12), CharNB()
    hits: dict[tuple[str, str], list[bool]] = {}
    for lang, tone, text, rating in text_stream(seed, n):
        if rating is None and tone != "neutral":
            for name, label in (("model", model.score(text).label), ("VADER / lexicon only", lexicon.score(text).label),
                                ("char n-gram NB", nb.label(text))):
                hits.setdefault((name, lang), []).append(label == tone)
        if rating is not None:
            model.learn(text, stars_to_label(rating))
            nb.learn(text, stars_to_label(rating))
    rows = []
    for name in ("model", "VADER / lexicon only", "char n-gram NB"):
        for lang in ("en", "ko"):
            h = hits.get((name, lang), [])
            rows.append(("sentiment", f"{name} [{lang}]", "accuracy, unrated pos/neg texts",
                         f"{sum(h) / len(h):.3f}" if h else "-", str(len(h))))
    # The hand-written natural sentences, scored by each learner as it stands after the stream.
    for name, label in (("model", lambda t: model.score(t).label), ("VADER / lexicon only", lambda t: lexicon.score(t).label),
                        ("char n-gram NB", nb.label)):
        for lang, texts in (("en", eval_texts.EN), ("ko", eval_texts.KO)):
            h = [label(text) == tone for tone, text in texts]
            rows.append(("sentiment", f"{name} [{lang}]", "accuracy, hand-written natural texts",
                         f"{sum(h) / len(h):.3f}", str(len(h))))
    return rows


def main(seed: int) -> None:
    rows = [("model", "learner", "measure", "value", "n")] + sentiment_rows(seed) + eval_churn.rows()
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print("\nData: sentiment on generated offline texts; churn on CDNOW, a real purchase log (1997-98, one cohort)."
          "\nSee README for what these figures mean.")
