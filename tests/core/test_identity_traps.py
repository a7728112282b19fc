"""Stitching traps against the truth: shared store tablets, household emails and placeholder identifiers.

People are generated with their own identifiers (login, cookies, phone, loyalty card) and with values
several of them share: a store tablet (its device id and browser cookie, used after a login), a
household email (written at login), and placeholders in every common shape. The reference is what is
knowable: a person's own identifiers that some event shows together. Through ingest and the identity
graph, 0 customers may hold two people and 0 such groups may be split over customers.
"""
from collections import Counter

from hypothesis import given, settings, strategies as st

from pipeline.core.identity import IdentityGraph
from pipeline.core.ingest import Ingest
from pipeline.core.pii import Hasher
from pipeline.core.rules import Rules

PLACEHOLDERS = {
    "device_id": ["00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "null"],
    "anonymous_id": ["undefined", "0", "[object Object]"],
    "email": ["test@test.com", "noreply@shop.kr", "none@naver.com"],
    "phone": ["010-0000-0000", "010-1234-5678", "01011111111"],
    "loyalty_id": ["0000-0000", "N/A", "xxxxxxxx"],
}
SHARED = {"device_id": "tablet-gangnam-01", "anonymous_id": "tablet-browser-cookie", "email": "park.family@naver.com"}
SHARED_KEYS = frozenset(i.key for i in Ingest(Rules(), Hasher(b"k")).identifiers(SHARED))

person = st.fixed_dictionaries({
    "user": st.booleans(), "cookies": st.integers(1, 3), "loyalty": st.booleans(), "tablet": st.booleans(),
    "household": st.booleans(),
})
step = st.tuples(st.integers(0, 7), st.sampled_from(["web", "login", "app", "store", "tablet", "household"]),
                 st.integers(0, 2), st.sampled_from(sorted(PLACEHOLDERS)), st.integers(0, 2), st.booleans())


def own_identifiers(n, p, kind, k):
    """Person ``n``'s own identifiers for one event of ``kind`` (None: this person cannot do it)."""
    user = {"user_id": f"member-{n:04d}"} if p["user"] else None
    cookie = {"anonymous_id": f"cookie-{n}-{k % p['cookies']}"}
    if kind == "web":
        return cookie
    if kind == "login":
        return user and {**user, **cookie}
    if kind == "app":
        return user and {**user, "device_id": f"phone-{n}"}
    if kind == "store":
        ids = {"phone": f"010-{2000 + n:04d}-{3917 + 7 * n:04d}"}
        return {**ids, "loyalty_id": f"L-{90210 + n}"} if p["loyalty"] else ids
    if kind == "tablet":  # the store tablet needs a login; its device id and browser cookie are everyone's
        return user and p["tablet"] and {**user, "device_id": SHARED["device_id"], "anonymous_id": SHARED["anonymous_id"]}
    return user and p["household"] and {**user, "email": SHARED["email"]}  # the family's one address


@settings(max_examples=200, deadline=None)
@given(people=st.lists(person, min_size=2, max_size=8), steps=st.lists(step, min_size=1, max_size=60))
def test_no_customer_holds_two_people_and_no_person_is_split(people, steps):
    ingest, graph = Ingest(Rules(), Hasher(b"k")), IdentityGraph(Rules())
    truth: list[tuple[int, str | None]] = []  # per event: whose it is, and the customer it reached
    links: dict[str, str] = {}  # the reference: union-find over each person's own identifier keys

    def find(x):
        while links.setdefault(x, x) != x:
            x = links[x]
        return x

    for t, (who, kind, k, placeholder_kind, placeholder, add_placeholder) in enumerate(steps):
        n = who % len(people)
        ids = own_identifiers(n, people[n], kind, k)
        if not ids:
            continue
        own = [i.key for i in ingest.identifiers(ids) if i.key not in SHARED_KEYS]
        for key in own[1:]:
            links[find(key)] = find(own[0])
        if add_placeholder and placeholder_kind not in ids:
            ids = {**ids, placeholder_kind: PLACEHOLDERS[placeholder_kind][placeholder]}
        res = graph.resolve(ingest.identifiers(ids), ts=t, event_id=f"e{t}")
        assert res.customer_id is not None  # every event here carries one of its person's own identifiers
        truth.append((n, own[0], res.customer_id))

    people_of: dict[str, set[int]] = {}
    customers_of: dict[str, set[str]] = {}
    for n, key, customer in truth:
        people_of.setdefault(graph.canonical(customer), set()).add(n)
        customers_of.setdefault(find(key), set()).add(graph.canonical(customer))
    assert [c for c, who in people_of.items() if len(who) > 1] == []  # 0 people merged into one customer
    assert [g for g, cs in customers_of.items() if len(cs) > 1] == []  # 0 people split over customers


def test_placeholders_in_every_shape_link_nothing():
    ingest = Ingest(Rules(), Hasher(b"k"))
    for kind, values in PLACEHOLDERS.items():
        for value in values:
            assert ingest.identifiers({kind: value}) == (), (kind, value)


def test_a_shared_value_is_blocked_once_and_recorded_with_its_reason():
    ingest, graph = Ingest(Rules(), Hasher(b"k")), IdentityGraph(Rules())
    graph.resolve(ingest.identifiers({"user_id": "a", "device_id": SHARED["device_id"]}), 1, "e1")
    r = graph.resolve(ingest.identifiers({"user_id": "b", "device_id": SHARED["device_id"]}), 2, "e2")
    [block] = r.blocked
    assert block.reason == "several_user_ids" and block.ident.kind == "device_id" and block.detached_from
    assert graph.resolve(ingest.identifiers({"user_id": "c", "device_id": SHARED["device_id"]}), 3, "e3").blocked == []
    assert Counter(i.kind for m in graph.members.values() for i in m)["device_id"] == 0


# ---- the engine: what an operator sees, and what survives a restart ------------------------------

def test_engine_records_a_shared_identifier_and_dead_letters_events_that_only_carry_shared_ones():
    import pickle

    from tests.helpers import click, make_engine, of, run

    engine = make_engine(profile_coalesce_s=0)  # every profile change at once
    tablet = {"device_id": SHARED["device_id"]}
    out = run(engine, click(0, {"user_id": "a", **tablet}, "login"), click(1, {"user_id": "b", **tablet}, "login"),
              click(2, tablet, "page_view"))
    [blocked] = of(out, "identity.blocked.v1")
    assert blocked.reason == "several_user_ids" and blocked.identifier.kind == "device_id"
    assert SHARED["device_id"] not in blocked.model_dump_json() and "shared by several people" in blocked.detail
    [dead] = of(out, "dlq.v1")
    assert dead.error_type == "shared_identifiers_only" and dead.partition == -1
    assert engine.stats["identifiers_blocked:several_user_ids"] == 1
    [before] = [p for p in of(out, "profiles.v1") if p.customer_id == blocked.detached_customer_id][-1:]
    assert before.identifier_counts == {"user_id": 1}  # the tablet left the first person's profile

    again = make_engine()
    again.restore({k: pickle.loads(pickle.dumps(v)) for k, v in engine.take_changes().items() if v is not None})
    assert again.identity.blocked == engine.identity.blocked
    assert of(run(again, click(3, {"user_id": "c", **tablet}, "login")), "identity.blocked.v1") == []
