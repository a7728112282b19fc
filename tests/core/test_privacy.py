"""Privacy requests in the core: erase, suppress, unsuppress and export one person, and nothing else changes."""
import pytest

from pipeline.core.encoding import dumps
from tests.helpers import add, click, consent, event, make_engine, of, privacy, raw, review, run

KIM = {"email": "kim@example.kr", "anonymous_id": "cookie-kim"}
LEE = {"email": "lee@example.kr", "anonymous_id": "cookie-lee"}


def journey(who: dict, start: float) -> list:
    return [click(start, who, "page_view"), add(start + 1, who, "SKU-9", 39000),
            review(start + 2, who, "배송이 너무 늦어서 정말 실망했어요", rating=1), consent(start + 3, who, True)]


def state_text(engine) -> str:  # noqa: ANN001
    """Everything the engine would write to its changelogs now (the latest value of each key)."""
    return str({k: dumps(v) for k, v in engine.take_changes().items() if v is not None})


def test_erase_removes_the_customer_everywhere_and_only_them():
    e = make_engine()
    out = run(e, *journey(KIM, 0), *journey(LEE, 0), click(5, {"anonymous_id": "cookie-kim", "user_id": "u-kim"}, "login"))
    kim = next(p.customer_id for p in of(out, "profiles.v1") if p is not None)
    hashes = {i.key for i in e.identity.members[kim]}
    assert len(hashes) == 3
    before = state_text(e)
    assert all(h.split(":", 1)[1] in before for h in hashes)
    out = run(e, privacy(10, {"email": "kim@example.kr"}, "erase", "req-erase"))
    res = of(out, "privacy.results.v1")
    assert len(res) == 1 and res[0].status == "completed" and res[0].customer_id == kim
    assert res[0].removed["identifiers"] == 3 and res[0].removed["customer_state"] == 1
    assert res[0].removed["open_cart_lines"] == 1 and res[0].texts_expire_by is not None
    kims = [x.value for x in out if x.topic == "profiles.v1" and x.key == kim]  # (what was coalesced before it, then)
    assert kims[-1] is None
    changes = e.take_changes()
    assert changes[f"c/{kim}"] is None and all(changes[f"i/{h}"] is None for h in hashes)
    assert kim not in e.customers and not any(h in e.identity.owner for h in hashes)
    # Lee is untouched; a later event with Kim's cookie starts a new customer (no old state).
    assert len(e.customers) == 1
    out = run(e, click(20, {"anonymous_id": "cookie-kim"}, "page_view"))
    fresh = e.customers[e.identity.owner[e.hasher.identifier("anonymous_id", "cookie-kim").key]]
    assert fresh.page_views == 1 and not fresh.consent_history and not fresh.carts


def test_erase_tombstones_the_dead_letters_that_carry_the_persons_identifiers():
    e = make_engine()
    broken = raw("reviews.v1", event(1, {"user_id": "u-kim", "email": "kim@example.kr"}, review_id="r-1",
                                     channel="web", text="a review with a rating of eleven", rating=11))
    unknown = raw("reviews.v1", event(2, {"email": "kim.other@example.kr"}, review_id="r-2", channel="web",
                                      text="no rating at all either", rating="five"))
    out = run(e, *journey(KIM, 0), broken, unknown, review(3, LEE, "not Kim's", rating="x"))
    dead = [x for x in out if x.topic == "dlq.v1"]
    assert len(dead) == 3 and all(x.key for x in dead)
    out = run(e, privacy(10, {"email": "kim@example.kr", "user_id": "u-kim"}, "erase"),
              privacy(11, {"email": "kim.other@example.kr"}, "erase"))
    tombstoned = {x.key for x in out if x.topic == "dlq.v1" and x.value is None}
    assert tombstoned == {dead[0].key, dead[1].key}  # not Lee's
    [found], [nobody] = ([r for r in of(out, "privacy.results.v1") if r.status == s] for s in ("completed", "not_found"))
    assert found.removed["dead_letters"] == 1 and found.texts_expire_by is not None
    assert nobody.status == "not_found" and nobody.removed == {"dead_letters": 1}
    assert "kim" not in str(e.take_changes())  # nothing is left to link


