"""The changelog keeps only live values: a split value's parts go when the value is replaced or deleted,
also by a worker that restored the changelog (nothing of an erased customer lingers in old parts)."""
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.drivers.kafka_io import read_range
from pipeline.ops import statestore
from pipeline.ops.statestore import StateStore

pytestmark = pytest.mark.broker


def live_keys(bootstrap: str, topic: str) -> set[str]:
    """Keys whose latest value is not a tombstone (what compaction keeps)."""
    latest = {m.key().decode(): m.value() for m in read_range(bootstrap, [topic], idle_s=1.0)}
    return {k for k, v in latest.items() if v is not None and not k.startswith("fence/")}


def test_parts_of_a_replaced_or_deleted_value_are_tombstoned(broker, monkeypatch):
    monkeypatch.setattr(statestore, "PART_BYTES", 200)
    topic = f"cl-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result()
    store = StateStore(broker.bootstrap, topic)
    store.write({"c/kim": "x" * 1000, "c/lee": "y" * 1000})  # both split into parts
    store.flush()
    assert sum("#" in k for k in live_keys(broker.bootstrap, topic)) >= 10
    store.write({"c/kim": "small", "c/lee": None})  # replaced by a small value; deleted
    store.flush()
    assert live_keys(broker.bootstrap, topic) == {"c/kim"}
    # A restarted worker knows the parts of what it restored, and drops them when it replaces the value.
    store.write({"c/kim": "z" * 1000})
    store.flush()
    again = StateStore(broker.bootstrap, topic)
    assert again.read_all() == {"c/kim": "z" * 1000}
    again.write({"c/kim": None})
    again.flush()
    assert live_keys(broker.bootstrap, topic) == set()
