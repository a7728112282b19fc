"""The real thing: the embedded broker, `rapport worker` processes, and records on the outbound topics."""
import orjson
import pytest
import urllib.request

from pipeline.core.engine import TRIGGER_TOPICS
from pipeline.drivers.codec import build_engine
from pipeline.drivers.generate import generate
from pipeline.drivers.kafka_io import Publisher
from pipeline.drivers.replay import read_records
from tests.drivers.live import PII_KEY, LiveWorker
from tests.helpers import add, click, review

pytestmark = pytest.mark.broker


@pytest.fixture
def live(broker, tmp_path):
    w = LiveWorker(broker.bootstrap, tmp_path)
    yield w
    w.stop()


def produce(w: LiveWorker, records) -> None:
    pub = Publisher(w.settings.bootstrap, w.ns)
    for r in records:
        pub.send(w.ns + r.topic, r.key, r.value)
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
    # Far-future traffic closes every window, in both runs.
    lines.append(orjson.dumps({"topic": "clickstream.v1", "key": None, "value": {
        "event_id": "tick", "occurred_at": "2027-06-01T00:00:00+09:00", "identifiers": {"anonymous_id": "tick"},
        "type": "page_view"}}) + b"\n")
    engine = build_engine(live.settings)
    expected = {e.value.trigger_id for e in engine.process_batch(read_records(iter(lines)))
                if e.topic in TRIGGER_TOPICS.values()}
    assert len(expected) > 10

    live.start()
    produce(live, read_records(iter(lines)))
    got = live.collect(list(TRIGGER_TOPICS.values()), until=lambda g: len({r["trigger_id"] for r in g}) >= len(expected))
    assert {r["trigger_id"] for r in got} == expected
