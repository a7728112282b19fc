"""schemas/asyncapi.yaml: up to date with the models, valid for the AsyncAPI parser, and every contract topic in it."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.ops import asyncapi
from pipeline.ops.topics import ALL_TOPICS, expected_config
from schemas.inbound import INBOUND
from schemas.outbound import OUTBOUND

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "deploy" / "asyncapi"


def test_asyncapi_yaml_is_up_to_date():
    assert asyncapi.PATH.exists(), "schemas/asyncapi.yaml is missing: run `make schemas` (rapport schemas)"
    assert asyncapi.PATH.read_text(encoding="utf-8") == asyncapi.render(), (
        "schemas/asyncapi.yaml is stale (the models or topic specs changed): run `make schemas` (rapport schemas)")


def test_the_yaml_reads_back_as_the_document():
    """The small emitter against a real YAML parser (PyYAML, here through kubernetes-validate)."""
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(asyncapi.render()) == asyncapi.document()
    odd = {"s": ["yes", "No", "null", "~", "1.5", "0x1f", "a: b", "#x", "- x", "", " pad", "ü", "{x}", "\t"],
           "k": {"on": 1, "3": [], "e": {}, "f": [1.0, 1e-07, -2.5e300], "t": "two\nlines", "u": "end\n"}}
    assert yaml.safe_load(asyncapi.render(odd)) == odd


@pytest.fixture(scope="module")
def validator() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the AsyncAPI parser")
    if not (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run([npm, "ci", "--prefix", str(VALIDATOR), "--no-audit", "--no-fund", "--ignore-scripts"],
                       check=True, capture_output=True, timeout=600)
    return [node, str(VALIDATOR / "validate.mjs")]


def test_the_asyncapi_parser_finds_no_error(validator):
    run = subprocess.run([*validator, str(asyncapi.PATH)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid AsyncAPI 3.0.0 (0 error" in run.stdout, run.stdout


def test_the_validator_rejects_a_broken_document(validator, tmp_path):
    doc = asyncapi.document()
    doc["channels"]["profilesV1"]["bindings"]["kafka"]["replicas"] = 0
    doc["channels"]["posV1"]["messages"]["PosEvent"]["payload"] = {"$ref": "#/components/schemas/Nope"}
    broken = tmp_path / "broken.yaml"
    broken.write_text(asyncapi.render(doc), encoding="utf-8")
    run = subprocess.run([*validator, str(broken)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "/channels/profilesV1/bindings/kafka/replicas" in run.stdout and "Nope" in run.stdout, run.stdout


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_contract_topic_is_a_channel_with_its_model_key_and_bindings():
    doc = asyncapi.document()
    for ref in _refs(doc):
        _resolve(doc, ref)
    by_address = {c["address"]: (cid, c) for cid, c in doc["channels"].items()}
    assert set(by_address) == set(INBOUND) | set(OUTBOUND), "channels are the inbound and outbound topics, no others"
    specs = {s.name: s for s in ALL_TOPICS}
    for topic, model in {**INBOUND, **OUTBOUND}.items():
        cid, channel = by_address[topic]
        mode = "validation" if topic in INBOUND else "serialization"
        message = channel["messages"][model.__name__]
        payload = _resolve(doc, message["payload"]["$ref"])
        expected = model.model_json_schema(mode=mode, ref_template="#/components/schemas/{model}")
        expected.pop("$defs", None)
        assert payload == expected, topic
        for m in channel["messages"].values():
            key = m["bindings"]["kafka"]["key"]
            assert key["type"] in ("string", ["string", "null"]) and key["description"], topic
        spec = specs[topic]
        kafka = channel["bindings"]["kafka"]
        assert kafka["partitions"] == (spec.partitions or asyncapi.DEFAULT_PARTITIONS), topic
        assert kafka["replicas"] == asyncapi.DEFAULT_REPLICAS >= 1, topic
        config = kafka["topicConfiguration"]
        expected = expected_config(asyncapi.DEFAULTS, spec)
        assert config["cleanup.policy"] == expected.get("cleanup.policy", "delete").split(","), topic
        assert config.get("retention.ms") == (int(expected["retention.ms"]) if "retention.ms" in expected
                                              else None), topic
        action = "receive" if topic in INBOUND else "send"
        [op] = [o for o in doc["operations"].values() if o["channel"]["$ref"] == f"#/channels/{cid}"]
        assert op["action"] == action, topic
        assert [_resolve(doc, m["$ref"]) for m in op["messages"]] == list(channel["messages"].values()), topic


def test_keys_follow_the_contract():
    channels = {c["address"]: c for c in asyncapi.document()["channels"].values()}

    def key(topic: str) -> dict[str, Any]:
        [message, *_] = channels[topic]["messages"].values()
        return message["bindings"]["kafka"]["key"]

    for topic in INBOUND:
        assert key(topic)["type"] == ["string", "null"], topic  # any identifier; may be null
    for topic in OUTBOUND:
        if topic.startswith(("triggers.", "scores.", "profiles.")):
            assert key(topic)["type"] == "string" and "customer_id" in key(topic)["description"], topic
    assert "surviving_customer_id" in key("identity.merges.v1")["description"]
    assert key("dlq.v1")["type"] == "string" and "digest" in key("dlq.v1")["description"]  # compacted: always keyed
    assert channels["dlq.v1"]["messages"]["DeadLetterTombstone"]["payload"] == {"type": "null"}
    tombstone = channels["profiles.v1"]["messages"]["ProfileTombstone"]
    assert tombstone["payload"] == {"type": "null"}
