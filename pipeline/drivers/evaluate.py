"""``rapport eval`` (``make eval``): each model's prequential figures next to its baseline, in one table.

- Sentiment, on real labelled text (Korean reviews, English review snippets): see
  :mod:`pipeline.drivers.eval_sentiment`.
- Churn: the engine runs a year of journeys; each snapshot's prediction (made at snapshot time) is
  scored when its label arrives H days later. ROC AUC against the recency-only baseline and BG/NBD.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from pipeline.core.engine import Engine
from pipeline.core.models.churn import recency_prior
from pipeline.core.pii import Hasher
from pipeline.core.rules import Rules
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records
from pipeline.drivers import eval_sentiment
from pipeline.drivers.bgnbd import BGNBD

FIXED = datetime(2026, 1, 1, tzinfo=timezone.utc)


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


def churn_rows(seed: int, customers: int = 300, days: float = 365.0) -> list[tuple[str, ...]]:
    """Prequential ROC AUC of the online model, the recency baseline and BG/NBD on the same snapshots.

    BG/NBD is a batch model: it is fitted on every customer's purchases in the first half of the year
    and scores the snapshots of the second half; all three are compared on those snapshots.
    """
    rules = Rules()
    engine = Engine(rules, Hasher(b"eval-key"), lambda: FIXED)
    scored: list[tuple[int, float, float, bool, dict[str, float]]] = []
    learn = engine.churn.learn

    def scoring_learn(x: dict[str, float], churned: bool) -> bool:
        scored.append((len(scored), engine.churn.predict(x), recency_prior(x), churned, x))
        return learn(x, churned)

    engine.churn.learn = scoring_learn  # type: ignore[method-assign]
    records = list(read_records(iter(g.line() for g in generate(seed, customers, days=days, malformed=0, duplicates=0))))
    half = len(records) // 2
    for i in range(0, half, 1000):
        engine.process_batch(records[i:min(i + 1000, half)])
    calibration = [(st.purchase_times, engine.watermark.current) for st in engine.customers.values() if st.purchase_times]
    first_late = len(scored)
    for i in range(half, len(records), 1000):
        engine.process_batch(records[i:i + 1000])
    late = scored[first_late:]

    day = 86_400_000
    x = np.array([len(p) - 1 for p, _ in calibration], dtype=float)
    t_x = np.array([(p[-1] - p[0]) / day for p, _ in calibration])
    T = np.array([(now - p[0]) / day for p, now in calibration])
    bg = BGNBD().fit(x, t_x, T)
    sx = np.array([max(0.0, s[4]["purchases"] - 1) for s in late])
    sT = np.array([s[4]["tenure_days"] for s in late])
    stx = np.maximum(0.0, sT - np.array([s[4]["recency_days"] for s in late]))
    bg_scores = list(-bg.expected_purchases(rules.churn_horizon_days, sx, stx, sT))
    labels = [s[3] for s in late]
    n = str(len(late))
    return [
        ("churn", "model (online logistic regression)", "ROC AUC, 2nd-half snapshots", f"{auc([s[1] for s in late], labels):.3f}", n),
        ("churn", "BG/NBD (fitted on the 1st half)", "ROC AUC, 2nd-half snapshots", f"{auc(bg_scores, labels):.3f}", n),
        ("churn", "recency only (baseline)", "ROC AUC, 2nd-half snapshots", f"{auc([s[2] for s in late], labels):.3f}", n),
        ("churn", "share churned", "", f"{sum(labels) / max(1, len(labels)):.3f}", n),
    ]


def _table(rows: list[tuple[str, ...]]) -> None:
    rows = [("model", "learner", "measure", "value", "n")] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(seed: int) -> None:
    _table(eval_sentiment.rows())  # printed before churn runs: a churn failure does not hide them
    print("\n" + "\n".join(eval_sentiment.NOTES) + "\n", flush=True)
    _table(churn_rows(seed))
    print("Churn data: generated offline (simulated journeys); see README for what these figures mean.")
