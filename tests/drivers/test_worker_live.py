"""The real thing: the embedded broker, `rapport worker` processes, and records on the outbound topics."""
import orjson
import pytest
import urllib.request

from pipeline.drivers.codec import build_engine
from pipeline.drivers.generate import generate
from pipeline.drivers.kafka_io import Publisher
from pipeline.drivers.replay import read_records
from tests.drivers.live import COMPARED, LiveWorker
from tests.helpers import add, click, review, run

pytestmark = pytest.mark.broker


#: When the far-future records that close every window were written (2027-06-01T00:00+09:00, in ms).
FUTURE_MS = 1_811_775_600_000


@pytest.fixture
def live(broker, tmp_path):
    w = LiveWorker(broker.bootstrap, tmp_path)
    yield w
    w.stop()


def produce(w: LiveWorker, records) -> None:
    pub = Publisher(w.settings.bootstrap, w.ns)
    for r in records:
        pub.send(w.ns + r.topic, r.key, r.value, timestamp_ms=r.timestamp_ms)
    pub.flush()


def test_a_scripted_journey_reaches_the_trigger_topics(live):
    live.start()
    anon = {"anonymous_id": "cookie-live"}
    produce(live, [
        add(0, anon, "SKU-1", 39000),
        review(1, {"user_id": "u-live"}, "Awful. The worst service I have ever had, I am furious!", channel="chat"),
        click(45, {"anonymous_id": "someone-else"}, "page_view"),
    ])
    got = live.collect(["triggers.cart_abandoned.v1", "triggers.negative_emotion.v1", "scores.reviews.v1"],
                       until=lambda g: {r["topic"] for r in g} >= {"triggers.cart_abandoned.v1",
                                                                  "triggers.negative_emotion.v1", "scores.reviews.v1"})
    by_topic = {r["topic"]: r for r in got}
    cart = by_topic["triggers.cart_abandoned.v1"]
    assert cart["evidence"]["cart_value"] == 39000 and cart["reason"] and cart["contactable"] is True
    assert by_topic["triggers.negative_emotion.v1"]["channel"] == "chat"
    assert by_topic["scores.reviews.v1"]["label"] == "negative"
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{live.metrics_ports[0]}/metrics", timeout=5).read().decode()
    assert 'rapport_triggers_total{type="cart_abandoned"} 1.0' in metrics


def test_live_processing_and_replay_give_the_same_triggers(live, tmp_path):
    records = generate(seed=21, customers=40, days=5)
    lines = [r.line() for r in records]
    # Far-future traffic closes every window, in both runs (written then: not refused as from the future).
    lines.append(orjson.dumps({"topic": "clickstream.v1", "key": None, "value": {
        "event_id": "tick", "occurred_at": "2027-06-01T00:00:00+09:00", "identifiers": {"anonymous_id": "tick"},
        "type": "page_view"}, "timestamp": FUTURE_MS}) + b"\n")
    engine = build_engine(live.settings)
    expected = {e.value.trigger_id for e in run(engine, *read_records(iter(lines)))
                if e.topic in COMPARED}
    assert len(expected) > 10

    live.start()
    produce(live, read_records(iter(lines)))
    got = live.collect(COMPARED, until=lambda g: len({r["trigger_id"] for r in g}) >= len(expected))
    assert {r["trigger_id"] for r in got} == expected


def replay_outputs(settings, lines):
    engine = build_engine(settings)
    return run(engine, *read_records(iter(lines)))


def alive_customers(records: list[dict]) -> dict[str, dict]:
    """customer id -> identifier counts, from the latest profile records (tombstones remove)."""
    latest: dict[str, dict] = {}
    for r in records:
        latest[r["customer_id"]] = r
    return {cid: r["identifier_counts"] for cid, r in latest.items() if not r.get("dead")}


