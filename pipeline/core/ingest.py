"""Decode one raw record into a validated, pseudonymised ``Event`` or a ``DeadLetter`` saying why not."""
from __future__ import annotations

import base64
import logging
import os
import re
from collections import Counter
from hashlib import blake2b

import orjson
from pydantic import ValidationError

from pipeline.core.failures import dlq_record, fault_plan, inject
from pipeline.core.pii import PREHASHED, Hasher, redact, redact_text
from pipeline.core.placeholders import is_placeholder
from pipeline.core.privacy import DeadLetterLink
from pipeline.core.records import Emit, Event, Identifier, RawRecord, to_ms
from pipeline.core.rules import IDENTIFIER_KINDS, Rules
from schemas.inbound import INBOUND, MAX_IDENTIFIER_CHARS
from schemas.outbound import DeadLetter


log = logging.getLogger(__name__)


def describe(error: ValidationError) -> str:
    """``field.path: reason`` for each problem (the first ``PROBLEMS_SHOWN``), joined by ``; ``."""
    errors = error.errors(include_url=False)
    parts = []
    for e in errors[:PROBLEMS_SHOWN]:
        where = ".".join(str(p) for p in e["loc"]) or "(event)"
        parts.append(f"{where}: {e['msg'].removeprefix('Value error, ')}"[:500])
    if len(errors) > PROBLEMS_SHOWN:
        parts.append(f"and {len(errors) - PROBLEMS_SHOWN} more problems")
    return "; ".join(parts)


#: Validation problems a dead letter names (a record with 20,000 bad fields gets a bounded detail).
PROBLEMS_SHOWN = 20
#: Characters of a dead letter's error detail kept.
DETAIL_CHARS = 4_000


#: Free-text fields of inbound events: email addresses and phone numbers in them are replaced by ``hmac:`` tokens.
FREE_TEXT = ("text", "query", "url")
#: Characters of a dead-lettered record's value kept when the record is too large (redacted first).
EXCERPT_CHARS = 1024
#: Identifier values whose outcome (hashed identifier, or unusable) is remembered: they recur per customer. The
#: memory is keyed by a digest under a per-process random key, so it holds no raw value.
KNOWN_VALUES = 200_000
_UNSEEN = object()


