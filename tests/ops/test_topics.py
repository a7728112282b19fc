"""``rapport topics --check`` on the embedded broker: a match exits 0, any difference exits 1 and says what."""
import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.ops.settings import Settings
from pipeline.ops.topics import ALL_TOPICS, align_configs, check_topics, ensure_topics, expected_config

pytestmark = pytest.mark.broker


def check_cli(bootstrap: str, prefix: str, partitions: int = 4) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": bootstrap, "RAPPORT_TOPIC_PREFIX": prefix, "RAPPORT_PII_KEY": "k",
           "RAPPORT_PARTITIONS": str(partitions)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "topics", "--check"], env=env, capture_output=True,
                          text=True, timeout=60)


def test_check_passes_on_topics_rapport_created_and_names_every_difference(broker):
    ok = Settings(kafka_bootstrap=broker.bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:6]}.", partitions=3)
    ensure_topics(ok)
    assert all(not p for p in check_topics(ok).values())
    done = check_cli(broker.bootstrap, ok.topic_prefix, partitions=3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" ok\n") == len(ALL_TOPICS)
    assert check_cli(broker.bootstrap, ok.topic_prefix, partitions=4).returncode == 1  # expected 4, they have 3
    # A cluster set up by hand: one topic missing, one with other partitions, one with another cleanup policy.
    bad = Settings(kafka_bootstrap=broker.bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:6]}.")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    by_name = {s.name: s for s in ALL_TOPICS}
    wrong = [NewTopic(bad.topic("clickstream.v1"), 2, 1, config=expected_config(bad, by_name["clickstream.v1"])),
             NewTopic(bad.topic("profiles.v1"), 4, 1, config={"cleanup.policy": "delete"})]
    for f in admin.create_topics(wrong).values():
        f.result()
    skip = {"clickstream.v1", "profiles.v1", "dlq.v1"}
    ensure_topics(bad, tuple(s for s in ALL_TOPICS if s.name not in skip))
    report = check_topics(bad)
    assert report[bad.topic("clickstream.v1")] == ["2 partitions, expected 4"]
    assert report[bad.topic("profiles.v1")] == [
        "cleanup.policy=delete, expected compact", "max.compaction.lag.ms=None, expected 86400000",
        "delete.retention.ms=None, expected 86400000"]
    assert report[bad.topic("dlq.v1")] == ["missing (rapport topics creates it)"]
    assert sum(1 for p in report.values() if p) == 3
    done = check_cli(broker.bootstrap, bad.topic_prefix)
    assert done.returncode == 1
    assert "MISMATCH: 2 partitions, expected 4" in done.stdout and "3 of" in done.stderr
    # rapport topics sets the configs (an upgrade) and creates what is missing; partitions stay as they are.
    assert align_configs(bad) == {bad.topic("profiles.v1"): [
        "cleanup.policy", "delete.retention.ms", "max.compaction.lag.ms"]}
    ensure_topics(bad)
    assert [n for n, p in check_topics(bad).items() if p] == [bad.topic("clickstream.v1")]


def test_replicated_topics_expect_min_insync_replicas():
    s = Settings(replication_factor=3)
    assert expected_config(s, ALL_TOPICS[0])["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in expected_config(Settings(), ALL_TOPICS[0])
    assert expected_config(Settings(replication_factor=3, topic_min_insync_replicas=3), ALL_TOPICS[0])[
        "min.insync.replicas"] == "3"
