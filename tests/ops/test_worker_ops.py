"""A live worker as an SRE sees it: /healthz and /readyz, and a real Prometheus scraping its metrics."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import orjson
import pytest

from pipeline.drivers.generate import generate
from pipeline.drivers.kafka_io import Publisher
from pipeline.ops.broker import die_with_parent, free_port
from tests.drivers.live import LiveWorker
from tests.helpers import http_get as get

pytestmark = pytest.mark.broker


def wait_for(check, timeout: float = 60.0, every: float = 0.25):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s")


def produce(w: LiveWorker, customers: int, days: int, seed: int) -> int:
    pub, n = Publisher(w.settings.bootstrap, w.ns), 0
    for r in generate(customers=customers, days=days, seed=seed):
        pub.send(w.ns + r.topic, r.key_bytes(), r.value_bytes())
        n += 1
    pub.flush()
    return n


def test_healthz_and_readyz_follow_the_worker(broker, tmp_path):
    w = LiveWorker(broker.bootstrap, tmp_path)
    try:
        w.start()
        base = f"http://127.0.0.1:{w.metrics_ports[0]}"
        wait_for(lambda: _up(base + "/healthz"))
        # Alive at once; ready only once the group has assigned its partitions (a join takes seconds here).
        status, body = get(base + "/readyz")
        assert status == 503 and "not joined" in body
        wait_for(lambda: get(base + "/readyz")[0] == 200)
        assert get(base + "/healthz") == (200, "alive\n")
        wait_for(lambda: "rapport_ready 1.0" in get(base + "/metrics")[1])
    finally:
        w.stop()


def _up(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


@pytest.fixture
def prometheus(tmp_path):
    """Debian's ``prometheus`` (``make test`` installs it), scraping targets added by the test every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (make test installs it: apt-get install prometheus)")
    port = free_port()
    targets: list[str] = []
    started: list[subprocess.Popen] = []

    def start(target: str) -> str:
        targets.append(target)
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(Path("deploy/alerts.yml").resolve())],
            "scrape_configs": [{"job_name": "rapport", "static_configs": [{"targets": targets}]}],
        }))
        log = open(tmp_path / "prometheus.log", "ab")
        started.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}"], stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent))
        api = f"http://127.0.0.1:{port}/api/v1/"
        wait_for(lambda: _up(f"http://127.0.0.1:{port}/-/ready"), timeout=30)
        return api

    yield start
    for p in started:
        p.terminate()
        p.wait(10)


def query(api: str, promql: str) -> float | None:
    status, body = get(api + "query?" + urllib.parse.urlencode({"query": promql}))
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_a_live_worker_and_the_key_series_move(broker, tmp_path, prometheus):
    w = LiveWorker(broker.bootstrap, tmp_path, partitions=2)
    try:
        w.start()
        api = prometheus(f"127.0.0.1:{w.metrics_ports[0]}")
        wait_for(lambda: query(api, 'up{job="rapport"}') == 1.0, timeout=30)
        wait_for(lambda: query(api, "rapport_ready") == 1.0, timeout=60)
        first = produce(w, customers=40, days=3, seed=1)
        wait_for(lambda: (query(api, "sum(rapport_records_total)") or 0) >= first, timeout=90)
        wait_for(lambda: (query(api, "sum(rapport_events_total)") or 0) > 0, timeout=60)
        before = {
            "records": query(api, "sum(rapport_records_total)"),
            "events": query(api, "sum(rapport_events_total)"),
            "latency": query(api, 'sum(rapport_event_latency_seconds_count{since="arrival"})'),
        }
        assert before["latency"] and before["latency"] > 0
        second = produce(w, customers=40, days=3, seed=2)
        wait_for(lambda: (query(api, "sum(rapport_records_total)") or 0) >= first + second, timeout=90)
        wait_for(lambda: (query(api, 'sum(rapport_event_latency_seconds_count{since="arrival"})') or 0)
                 > before["latency"], timeout=60)
        assert query(api, "sum(rapport_events_total)") > before["events"]
        # Lag is reported per partition held, and drains to zero once everything is committed.
        wait_for(lambda: query(api, "count(rapport_consumer_lag_records)") is not None, timeout=60)
        wait_for(lambda: query(api, "sum(rapport_consumer_lag_records)") == 0.0, timeout=90)
        for series in ("rapport_rebalances_total", 'rapport_state_bytes{stage="customers"}',
                       'rapport_state_bytes{stage="global"}', "rapport_customers", "rapport_identifiers",
                       "rapport_watermark_seconds", 'rapport_restore_seconds_count{stage="customers"}',
                       "rapport_batch_seconds_count", "rapport_triggers_total"):
            assert (query(api, f"sum({series})") or 0) > 0, series
        # p99 from arrival to output over everything so far is a number of seconds, not NaN (a rate() over a
        # window with no new observation would be, on a slow machine).
        p99 = query(api, 'histogram_quantile(0.99, sum by (le) (rapport_event_latency_seconds_bucket{since="arrival"}))')
        assert p99 is not None and 0 < p99 < 60
    finally:
        w.stop()


def test_sigterm_finishes_the_batch_commits_and_leaves_so_nothing_is_read_twice(broker, tmp_path):
    """A graceful stop mid-stream: exit code 0, no traceback, and the next worker starts exactly where it
    stopped (every inbound record reaches the internal events topic once: nothing was re-read)."""
    w = LiveWorker(broker.bootstrap, tmp_path, partitions=2, RAPPORT_LOG_FORMAT="json")
    try:
        sent = produce(w, customers=300, days=20, seed=5)
        w.start()
        base = f"http://127.0.0.1:{w.metrics_ports[0]}"
        wait_for(lambda: "rapport_records_total" in get(base + "/metrics")[1] and
                 _metric(get(base + "/metrics")[1], "rapport_records_total") > 0, timeout=90, every=0.05)
        first = w.procs[0]
        first.terminate()  # SIGTERM, mid-stream
        assert first.wait(30) == 0
        log = (tmp_path / "worker0.log").read_text()
        assert "Traceback" not in log
        w.procs.clear()
        w.start()
        base = f"http://127.0.0.1:{w.metrics_ports[-1]}"
        wait_for(lambda: _metric(get(base + "/metrics")[1], "rapport_records_total") > 0, timeout=90)
        # Each inbound record forwarded or dead-lettered exactly once, once the second worker has read them all.
        counted = wait_for(lambda: n if (n := count_forwarded(w)) >= sent else None, timeout=120, every=1)
        time.sleep(2)
        assert count_forwarded(w) == counted == sent
    finally:
        w.stop()


def count_forwarded(w: LiveWorker) -> int:
    """Inbound records forwarded (events on the internal topic, not progress markers) or dead-lettered."""
    events = sum(1 for _, v in w.read_to_end("rapport.events.v1") if v and v.startswith(b"[")
                 for item in orjson.loads(v) if "s" in item)  # not the notes of dead letters
    return events + len(w.read_to_end("dlq.v1"))


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total
