"""The sequencer's promises: slack per kind of traffic, caught-up floors, and what counts as out of order."""
from pipeline.core.records import Event
from pipeline.core.sequencer import Sequencer
from schemas.inbound import ClickEvent

MIN = 60_000
NOW = 1_800_000_000_000  # the wall clock


def ev(ts: int, eid: str) -> Event:
    return Event("clickstream.v1", ts, (), ClickEvent.model_construct(event_id=eid))


def released(s: Sequencer) -> list[str]:
    return [h[0].event_id for h in s.release()]


def sequencer() -> Sequencer:
    return Sequencer(grace_ms=300, slack_ms=5 * MIN, live_ms=MIN)


def test_a_backfill_sorts_events_up_to_the_allowed_lateness_out_of_order():
    s = sequencer()
    s.expect("a")
    for ts, eid in ((0, "a0"), (3 * MIN, "a3"), (MIN, "late-by-2-min"), (9 * MIN, "a9")):
        s.push(ev(ts, eid), "a")
    assert released(s) == ["a0", "late-by-2-min", "a3"]  # a9 - 5 min: everything before 4 min is safe
    assert not s.behind(ev(4 * MIN + 1, "x"))


def test_live_traffic_waits_only_for_the_grace():
    s = sequencer()
    s.expect("a"), s.expect("b")
    s.push(ev(NOW - 1000, "a1"), "a")
    s.push(ev(NOW - 900, "b1"), "b")
    assert released(s) == []  # not yet known to be live: the backfill slack holds everything
    s.caught_up(["a", "b"], "r", wall_ms=NOW, as_of_ms=NOW - 200, position_ms=NOW - 900)
    assert s.live and released(s) == ["a1", "b1"]  # both read to their end: nothing older than NOW - grace comes
    s.push(ev(NOW - 100, "a2"), "a")
    assert released(s) == []  # within the grace of the wall clock: an event 200 ms older may still arrive


def test_a_floor_uses_only_positions_reported_before_its_as_of_time():
    s = sequencer()
    s.expect("a"), s.expect("b")
    s.push(ev(0, "a0"), "a")
    s.push(ev(60 * MIN, "a60"), "a")
    s.caught_up(["a"], "r2", wall_ms=NOW, as_of_ms=NOW, position_ms=60 * MIN)
    # r1 says b was read to its end as of earlier: r2's later report cannot vouch for b
    s.caught_up(["b"], "r1", wall_ms=NOW - 1000, as_of_ms=NOW - 1000, position_ms=None)
    assert released(s) == []  # b has no floor yet, and nothing from b: hold
    s.caught_up(["b"], "r1", wall_ms=NOW + 1000, as_of_ms=NOW + 500, position_ms=10 * MIN)
    assert released(s) == ["a0"]  # b's floor: r2's 60 min (reported as of NOW <= NOW + 500) - 5 min


def test_an_idle_source_stops_holding_back_until_it_delivers_again():
    s = sequencer()
    s.expect("a"), s.expect("b")
    s.push(ev(0, "a0"), "a")
    s.idle(["b"])
    s.idle(["a"])
    assert released(s) == ["a0"]
    s.push(ev(-MIN, "b-old"), "b")
    assert s.behind(ev(-MIN, "b-old2"))  # behind what was released: out of order
