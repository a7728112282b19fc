"""Text pieces the generator composes into reviews and notes, in Korean and English, by tone.

Written for this project; not taken from any labelled corpus. Composition gives variety, so a model
must generalise rather than memorise.
"""
from __future__ import annotations

import random

KO = {
    "positive": {
        "subject": ["배송이", "품질이", "포장이", "가격이", "디자인이", "상담원 응대가", "사이즈가", "색상이"],
        "predicate": ["좋아요", "만족스러워요", "마음에 들어요", "훌륭해요", "괜찮아요", "최고예요", "빨라요", "친절했어요"],
        "intensifier": ["정말", "너무", "진짜", "완전", "아주", ""],
        "tail": ["ㅎㅎ", "ㅋㅋㅋ", "!!", "^^", "", "", "다음에 또 살게요", "추천합니다"],
    },
    "negative": {
        "subject": ["배송이", "품질이", "포장이", "환불 처리가", "상담원 응대가", "사이즈가", "제품 상태가", "교환 절차가"],
        "predicate": ["별로예요", "실망스러워요", "최악이에요", "너무 늦어요", "엉망이에요", "불친절했어요", "안 좋아요",
                      "마음에 들지 않아요", "맞지 않아요", "형편없어요"],
        "intensifier": ["정말", "너무", "진짜", "완전", ""],
        "tail": ["ㅠㅠ", "ㅜㅜ", "...", "", "다시는 안 살래요", "환불해 주세요", "화가 나네요"],
    },
    "neutral": {
        "subject": ["배송은", "품질은", "가격은", "사이즈는", "제품은"],
        "predicate": ["보통이에요", "그냥 그래요", "평범해요", "나쁘지 않아요", "예상했던 정도예요"],
        "intensifier": ["", "", "그럭저럭"],
        "tail": ["", "", "."],
    },
}
EN = {
    "positive": {
        "subject": ["Delivery", "The quality", "Packaging", "The price", "The design", "Customer service", "The fit"],
        "predicate": ["is great", "was excellent", "is amazing", "was fast", "exceeded my expectations", "is perfect",
                      "was really helpful"],
        "intensifier": ["really", "so", "truly", ""],
        "tail": ["!", "!!", ". Love it", ". Will buy again", ". Highly recommend", ""],
    },
    "negative": {
        "subject": ["Delivery", "The quality", "Packaging", "The refund", "Customer service", "The fit", "The product"],
        "predicate": ["is terrible", "was awful", "is not good", "was way too slow", "is broken", "was rude",
                      "did not meet expectations", "is disappointing", "never arrived"],
        "intensifier": ["really", "so", "totally", ""],
        "tail": [". Never again", ". I want a refund", "!", ". Very upset", ""],
    },
    "neutral": {
        "subject": ["Delivery", "The quality", "The price", "The product"],
        "predicate": ["is okay", "was average", "is as described", "is fine I guess"],
        "intensifier": [""],
        "tail": ["", "."],
    },
}
CALL_CENTER = {
    "ko": {"negative": ["고객이 배송 지연으로 매우 화가 남. 환불 요청.", "고객 불만: 제품 불량, 교환 요청했으나 처리 지연됨.",
                        "고객이 상담원 응대에 불만을 표시함. 재발 방지 요청."],
           "positive": ["고객이 빠른 교환 처리에 감사 인사를 전함.", "고객이 상담에 만족하며 재구매 의사를 밝힘."]},
    "en": {"negative": ["Customer very angry about late delivery, asked for a refund.",
                        "Complaint: defective item, exchange still not processed.",
                        "Customer unhappy with how the previous agent treated them."],
           "positive": ["Customer thanked us for the quick exchange.", "Customer satisfied with support, plans to reorder."]},
}


def review_text(rng: random.Random, language: str, tone: str) -> str:
    parts = (KO if language == "ko" else EN)[tone]
    subject, predicate = rng.choice(parts["subject"]), rng.choice(parts["predicate"])
    intensifier, tail = rng.choice(parts["intensifier"]), rng.choice(parts["tail"])
    if language == "ko":
        body = " ".join(p for p in (subject, intensifier, predicate) if p)
        return f"{body} {tail}".strip()
    verb, _, rest = predicate.partition(" ")
    body = " ".join(p for p in (subject, verb, intensifier, rest) if p)
    return body + (tail if tail.startswith(("!", ".")) or not tail else " " + tail)


def note_text(rng: random.Random, language: str, tone: str) -> str:
    return rng.choice(CALL_CENTER[language]["negative" if tone == "negative" else "positive"])


def korean_texts() -> list[str]:
    """Every Korean piece written here and in ``eval_texts`` (their words go into the shipped word table, so
    that generated traffic and the hand-written checks never wait for the analyser)."""
    from pipeline.drivers import eval_texts

    pieces = [p for tone in KO.values() for part in tone.values() for p in part]
    return pieces + [t for tone in CALL_CENTER["ko"].values() for t in tone] + [t for _, t in eval_texts.KO]

