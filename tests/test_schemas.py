from schemas import export
from schemas.inbound import INBOUND
from schemas.outbound import OUTBOUND


def test_json_schemas_are_up_to_date():
    """Fails when a model changed without `rapport schemas` (make schemas) being run."""
    assert export.stale() == []


def test_every_contract_topic_has_a_model():
    assert set(INBOUND) == {"clickstream.v1", "pos.v1", "reviews.v1", "consent.v1", "privacy.v1"}
    assert set(OUTBOUND) == {
        "triggers.cart_abandoned.v1", "triggers.cart_recovered.v1", "triggers.negative_emotion.v1",
        "triggers.churn_risk.v1", "scores.reviews.v1", "profiles.v1", "identity.merges.v1", "identity.blocked.v1",
        "dlq.v1", "privacy.results.v1"}


def test_every_trigger_carries_the_contract_fields():
    required = {"trigger_id", "type", "customer_id", "occurred_at", "emitted_at", "cause_event_ids", "reason",
                "evidence", "contactable"}
    for topic, model in OUTBOUND.items():
        if topic.startswith("triggers."):
            assert required <= set(model.model_json_schema(mode="serialization")["required"]), topic
