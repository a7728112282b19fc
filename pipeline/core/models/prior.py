"""The learned Korean prior: log-odds weights of Korean text features, shipped with the package.

Built by ``rapport build-prior`` (:mod:`pipeline.drivers.build_prior`) from rated Korean reviews
as a logistic regression of positive against negative texts (a feature counts once per text), so
that Korean text is read well from the first event. It is read once per process and never written
by the model; online learning happens on top of it (:mod:`pipeline.core.models.sentiment`).

>>> p = KoreanPrior({"m:좋/VA": 1.5, "m:별로/MAG": -2.0}, bias=0.1, source="example")
>>> p.log_odds({"m:좋/VA": 1.0, "m:영화/NNG": 1.0}), p.known({"m:영화/NNG": 1.0})
(1.6, 0)
>>> import io; buf = io.BytesIO(); p.dump(buf); KoreanPrior.load(io.BytesIO(buf.getvalue())).weights == p.weights
True
"""
from __future__ import annotations

import gzip
import math
import random
import re
import threading
import zlib
from importlib import resources
from typing import BinaryIO

from pipeline.core.models import morphemes
from pipeline.core.models.text import normalise

SHIPPED = "ko_prior.tsv.gz"  # in pipeline/core/models/data/
_SPACE = re.compile(r"\s+")
_lock = threading.Lock()
_shipped: KoreanPrior | None = None


def korean_features(text: str) -> dict[str, float]:
    """Kiwi morphemes and bigrams (negation marked) plus character 2-3-grams of the text without spaces.

    Spacing in Korean reviews is loose, so the character n-grams ignore it.

    >>> f = korean_features("안 좋아요ㅠㅠ")
    >>> "m:NOT_좋/VA" in f and "c3:좋아요" in f and "c2:ㅠㅠ" in f
    True
    """
    feats = morphemes.features(text)
    s = _SPACE.sub("", normalise(text))
    for i in range(len(s) - 1):
        feats[f"c2:{s[i:i + 2]}"] = 1.0
        if i + 2 < len(s):
            feats[f"c3:{s[i:i + 3]}"] = 1.0
    return feats


class KoreanPrior:
    """``log_odds(features)``: bias + the sum of the weights of the features present."""

    def __init__(self, weights: dict[str, float], bias: float = 0.0, source: str = "") -> None:
        self.weights = weights
        self.bias = bias
        self.source = source
        self._hashed: dict[int, float] | None = None

    def __getstate__(self) -> dict:
        return {"weights": self.weights, "bias": self.bias, "source": self.source}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._hashed = None

    def hashed(self) -> dict[int, float]:
        """The weights keyed by the CRC-32 of the feature (what the sentiment model computes anyway
        to hash its features): an int key is cheaper to look up than a string. Features with the
        same CRC-32 share the sum of their weights (2 pairs among the shipped 120k features)."""
        if self._hashed is None:
            out: dict[int, float] = {}
            for f, v in self.weights.items():
                k = zlib.crc32(f.encode())
                out[k] = out.get(k, 0.0) + v
            self._hashed = out
        return self._hashed

    def log_odds(self, feats: dict[str, float]) -> float:
        return self.read(feats)[0]

    def read(self, feats: dict[str, float]) -> tuple[float, int]:
        """(log-odds, how many features the prior knows) in one pass."""
        w = self.weights
        found = [v for v in map(w.get, feats) if v is not None]
        return round(self.bias + sum(found), 6), len(found)

    def known(self, feats: dict[str, float]) -> int:
        return self.read(feats)[1]

    @classmethod
    def fit(cls, texts: list[tuple[str, bool]], epochs: int = 3, step: float = 0.05, min_count: int = 2,
            source: str = "") -> KoreanPrior:
        """Logistic regression (Adagrad, a fixed shuffle) on (text, positive?) pairs; features seen in
        fewer than ``min_count`` texts are left out. Unlike naive Bayes it weighs correlated features
        (a negated ``m:NOT_좋/VA`` against the ``좋아요`` characters around it) against each other."""
        rows = [list(korean_features(text)) for text, _ in texts]
        seen: dict[str, int] = {}
        for feats in rows:
            for f in feats:
                seen[f] = seen.get(f, 0) + 1
        names = sorted(f for f, n in seen.items() if n >= min_count)
        index = {f: i for i, f in enumerate(names)}
        data = [([index[f] for f in feats if f in index], 1.0 if positive else 0.0)
                for feats, (_, positive) in zip(rows, texts, strict=True)]
        w, g = [0.0] * len(names), [1e-8] * len(names)
        bias, gb = 0.0, 1e-8
        order = list(range(len(data)))
        rng = random.Random(0)
        for _ in range(epochs):
            rng.shuffle(order)
            for k in order:
                ids, y = data[k]
                z = max(-30.0, min(30.0, bias + sum(w[i] for i in ids)))
                err = 1.0 / (1.0 + math.exp(-z)) - y
                sq = err * err
                gb += sq
                bias -= step * err / math.sqrt(gb)
                for i in ids:
                    g[i] += sq
                    w[i] -= step * err / math.sqrt(g[i])
        weights = {f: round(w[i], 3) for f, i in index.items() if abs(w[i]) >= 0.005}
        return cls(weights, round(bias, 6), source)

    def dump(self, f: BinaryIO) -> None:
        """Gzipped TSV: a header line (bias, source), then ``feature<TAB>weight`` lines (deterministic bytes)."""
        lines = [f"#bias\t{self.bias}\t{self.source}"] + [f"{k}\t{v}" for k, v in self.weights.items()]
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
            z.write(("\n".join(lines) + "\n").encode())

    @classmethod
    def load(cls, f: BinaryIO) -> KoreanPrior:
        with gzip.GzipFile(fileobj=f, mode="rb") as z:
            lines = z.read().decode().splitlines()
        _, bias, source = lines[0].split("\t")
        weights = {}
        for line in lines[1:]:
            k, v = line.rsplit("\t", 1)
            weights[k] = float(v)
        return cls(weights, float(bias), source)


def shipped() -> KoreanPrior:
    """The prior shipped with the package, loaded once per process."""
    global _shipped
    with _lock:
        if _shipped is None:
            with resources.files("pipeline.core.models").joinpath("data", SHIPPED).open("rb") as f:
                _shipped = KoreanPrior.load(f)
        return _shipped
