"""Online models: text sentiment and churn. No I/O when they score or learn; a pickle is their checkpoint
(inside the state encoding, ``pipeline.core.encoding``, with the library versions that wrote it).

They share one protocol, and every model passes the same checks (``tests/core/test_model_checks.py``,
as river's estimator checks do): the same inputs give the same scores; a pickle round trip scores
the same; a published copy does not change when the original learns; learning from labels moves
scores toward them; scores stay in range whatever the input.
"""
from __future__ import annotations

from typing import Any, Protocol

from pipeline.core.models.monitor import Prequential


class OnlineModel(Protocol):
    """What the engine needs of a model: a version, prequential figures, and learning from a label
    (True when its error rate drifted). How it scores depends on the input: a text, or features."""

    version: str
    monitor: Prequential

    def learn(self, x: Any, y: Any, /) -> bool: ...
