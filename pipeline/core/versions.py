"""Global learned state published as event-time versions: the churn model learns in one place.

Customers live on many partitions, and each scores churn with the model. For every deployment to score
with the same model at the same event time, the model is versioned by *epochs* of event time
(``model_epoch_hours``, a day by default). The version in effect in epoch ``k`` has learned every label
due before epoch ``k - 1``, in one canonical order (due time, then shuffled by a digest of the label), and
nothing else. A label names no customer: what the learner holds until it learns is anonymous.

Each customer partition computes the labels of its customers when its watermark passes them, and
reports them with how far it is complete (``through``: every label due in that epoch or before). The
learner learns an epoch once every partition is complete through it, and publishes version ``k + 2``.
A partition never waits on itself: when its watermark enters epoch ``k`` it is complete through
``k - 1``, and it needs version ``k`` at most (the lateness is shorter than an epoch). It waits only
for partitions that are behind. The cost: the model is one to two epochs staler than a single process
learning each label the moment it is due.

>>> from pipeline.core.models.churn import ChurnModel
>>> learner = ChurnLearner(ChurnModel(horizon_ms=10), partitions=2, epoch_ms=100)
>>> learner.start(250).keys()           # the first watermark: epochs 2 and 3 use the untrained model
dict_keys([2, 3])
>>> learner.report(0, through=2, labels=[Label(250, 240, {"recency_days": 1.0}, True)])
{}
>>> sorted(learner.report(1, through=3, labels=[]))   # both complete through 2: epoch 2 learned
[4]
>>> learner.model.learned
1
"""
from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.core.models.churn import ChurnModel
from pipeline.core.records import digest


@dataclass(frozen=True, slots=True)
class Label:
    """A churn snapshot whose horizon has passed: ``churned`` is whether no purchase followed in time. It names
    no customer (the learner needs none, and holds it until its epoch is learned)."""

    due: int
    ts: int
    x: dict[str, float]
    churned: bool

    @property
    def order(self) -> tuple[int, int]:
        """Canonical learning order: by due time, then shuffled by a digest of the rest (a sorted stream would
        teach an online model in a biased order). The same whatever the partitioning; labels equal in it are
        alike."""
        return self.due, digest((self.ts, self.x, self.churned))


#: Versions kept per partition (epochs): scores of older event times (far out of order) use the oldest kept.
KEEP_EPOCHS = 400


def frozen_copy(model: ChurnModel) -> ChurnModel:
    """A copy that later learning cannot change (a published version); it only predicts, so it carries no
    prequential monitor."""
    monitor = getattr(model, "monitor", None)
    if monitor is None:
        return pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    model.monitor = None
    try:
        return pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        model.monitor = monitor


class Versions:
    """Published churn model versions by epoch; what a partition scores with."""

    def __init__(self, epoch_ms: int) -> None:
        self.epoch_ms = epoch_ms
        self.by_epoch: dict[int, ChurnModel] = {}

    def epoch(self, ts: int) -> int:
        return ts // self.epoch_ms

    def at(self, ts: int) -> ChurnModel | None:
        """The version in effect at event time ``ts``; None when it is not published yet. An epoch older
        than every kept version (an event out of order) gets the oldest kept."""
        e = self.epoch(ts)
        model = self.by_epoch.get(e)
        if model is None and self.by_epoch and e < min(self.by_epoch):
            return self.by_epoch[min(self.by_epoch)]
        return model

    def publish(self, published: dict[int, ChurnModel]) -> None:
        self.by_epoch.update(published)
        if published:
            newest = max(self.by_epoch)
            for e in [e for e in self.by_epoch if e <= newest - KEEP_EPOCHS]:
                del self.by_epoch[e]


class ChurnLearner:
    """Collects label reports from every partition; learns complete epochs; returns versions to publish."""

    def __init__(self, model: ChurnModel, partitions: int, epoch_ms: int) -> None:
        self.model, self.partitions, self.epoch_ms = model, partitions, epoch_ms
        self.through: dict[int, int] = {}  # partition -> complete through this epoch
        self.pending: dict[int, list[Label]] = {}  # epoch of due time -> labels reported, not learned yet
        self.learned_through: int | None = None
        self.dropped = 0  # labels reported for an epoch already learned (a watermark jump beyond the horizon)

    def start(self, watermark: int) -> dict[int, ChurnModel]:
        """The first watermark: nothing can be due before its epoch, so that epoch and the next use the
        model as it is."""
        if self.learned_through is not None:
            return {}
        first = watermark // self.epoch_ms
        self.learned_through = first - 1
        return {first: frozen_copy(self.model), first + 1: frozen_copy(self.model)}

    def report(self, partition: int, through: int, labels: Iterable[Label]) -> dict[int, ChurnModel]:
        """A partition's labels, complete through epoch ``through``. Returns the versions now published."""
        assert self.learned_through is not None, "start() comes first"
        for label in labels:
            e = label.due // self.epoch_ms
            if e <= self.learned_through:
                self.dropped += 1
            else:
                self.pending.setdefault(e, []).append(label)
        self.through[partition] = max(through, self.through.get(partition, through))
        if len(self.through) < self.partitions:
            return {}
        complete = min(self.through.values())
        published: dict[int, ChurnModel] = {}
        copy = None
        while self.learned_through < complete:
            e = self.learned_through + 1
            labels = sorted(self.pending.pop(e, []), key=lambda lb: lb.order)
            for label in labels:
                self.model.learn(label.x, label.churned)
            self.learned_through = e
            if copy is None or labels:  # an epoch without labels publishes the same model again
                copy = frozen_copy(self.model)
            published[e + 2] = copy
        return published
