"""Korean morphemes from Kiwi (kiwipiepy), read one word (eojeol) at a time through a bounded cache.

Kiwi's full-sentence analysis costs a few hundred microseconds a text; a Korean word's analysis
hardly depends on its neighbours, so each word is analysed alone and remembered (the cache is
bounded and only affects speed: the same word always gives the same morphemes). The analyses of
the words of the development file ship with the package (``data/ko_words.tsv.gz``, written by
``rapport build-prior`` with the same function), so common words never reach Kiwi. Features are
morphemes (content words and endings), morpheme bigrams, and negation marked on the predicate
it scopes: ``안``/``못`` before it, ``-지 않``/``-지 못``/``-지 마`` after it.

>>> [m for m in morphemes("정말 좋지 않아요") if m[1] != "SF"]
[('정말', 'MAG'), ('좋', 'VA'), ('지', 'EF'), ('않', 'VX'), ('어요', 'EF')]
>>> sorted(f for f in features("안 좋아요") if f.startswith("m:"))
['m:NOT_좋/VA', 'm:안/MAG', 'm:어요/EF']
>>> "m:NOT_좋/VA" in features("좋지 않아요"), "m:좋/VA" in features("좋아요")
(True, True)
"""
from __future__ import annotations

import gzip
import re
import threading
import warnings
from collections.abc import Iterable
from importlib import resources
from typing import BinaryIO

_WORD = re.compile(r"[가-힣ㄱ-ㅎㅏ-ㅣ]+")
_SKIP_TAGS = frozenset({"SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SN", "SL", "SH", "SB", "W_URL", "W_EMAIL",
                        "W_HASHTAG", "W_MENTION", "W_SERIAL", "W_EMOJI"})
_PREDICATE = ("VV", "VA", "XR", "VX")
_NEG_BEFORE = frozenset({("안", "MAG"), ("못", "MAG")})
_NEG_AFTER = frozenset({"않", "못", "말"})
_NEG_FORMS = _NEG_AFTER | {f for f, _ in _NEG_BEFORE}
_RUN = re.compile(r"(.)\1{2,}")
_SYLLABLES = re.compile(r"[가-힣]+")
CACHE_LIMIT = 200_000  # words analysed by Kiwi in this process; about 30 MB at most, cleared when full
WORDS = "ko_words.tsv.gz"  # in pipeline/core/models/data/: shipped word -> morphemes table

_lock = threading.Lock()
_kiwi = None
_table_loaded = False
_table: dict[str, tuple[tuple[str, str], ...]] = {}  # the shipped analyses (read once, never written)
_cache: dict[str, tuple[tuple[str, str], ...]] = {}  # the table plus the words Kiwi analysed here


def analyser():
    """The process-wide Kiwi instance (its model ships inside the kiwipiepy-model wheel), loaded once, at the
    first word outside the shipped table (about a second: ``sentiment.preload`` loads it ahead)."""
    global _kiwi
    load_table()
    with _lock:
        if _kiwi is None:
            from kiwipiepy import Kiwi

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # num_workers=0: analyse in the calling thread
                _kiwi = Kiwi(num_workers=0, load_typo_dict=False, load_multi_dict=False)
        return _kiwi


def load_table() -> None:
    """Read the shipped word -> morphemes table into the cache, once."""
    global _table_loaded
    with _lock:
        if _table_loaded:
            return
        data = resources.files("pipeline.core.models").joinpath("data", WORDS)
        if data.is_file():
            with data.open("rb") as f:
                _table.update(load_words(f))
        _cache.update(_table)
        _table_loaded = True


def word_of(raw: str) -> str:
    """A Hangul word as it is analysed: runs of one character cut to two."""
    if len(raw) > 2 and raw[0] == raw[1] == raw[2]:
        return _RUN.sub(r"\1\1", raw)
    return raw


def words(texts: Iterable[str]) -> list[str]:
    """The distinct Hangul words of ``texts``, sorted."""
    return sorted({word_of(w) for text in texts for w in _WORD.findall(text)})


# common particles and endings, for the inflected forms of the stems the development file's words use
_PARTICLES = (("이", "JKS"),), (("은", "JX"),), (("을", "JKO"),), (("도", "JX"),), (("만", "JX"),), (("에", "JKB"),), \
    (("에서", "JKB"),), (("으로", "JKB"),), (("이랑", "JKB"),), (("과", "JC"),), (("의", "JKG"),), \
    (("이", "VCP"), ("에요", "EF")), (("이", "VCP"), ("네요", "EF")), (("이", "VCP"), ("었", "EP"), ("어요", "EF"))
_ENDINGS = (("어요", "EF"),), (("었", "EP"), ("어요", "EF")), (("고", "EC"),), (("어서", "EC"),), (("는데", "EC"),), \
    (("네요", "EF"),), (("습니다", "EF"),), (("지만", "EC"),), (("게", "EC"),), (("지", "EC"),), \
    (("었", "EP"), ("는데", "EC")), (("었", "EP"), ("네요", "EF")), (("었", "EP"), ("습니다", "EF")), \
    (("어", "EC"), ("서", "JX")), (("면", "EC"),), (("은", "ETM"),), (("는", "ETM"),), (("어도", "EC"),)


