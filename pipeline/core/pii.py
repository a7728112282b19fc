"""Normalise and pseudonymise identifiers at the door; redact raw bytes bound for the DLQ.

>>> h = Hasher(b"k", "82")
>>> h.identifier("phone", "010-1234-5678") == h.identifier("phone", "+82 10 1234 5678")
True
>>> h.identifier("email", " Kim@Example.COM ") == h.identifier("email", "kim@example.com")
True
>>> b"kim@example.com" in redact(b'{"identifiers": {"email": "kim@example.com"}}', h)
False
"""
from __future__ import annotations

import hashlib
import hmac
import re

import orjson

from pipeline.core.records import Identifier

PREHASHED = "hmac:"
# Linear in the text's length: a local part starts only where a run of its characters starts, and
# possessive runs never backtrack (a 100 KB run of letters is read once, not once per position).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)+")
_PHONE = re.compile(r"\+\d[\d ()-]{6,20}\d|\b0\d{1,2}[ -]?\d{3,4}[ -]?\d{4}\b")


def normalise_email(raw: str) -> str | None:
    value = raw.strip().lower()
    local, at, domain = value.partition("@")
    return value if at and local and "." in domain else None


def normalise_phone(raw: str, country_code: str) -> str | None:
    """Digits with country code: ``010-1234-5678`` -> ``821012345678`` (national numbers get ``country_code``)."""
    stripped = raw.strip()
    digits = re.sub(r"\D", "", stripped)
    if stripped.startswith("+"):
        pass
    elif digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = country_code + digits[1:]
    elif not digits.startswith(country_code) or len(digits) < 11:
        digits = country_code + digits
    return digits if 8 <= len(digits) <= 15 else None


class Hasher:
    """HMAC-SHA256 of ``kind:normalised value``, truncated to 128 bits (hex)."""

    def __init__(self, secret: bytes, country_code: str = "82") -> None:
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)  # copied per value: the key is prepared once
        self._cc = country_code

    def digest(self, kind: str, normalised: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{kind}:{normalised}".encode())
        return mac.hexdigest()[:32]

    def normalise(self, kind: str, raw: str) -> str | None:
        if kind == "email":
            return normalise_email(raw)
        if kind == "phone":
            return normalise_phone(raw, self._cc)
        value = raw.strip()
        return value or None

    def identifier(self, kind: str, raw: str) -> Identifier | None:
        """The pseudonymised identifier, or None when the value is not usable; ``hmac:`` values pass as they are."""
        if raw.startswith(PREHASHED):
            return Identifier(kind, raw[len(PREHASHED):])
        value = self.normalise(kind, raw)
        return None if value is None else Identifier(kind, self.digest(kind, value))

    def token(self, kind: str, raw: str) -> str:
        ident = self.identifier(kind, raw)
        return PREHASHED + (ident.hash if ident else self.digest(kind, raw.strip()))


def redact(raw: bytes, hasher: Hasher) -> bytes:
    """Replace email and phone values in ``raw`` with ``hmac:`` tokens that ingest accepts back (DLQ redrive).
    Linear in ``len(raw)``."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    ids = doc.get("identifiers") if isinstance(doc, dict) else None
    if isinstance(ids, dict):
        for kind in ("email", "phone"):
            if isinstance(ids.get(kind), str) and not ids[kind].startswith(PREHASHED):
                ids[kind] = hasher.token(kind, ids[kind])
        raw = orjson.dumps(doc)
    return redact_text(raw.decode("utf-8", errors="surrogateescape"), hasher).encode("utf-8", errors="surrogateescape")


def redact_text(text: str, hasher: Hasher) -> str:
    """Email addresses and phone numbers in free text replaced by their ``hmac:`` tokens (linear).

    >>> redact_text("메일 kim@naver.com 전화 010-2784-1093", Hasher(b"k"))[:8]
    '메일 hmac:'
    """
    if "@" in text:
        text = _EMAIL.sub(lambda m: hasher.token("email", m.group()), text)
    return _PHONE.sub(lambda m: hasher.token("phone", m.group()), text)
