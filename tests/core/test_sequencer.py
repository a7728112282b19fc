"""The sequencer's promises: slack per kind of traffic, caught-up floors, and what counts as out of order."""
from pipeline.core.records import Event
from pipeline.core.sequencer import Sequencer
from schemas.inbound import ClickEvent

MIN = 60_000
NOW = 1_800_000_000_000  # the wall clock
A, B = ("clickstream.v1", 0), ("pos.v1", 0)


def ev(ts: int, eid: str) -> Event:
    return Event("clickstream.v1", ts, (), ClickEvent.model_construct(event_id=eid))


def released(s: Sequencer) -> list[str]:
    return [e.event_id for e in s.release()]


def sequencer() -> Sequencer:
    return Sequencer(grace_ms=300, slack_ms=5 * MIN, live_ms=MIN)


def test_a_backfill_sorts_events_up_to_the_allowed_lateness_out_of_order():
    s = sequencer()
    s.expect(A)
    for ts, eid in ((0, "a0"), (3 * MIN, "a3"), (MIN, "late-by-2-min"), (9 * MIN, "a9")):
        s.push(ev(ts, eid), A)
    assert released(s) == ["a0", "late-by-2-min", "a3"]  # a9 - 5 min: everything before 4 min is safe
    assert not s.behind(ev(4 * MIN + 1, "x"))


def test_live_traffic_waits_only_for_the_grace():
    s = sequencer()
    s.expect(A), s.expect(B)
    s.push(ev(NOW - 1000, "a1"), A)
    s.push(ev(NOW - 900, "b1"), B)
    assert released(s) == []  # not yet known to be live: the backfill slack holds everything
    s.caught_up([A, B], "r", as_of_ms=NOW - 200, positions={"clickstream.v1": NOW - 1000, "pos.v1": NOW - 900})
    assert s.live and released(s) == ["a1", "b1"]  # read to their end as of NOW - 200: nothing before that - grace comes
    s.push(ev(NOW - 100, "a2"), A)
    assert released(s) == []  # an event written after the as-of time, up to the grace late, may still arrive


def test_a_floor_uses_only_positions_of_its_topic_reported_before_its_as_of_time():
    s = sequencer()
    s.expect(A), s.expect(B)
    s.push(ev(0, "a0"), A)
    s.push(ev(60 * MIN, "a60"), A)
    s.caught_up([A], "r2", as_of_ms=NOW, positions={"clickstream.v1": 60 * MIN, "pos.v1": 20 * MIN})
    # r1 says B was read to its end as of earlier: r2's later report cannot vouch for it
    s.caught_up([B], "r1", as_of_ms=NOW - 1000, positions={})
    assert released(s) == []  # B has no floor yet, and nothing from B: hold
    s.caught_up([B], "r1", as_of_ms=NOW + 500, positions={"clickstream.v1": 61 * MIN})
    # B's floor comes from pos.v1's position (r2's 20 min, reported as of NOW <= NOW + 500), not from clickstream's
    assert released(s) == ["a0"] and s.frontier() == 15 * MIN + 1


def test_an_idle_source_stops_holding_back_until_it_delivers_again():
    s = sequencer()
    s.expect(A), s.expect(B)
    s.push(ev(0, "a0"), A)
    s.idle([B])
    s.idle([A])
    assert released(s) == ["a0"]
    s.push(ev(-MIN, "b-old"), B)
    assert s.behind(ev(-MIN, "b-old2"))  # behind what was released: out of order


def test_its_changelog_entry_keeps_each_readers_latest_report_and_restores_the_same_floors():
    from pipeline.core.encoding import dumps, loads
    s = sequencer()
    s.expect(A), s.expect(B)
    for n in range(50):  # a marker every batch: the entry must not carry them all
        s.caught_up([A], "r1", as_of_ms=NOW + n - 200, positions={"clickstream.v1": NOW + n - 300})
    s.caught_up([B], "r2", as_of_ms=NOW - 140, positions={"pos.v1": NOW - 200})
    restored = loads(dumps(s))
    assert {r: len(reports) for r, reports in restored._reports.items()} == {"r1": 1, "r2": 1}
    assert restored.frontier() == s.frontier()
    marker = dict(as_of_ms=NOW - 100, positions={"pos.v1": NOW - 150})
    s.caught_up([A, B], "r2", **marker), restored.caught_up([A, B], "r2", **marker)
    assert restored.frontier() == s.frontier()


def test_a_reader_silent_for_ten_minutes_is_forgotten():
    s = sequencer()
    s.caught_up([A], "gone", as_of_ms=NOW - 200, positions={"clickstream.v1": NOW - 300})
    s.caught_up([A], "r", as_of_ms=NOW + 11 * MIN - 200, positions={"clickstream.v1": NOW})
    assert list(s._reports) == ["r"]
