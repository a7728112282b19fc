"""VADER (``vaderSentiment`` 3.3.2, MIT) with the same scores at a lower cost per text.

``SentimentIntensityAnalyzer`` lower-cases the whole text again for every lexicon word it checks
for negation and idioms, and copies the text one character at a time to replace emoji. This
subclass lower-cases a text's words once and skips the emoji pass when the text has none; the
rules are VADER's, unchanged (the compound score is the same, checked on the evaluation texts).

>>> Vader().polarity_scores("not good at all")["compound"] == _Original().polarity_scores("not good at all")["compound"]
True
"""
from __future__ import annotations

from vaderSentiment import vaderSentiment as _v
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer as _Original


def _negated(word: str) -> bool:
    """``negated([word])`` of VADER for one word."""
    w = str(word).lower()
    return w in _NEGATE or "n't" in w


_NEGATE = frozenset(_v.NEGATE)


class Vader(_Original):
    def __init__(self) -> None:
        super().__init__()
        self._emoji_chars = frozenset(k for k in self.emojis if len(k) == 1)
        self._lw: tuple[list, list] | None = None

    def _lowered(self, words: list) -> list[str]:
        c = self._lw
        if c is not None and c[0] is words:
            return c[1]
        low = [str(w).lower() for w in words]
        self._lw = (words, low)  # holds ``words``, so its id is not reused while cached
        return low

    def polarity_scores(self, text):
        if self._emoji_chars.isdisjoint(text):
            text = text.strip()
        else:
            text_no_emoji = ""
            prev_space = True
            for ch in text:
                if ch in self.emojis:
                    description = self.emojis[ch]
                    if not prev_space:
                        text_no_emoji += " "
                    text_no_emoji += description
                    prev_space = False
                else:
                    text_no_emoji += ch
                    prev_space = ch == " "
            text = text_no_emoji.strip()
        sentitext = _v.SentiText(text)
        sentiments = []
        words_and_emoticons = sentitext.words_and_emoticons
        booster = _v.BOOSTER_DICT
        for i, item in enumerate(words_and_emoticons):
            if item.lower() in booster:
                sentiments.append(0)
                continue
            if (i < len(words_and_emoticons) - 1 and item.lower() == "kind" and
                    words_and_emoticons[i + 1].lower() == "of"):
                sentiments.append(0)
                continue
            sentiments = self.sentiment_valence(0, sentitext, item, i, sentiments)
        sentiments = self._but_check(words_and_emoticons, sentiments)
        self._lw = None
        return self.score_valence(sentiments, text)

    def _special_idioms_check(self, valence, words_and_emoticons, i):
        low = self._lowered(words_and_emoticons)
        special, booster = _v.SPECIAL_CASES, _v.BOOSTER_DICT
        onezero = f"{low[i - 1]} {low[i]}"
        twoonezero = f"{low[i - 2]} {low[i - 1]} {low[i]}"
        twoone = f"{low[i - 2]} {low[i - 1]}"
        threetwoone = f"{low[i - 3]} {low[i - 2]} {low[i - 1]}"
        threetwo = f"{low[i - 3]} {low[i - 2]}"
        for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
            if seq in special:
                valence = special[seq]
                break
        if len(low) - 1 > i:
            zeroone = f"{low[i]} {low[i + 1]}"
            if zeroone in special:
                valence = special[zeroone]
        if len(low) - 1 > i + 1:
            zeroonetwo = f"{low[i]} {low[i + 1]} {low[i + 2]}"
            if zeroonetwo in special:
                valence = special[zeroonetwo]
        for n_gram in (threetwoone, threetwo, twoone):
            if n_gram in booster:
                valence = valence + booster[n_gram]
        return valence

    def _negation_check(self, valence, words_and_emoticons, start_i, i):
        low = self._lowered(words_and_emoticons)
        n_scalar = _v.N_SCALAR
        if start_i == 0:
            if _negated(low[i - 1]):
                valence = valence * n_scalar
        if start_i == 1:
            if low[i - 2] == "never" and (low[i - 1] == "so" or low[i - 1] == "this"):
                valence = valence * 1.25
            elif low[i - 2] == "without" and low[i - 1] == "doubt":
                valence = valence
            elif _negated(low[i - 2]):
                valence = valence * n_scalar
        if start_i == 2:
            if low[i - 3] == "never" and (low[i - 2] == "so" or low[i - 2] == "this") or \
                    (low[i - 1] == "so" or low[i - 1] == "this"):
                valence = valence * 1.25
            elif low[i - 3] == "without" and (low[i - 2] == "doubt" or low[i - 1] == "doubt"):
                valence = valence
            elif _negated(low[i - 3]):
                valence = valence * n_scalar
        return valence
