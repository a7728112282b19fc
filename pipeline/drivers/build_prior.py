"""``rapport build-prior``: build the shipped Korean prior from the rated Korean development reviews.

Input: the team's development file ``korean_reviews_dev.jsonl`` (real Korean movie reviews from the
Naver Sentiment Movie Corpus, CC0; one JSON object a line with ``text``, ``rating10``, ``movie_id``),
given as ``--data PATH`` or in ``RAPPORT_KO_REVIEWS``. Stars are ceil(rating10 / 2); the prior is a
logistic regression of positive (4-5 stars) against negative (1-2 stars) texts, over Kiwi
morphemes and character n-grams (:func:`pipeline.core.models.prior.korean_features`). Nothing else
goes in: no other review corpus. The same input gives the same bytes. It also writes the Kiwi
analyses of the file's words, of the inflected forms of their common stems and of the words of the
project's hand-written sentences (``pipeline.drivers.texts``; ``ko_words.tsv.gz``: word -> morphemes, no
ratings), so that common words never reach the analyser at score time.

``split`` is the train / held-out split by movie that ``rapport eval`` uses, so that its Korean
figures come from a prior that never saw the texts it is judged on.

>>> rows = [{"movie_id": str(i), "text": "t", "rating10": 10} for i in range(1000)]
>>> train, held = split(rows)
>>> 0.65 < len(train) / 1000 < 0.75 and not {r["movie_id"] for r in train} & {r["movie_id"] for r in held}
True
"""
from __future__ import annotations

import math
import os
import sys
import time
import zlib
from pathlib import Path

import orjson

from pipeline.core.models import morphemes
from pipeline.core.models.prior import SHIPPED, KoreanPrior
from pipeline.core.models.sentiment import stars_to_label
from pipeline.drivers import texts

ENV = "RAPPORT_KO_REVIEWS"
OUT = Path(__file__).resolve().parent.parent / "core" / "models" / "data" / SHIPPED
# the team's shared data, next to the repository's checkout, when RAPPORT_KO_REVIEWS is unset
DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "korean_reviews_dev.jsonl"


def data_path(given: str | os.PathLike | None = None) -> Path | None:
    p = given or os.environ.get(ENV)
    return Path(p) if p else DEFAULT


def load(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def label(row: dict) -> str:
    return stars_to_label(math.ceil(row["rating10"] / 2))


def split(rows: list[dict], held_out: int = 3) -> tuple[list[dict], list[dict]]:
    """By a hash of ``movie_id``: about 70 % train, 30 % held out, no movie on both sides."""
    train, held = [], []
    for r in rows:
        (held if zlib.crc32(str(r["movie_id"]).encode()) % 10 < held_out else train).append(r)
    return train, held


def fit(rows: list[dict], source: str = "") -> KoreanPrior:
    pairs = [(r["text"], label(r) == "positive") for r in rows if label(r) != "neutral"]
    return KoreanPrior.fit(pairs, source=source)


def main(data: str | None = None, out: Path = OUT) -> None:
    path = data_path(data)
    if path is None or not path.exists():
        sys.exit(f"rapport build-prior: {path} not found; give --data korean_reviews_dev.jsonl (or set {ENV})")
    started = time.perf_counter()
    rows = load(path)
    prior = fit(rows, source=f"{path.name}:{len(rows)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        prior.dump(f)
    words = morphemes.words(r["text"] for r in rows)
    seen = set(words)
    words += [w for w in morphemes.inflected({w: morphemes.analyse_word(w) for w in words}) if w not in seen]
    seen = set(words)
    words += [w for w in morphemes.words(texts.korean_texts()) if w not in seen]  # the project's own sentences
    table = out.parent / morphemes.WORDS
    with open(table, "wb") as f:
        morphemes.dump_words(words, f)
    print(f"{len(prior.weights)} weights from {len(rows)} reviews -> {out} ({out.stat().st_size / 1e6:.1f} MB); "
          f"{len(words)} words -> {table} ({table.stat().st_size / 1e6:.1f} MB); "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
