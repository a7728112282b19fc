"""Identity rules, and a property test against a reference union-find that applies the same rules."""
from collections import Counter

import orjson
from hypothesis import given, settings, strategies as st

from pipeline.core.identity import IdentityGraph
from pipeline.core.records import Identifier as I
from pipeline.core.rules import IDENTIFIER_KINDS, Rules


def test_earliest_customer_survives_regardless_of_arrival_order():
    g = IdentityGraph(Rules())
    late = g.resolve((I("email", "m"),), ts=200, event_id="a").customer_id
    early = g.resolve((I("loyalty_id", "l"),), ts=100, event_id="b").customer_id
    [m] = g.resolve((I("email", "m"), I("loyalty_id", "l")), ts=300, event_id="c").merges
    assert (m.survivor, m.absorbed) == (early, late)


def test_limits_drop_the_lowest_priority_identifier():
    g = IdentityGraph(Rules(identifier_limits={"user_id": 1, "email": 1}))
    a = g.resolve((I("user_id", "a"), I("email", "x")), 1, "e1").customer_id
    r = g.resolve((I("user_id", "a"), I("email", "y")), 2, "e2")
    assert r.customer_id == a and r.dropped == [I("email", "y")] and "email:y" not in g.owner


class Reference:
    """Naive partition of identifier keys applying the same rules event by event: identifiers in priority
    order join while the groups they bring fit the limits; one that ties the event to a group that does not
    fit is shared (unless it is a user_id): it leaves its group and links nothing from then on."""

    def __init__(self, limits):
        self.parts, self.blocked, self.limits = [], set(), limits

    def part(self, key):
        return next((p for p in self.parts if key in p), None)

    def fits(self, keys):
        return all(n <= self.limits.get(kind, n) for kind, n in Counter(k.split(":")[0] for k in keys).items())

    def groups(self):
        return [p for p in self.parts if p]

    def apply(self, idents):
        taken, joined = set(), []
        for i in idents:
            if i.key in self.blocked or i.key in taken:
                continue
            p = self.part(i.key)
            trial = taken | (p if p is not None else {i.key})
            if self.fits(trial):
                taken = trial
                joined += [p] if p is not None else []
            elif p is not None and i.kind != "user_id":
                self.blocked.add(i.key)
                p.discard(i.key)
        if taken:
            self.parts = [p for p in self.parts if not any(p is j for j in joined)] + [taken]


idents = st.lists(
    st.tuples(st.sampled_from(IDENTIFIER_KINDS), st.integers(0, 4)), min_size=1, max_size=4, unique=True,
).map(lambda xs: tuple(sorted((I(k, str(v)) for k, v in xs), key=lambda i: IDENTIFIER_KINDS.index(i.kind))))


@settings(max_examples=300, deadline=None)
@given(st.lists(idents, min_size=1, max_size=30))
def test_grouping_matches_a_reference_union_find(events):
    limits = {"user_id": 1, "email": 2, "phone": 2, "loyalty_id": 2, "device_id": 3, "anonymous_id": 4}
    g, ref = IdentityGraph(Rules(identifier_limits=limits)), Reference(limits)
    for n, ev in enumerate(events):
        g.resolve(ev, ts=n, event_id=str(n))
        ref.apply(ev)
    ours = {frozenset(i.key for i in members) for members in g.members.values() if members}
    assert ours == {frozenset(p) for p in ref.groups()}
    assert set(g.blocked) == ref.blocked
    for members in g.members.values():  # the rules hold for every customer
        counts = Counter(i.kind for i in members)
        assert all(n <= limits[k] for k, n in counts.items())


def test_canonical_follows_chains_of_merges_and_compresses_them():
    g = IdentityGraph(Rules())
    ids = [g.resolve((I("anonymous_id", str(n)),), ts=n, event_id=str(n)).customer_id for n in range(4)]
    for n in (3, 2, 1):  # each merge absorbs the later customer into the earlier one
        g.resolve((I("anonymous_id", str(n - 1)), I("anonymous_id", str(n))), ts=10 + n, event_id=f"m{n}")
    assert [g.canonical(c) for c in ids] == [ids[0]] * 4
    assert [g.canonical(c) for c in ids] == [ids[0]] * 4  # idempotent after compression
    assert all(g.alias[c] == ids[0] for c in ids[1:])


# ---- the engine: merges do not depend on how links are partitioned, interleaved or batched -------

VALUES = {"user_id": "u{}", "email": "p{}@mail.kr", "phone": "010-1234-000{}", "loyalty_id": "L{}",
          "device_id": "d{}", "anonymous_id": "c{}"}
id_dicts = st.dictionaries(st.sampled_from(IDENTIFIER_KINDS), st.integers(1, 4), min_size=1, max_size=3).map(
    lambda d: {k: VALUES[k].format(v) for k, v in d.items()})


def _merges(out):
    return [(e.value.merge_id, e.value.surviving_customer_id, e.value.absorbed_customer_id, e.value.occurred_at)
            for e in out if e.topic == "identity.merges.v1"]


@settings(max_examples=80, deadline=None)
@given(links=st.lists(st.tuples(id_dicts, st.integers(0, 15), st.integers(0, 3)), min_size=1, max_size=25),
       data=st.data())
def test_merges_and_customer_ids_are_the_same_however_links_are_partitioned(links, data):
    from pipeline.core.records import RawRecord
    from tests.helpers import event, make_engine

    def record(n, ids, minute, partition, offset):
        value = event(minute, ids, event_id=f"e{n:03d}", type="page_view")
        return RawRecord("clickstream.v1", partition, offset, None, orjson.dumps(value))

    in_time = sorted(range(len(links)), key=lambda n: links[n][1])
    reference = make_engine()
    expected = reference.process_batch([record(n, links[n][0], links[n][1], 0, i) for i, n in enumerate(in_time)])
    expected += reference.close_input()

    parts: dict[int, list] = {}
    for n in in_time:  # each partition in event-time order, as producers write it
        ids, minute, p = links[n]
        parts.setdefault(p, []).append(record(n, ids, minute, p, len(parts.get(p, []))))
    engine = make_engine()
    engine.assign(("clickstream.v1", p) for p in parts)
    out = []
    while any(parts.values()):
        p = data.draw(st.sampled_from(sorted(k for k, v in parts.items() if v)))
        take = data.draw(st.integers(1, 4))
        for rec in parts[p][:take]:
            engine.process(rec)
        parts[p] = parts[p][take:]
        if data.draw(st.booleans()):
            out += engine.end_batch()
    out += engine.close_input()
    assert _merges(out) == _merges(expected)
    assert engine.identity.owner == reference.identity.owner
