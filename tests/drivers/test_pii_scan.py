"""No raw email or phone number anywhere Rapport writes: every topic it writes (outbound, internal, state
changelogs), the worker's log and its metrics, after a live run full of them."""
import re
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records
from schemas.inbound import INBOUND
from tests.drivers.live import LiveWorker
from tests.drivers.test_worker_live import produce
from tests.helpers import event, raw

pytestmark = pytest.mark.broker


def needles(records) -> set[bytes]:
    """Every email and phone number in the input, as written and normalised."""
    found: set[bytes] = set()
    for r in records:
        text = r.value.decode(errors="replace")
        for email in re.findall(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)+", text):  # linear in the text
            found.add(email.strip().lower().encode())
        for phone in re.findall(r"(?<![\d+])(?:\+82[ -]?)?0?1[016789][ -]?\d{3,4}[ -]?\d{4}(?!\d)", text):  # mobiles
            digits = re.sub(r"\D", "", phone)
            found |= {phone.encode(), digits.encode(), ("82" + digits[1:]).encode() if digits.startswith("0") else b""}
    return {n for n in found if len(n) >= 8}


def read_everything(w: LiveWorker) -> dict[str, bytes]:
    """Every record of every topic the worker writes (not the inbound ones: they are the producers' data)."""
    topics = AdminClient({"bootstrap.servers": w.settings.bootstrap}).list_topics(timeout=10).topics
    names = [t for t in topics if t.startswith(w.ns) and t.removeprefix(w.ns) not in INBOUND]
    consumer = Consumer({"bootstrap.servers": w.settings.bootstrap, "group.id": f"scan-{w.ns}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, 0) for t in names for p in topics[t].partitions])  # no group join
    out: dict[str, bytearray] = {n: bytearray() for n in names}
    idle, deadline = 0, time.monotonic() + 120
    while idle < 6 and time.monotonic() < deadline:  # the workers are stopped: the topics no longer grow
        msgs = consumer.consume(1000, 0.5)
        idle = 0 if msgs else idle + 1
        for m in msgs:
            if not m.error():
                out[m.topic()] += (m.key() or b"") + b" " + (m.value() or b"") + b"\n"
    consumer.close()
    return {n: bytes(v) for n, v in out.items()}


def test_a_live_run_full_of_emails_and_phones_writes_none_of_them(broker, tmp_path):
    w = LiveWorker(broker.bootstrap, tmp_path, partitions=2, RAPPORT_MAX_RECORD_BYTES="65536")
    try:
        records = list(read_records(iter(g.line() for g in generate(seed=51, customers=60, days=6))))
        ids = {"email": "kim.minji@naver.com", "phone": "010-2784-1093"}
        records += [
            raw("reviews.v1", event(60 * 24 * 7, ids, review_id="r-pii", channel="call_center",
                                    text="고객 lee.sujin@daum.net 010-3141-5926 으로 연락 요청, 환불 지연 불만")),
            raw("clickstream.v1", event(60 * 24 * 7, ids, type="search", query="park.jiho@kakao.com 주문")),
            raw("clickstream.v1", b'{"broken": "choi.yuna@gmail.com 010-9876-1234"'),  # dead-lettered
            raw("pos.v1", {"event_id": "big", "note": "han.seo@naver.com " + "x" * 100_000}),  # too large
        ]
        secrets = needles(records)
        assert {b"kim.minji@naver.com", b"lee.sujin@daum.net", b"01031415926", b"821027841093"} <= secrets
        w.start()
        produce(w, records)
        w.collect(["dlq.v1"], until=lambda g: len(g) >= 3 and any(r.get("error_type") == "too_large" for r in g))
        w.collect(["scores.reviews.v1"], until=lambda g: any(r["review_id"] == "r-pii" for r in g))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_ports[0]}/metrics", timeout=5).read()
        w.stop()  # everything flushed, and nothing more written while the scan reads
        written = read_everything(w)
        assert any(t.endswith("customer-state.v1") for t in written) and any(t.endswith("events.v1") for t in written)
        written["metrics"] = metrics
        written["logs"] = w.logs().encode()
        leaks = {(where, n.decode()) for where, data in written.items() for n in secrets if n in data.lower()}
        assert not leaks, sorted(leaks)[:10]
        assert sum(len(v) for v in written.values()) > 100_000  # the scan read something
        assert b"hmac:" in written[w.ns + "dlq.v1"]
    finally:
        w.stop()
