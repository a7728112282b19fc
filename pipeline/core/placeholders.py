"""Identifier values that name nobody: placeholders in every common shape, recognised by their form.

A value is a placeholder when, ignoring case and separators, it is empty, all zeros, one character
repeated six times or more (``FFFFFFFF-FFFF-…``, ``xxxxxx``), a run of seven or more consecutive
digits (``123456789``) or a stand-in word (``null``, ``unknown``, ``guest``, ``미입력``…). Shorter
repeats and runs are left alone (``111`` can be a real member number). Emails also when the local
part is such a word (``test@…``, ``noreply@…``), one repeated character, a run, or the domain's own
name (``abc@abc.com``), or the domain is reserved for examples (``.test``, ``.invalid``, ``.example``).
Phones when the subscriber number (the last 8 digits) is one repeated digit, a run of consecutive
digits, or a 4-digit run twice. Checks are linear in the value's length.

>>> is_placeholder("device_id", "00000000-0000-0000-0000-000000000000")
True
>>> is_placeholder("anonymous_id", "ffffffff-FFFF-ffff-ffff-ffffffffffff"), is_placeholder("loyalty_id", "xxxx-xxxx")
(True, True)
>>> is_placeholder("user_id", "[object Object]"), is_placeholder("user_id", "u-20931"), is_placeholder("user_id", "111")
(True, False, False)
>>> [is_placeholder("email", e) for e in ("test@gmail.com", "no-reply@shop.kr", "abc@abc.com", "kim.minji@naver.com")]
[True, True, True, False]
>>> [is_placeholder("phone", p) for p in ("010-0000-0000", "010-1234-5678", "+82 10 1111 1111", "010-2784-1093")]
[True, True, True, False]
"""
from __future__ import annotations

import re

_NOT_ALNUM = re.compile(r"[^0-9a-z가-힣]+")
_DIGITS = re.compile(r"\D+")
_ASCENDING, _DESCENDING = "01234567890", "98765432109"

#: Stand-in words, compared with case and every non-alphanumeric character removed.
WORDS = frozenset({
    "", "null", "none", "nil", "nan", "na", "undefined", "unknown", "unset", "notset", "empty", "blank", "default",
    "anonymous", "anon", "guest", "test", "testing", "tester", "demo", "sample", "dummy", "fake", "temp", "tmp",
    "tbd", "todo", "false", "true", "objectobject", "invalid", "notprovided", "notavailable", "noemail", "nomail",
    "noreply", "donotreply", "donotemail", "email", "mail", "user", "customer", "asdf", "qwerty", "abc", "abcd",
    "xxx", "없음", "미입력", "비회원", "테스트", "고객", "모름",
})
#: Top-level domains reserved for documentation and testing (RFC 2606, RFC 6761).
RESERVED_TLDS = frozenset({"test", "invalid", "example", "localhost", "local"})


def _one_character(s: str, at_least: int) -> bool:
    """All zeros, or one character repeated ``at_least`` times or more."""
    return s != "" and (s.count("0") == len(s) or (len(s) >= at_least and s.count(s[0]) == len(s)))


def _consecutive(digits: str, at_least: int) -> bool:
    return len(digits) >= at_least and (digits in _ASCENDING or digits in _DESCENDING)


def _generic(value: str) -> bool:
    """Short repeats and runs are left alone: ``111`` or ``22222`` can be a real member number."""
    word = _NOT_ALNUM.sub("", value.lower())
    return word in WORDS or _one_character(word, 6) or _consecutive(word, 7)


def _email(value: str) -> bool:
    local, _, domain = value.strip().lower().rpartition("@")
    labels = domain.split(".")
    local_word = _NOT_ALNUM.sub("", local.split("+", 1)[0])
    return (local_word in WORDS or _one_character(local_word, 3) or _consecutive(local_word, 4)
            or labels[-1] in RESERVED_TLDS or (len(labels) > 1 and local_word == _NOT_ALNUM.sub("", labels[0])))


def _phone(value: str) -> bool:
    tail = _DIGITS.sub("", value)[-8:]
    return (len(tail) < 7 or tail.count(tail[0]) == len(tail) or _consecutive(tail, 7)
            or (len(tail) == 8 and tail[:4] == tail[4:] and (tail[:4] in _ASCENDING or tail[:4] in _DESCENDING)))


def is_placeholder(kind: str, value: str) -> bool:
    """True when ``value`` (raw, as the producer wrote it) names nobody."""
    if _generic(value):
        return True
    if kind == "email":
        return _email(value)
    if kind == "phone":
        return _phone(value)
    return False
