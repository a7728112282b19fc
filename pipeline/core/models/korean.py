"""A small hand-written Korean sentiment lexicon: the prior for Korean text before ratings arrive.

Written for this project from general knowledge of the language (common evaluative stems), not
derived from any labelled review corpus; the brand's own rated reviews teach the rest online.
Stems are matched inside words (Korean is agglutinative), longest first, so ``불친절`` is not read
as ``친절``. Negation flips a stem: ``안``/``못`` before it, ``-지 않``/``-지 못``/``없`` after it.
Intensifiers (정말, 너무, 진짜, …) strengthen; ``ㅋㅋ``/``ㅎㅎ``/``^^`` lean positive, ``ㅠㅠ``/``ㅜㅜ`` negative.

>>> polarity("정말 좋아요") > 0.5, polarity("배송이 너무 늦어요 ㅠㅠ") < -0.5
(True, True)
>>> polarity("안 좋아요") < 0, polarity("좋지 않아요") < 0, polarity("문제 없어요") > 0
(True, True, True)
>>> polarity("상담원이 불친절해요") < 0, polarity("주문했어요"), polarity("ㅋㅋㅋ") > 0
(True, 0.0, True)
"""
from __future__ import annotations

import math
import re

LEXICON: dict[str, float] = {
    # positive
    "최고": 0.9, "완벽": 0.8, "강추": 0.8, "훌륭": 0.8, "만족": 0.7, "좋": 0.7, "친절": 0.7, "맛있": 0.7,
    "사랑": 0.7, "행복": 0.7, "짱": 0.7, "감사": 0.6, "고마": 0.6, "추천": 0.6, "예쁘": 0.6, "예뻐": 0.6,
    "이쁘": 0.6, "이뻐": 0.6, "멋지": 0.6, "멋져": 0.6, "멋있": 0.6, "대박": 0.6, "기쁘": 0.6, "기뻐": 0.6,
    "재구매": 0.6, "마음에 들": 0.6, "마음에 드": 0.6, "맘에 들": 0.6, "맘에 드": 0.6, "편하": 0.5,
    "편해": 0.5, "편리": 0.5, "깔끔": 0.5, "튼튼": 0.5, "굿": 0.5, "괜찮": 0.4, "빠르": 0.4, "빨라": 0.4,
    "빨리": 0.3, "신속": 0.4, "저렴": 0.3, "든든": 0.4, "꼼꼼": 0.5, "정성": 0.5, "알차": 0.5,
    "기대 이상": 0.6, "가성비": 0.3, "무난": 0.3, "적당": 0.2, "부드럽": 0.4, "부드러": 0.4, "촉촉": 0.3,
    "따뜻": 0.3, "유용": 0.4, "잘 맞": 0.4, "잘 쓰": 0.4, "잘 받": 0.3, "인생템": 0.8, "존예": 0.7,
    # negative
    "최악": -0.9, "형편없": -0.9, "쓰레기": -0.9, "엉망": -0.8, "불친절": -0.8, "짜증": -0.8, "실망": -0.7,
    "별로": -0.6, "불만": -0.7, "불량": -0.7, "나쁘": -0.7, "나빠": -0.7, "화가": -0.7, "화나": -0.7,
    "화남": -0.7, "싫": -0.7, "맛없": -0.7, "재미없": -0.6, "고장": -0.6, "파손": -0.6, "깨져": -0.6,
    "찢어": -0.6, "후회": -0.6, "사기": -0.6, "속았": -0.6, "불편": -0.5, "귀찮": -0.5, "늦": -0.4,
    "느리": -0.4, "느려": -0.4, "지연": -0.4, "아쉽": -0.4, "아쉬": -0.4, "문제": -0.4, "환불": -0.4,
    "반품": -0.3, "비싸": -0.3, "비싼": -0.3, "엉성": -0.5, "허접": -0.7, "구리": -0.5, "구려": -0.5,
    "안 맞": -0.5, "맞지 않": -0.5, "다시는 안": -0.6, "다시 안": -0.5, "그저 그": -0.2, "그냥 그": -0.2,
    "보통": -0.05, "아깝": -0.6, "아까워": -0.6, "비추": -0.7, "기대 이하": -0.6, "냄새": -0.4,
    "트러블": -0.5, "답답": -0.5, "황당": -0.6, "어이없": -0.7, "무성의": -0.7, "거지같": -0.9,
}
_STEMS = sorted(LEXICON, key=len, reverse=True)
_STEM_RE = re.compile("|".join(re.escape(s) for s in _STEMS))
_INTENSIFIERS = re.compile(r"정말|너무|진짜|완전|아주|매우|엄청|대단히|넘 |겁나|되게|무척")
_NEGATE_BEFORE = re.compile(r"(?:^|\s)(?:안|못)\s*$")
_NEGATE_AFTER = re.compile(r"^[가-힣]{0,2}\s*(?:지\s*(?:않|못|마)|없)")
_SIGNS = ((re.compile(r"[ㅋㅎ]{2,}|\^\^|:\)"), 0.35), (re.compile(r"[ㅠㅜ]{2,}|ㅡㅡ|:\("), -0.45))


def polarity(text: str) -> float:
    """A score in -1..1 (0 when nothing evaluative is found)."""
    total = 0.0
    for m in _STEM_RE.finditer(text):
        stem, value = m.group(), LEXICON[m.group()]
        if value > 0 and _NEGATE_BEFORE.search(text[max(0, m.start() - 3):m.start()]):
            value = -0.8 * value
        elif _NEGATE_AFTER.match(text[m.end():m.end() + 6]) and stem not in ("형편없", "맛없", "재미없"):
            value = -0.8 * value
        total += value
    for pattern, value in _SIGNS:
        if pattern.search(text):
            total += value
    if total and _INTENSIFIERS.search(text):
        total *= 1.4
    if total and "!" in text:
        total *= 1.1
    return round(total / math.sqrt(total * total + 1.0), 4)
