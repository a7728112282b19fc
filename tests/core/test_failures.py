"""A stage that fails on an event: the event goes to the DLQ whole, the customer is as before, and
processing goes on (here in replay's engine; the live worker runs the same code, see test_worker_live)."""
import pytest

from tests.helpers import add, click, event, make_engine, of, raw, review, run

ANN = {"anonymous_id": "cookie-ann"}
BOB = {"anonymous_id": "cookie-bob"}


def traffic() -> list:
    """Two shoppers; Ann's second cart add and her unrated review are poisoned (their ids hold "poison")."""
    return [
        add(0, ANN, "SKU-1", 25000), review(1, ANN, "Terrible, broken on arrival", rating=1),
        raw("clickstream.v1", event(2, ANN, event_id="poison-c", type="add_to_cart",
                                    product={"sku": "SKU-9", "price": 5000.0, "quantity": 3})),
        raw("reviews.v1", event(2.5, ANN, event_id="poison-r", review_id="r-poison", channel="web",
                                text="Awful service, never again")),
        add(3, BOB, "SKU-2", 9900), click(40, BOB, "page_view"), click(45, ANN, "page_view"),
    ]


def without_dead_letters(emits: list) -> list:
    return [(e.topic, e.key, e.value.model_dump(exclude={"emitted_at"})) for e in emits
            if e.topic != "dlq.v1" and e.value is not None]


@pytest.mark.parametrize("stage", ["ingest", "identity", "sentiment", "customers"])
def test_a_failing_stage_dead_letters_the_event_and_leaves_no_trace_of_it(stage):
    records = traffic()
    needle = b"poison-r" if stage == "sentiment" else b"poison"  # sentiment: only the review reaches it
    clean = run(make_engine(), *(r for r in records if needle not in r.value))
    engine = make_engine(inject_faults=f"{stage}:poison")
    out = run(engine, *records)
    dead = of(out, "dlq.v1")
    failed = [d for d in dead if d.error_type == "processing_error"]
    poisoned = 1 if stage == "sentiment" else 2
    assert len(failed) == poisoned and {d.stage for d in failed} == {stage}
    assert all("InjectedFault" in d.error_detail for d in failed)
    assert engine.stats[f"errors:{stage}"] == poisoned
    if stage == "ingest":
        return  # not decoded: the dead letter is the record itself (partition and offset known)
    assert all(d.offset == -1 and "poison" in d.raw and "cookie-ann" not in d.raw for d in failed)  # hmac tokens
    # Applied whole or not at all: every other output as if the poisoned events had never come.
    assert without_dead_letters(out) == without_dead_letters(clean)
    carts = of(out, "triggers.cart_abandoned.v1")
    assert len(carts) == 2  # the partition went on
    if stage != "sentiment":  # (the add is not a text: sentiment never sees it)
        assert {i.sku for t in carts for i in t.evidence.items} == {"SKU-1", "SKU-2"}  # the poisoned add left no item


def test_a_failing_timer_is_dead_lettered_and_the_others_fire():
    engine = make_engine(inject_faults="timers:cart_abandoned")
    out = run(engine, add(0, ANN), add(1, BOB), click(40, BOB, "page_view"))
    assert of(out, "triggers.cart_abandoned.v1") == []
    failed = [d for d in of(out, "dlq.v1") if d.stage == "timers"]
    assert len(failed) == 2 and all('"timer": "cart_abandoned"' in d.raw for d in failed)
    assert engine.stats["errors:timers"] == 2
    out = run(engine, add(50, ANN))  # the partition goes on: the next event applies
    assert sum(st.carts.quantity for st in engine.customers.values()) >= 1


def test_an_internal_record_that_does_not_decode_is_dead_lettered():
    engine = make_engine()
    engine.undecodable("rapport.events.v1", 0, 7, b'{"not": "ours", "email": "kim@naver.com"}', ValueError("bad"))
    [d] = of(engine.end_batch(), "dlq.v1")
    assert (d.stage, d.offset, d.error_type) == ("internal", 7, "processing_error") and "naver" not in d.raw


def test_a_checkpoint_rewinds_a_customer_exactly_after_any_event_or_timer(monkeypatch):
    """The roll-back's checkpoint shares the fields a change replaces and copies the ones it mutates in place
    (``CustomerState.checkpoint``); rewinding after every event and timer of generated traffic gives back the
    customer exactly as before, so a change that began mutating a shared field in place would fail here."""
    import pickle

    from pipeline.core.customers import CustomerStage
    from pipeline.drivers.generate import generate
    from pipeline.drivers.replay import read_records

    checked = []
    for name in ("_apply", "_churn"):  # an event, and a timer's re-score (cart timers run inside ``fire_due``)
        original = getattr(CustomerStage, name)

        def wrapped(self, *args, _original=original):
            cid = args[0].customer_id
            st = self.customers.get(cid)
            if st is None:
                return _original(self, *args)
            before, checkpoint = pickle.dumps(st), st.checkpoint()
            result = _original(self, *args)
            after = pickle.loads(pickle.dumps(st))
            st.rewind(checkpoint)
            assert st == pickle.loads(before)
            for field in st.__slots__:  # on as if nothing had been rewound
                setattr(st, field, getattr(after, field))
            checked.append(cid)
            return result

        monkeypatch.setattr(CustomerStage, name, wrapped)
    records = generate(seed=5, customers=40)
    run(make_engine(), *read_records(iter(r.line() for r in records)))
    assert len(checked) > 500
