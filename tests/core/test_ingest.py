import orjson
import pytest

from pipeline.core.ingest import Ingest
from pipeline.core.pii import Hasher, normalise_phone
from pipeline.core.records import Event
from pipeline.core.rules import Rules
from schemas.outbound import DeadLetter
from tests.helpers import event, raw

ingest = Ingest(Rules(), Hasher(b"test-key"))


def decode(topic, value, key=None):
    return ingest.decode(raw(topic, value, key))


def test_valid_click_is_decoded_with_hashed_identifiers():
    ev = decode("clickstream.v1", event(0, {"email": "Kim@Example.com", "anonymous_id": "a1"}, type="page_view"))
    assert isinstance(ev, Event)
    assert [i.kind for i in ev.identifiers] == ["email", "anonymous_id"]  # priority order
    assert all(len(i.hash) == 32 and "@" not in i.hash for i in ev.identifiers)


def test_the_memory_of_hashed_values_holds_no_raw_value():
    mine = Ingest(Rules(), Hasher(b"test-key"))
    first = mine.decode(raw("clickstream.v1", event(0, {"email": "memo@example.kr"}, type="page_view")))
    again = mine.decode(raw("clickstream.v1", event(1, {"email": "memo@example.kr"}, type="page_view")))
    assert len(mine._known) == 1 and first.identifiers == again.identifiers  # remembered, and the same
    assert "memo" not in repr(mine.__dict__)


@pytest.mark.parametrize("value, error_type, mentions", [
    (b"{not json", "invalid_json", ""),
    (b"[1, 2]", "not_an_object", "list"),
    ({"occurred_at": "2026-11-22T10:00:00+09:00", "identifiers": {"user_id": "u"}, "type": "login"},
     "validation", "event_id: Field required"),
    ({"event_id": "e", "occurred_at": "2026-11-22T10:00:00", "identifiers": {"user_id": "u"}, "type": "login"},
     "validation", "occurred_at: must carry a UTC offset"),
    ({"event_id": "e", "occurred_at": 1790000000, "identifiers": {"user_id": "u"}, "type": "login"},
     "validation", "occurred_at: must be an RFC 3339 string"),
    ({"event_id": "e", "occurred_at": "2026-11-22T10:00:00Z", "identifiers": {"user_id": "u"}, "type": "teleport"},
     "validation", "type: Input should be"),
    ({"event_id": "e", "occurred_at": "2026-11-22T10:00:00Z", "identifiers": {"email": "  "}, "type": "login"},
     "validation", "identifiers: needs at least one non-blank identifier"),
    ({"event_id": "e", "occurred_at": "2026-11-22T10:00:00Z", "identifiers": {"anonymous_id": "undefined"},
      "type": "login"}, "no_usable_identifier", "blocked"),
    ({"event_id": "e", "occurred_at": "2026-11-22T10:00:00Z", "identifiers": {"user_id": "u"}, "type": "add_to_cart"},
     "validation", "product: required"),
])
def test_bad_input_becomes_a_dead_letter_naming_field_and_reason(value, error_type, mentions):
    dl = decode("clickstream.v1", value, key="k1")
    assert isinstance(dl, DeadLetter)
    assert (dl.error_type, dl.source_topic, dl.key) == (error_type, "clickstream.v1", "k1")
    assert mentions in dl.error_detail


def test_wrong_types_are_not_coerced():
    bad = event(0, {"user_id": "u"}, review_id="r", channel="web", text="ok", rating="5")
    dl = decode("reviews.v1", bad)
    assert isinstance(dl, DeadLetter) and dl.error_detail.startswith("rating:")


def test_dead_letter_keeps_input_but_never_raw_email_or_phone():
    value = event(0, {"email": "kim.minjun@example.com", "phone": "010-1234-5678"}, type="teleport")
    dl = decode("clickstream.v1", value, key="kim.minjun@example.com")
    text = dl.model_dump_json()
    assert "kim.minjun" not in text and "1234-5678" not in text and "01012345678" not in text
    assert orjson.loads(dl.raw)["type"] == "teleport"  # the rest is intact for repair


def test_redacted_dead_letter_can_be_redriven_to_the_same_identity():
    good = event(0, {"email": "kim@example.com"}, type="page_view")
    broken = dict(good, type="teleport")
    repaired = orjson.loads(decode("clickstream.v1", broken).raw) | {"type": "page_view"}
    assert decode("clickstream.v1", repaired).identifiers == decode("clickstream.v1", good).identifiers


@pytest.mark.parametrize("variant", ["010-1234-5678", "+82 10-1234-5678", "01012345678", "+821012345678", "82 10 1234 5678"])
def test_korean_phone_variants_normalise_to_one_number(variant):
    assert normalise_phone(variant, "82") == "821012345678"


def test_email_written_differently_is_one_identifier():
    a = ingest.identifiers({"email": " Kim.MinJun@Example.COM "})
    b = ingest.identifiers({"email": "kim.minjun@example.com"})
    assert a == b


@pytest.mark.parametrize("placeholder", ["", "null", "undefined", "anonymous", "0", "-1", "0000", "NULL", " none ",
                                         "00000000-0000-0000-0000-000000000000", "ffff-FFFF", "xxxxxx", "123456789"])
def test_placeholder_identifier_values_link_nothing(placeholder):
    assert ingest.identifiers({"loyalty_id": placeholder}) == ()


def test_unknown_topic_is_dead_lettered():
    assert decode("elsewhere.v1", {"a": 1}).error_type == "unknown_topic"


def test_emails_and_phones_written_into_free_text_are_hashed_at_the_door():
    ev = decode("reviews.v1", event(0, {"user_id": "u-1"}, review_id="r", channel="call_center",
                                    text="고객 kim.minji@naver.com 연락처 010-2784-1093 배송 지연으로 불만"))
    click = decode("clickstream.v1", event(0, {"user_id": "u-1"}, type="search", query="lee@daum.net order",
                                           url="https://shop.kr/find?email=lee@daum.net"))
    for text in (ev.body.text, click.body.query, click.body.url):
        assert "naver" not in text and "2784" not in text and "daum" not in text and "hmac:" in text
    assert ev.body.text.endswith("배송 지연으로 불만")
