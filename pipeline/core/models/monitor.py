"""Prequential figures of a running model (each prediction scored when its label arrives) and drift.

Rolling accuracy and log-loss over the last ``window`` labels (ROC AUC too for binary models), and
ADWIN on the stream of errors: a drift is counted when the error rate shifts. The figures are computed
here rather than with ``river.metrics``, whose import pulls in scipy (half a second of every start-up).

>>> m = Prequential(window=100)
>>> m.update("negative", "negative", {"negative": 0.9, "positive": 0.1})
False
>>> m.figures()["accuracy"]
1.0
"""
from __future__ import annotations

import logging
import math
from collections import deque

from river._river_rust.drift import AdaptiveWindowing

log = logging.getLogger(__name__)
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] for the log-loss, as river's metrics do


class Adwin:
    """river's ``drift.ADWIN`` with its defaults, on the same Rust core: importing ``river.drift`` pulls in
    scipy and river's datasets (0.8 s of every start-up), and ADWIN is a thin wrapper over this core
    (river is pinned, and ``test_models`` checks that drifts are found)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._helper = AdaptiveWindowing(delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10)
        self.drift_detected = False

    def update(self, x: float) -> None:
        if self.drift_detected:
            self._reset()
        self.drift_detected = self._helper.update(x)


class Prequential:
    def __init__(self, window: int = 1000, binary: bool = False, name: str = "model") -> None:
        self.name, self.binary = name, binary
        self._window: deque[tuple[bool, float, float, bool]] = deque(maxlen=window)  # (right, loss, p, y) a label
        self.adwin = Adwin()
        self.labels = 0
        self.drifts = 0

    def __setstate__(self, state: dict) -> None:
        if "_window" not in state:  # a checkpoint from before these figures were our own: they start afresh
            window = state["accuracy"].window_size
            state = {"name": state["name"], "binary": state.get("auc") is not None, "labels": state["labels"],
                     "drifts": state["drifts"], "_window": deque(maxlen=window), "adwin": Adwin()}
        self.__dict__.update(state)

    def update(self, y_true: object, y_pred: object, proba: dict | float) -> bool:
        """Score one prediction against its label; True when the error rate drifted. ``proba``: the
        probability of each label, or (binary) of True."""
        self.labels += 1
        if isinstance(proba, dict):
            p, p_true = proba.get(y_true, 0.0), 0.0
        else:
            p_true = float(proba)
            p = p_true if y_true else 1.0 - p_true
        right = y_true == y_pred
        self._window.append((right, -math.log(min(max(p, EPS), 1.0 - EPS)), p_true, bool(y_true)))
        self.adwin.update(float(not right))
        if self.adwin.drift_detected:
            self.drifts += 1
            log.warning("%s: drift in its prequential error rate after %d labels (rolling accuracy %.3f)",
                        self.name, self.labels, self.figures()["accuracy"])
            return True
        return False

    def figures(self) -> dict[str, float]:
        """Rolling accuracy, log-loss and (binary) ROC AUC over the window; 0.0 before any label."""
        n = len(self._window)
        out = {"accuracy": sum(w[0] for w in self._window) / n if n else 0.0,
               "logloss": sum(w[1] for w in self._window) / n if n else 0.0}
        if self.binary:
            out["roc_auc"] = roc_auc([(w[2], w[3]) for w in self._window])
        return out


def roc_auc(scored: list[tuple[float, bool]]) -> float:
    """ROC AUC of (score, label) pairs, ties counted half (0.0 until both labels are present).

    >>> roc_auc([(0.9, True), (0.2, False), (0.5, True), (0.5, False)])
    0.875
    """
    ranked = sorted(scored)
    positives = sum(y for _, y in ranked)
    negatives = len(ranked) - positives
    if not positives or not negatives:
        return 0.0
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over tied scores
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(y for _, y in ranked[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
