from collections import Counter

from pipeline.core.models.text import language
from pipeline.drivers.generate import generate, live_stream


def test_same_seed_same_traffic():
    assert [r.line() for r in generate(seed=1, customers=20)] == [r.line() for r in generate(seed=1, customers=20)]


def test_traffic_covers_every_channel_tone_language_and_defect():
    records = generate(seed=2, customers=150)
    topics = Counter(r.topic for r in records)
    assert all(topics[t] for t in ("clickstream.v1", "pos.v1", "reviews.v1", "consent.v1"))
    values = [r.value for r in records if isinstance(r.value, dict)]
    texts = [v["text"] for v in values if "text" in v]
    assert {language(t) for t in texts} >= {"ko", "en"}
    assert any("rating" in v for v in values) and any("text" in v and "rating" not in v for v in values)
    assert {v["channel"] for v in values if "channel" in v} >= {"web", "app", "call_center"}
    assert any(isinstance(r.value, str) for r in records)  # malformed JSON
    ids = Counter(v.get("event_id") for v in values)
    assert any(n > 1 for n in ids.values())  # duplicates
    stamps = {v["occurred_at"][-6:] for v in values if "occurred_at" in v and len(v["occurred_at"]) > 20}
    assert "+09:00" in stamps and len(stamps) > 1


def test_live_stream_never_reuses_event_ids_across_chunks():
    import itertools

    records = list(itertools.islice(live_stream(seed=3, chunk_customers=5), 3000))
    ids = [r.value["event_id"] for r in records if isinstance(r.value, dict) and "event_id" in r.value]
    assert len(set(ids)) > 0.97 * len(ids)