class Ingest:
    """Parse (orjson), validate (pydantic), normalise and hash identifiers; drop placeholder and blocked values."""

    def __init__(self, rules: Rules, hasher: Hasher) -> None:
        self._hasher = hasher
        self._blocked = re.compile(rules.blocked_identifier_pattern, re.IGNORECASE)
        self._priority = rules.identifier_priority
        self._known: dict[bytes, Identifier | None] = {}  # keyed digest of (kind, raw value) -> outcome
        self._salt = os.urandom(16)
        self._max_bytes = rules.max_record_bytes
        self._max_future_ms = int(rules.max_future_s * 1000)
        self._faults = fault_plan(rules.inject_faults)

    def decode(self, rec: RawRecord) -> Event | DeadLetter:
        size = max(len(rec.value), len(rec.key or b""))
        if size > self._max_bytes:
            return self.dead_letter(rec, "too_large", f"{size} bytes, over the limit of {self._max_bytes} "
                                    "(RAPPORT_MAX_RECORD_BYTES); raw is an excerpt", excerpt=True)
        model = INBOUND.get(rec.topic)
        if model is None:
            return self.dead_letter(rec, "unknown_topic", f"no schema for topic {rec.topic!r}")
        try:
            doc = orjson.loads(rec.value)
        except orjson.JSONDecodeError as e:
            return self.dead_letter(rec, "invalid_json", str(e))
        if not isinstance(doc, dict):
            return self.dead_letter(rec, "not_an_object", f"expected a JSON object, got {type(doc).__name__}")
        raw_ids = doc.get("identifiers")
        idents = self.identifiers(raw_ids) if type(raw_ids) is dict else ()
        if idents:  # validated with the tokens in place: nothing raw past the door, and no second model to build
            doc["identifiers"] = {i.kind: PREHASHED + i.hash for i in idents}
        grown = 0
        for field in FREE_TEXT:  # an email or phone written into a text, a search or a URL: hashed too
            value = doc.get(field)
            if type(value) is str:
                doc[field] = redacted = redact_text(value, self._hasher)
                grown += len(redacted) - len(value)  # the tokens are ASCII: characters are bytes
        if grown > 0 and size + grown > self._max_bytes:
            return self.dead_letter(rec, "too_large", f"{size} bytes that pseudonymised would be {size + grown}, "
                                    f"over the limit of {self._max_bytes} (RAPPORT_MAX_RECORD_BYTES); raw is an "
                                    "excerpt", excerpt=True)
        try:
            body = model.model_validate(doc)
        except ValidationError as e:
            return self.dead_letter(rec, "validation", describe(e))
        if not idents:
            if not any((raw_ids.get(k) or "").strip() for k in IDENTIFIER_KINDS):
                return self.dead_letter(rec, "validation", "identifiers: needs at least one non-blank identifier")
            return self.dead_letter(rec, "no_usable_identifier", "identifiers: every value is blocked or malformed")
        ts = to_ms(body.occurred_at)
        if rec.timestamp_ms is not None and ts > rec.timestamp_ms + self._max_future_ms:
            return self.dead_letter(rec, "future_event_time", f"occurred_at is {(ts - rec.timestamp_ms) / 3_600_000:,.1f} h "
                                    f"after the record was written (its Kafka timestamp); at most "
                                    f"{self._max_future_ms / 3_600_000:g} h is accepted (RAPPORT_MAX_FUTURE_S)")
        return Event(rec.topic, ts, idents, body)

    def event_or_dead_letter(self, rec: RawRecord, stats: Counter[str], dead: list[Emit],
                             links: list[DeadLetterLink]) -> Event | None:
        """``decode``; a dead letter is counted in ``stats`` and added to ``dead``, bound for ``dlq.v1``, and
        the identifiers it carries, if any, to ``links`` (an erase of their person tombstones it)."""
        try:
            if self._faults:
                inject(self._faults, "ingest", rec.value.decode(errors="replace"))
            decoded = self.decode(rec)
        except Exception as e:  # noqa: BLE001 - a record the decoder chokes on must not stop the partition
            stats["errors:ingest"] += 1
            log.error("stage ingest failed on a record of %s (sent to dlq.v1): %s", rec.topic, type(e).__name__)
            decoded = self.dead_letter(rec, "processing_error", f"ingest: {type(e).__name__}: {str(e)[:500]}",
                                       stage="ingest")
        if isinstance(decoded, DeadLetter):
            stats[f"dlq:{decoded.error_type}"] += 1
            dead.append(record := dlq_record(decoded))
            idents = self._identifiers_of(rec)
            if idents:
                links.append(DeadLetterLink(record.key, tuple(i.key for i in idents)))  # type: ignore[arg-type]
            return None
        return decoded

    def _identifiers_of(self, rec: RawRecord) -> tuple[Identifier, ...]:
        """The identifiers a rejected record carries, where they can be read (not from one too large)."""
        if len(rec.value) > self._max_bytes:
            return ()
        try:
            doc = orjson.loads(rec.value)
        except orjson.JSONDecodeError:
            return ()
        raw_ids = doc.get("identifiers") if isinstance(doc, dict) else None
        try:
            return self.identifiers(raw_ids) if type(raw_ids) is dict else ()
        except Exception:  # noqa: BLE001 - what made the record a dead letter may break this too
            return ()

    def identifiers(self, raw: dict[str, str | None]) -> tuple[Identifier, ...]:
        """The usable identifiers, hashed, in priority order (placeholders and blocked values left out); none
        when a value is not a string (validation names it)."""
        out = []
        for kind in self._priority:
            value = raw.get(kind)
            if value is None:
                continue
            if type(value) is not str or len(value) > MAX_IDENTIFIER_CHARS:
                return ()  # validation names it
            key = blake2b(f"{kind}:{value}".encode(), digest_size=16, key=self._salt).digest()
            known = self._known.get(key, _UNSEEN)
            if known is _UNSEEN:
                known = self._identifier(kind, value)
                if len(self._known) >= KNOWN_VALUES:
                    self._known.clear()
                self._known[key] = known
            if known is not None:
                out.append(known)
        return tuple(out)

    def _identifier(self, kind: str, value: str) -> Identifier | None:
        if self._blocked.match(value.strip()) or (not value.startswith(PREHASHED) and is_placeholder(kind, value)):
            return None
        return self._hasher.identifier(kind, value)

    def dead_letter(self, rec: RawRecord, error_type: str, detail: str, excerpt: bool = False,
                    stage: str | None = None) -> DeadLetter:
        """The record for ``dlq.v1``, redacted; ``excerpt``: only its first ``EXCERPT_CHARS`` characters (redacted
        with a margin, so that no value cut at the end escapes redaction)."""
        raw = redact(rec.value[:4 * EXCERPT_CHARS] if excerpt else rec.value, self._hasher)
        if excerpt:
            raw = raw[:EXCERPT_CHARS]
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode(), "base64"
        if not excerpt and len(orjson.dumps(text)) > self._max_bytes:  # redacted, base64 or escaped, it outgrew a record
            return self.dead_letter(rec, error_type, f"{detail}; raw is an excerpt (whole, it would not fit a "
                                    "record)", excerpt=True, stage=stage)
        key = None if rec.key is None else redact(rec.key[:4 * EXCERPT_CHARS], self._hasher)[:EXCERPT_CHARS].decode(
            "utf-8", errors="replace")
        return DeadLetter(
            source_topic=rec.topic, partition=rec.partition, offset=rec.offset, key=key,
            raw=text, raw_encoding=encoding, error_type=error_type,
            error_detail=redact(detail[:DETAIL_CHARS].encode(), self._hasher).decode("utf-8", errors="replace")[:DETAIL_CHARS],
            stage=stage,
        )