def with_close(lines):
    return lines + [orjson.dumps({"topic": "clickstream.v1", "key": None, "value": {
        "event_id": "close", "occurred_at": "2027-06-01T00:00:00+09:00", "identifiers": {"anonymous_id": "close"},
        "type": "page_view"}, "timestamp": FUTURE_MS}) + b"\n"]  # written then: not refused as from the future


def merge_record(m: dict) -> tuple:
    return (m["merge_id"], m["surviving_customer_id"], m["absorbed_customer_id"], m["linking_identifier"]["hash"],
            m["occurred_at"][:23], m["event_id"])


def applied_events(port: int) -> float:
    """A worker's ``rapport_events_total``: the events its customer partitions applied."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("rapport_events_total{"))


@pytest.mark.parametrize("partitions, workers, backlog", [(1, 1, False), (4, 2, False), (4, 2, True), (8, 3, False)])
def test_stitching_is_the_same_in_any_deployment_and_in_replay(broker, tmp_path, partitions, workers, backlog):
    """The same merge records, customer ids, identifiers per customer and triggers as a replay of the input,
    whether the input streams in while the workers run, or waits for them as a backlog loaded topic after
    topic (and the workers join one by one). Every worker carries customers."""
    w = LiveWorker(broker.bootstrap, tmp_path, partitions=partitions)
    try:
        lines = with_close([r.line() for r in generate(seed=31, customers=80, days=12)])
        out = replay_outputs(w.settings, lines)
        triggers = {e.value.trigger_id for e in out if e.topic in COMPARED}
        merges = sorted(merge_record(e.value.model_dump(mode="json")) for e in out if e.topic == "identity.merges.v1")
        profiles = [{"customer_id": e.key, **(e.value.model_dump() if e.value else {"dead": True})}
                    for e in out if e.topic == "profiles.v1"]
        customers = alive_customers(profiles)
        assert len(merges) > 5
        if backlog:
            produce(w, sorted(read_records(iter(lines)), key=lambda r: r.topic))
        for _ in range(workers):
            w.start()
        if not backlog:
            produce(w, read_records(iter(lines)))
        got = w.collect(COMPARED, until=lambda g: {r["trigger_id"] for r in g} >= triggers)
        assert {r["trigger_id"] for r in got} == triggers
        got = w.collect(["identity.merges.v1"], until=lambda g: len(g) >= len(merges), timeout=30)
        assert sorted(merge_record(m) for m in got) == merges
        seen = w.collect(["profiles.v1"], until=lambda g: alive_customers(g) == customers, timeout=30)
        assert alive_customers(seen) == customers
        shares = [applied_events(port) for port in w.metrics_ports]
        assert sum(shares) >= len(lines) * 0.9 and (backlog or all(n > 0 for n in shares)), shares
    finally:
        w.stop()


def test_state_survives_a_worker_restart(broker, tmp_path):
    w = LiveWorker(broker.bootstrap, tmp_path, RAPPORT_MODEL_CHECKPOINT_S="0")
    try:
        lines = [r.line() for r in generate(seed=41, customers=40, days=8)]
        cut = len(lines) // 2
        first = {e.value.trigger_id for e in replay_outputs(w.settings, lines[:cut]) if e.topic in COMPARED}
        everything = with_close(lines)
        expected = {e.value.trigger_id for e in replay_outputs(w.settings, everything)
                    if e.topic in COMPARED}
        assert first and expected - first

        w.start()
        produce(w, read_records(iter(lines[:cut])))
        w.collect(COMPARED, until=lambda g: {r["trigger_id"] for r in g} >= first)
        w.stop()  # the state now lives only in the changelog

        w.start()
        produce(w, list(read_records(iter(everything)))[cut:])
        got = w.collect(COMPARED, until=lambda g: {r["trigger_id"] for r in g} >= expected)
        assert {r["trigger_id"] for r in got} == expected
    finally:
        w.stop()


def test_poison_events_and_undecodable_internal_records_never_stop_a_live_worker(broker, tmp_path):
    """Faults injected into every stage, and garbage on both internal topics: each goes to the DLQ with its
    stage, and the customers behind them still get their triggers."""
    from pipeline.ops.topics import CUSTOMERS_TOPIC, EVENTS_TOPIC
    from tests.helpers import event, raw

    w = LiveWorker(broker.bootstrap, tmp_path, partitions=2,
                   RAPPORT_INJECT_FAULTS="ingest:poison-i,identity:poison-d,sentiment:poison-s,customers:poison-c")
    try:
        w.start()
        pub = Publisher(w.settings.bootstrap, w.ns)
        pub.send(w.ns + EVENTS_TOPIC, b"garbage/1", b"\x80 not an internal record", 0)
        pub.send(w.ns + CUSTOMERS_TOPIC, b"garbage/2", b'{"k": "from a future release"}', 0)
        pub.flush()
        ann = {"anonymous_id": "cookie-poisoned"}
        records = [add(0, ann, "SKU-1", 39000)]
        for n, stage in enumerate("idsc"):
            records.append(raw("reviews.v1", event(1 + n, ann, event_id=f"poison-{stage}", review_id=f"r{stage}",
                                                   channel="web", text="So disappointed, it broke at once")))
        records.append(click(45, {"anonymous_id": "someone-else"}, "page_view"))
        produce(w, records)
        got = w.collect(["dlq.v1", "triggers.cart_abandoned.v1"], until=lambda g: (
            sum(r["topic"] == "dlq.v1" for r in g) >= 6 and any(r["topic"] != "dlq.v1" for r in g)))
        stages = sorted(r["stage"] for r in got if r["topic"] == "dlq.v1")
        assert stages == ["customers", "identity", "ingest", "internal", "internal", "sentiment"], got
        [cart] = [r for r in got if r["topic"] == "triggers.cart_abandoned.v1"]
        assert cart["evidence"]["cart_value"] == 39000
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_ports[0]}/metrics", timeout=5).read().decode()
        assert 'rapport_processing_errors_total{stage="customers"} 1.0' in metrics
        assert 'rapport_processing_errors_total{stage="internal"} 2.0' in metrics
    finally:
        w.stop()


def test_records_near_the_size_limit_or_from_the_future_are_dead_lettered_and_never_stop_a_live_worker(broker, tmp_path):
    """Found by trying it: a review just under the old 1 MiB limit passed ingest but did not fit the internal
    topic, and its ingest crashed; a click dated 2190 would have moved event time on for everyone. Now a
    record either fits every topic it goes through or is dead-lettered, and so is one from the future."""
    from tests.helpers import event

    w = LiveWorker(broker.bootstrap, tmp_path, partitions=2)
    pub = Publisher({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 2_000_000}, w.ns)
    texts = {"near": "정말 실망했어요 " + "a" * 950_000, "over": "a" * 1_040_000,
             "grows": " ".join(f"a{i}@b.kr" for i in range(80_000)), "after": "최악이에요 너무 실망했어요"}
    try:
        w.start()
        for name, text in texts.items():
            doc = event(0, {"user_id": f"u-{name}"}, event_id=f"big-{name}", review_id=name, channel="web", text=text)
            pub.send(w.ns + "reviews.v1", None, orjson.dumps(doc))
        future = {**event(0, {"user_id": "u-future"}, type="page_view"), "occurred_at": "2190-01-01T00:00:00+09:00"}
        pub.send(w.ns + "clickstream.v1", None, orjson.dumps(future))  # its Kafka timestamp says: written now
        pub.flush()
        got = w.collect(["scores.reviews.v1", "dlq.v1"], timeout=90, until=lambda g: len(g) >= 5)
        assert sorted(x["review_id"] for x in got if "review_id" in x) == ["after", "near"]
        assert sorted(x["error_type"] for x in got if "error_type" in x) == ["future_event_time", "too_large", "too_large"]
        assert "Traceback" not in w.logs()
    finally:
        w.stop()
