"""Text features for sentiment: script detection, normalisation, tokens with negation scope.

>>> language("배송이 너무 늦어요 ㅠㅠ"), language("great product"), language("배송 fast 좋아요"), language("!!!")
('ko', 'en', 'ko', 'und')
>>> sorted(t for t in tokens("not good at all") if t.startswith("w:"))
['w:NOT_all', 'w:NOT_at', 'w:NOT_good', 'w:not']
>>> "j:ㅠㅠ" in tokens("별로예요 ㅠㅠㅠㅠ")
True
"""
from __future__ import annotations

import re
import string
import unicodedata

_HANGUL = re.compile(r"[가-힣ㄱ-ㅎㅏ-ㅣ]")
_LATIN = re.compile(r"[A-Za-z]")
_REPEAT = re.compile(r"(.)\1{2,}")
_LATIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[!?]+|[.,;:]")
_HANGUL_CHUNK = re.compile(r"[가-힣]+")
_JAMO_RUN = re.compile(r"[ㄱ-ㅎㅏ-ㅣ]{2,}")
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_NEGATORS = frozenset({"not", "no", "never", "nothing", "nobody", "none", "cannot", "without", "hardly"})
_SCOPE_END = frozenset({".", ",", ";", ":", "!", "?", "but"})
_ASCII_LETTERS = string.ascii_letters.encode()
_CAPS_WORD = re.compile(r"(?<![A-Za-z])[A-Z]{3,}(?![A-Za-z])")  # a whole Latin word of 3+ letters in capitals


def letters(text: str) -> tuple[int, int]:
    """(Hangul letters, Latin letters) of the text."""
    if text.isascii():
        b = text.encode()
        return 0, len(b) - len(b.translate(None, _ASCII_LETTERS))
    return len(_HANGUL.findall(text)), len(_LATIN.findall(text))


def language(text: str) -> str:
    """``ko`` when Hangul dominates or ties, ``en`` for Latin script, ``und`` when neither."""
    return language_of(*letters(text))


def language_of(ko: int, en: int) -> str:
    if ko == 0 and en == 0:
        return "und"
    return "ko" if ko * 3 >= en else "en"  # a Hangul syllable carries about three Latin letters of text


def script_share(text: str) -> float:
    """Share of Hangul in the text's letters, a Hangul syllable weighing as three Latin letters (0..1)."""
    ko, en = 3 * len(_HANGUL.findall(text)), len(_LATIN.findall(text))
    return ko / (ko + en) if ko + en else 0.0


def canonical(text: str) -> str:
    """NFC with full-width ASCII folded; not NFKC, which would turn ``ㅠ`` into a conjoining jamo."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text).translate(_FULLWIDTH)


def normalise(text: str) -> str:
    """Canonical, lower case, runs of one character cut to two (``soooo`` -> ``soo``, ``ㅋㅋㅋㅋ`` -> ``ㅋㅋ``)."""
    return _REPEAT.sub(r"\1\1", canonical(text).lower())


def tokens(text: str, hangul: bool = True) -> dict[str, float]:
    """Bag of features: Latin words and word bigrams (negation-scoped), Hangul words and character 2/3-grams
    (unless ``hangul`` is false), jamo runs, emphasis."""
    raw = canonical(text)
    norm = normalise(raw)
    feats: dict[str, float] = {}
    negated = False
    prev = "<s>"
    for w in _LATIN_WORD.findall(norm):
        if w in _SCOPE_END or w[0] in "!?":
            negated, prev = False, "<s>"
            continue
        name = "NOT_" + w if negated else w
        feats["w:" + name] = 1.0
        feats[f"w2:{prev}_{name}"] = 1.0
        prev = name
        if w in _NEGATORS or w.endswith("n't"):
            negated = True
    for chunk in _HANGUL_CHUNK.findall(norm) if hangul else ():
        feats["k:" + chunk] = 1.0
        padded = f"<{chunk}>"
        for n in (2, 3):
            for i in range(len(padded) - n + 1):
                feats[f"k{n}:{padded[i:i + n]}"] = 1.0
    for run in _JAMO_RUN.findall(norm):
        feats["j:" + run] = 1.0
    bangs = raw.count("!")
    if bangs:
        feats["x:bang"] = min(bangs, 3) / 3
    caps = len(_CAPS_WORD.findall(raw))
    if caps:
        feats["x:caps"] = min(caps, 3) / 3
    return feats
