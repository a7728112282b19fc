"""Trigger types, one module each, registered here: the customer stage calls their hooks in this order.

Adding a trigger: a module with its rules, hooks, timer and record (see ``base.TriggerType``), its
outbound model and topic in ``schemas.outbound``, a line below, and its test.
"""
from __future__ import annotations

from pipeline.core.triggers import cart_abandoned, cart_recovered, churn_risk, negative_emotion
from pipeline.core.triggers.base import Applied, Stage, TriggerType

REGISTRY: tuple[TriggerType, ...] = (
    cart_abandoned.TRIGGER, cart_recovered.TRIGGER, negative_emotion.TRIGGER, churn_risk.TRIGGER,
)
BY_NAME = {t.name: t for t in REGISTRY}

__all__ = ["Applied", "BY_NAME", "REGISTRY", "Stage", "TriggerType"]
