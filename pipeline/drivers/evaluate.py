"""``rapport eval`` (``make eval``): every model figure on real data next to its baselines.

- Sentiment, on real labelled text (held-out Korean reviews with a prior built from the rest in the
  same run; English review snippets rated by people): :mod:`pipeline.drivers.eval_sentiment`.
- Churn, on a real purchase log (CDNOW) through the engine, at calibration cutoffs, against BG/NBD
  and recency alone: :mod:`pipeline.drivers.eval_churn`.
"""
from __future__ import annotations

from pipeline.drivers import eval_churn, eval_sentiment


def _table(rows: list[tuple[str, ...]]) -> None:
    rows = [("model", "learner", "measure", "value", "n")] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    _table(eval_sentiment.rows())  # printed before churn runs: a churn failure does not hide them
    print("\n" + "\n".join(eval_sentiment.NOTES) + "\n", flush=True)
    _table(eval_churn.rows())
    print("\nChurn data: CDNOW, a real purchase log (one 1997-98 cohort of a US CD retailer). See the README for "
          "what these figures mean.")
