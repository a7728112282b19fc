"""Privacy requests on a live worker: erase a sample of customers, then scan what Rapport keeps."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from pipeline.drivers.codec import build_engine
from pipeline.drivers.generate import generate
from pipeline.drivers.kafka_io import Publisher
from pipeline.drivers.replay import read_records
from pipeline.ops.topics import ALL_TOPICS, INBOUND_TOPICS
from tests.drivers.live import LiveWorker

pytestmark = pytest.mark.broker
PEOPLE = 8


def latest_per_key(w: LiveWorker, topic: str) -> dict[bytes | None, bytes | None]:
    """A topic as a compacted reader sees it: the latest value of each key (None: a tombstone)."""
    return dict(w.read_to_end(topic))


def request(n: int, user_id: str, kind: str) -> dict:
    return {"request_id": f"{kind}-{n}", "occurred_at": datetime.now(timezone.utc).isoformat(),
            "identifiers": {"user_id": user_id}, "type": kind}


def their_texts(users: list[str]) -> list[tuple[str, dict]]:
    """For each person, a review and a review rejected at the door (a rating of 11: a dead letter), each with
    a text nobody else wrote."""
    now = datetime.now(timezone.utc).isoformat()
    return [("reviews.v1", {"event_id": f"mine-{n}-{rating}", "occurred_at": now, "identifiers": {"user_id": user},
                            "review_id": f"mine-{n}-{rating}", "channel": "web", "rating": rating,
                            "text": f"배송이 늦었어요 {user} 님의 글 {n}-{rating}"})
            for n, user in enumerate(users) for rating in (1, 11)]


def test_erase_live_leaves_nothing_of_them_in_state_or_compacted_topics_and_matches_replay(broker, tmp_path):
    w = LiveWorker(broker.bootstrap, tmp_path, partitions=2)
    # A month of history, ending before now (journeys run up to 1.6 days past their last day; an event from the
    # future would be refused live).
    start = datetime.now(timezone.utc) - timedelta(days=32)
    traffic = generate(seed=17, customers=80, days=30, start=start, malformed=0.0, duplicates=0.0)
    users = sorted({r.value["identifiers"]["user_id"] for r in traffic
                    if isinstance(r.value, dict) and r.value["identifiers"].get("user_id")})[:PEOPLE]
    pub = Publisher(w.settings.kafka_client(), w.ns)
    try:
        for r in traffic:
            pub.send(w.ns + r.topic, r.key_bytes(), r.value_bytes())
        pub.flush()
        w.start()
        w.collect(["profiles.v1"], until=lambda got: len(got) >= 60, timeout=120)
        lines = [r.line() for r in traffic]
        assert len(users) == PEOPLE
        texts = their_texts(users)
        for topic, value in texts:
            pub.send(w.ns + topic, None, orjson.dumps(value))
            lines.append(orjson.dumps({"topic": topic, "key": None, "value": value}) + b"\n")
        pub.flush()
        w.collect(["dlq.v1", "scores.reviews.v1"], timeout=60, until=lambda g: sum(
            x.get("source_topic") == "reviews.v1" for x in g) >= PEOPLE and sum("review_id" in x for x in g) >= PEOPLE)

        def ask(kind: str) -> dict[str, tuple[dict, float]]:
            sent = {}
            for n, user in enumerate(users):
                req = request(n, user, kind)
                pub.send(w.ns + "privacy.v1", user.encode(), orjson.dumps(req))
                pub.flush()
                sent[req["request_id"]] = time.time()
                lines.append(orjson.dumps({"topic": "privacy.v1", "key": user, "value": req}) + b"\n")
                time.sleep(0.2)
            got = w.collect(["privacy.results.v1"], timeout=60,
                            until=lambda g: {x["request_id"] for x in g} >= set(sent))
            return {x["request_id"]: (x, datetime.fromisoformat(x["completed_at"]).timestamp() - sent[x["request_id"]])
                    for x in got if x["request_id"] in sent}

        exported = ask("export")
        held = {i["hash"] for x, _ in exported.values() for i in x["export"]["identifiers"]}
        erased = ask("erase")
        customers = {x["customer_id"] for x, _ in erased.values()} | {
            m for x, _ in erased.values() for m in x["merged_customer_ids"]}
        assert len(customers) >= PEOPLE and len(held) >= 2 * PEOPLE
        assert all(x["status"] == "completed" and x["removed"]["customer_state"] == 1 for x, _ in erased.values())
        assert sum(x["removed"]["dead_letters"] for x, _ in erased.values()) == PEOPLE
        latencies = sorted(lat for _, lat in erased.values())
        (tmp_path / "latency.txt").write_text(f"erase request to completed_at: p50 {latencies[len(latencies) // 2]:.3f}s, max {latencies[-1]:.3f}s")
        print((tmp_path / "latency.txt").read_text())
        # The figure (README, Privacy) is measured on a quiet machine; a busy one must not fail the suite.
        assert latencies[-1] <= 10.0

        # Compacted topics (state changelogs, the internal topics, the DLQ), read as a compacted reader would:
        # nothing of theirs is live. Every other topic Rapport writes: none of their texts.
        time.sleep(2)  # the changelog writes and tombstones of the last batch
        mine = [v["text"] for _, v in texts]
        written = b"".join(v for _, v in w.read_to_end("rapport.events.v1") + w.read_to_end("dlq.v1") if v).decode()
        assert all(t in written for t in mine)  # the log itself still holds them: this is what compaction removes
        for spec in ALL_TOPICS:
            if spec in INBOUND_TOPICS:
                continue  # the producers' data, under their retention
            if not spec.config.get("cleanup.policy", "").startswith("compact"):
                body = b"".join(v for _, v in w.read_to_end(spec.name) if v).decode(errors="replace")
                assert not any(t in body for t in mine), spec.name
                continue
            for key, value in latest_per_key(w, spec.name).items():
                if value is None or spec.name == "identity.blocked.v1":
                    continue  # a tombstone (its key goes after delete.retention.ms); values shared by several people
                text = (key or b"").decode(errors="replace") + value.decode(errors="replace")
                hit = next((c for c in customers if c in text), None)
                assert hit is None, (spec.name, key, text[max(0, text.find(hit or "") - 300):text.find(hit or "") + 200])
                assert not any(h in text for h in held), (spec.name, key)
                assert not any(t in text for t in mine), (spec.name, key)
        assert not any(u in w.logs() for u in users)

        # Replay of the same input (traffic, then the requests at their event times) gives the same results.
        engine = build_engine(w.settings.model_copy(update={"topic_prefix": ""}))
        out = engine.process_batch(read_records(lines)) + engine.close_input()
        replayed = {e.value.request_id: e.value for e in out if e.topic == "privacy.results.v1"}
        live = {**exported, **erased}
        assert set(replayed) == set(live)
        for rid, (x, _) in live.items():
            r = replayed[rid]
            assert (r.customer_id, r.merged_customer_ids, r.removed, r.status) == (
                x["customer_id"], x["merged_customer_ids"], x["removed"], x["status"]), rid
    finally:
        w.stop()