def test_erase_tombstones_the_dead_letters_of_a_failing_customer_partition():
    e = make_engine(inject_faults="customers:poison")
    out = run(e, *journey(KIM, 0), click(5, KIM, "page_view", event_id="poison-1"))
    [dead] = [x for x in out if x.topic == "dlq.v1"]
    assert dead.value.stage == "customers"
    out = run(e, privacy(10, {"anonymous_id": "cookie-kim"}, "erase"))
    assert [x.key for x in out if x.topic == "dlq.v1" and x.value is None] == [dead.key]
    assert of(out, "privacy.results.v1")[0].removed["dead_letters"] == 1


def test_the_churn_learner_holds_no_customer_id_in_the_labels_it_waits_to_learn():
    e = make_engine(churn_horizon_days=0.01, churn_snapshot_every_days=0.005, model_epoch_hours=1)
    run(e, *journey(KIM, 0), click(40, LEE, "page_view"))  # Kim's labels are due at 15-20 min; epoch 0 ends at 60
    kim = e.identity.owner[e.hasher.identifier("email", "kim@example.kr").key]
    assert e.learner.pending  # Kim's labels wait for their epoch
    run(e, privacy(41, {"email": "kim@example.kr"}, "erase"))
    assert kim not in state_text(e) and kim not in str({k: dumps(v) for k, v in e.models().items()})


def test_erase_reaches_every_customer_merged_into_the_survivor():
    e = make_engine()
    out = run(e, click(0, {"anonymous_id": "cookie-a"}, "page_view"), click(1, {"user_id": "u-1"}, "page_view"),
              click(2, {"anonymous_id": "cookie-a", "user_id": "u-1"}, "login"))
    merge = of(out, "identity.merges.v1")[0]
    out = run(e, privacy(3, {"user_id": "u-1"}, "erase"))
    res = of(out, "privacy.results.v1")[0]
    assert res.customer_id == merge.surviving_customer_id and res.merged_customer_ids == [merge.absorbed_customer_id]
    assert not e.identity.alias and not e.identity.owner and not e.customers


def test_suppressed_people_are_dropped_before_identity_and_get_no_trigger_until_unsuppressed():
    e = make_engine(cart_abandon_window_s=60)
    run(e, add(0, KIM, "SKU-1", 10000))
    out = run(e, privacy(0.5, {"email": "kim@example.kr"}, "suppress"))
    res = of(out, "privacy.results.v1")[0]
    assert res.status == "completed" and res.suppressed_identifiers == 2  # the email and the cookie it holds
    out = run(e, click(2, {"anonymous_id": "cookie-kim"}, "page_view"), add(3, {"anonymous_id": "cookie-kim"}),
              click(30, LEE, "page_view"))
    assert e.stats["privacy_dropped"] == 2
    assert not of(out, "triggers.cart_abandoned.v1")  # the cart added before the request never fires either
    assert not [p for p in of(out, "profiles.v1") if p is not None and p.customer_id in e.identity.owner.values()
                and e.customers[p.customer_id].suppressed]
    out = run(e, privacy(40, {"anonymous_id": "cookie-kim"}, "unsuppress"))
    assert of(out, "privacy.results.v1")[0].suppressed_identifiers == 2
    out = run(e, add(50, {"anonymous_id": "cookie-kim"}), click(60, LEE, "page_view"))
    assert len(of(out, "triggers.cart_abandoned.v1")) == 1


def test_a_suppressed_stranger_is_never_stitched_or_stored():
    e = make_engine()
    out = run(e, privacy(0, {"phone": "010-4821-7730"}, "suppress"))
    assert of(out, "privacy.results.v1")[0].status == "completed"
    run(e, click(1, {"phone": "+82 10 4821 7730", "anonymous_id": "c-new"}, "page_view"))
    assert not e.customers and not e.identity.owner and e.stats["privacy_dropped"] == 1


