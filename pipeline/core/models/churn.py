"""Online churn model with delayed labels.

Churned means no purchase in the ``horizon`` after a snapshot. Features are snapshotted in event time;
a snapshot's label is learned only once the watermark has passed ``snapshot time + horizon``, so
no future information reaches a prediction. Until ``warmup`` labels are learned the estimate is
blended with a recency prior.

>>> m = ChurnModel(horizon_ms=10, warmup=2)
>>> m.snapshot("c1", ts=0, x={"recency_days": 1.0, "purchases": 1.0})
>>> m.due(watermark=9), [s.customer_id for s in m.due(watermark=10)]
([], ['c1'])
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from river import compose, linear_model, optim, preprocessing

from pipeline.core.models.monitor import Prequential


@dataclass(order=True, slots=True)
class Snapshot:
    due: int
    seq: int
    customer_id: str = field(compare=False)
    ts: int = field(compare=False)
    x: dict[str, float] = field(compare=False)


def recency_prior(x: dict[str, float]) -> float:
    """Baseline: overdue relative to the customer's own rhythm (or 30 days) means likely gone."""
    if not x.get("purchases"):
        return 0.5
    rhythm = max(7.0, math.expm1(x.get("log_mean_gap", 0.0)) or 30.0)
    r = x.get("recency_days", 0.0) / rhythm
    return r / (1.0 + r)


class ChurnModel:
    family = "churn-logreg"

    def __init__(self, horizon_ms: int, warmup: int = 200) -> None:
        self.horizon_ms = horizon_ms
        self.warmup = warmup
        self.learned = 0
        self._seq = 0
        self._pending: list[Snapshot] = []
        self._model = compose.Pipeline(
            preprocessing.StandardScaler(), linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4)
        )
        self.monitor = Prequential(binary=True, name="churn")

    @property
    def version(self) -> str:
        return f"{self.family}.{self.learned}"

    @property
    def pending(self) -> int:
        return len(self._pending)

    def predict(self, x: dict[str, float]) -> float:
        prior = recency_prior(x)
        w = min(1.0, self.learned / self.warmup) if self.warmup else 1.0
        if w == 0:
            return prior
        p = self._model.predict_proba_one(x).get(True, 0.0)
        out = (1 - w) * prior + w * p
        return 0.0 if math.isnan(out) else min(1.0, max(0.0, out))

    def snapshot(self, customer_id: str, ts: int, x: dict[str, float]) -> None:
        self._seq += 1
        heapq.heappush(self._pending, Snapshot(ts + self.horizon_ms, self._seq, customer_id, ts, x))

    def due(self, watermark: int | None) -> list[Snapshot]:
        out = []
        while self._pending and watermark is not None and self._pending[0].due <= watermark:
            out.append(heapq.heappop(self._pending))
        return out

    def learn(self, x: dict[str, float], churned: bool) -> bool:
        """Score the estimate this snapshot had (prequential), then learn its label. True on drift."""
        p = self.predict(x)
        drifted = self.monitor.update(churned, p >= 0.5, p)
        self._model.learn_one(x, churned)
        self.learned += 1
        return drifted
