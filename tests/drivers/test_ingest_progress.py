"""The ingest's progress markers: which partitions are read to their end, as of when, at which positions."""
import asyncio
import time
from datetime import datetime, timedelta, timezone

import orjson

from pipeline.drivers.codec import Progress, internal_from_bytes, progress_bytes
from pipeline.drivers.worker import IngestStage
from pipeline.ops.metrics import Metrics
from pipeline.ops.settings import Settings
from tests.helpers import raw

CLICKS, POS, REVIEWS = ("clickstream.v1", 0), ("pos.v1", 0), ("reviews.v1", 0)


class Recorder:
    """Stands in for the Publisher: keeps what was sent to the internal topic."""

    prefix = ""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, topic, key, value, partition=None) -> None:
        self.sent.append(value)

    def send_emits(self, emits) -> None:
        pass

    def flush(self) -> None:
        pass

    def markers(self) -> list[Progress]:
        return [m for record in self.sent for m in internal_from_bytes(record) if isinstance(m, Progress)]


def click_at(offset: int, when: datetime):
    rec = raw("clickstream.v1", {"event_id": f"c{offset}-{when.timestamp()}", "occurred_at": when.isoformat(),
                                 "identifiers": {"anonymous_id": "c1"}, "type": "page_view"})
    return type(rec)(rec.topic, 0, offset, rec.key, rec.value)


def stage(tmp_path, highwaters: dict) -> tuple[IngestStage, Recorder]:
    settings = Settings(pii_key="k", state_dir=tmp_path)
    recorder = Recorder()
    return IngestStage(settings, recorder, Metrics(), lambda: highwaters), recorder


def test_a_partition_is_caught_up_once_everything_below_its_high_watermark_is_forwarded(tmp_path):
    fetched = int(time.time() * 1000)
    highwaters = {CLICKS: (3, fetched), POS: (0, fetched), REVIEWS: (None, None)}
    ingest, out = stage(tmp_path, highwaters)
    ingest.assigned({CLICKS: 0, POS: 0, REVIEWS: 0})  # nothing committed yet: they start at 0
    now = datetime.now(timezone.utc)
    asyncio.run(ingest.batch([click_at(0, now), click_at(1, now)]))
    assert out.markers()[-1].sources == [POS]  # empty; clickstream has offset 2 still to come; reviews unfetched
    asyncio.run(ingest.batch([click_at(2, now)]))
    assert sorted(out.markers()[-1].sources) == [CLICKS, POS]


def test_a_marker_speaks_for_when_its_fetches_were_sent_with_the_positions_reached_by_then(tmp_path):
    sent = int(time.time() * 1000) - 300  # a slow fetch: its high watermark is that old
    ingest, out = stage(tmp_path, {CLICKS: (2, sent), POS: (0, sent + 200)})
    ingest.assigned({CLICKS: 0, POS: 0})
    then = datetime.now(timezone.utc) - timedelta(minutes=10)
    asyncio.run(ingest.batch([click_at(0, then)]))
    assert [m.sources for m in out.markers()] == [[POS]]  # clickstream's offset 1 is still to come
    asyncio.run(ingest.batch([click_at(1, then + timedelta(minutes=1))]))
    marker = out.markers()[-1]
    assert sorted(marker.sources) == [CLICKS, POS] and marker.as_of_ms == sent  # the older of the two fetches
    assert marker.positions == {}  # both batches are younger than the marker's as-of time
    ingest.history.appendleft((marker.as_of_ms - 1, {"clickstream.v1": 123}))  # a batch a fetch earlier
    ingest.last_batch = time.monotonic() - 10  # the stream has been quiet
    asyncio.run(ingest.tick())
    assert out.markers()[-1].positions == {"clickstream.v1": 123}


def test_an_event_time_far_in_the_future_does_not_move_the_position(tmp_path):
    ingest, _ = stage(tmp_path, {CLICKS: (10, None)})
    ingest.assigned({CLICKS: 0})
    now = datetime.now(timezone.utc)
    asyncio.run(ingest.batch([click_at(0, now), click_at(1, now + timedelta(hours=9))]))  # KST written as UTC
    assert ingest.positions["clickstream.v1"] == int(now.timestamp() * 1000)


def test_markers_round_trip_through_the_internal_topic():
    p = Progress([CLICKS], 10, 5, {"clickstream.v1": 3}, "host:1:ab")
    assert internal_from_bytes(progress_bytes(p)) == [p] and orjson.loads(progress_bytes(p))["by"] == "host:1:ab"