def test_export_lists_what_is_held_and_unknown_people_are_not_found():
    e = make_engine()
    run(e, *journey(KIM, 0))
    out = run(e, privacy(10, {"anonymous_id": "cookie-kim"}, "export"), privacy(11, {"email": "x@y.kr"}, "export"))
    missing, found = sorted(of(out, "privacy.results.v1"), key=lambda r: r.customer_id is not None)
    assert missing.status == "not_found" and missing.customer_id is None
    ex = found.export
    assert sorted(i.kind for i in ex.identifiers) == ["anonymous_id", "email"]
    assert ex.profile.customer_id == found.customer_id and len(ex.consent_history) == 1
    assert [c.sku for c in ex.open_carts] == ["SKU-9"]
    assert "kim@example.kr" not in found.model_dump_json()
    out = run(e, click(50, LEE, "page_view"), privacy(60, {"anonymous_id": "cookie-kim"}, "export"))
    later = of(out, "privacy.results.v1")[0].export  # the cart was abandoned meanwhile: a trigger went out
    assert sorted(later.triggers_sent) == ["cart_abandoned", "negative_emotion"] and not later.open_carts


@pytest.mark.parametrize("partitions", [2, 3])
def test_privacy_results_are_the_same_in_every_layout(partitions):
    records = [*journey(KIM, 0), *journey(LEE, 0), privacy(5, {"email": "lee@example.kr"}, "export", "r1"),
               privacy(6, {"email": "kim@example.kr"}, "erase", "r2"), click(7, KIM, "page_view")]

    def results(n: int) -> list:
        out = run(make_engine(customer_partitions=n), *records)
        return sorted((x.topic, x.key or "", x.value.model_dump_json() if x.value else "") for x in out)
    assert results(partitions) == results(1)


def test_bad_requests_go_to_the_dlq_with_the_reason():
    from tests.helpers import raw
    e = make_engine()
    good = {"request_id": "r", "occurred_at": "2026-11-22T10:00:00+09:00", "identifiers": {"user_id": "u-1"},
            "type": "erase"}
    bad = [{**good, "type": "forget_me"}, {k: v for k, v in good.items() if k != "request_id"},
           {**good, "identifiers": {}}, {**good, "identifiers": {"user_id": "x" * 5000}},
           {**good, "occurred_at": "yesterday"}, "{not json", [good]]
    out = run(e, *(raw("privacy.v1", b) for b in bad))
    letters = of(out, "dlq.v1")
    assert len(letters) == len(bad) and not of(out, "privacy.results.v1")
    assert {d.error_type for d in letters} == {"validation", "invalid_json", "not_an_object"}
    assert "type" in letters[0].error_detail and "request_id" in letters[1].error_detail


def test_a_customer_reborn_after_its_survivor_was_erased_gets_none_of_its_old_churn_snapshots():
    """Ann is merged into Bob, Bob is erased, Ann comes back under her old customer id (ids derive from an
    identifier): the due times of the snapshots she had before the merge are stale, and are skipped."""
    from tests.helpers import pos

    day, ann, bob = 24 * 60, {"email": "ann@example.com"}, {"user_id": "u-bob"}
    e = make_engine()
    out = run(e, pos(0, bob), pos(5, ann), pos(8 * day, ann), click(10 * day, {**ann, **bob}, "page_view"),
              privacy(11 * day, bob, "erase"), pos(12 * day, ann), click(200 * day, ann, "page_view"))
    merge = of(out, "identity.merges.v1")[0]
    assert e.customers[merge.absorbed_customer_id].purchases == 1  # reborn, with only what came after
    assert e.stats["churn_labels"] >= 1 and not any(k.startswith("errors") and v for k, v in e.stats.items())
