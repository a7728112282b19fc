"""Prequential figures of a running model (each prediction scored when its label arrives) and drift.

Rolling accuracy and log-loss over the last ``window`` labels (ROC AUC too for binary models), and
ADWIN on the stream of errors: a drift is counted when the error rate shifts.

>>> m = Prequential(window=100)
>>> m.update("negative", "negative", {"negative": 0.9, "positive": 0.1})
False
>>> m.figures()["accuracy"]
1.0
"""
from __future__ import annotations

import logging

from river import drift, metrics, utils

log = logging.getLogger(__name__)


class Prequential:
    def __init__(self, window: int = 1000, binary: bool = False, name: str = "model") -> None:
        self.name = name
        self.accuracy = utils.Rolling(metrics.Accuracy, window_size=window)
        self.logloss = utils.Rolling(metrics.LogLoss if binary else metrics.CrossEntropy, window_size=window)
        self.auc = metrics.RollingROCAUC(window_size=window) if binary else None
        self.adwin = drift.ADWIN()
        self.labels = 0
        self.drifts = 0

    def update(self, y_true: object, y_pred: object, proba: dict | float) -> bool:
        """Score one prediction against its label; True when the error rate drifted."""
        self.labels += 1
        self.accuracy.update(y_true, y_pred)
        if self.auc is not None:
            self.logloss.update(y_true, proba)
            self.auc.update(y_true, proba)
        else:
            self.logloss.update(y_true, proba)
        self.adwin.update(float(y_true != y_pred))
        if self.adwin.drift_detected:
            self.drifts += 1
            log.warning("%s: drift in its prequential error rate after %d labels (rolling accuracy %.3f)",
                        self.name, self.labels, self.accuracy.get())
            return True
        return False

    def figures(self) -> dict[str, float]:
        out = {"accuracy": self.accuracy.get(), "logloss": self.logloss.get()}
        if self.auc is not None:
            out["roc_auc"] = self.auc.get()
        return out
