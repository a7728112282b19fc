"""A stage that fails on an event never stops its partition: the event goes to ``dlq.v1``.

The dead letter names the stage, the error type and message (``error_type`` ``processing_error``),
and carries the event as it was validated (identifiers already ``hmac:`` tokens, free text redacted),
so that it can be re-driven once the fault is fixed. The traceback goes to the log, without the
error's message (it may quote the input).

>>> from pipeline.core.pii import Hasher
>>> dl = failed_letter("identity", "clickstream.v1", b'{"note": "kim@naver.com"}', KeyError("x"), Hasher(b"k"))
>>> dl.error_type, dl.stage, dl.error_detail, "naver" in dl.raw
('processing_error', 'identity', "identity: KeyError: 'x'", False)
"""
from __future__ import annotations

import base64
import logging
import traceback
from collections import Counter
from hashlib import blake2b

from pipeline.core.pii import Hasher, redact
from pipeline.core.records import Emit
from schemas.outbound import DeadLetter

log = logging.getLogger(__name__)

class InjectedFault(RuntimeError):
    """Raised where ``Rules.inject_faults`` asks (fault-injection tests and chaos runs)."""


def fault_plan(spec: str) -> dict[str, str]:
    """``stage:needle,...`` -> {stage: needle}: that stage raises on events whose id holds the needle (for
    ``timers``: on timers whose kind holds it).

    >>> fault_plan("identity:poison, timers:cart_abandoned")
    {'identity': 'poison', 'timers': 'cart_abandoned'}
    """
    return dict(part.strip().split(":", 1) for part in spec.split(",") if part.strip())


def inject(plan: dict[str, str], stage: str, name: str) -> None:
    needle = plan.get(stage)
    if needle is not None and needle in name:
        raise InjectedFault(f"fault injected into {stage} (RAPPORT_INJECT_FAULTS)")


#: Characters of the error message kept in a dead letter.
MESSAGE_CHARS = 500


def failed_letter(stage: str, source_topic: str, raw: bytes, error: BaseException, hasher: Hasher | None,
                  what: str = "event") -> DeadLetter:
    """The dead letter of ``raw`` (an event's JSON, or a timer's) on which ``stage`` raised ``error``."""
    log.error("stage %s failed on an %s of %s (sent to dlq.v1): %s\n%s", stage, what, source_topic,
              type(error).__name__, "".join(traceback.format_tb(error.__traceback__)).rstrip())
    detail = f"{stage}: {type(error).__name__}: {str(error)[:MESSAGE_CHARS]}".encode()
    if hasher is not None:
        raw, detail = redact(raw, hasher), redact(detail, hasher)
    return DeadLetter(
        source_topic=source_topic, partition=-1, offset=-1, key=None, raw=raw.decode("utf-8", errors="replace"),
        raw_encoding="utf-8", error_type="processing_error", stage=stage,
        error_detail=detail.decode("utf-8", errors="replace"),
    )


def undecodable_letter(topic: str, partition: int, offset: int, data: bytes, error: BaseException,
                       hasher: Hasher | None) -> DeadLetter:
    """The dead letter of an internal record that does not decode (one a newer or older release wrote)."""
    log.error("an internal record of %s[%d]@%d does not decode (sent to dlq.v1): %s", topic, partition, offset,
              type(error).__name__)
    raw = redact(data, hasher) if hasher is not None else data
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode(), "base64"
    return DeadLetter(source_topic=topic, partition=partition, offset=offset, key=None, raw=text,
                      raw_encoding=encoding, error_type="processing_error", stage="internal",
                      error_detail=f"internal: {type(error).__name__}: {str(error)[:MESSAGE_CHARS]}")


def dlq_record(letter: DeadLetter) -> Emit:
    """The ``dlq.v1`` record of ``letter``, keyed by a digest of what it holds: the same letter (a record read
    again) gets the same key, and an erase can tombstone it (the topic is compacted).

    >>> dlq_record(failed_letter("identity", "pos.v1", b"{}", KeyError("x"), None)).key
    'e44ae12d9af6b9cbc820674b1158251c'
    """
    what = (letter.source_topic, letter.partition, letter.offset, letter.stage, letter.error_type, letter.raw)
    return Emit("dlq.v1", blake2b(repr(what).encode(), digest_size=16).hexdigest(), letter)


def dead_lettered(stats: Counter[str], out: list[Emit], stage: str, letter: DeadLetter) -> str:
    """Count a processing error of ``stage`` and queue its dead letter for ``dlq.v1``; returns its key."""
    stats[f"errors:{stage}"] += 1
    stats["dlq:processing_error"] += 1
    out.append(record := dlq_record(letter))
    return record.key  # type: ignore[return-value]
