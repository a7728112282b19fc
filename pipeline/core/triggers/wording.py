"""What every trigger record shares: deterministic ids, and the words of readable reasons.

>>> duration(1800), duration(20), duration(7200), money(1234567.0, "KRW")
('30 minutes', '20 seconds', '2 hours', '1,234,567 KRW')
"""
from __future__ import annotations

import hashlib

LANGUAGE_NAMES = {"ko": "Korean", "en": "English", "und": "an unrecognised language"}
CHANNEL_NAMES = {"web": "web review", "app": "app review", "sns": "social post", "call_center": "call-center note",
                 "chat": "chat message", "survey": "survey answer"}


def trigger_id(kind: str, anchor: str) -> str:
    """The same kind and anchor (an episode's or a cause's event id) always give the same id."""
    return hashlib.sha256(f"{kind}|{anchor}".encode()).hexdigest()[:32]


def money(value: float, currency: str | None) -> str:
    return f"{value:,.0f} {currency or ''}".strip()


def plural(n: float, unit: str) -> str:
    return f"{n:g} {unit}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return plural(round(seconds), "second")
    if seconds < 3600:
        return plural(round(seconds / 60, 1), "minute")
    return plural(round(seconds / 3600, 1), "hour")


def a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