# hand-written shopping and service nouns (movie reviews seldom use them), inflected like the file's stems
PRODUCT_NOUNS = ("배송 택배 포장 박스 상품 제품 물건 가격 가성비 품질 재질 색상 사이즈 디자인 주문 구매 재구매 교환 환불 "
                 "반품 취소 불량 불량품 고장 파손 고객센터 상담원 상담 직원 매장 가게 사장님 서비스 응대 답변 문의 "
                 "브랜드 피부 트러블 냄새 향 맛 용량 배터리 충전 화면 소리 작동 설치 사용 마감 원단 세탁 신발 가방 옷 "
                 "화장품 쿠폰 할인 적립 리뷰 후기 별점 주문서 도착 일주일 하루 이틀").split()


def inflected(table: dict[str, tuple[tuple[str, str], ...]], min_count: int = 3) -> list[str]:
    """Words the analyser writes from the table's common stems and ``PRODUCT_NOUNS`` (nouns with
    particles and the copula; verbs, adjectives and ``noun/root + 하`` with common endings): no
    text goes in, only the analyser."""
    counts: dict[tuple[str, ...], int] = {((n, "NNG"),): min_count for n in PRODUCT_NOUNS}
    for n in PRODUCT_NOUNS:
        counts[((n, "NNG"), ("하", "XSV"))] = min_count
    for ms in table.values():
        for i, (form, tag) in enumerate(ms):
            if tag in ("NNG", "VV", "VA"):
                counts[((form, tag),)] = counts.get(((form, tag),), 0) + 1
            if tag in ("NNG", "XR") and i + 1 < len(ms) and ms[i + 1] in (("하", "XSV"), ("하", "XSA")):
                key = ((form, tag), ms[i + 1])
                counts[key] = counts.get(key, 0) + 1
    kiwi = analyser()
    out = set()
    for stem, n in sorted(counts.items()):
        if n < min_count:
            continue
        tails = ((),) + _PARTICLES if len(stem) == 1 and stem[0][1] == "NNG" else _ENDINGS
        for tail in tails:
            try:
                out.add(kiwi.join(list(stem + tail)))
            except Exception:  # a combination the analyser cannot write
                continue
    return sorted(w for w in out if _SYLLABLES.fullmatch(w))


def dump_words(ws: Iterable[str], f: BinaryIO) -> None:
    """Gzipped ``word<TAB>form<TAB>tag<TAB>form<TAB>tag…`` lines, analysed by Kiwi (deterministic bytes)."""
    lines = ["\t".join([w] + [x for m in _analyse(w) for x in m]) for w in ws]
    with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
        z.write(("\n".join(lines) + "\n").encode())


def load_words(f: BinaryIO) -> dict[str, tuple[tuple[str, str], ...]]:
    with gzip.GzipFile(fileobj=f, mode="rb") as z:
        out = {}
        for line in z.read().decode().splitlines():
            parts = line.split("\t")
            out[parts[0]] = tuple(zip(parts[1::2], parts[2::2], strict=True))
        return out


def _tag(tag: str) -> str:
    return tag.split("-")[0]  # VV-R / VA-I (regular / irregular) -> VV / VA


def _analyse(word: str) -> tuple[tuple[str, str], ...]:
    return tuple((t.form, _tag(t.tag)) for t in analyser().tokenize(word) if _tag(t.tag) not in _SKIP_TAGS)


def analyse_word(word: str) -> tuple[tuple[str, str], ...]:
    """Morphemes (form, tag) of one Hangul word: the shipped table, else Kiwi (cached)."""
    hit = _cache.get(word)
    if hit is None:
        hit = _analyse(word)
        if len(_cache) >= CACHE_LIMIT + len(_table):
            _cache.clear()
            _cache.update(_table)
        _cache[word] = hit
    return hit


def morphemes(text: str) -> list[tuple[str, str]]:
    """Morphemes of the Hangul words in ``text`` (runs of repeated jamo cut to two: ``ㅋㅋㅋㅋ`` -> ``ㅋㅋ``)."""
    out: list[tuple[str, str]] = []
    get = _cache.get
    for word in _WORD.findall(text):
        hit = get(word)
        if hit is None:
            hit = analyse_word(word_of(word))
        out.extend(hit)
    return out


def features(text: str) -> dict[str, float]:
    """Morpheme unigrams (``m:``, negated predicates as ``m:NOT_…``) and bigrams (``b:``)."""
    ms = morphemes(text)
    negated = [False] * len(ms)
    if _NEG_FORMS.isdisjoint([m[0] for m in ms]):
        ms_scan = ()  # no negator in the text (most texts): nothing to mark
    else:
        ms_scan = ms
    for i, (form, tag) in enumerate(ms_scan):
        after_ji = i >= 2 and ms[i - 1][0] == "지"
        if after_ji and ((tag == "VX" and form in _NEG_AFTER) or (form, tag) in _NEG_BEFORE):
            # -지 않/못/마: negates the predicate before it (read word by word, 못하 may come as 못/MAG 하/VV)
            for j in range(i - 2, max(-1, i - 4), -1):
                if ms[j][1] in _PREDICATE or ms[j][1] in ("XSA", "XSV"):
                    negated[j] = True
                    if ms[j][1] in ("XSA", "XSV") and ms[j - 1][1] in ("NNG", "XR"):
                        negated[j - 1] = True  # 만족하지 못했어요: the noun carries the sense
                    break
        elif (form, tag) in _NEG_BEFORE:
            for j in range(i + 1, min(i + 3, len(ms))):
                if ms[j][1] in _PREDICATE:
                    negated[j] = True
                    break
    feats: dict[str, float] = {}
    prev = "<s>"
    for (form, tag), neg in zip(ms, negated, strict=True):
        name = f"NOT_{form}/{tag}" if neg else f"{form}/{tag}"
        feats["m:" + name] = 1.0
        feats[f"b:{prev}_{name}"] = 1.0
        prev = name
    return feats
