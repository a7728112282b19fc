"""The contract as an AsyncAPI 3.0 document, ``schemas/asyncapi.yaml``, built from the pydantic models and topic specs.

``document()`` builds it as a dict: a channel per inbound and outbound topic (internal ``rapport.*`` topics are not
part of the contract and are left out) with its messages (payload: the model's JSON Schema, shared definitions under
``components/schemas``), the record key (Kafka message binding) and partitions, replicas and topic configuration
(Kafka channel binding, as ``rapport topics`` creates them); operations are Rapport's own: it receives the inbound
topics and sends the outbound ones. ``render()`` writes it as YAML with a small emitter (no YAML library needed):
same models, same bytes. ``rapport schemas`` writes the file; ``rapport schemas --check`` and tests/test_asyncapi.py
fail when it is stale; deploy/asyncapi/validate.mjs checks it with the AsyncAPI parser.
"""
from __future__ import annotations

import json
import math
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

import schemas
from pipeline.ops.settings import Settings
from pipeline.ops.topics import ALL_TOPICS, TopicSpec, expected_config
from schemas.inbound import INBOUND
from schemas.outbound import OUTBOUND

PATH = Path(schemas.__file__).parent / "asyncapi.yaml"
KAFKA_BINDING = "0.5.0"
#: What ``rapport topics`` creates when neither the spec nor the environment says otherwise.
DEFAULT_PARTITIONS: int = Settings.model_fields["partitions"].default
DEFAULT_REPLICAS: int = Settings.model_fields["replication_factor"].default
DEFAULTS = Settings.model_construct()  # the documented defaults, whatever the environment says

DESCRIPTION = f"""\
Rapport's Kafka contract (CONTRACT.md): every inbound and outbound topic, its record key, its value schema and \
its topic settings. Generated from the pydantic models in schemas/ and the topic specs in pipeline/ops/topics.py \
by `rapport schemas` (make schemas); do not edit by hand.

Point of view: Rapport's. It receives the inbound topics (their producers send) and sends the outbound ones \
(their consumers receive). Values are UTF-8 JSON (times RFC 3339); keys are UTF-8 strings. Inbound payload schemas \
are what Rapport accepts (extra fields are ignored; an invalid event goes to dlq.v1); outbound ones are what it \
writes (every field present, no others).

Bindings give topics as `rapport topics` creates them: partitions are RAPPORT_PARTITIONS (default \
{DEFAULT_PARTITIONS}) and replicas RAPPORT_REPLICATION_FACTOR (default {DEFAULT_REPLICAS}); cleanup.policy is \
delete (Kafka's default) unless the topic is compacted, and a retention.ms not given is the cluster's. \
RAPPORT_TOPIC_PREFIX, when set, prefixes every address. Internal topics (rapport.*) are not part of the contract \
and are not listed."""

_INBOUND_KEY = {
    "type": ["string", "null"],
    "description": "Any identifier of the customer, or null (the producer's choice): Rapport reads identity from "
                   "the value's identifiers, never from the key.",
}
_CUSTOMER_KEY = {"type": "string", "description": "customer_id of the record (pseudonymous, opaque)."}
#: Topic -> (what one record is, the key schema). A new contract topic must say both here.
TOPICS: dict[str, tuple[str, dict[str, Any]]] = {
    "clickstream.v1": ("Web and app behaviour.", _INBOUND_KEY),
    "pos.v1": ("Point-of-sale (in-store) transactions.", _INBOUND_KEY),
    "reviews.v1": ("Free text from customers: reviews, social posts, call-center notes, chat, surveys.", _INBOUND_KEY),
    "consent.v1": ("A customer granting or withdrawing consent to be contacted.", _INBOUND_KEY),
    "privacy.v1": ("A privacy request about one person: erase, suppress, unsuppress or export.", _INBOUND_KEY),
    "triggers.cart_abandoned.v1": ("A cart left without purchase on any channel for the abandonment window.",
                                   _CUSTOMER_KEY),
    "triggers.cart_recovered.v1": ("A purchase that follows a cart_abandoned trigger.", _CUSTOMER_KEY),
    "triggers.negative_emotion.v1": ("A negative-emotion alert.", _CUSTOMER_KEY),
    "triggers.churn_risk.v1": ("A churn probability crossing the alert threshold upward.", _CUSTOMER_KEY),
    "scores.reviews.v1": ("The sentiment of every reviews.v1 event, scored before the model learns from it.",
                          _CUSTOMER_KEY),
    "profiles.v1": ("The latest profile of a customer (compacted), on a meaningful change, coalesced per "
                    "customer over RAPPORT_PROFILE_COALESCE_S of event time (5 minutes).", _CUSTOMER_KEY),
    "identity.merges.v1": ("Two customer profiles merged into one.", {
        "type": "string", "description": "surviving_customer_id: the customer that absorbed the other."}),
    "identity.blocked.v1": ("An identifier found shared by several people: from then on it links nothing.", {
        "type": "string", "description": "The identifier: its kind and keyed hash, `<kind>:<hash>` (no raw value)."}),
    "dlq.v1": ("Every rejected input, with its source, raw bytes (redacted), error type and detail (compacted).", {
        "type": "string",
        "description": "The dead letter's id: a digest of what it holds, the same when a record read again is "
                       "rejected again (the rejected record's own key is the value's `key`)."}),
    "privacy.results.v1": ("The outcome of a privacy.v1 request, one record per customer it reached (no raw "
                           "personal data).", {"type": "string", "description": "The request_id."}),
}
#: Extra messages of a channel besides the model's: tombstones of compacted topics.
TOMBSTONES = {
    "profiles.v1": "A tombstone (no value): the customer was merged into another (identity.merges.v1) or erased "
                   "(privacy.v1); compaction then forgets the key.",
    "dlq.v1": "A tombstone (no value): an erase (privacy.v1) deleted a dead letter that carried the person's "
              "identifiers; compaction then forgets the key.",
}


def _ident(topic: str) -> str:
    """``triggers.cart_abandoned.v1`` -> ``triggersCartAbandonedV1`` (channel and operation ids)."""
    head, *rest = re.split(r"[._-]", topic)
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _topic_config(spec: TopicSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"cleanup.policy": ["delete"]}
    for name, value in sorted(expected_config(DEFAULTS, spec).items()):
        if name == "cleanup.policy":
            out[name] = value.split(",")
        else:
            out[name] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return out


def _message(name: str, title: str, summary: str, payload: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "title": title, "summary": summary, "contentType": "application/json", "payload": payload,
            "bindings": {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}}}


def document() -> dict[str, Any]:
    """The AsyncAPI document as a dict (deterministic: the same models and specs give the same dict)."""
    models = [(m, "validation") for m in INBOUND.values()] + [(m, "serialization") for m in OUTBOUND.values()]
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    specs = {s.name: s for s in ALL_TOPICS}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for direction, topics in (("inbound", INBOUND), ("outbound", OUTBOUND)):
        for topic, model in topics.items():
            if topic not in TOPICS:
                raise KeyError(f"{topic}: say what a record is and what its key is in pipeline/ops/asyncapi.py TOPICS")
            summary, key = TOPICS[topic]
            cid, name = _ident(topic), model.__name__
            messages = {name: _message(name, name, summary, refs[(model, "validation" if direction == "inbound"
                                                                   else "serialization")], key)}
            if topic in TOMBSTONES:
                messages[f"{name}Tombstone"] = _message(f"{name}Tombstone", f"{name} tombstone", TOMBSTONES[topic],
                                                        {"type": "null"}, key)
            spec = specs[topic]
            channels[cid] = {
                "address": topic,
                "title": topic,
                "description": f"{direction.capitalize()}. {summary}",
                "messages": messages,
                "bindings": {"kafka": {
                    "partitions": spec.partitions or DEFAULT_PARTITIONS,
                    "replicas": DEFAULT_REPLICAS,
                    "topicConfiguration": _topic_config(spec),
                    "bindingVersion": KAFKA_BINDING,
                }},
            }
            action = "receive" if direction == "inbound" else "send"
            operations[f"{action}{cid[:1].upper()}{cid[1:]}"] = {
                "action": action,
                "title": f"{action.capitalize()} {topic}",
                "summary": f"Rapport {'consumes' if action == 'receive' else 'produces'} {topic}.",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in messages],
                "tags": [{"name": direction}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Rapport",
            "version": version("rapport"),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0"},
            "tags": [{"name": "inbound", "description": "Raw events Rapport reads."},
                     {"name": "outbound", "description": "Records Rapport writes: triggers, scores, profiles, "
                                                         "identity changes, dead letters."}],
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {
            "host": "{bootstrap}",
            "protocol": "kafka",
            "description": "The Kafka cluster (RAPPORT_KAFKA_BOOTSTRAP).",
            "variables": {"bootstrap": {
                "default": f"127.0.0.1:{Settings.model_fields['broker_port'].default}",
                "description": "host:port of a broker; the default is the embedded development broker "
                               "(rapport broker)."}},
        }},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(defs["$defs"].items()))},
    }


# ---- a small YAML emitter: block style, scalars quoted unless plainly safe --------------------------------------

_PLAIN = re.compile(r"[A-Za-z_$][A-Za-z0-9_.$/-]*")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not representable: {value}")
        text = repr(value)
        return text if "." in text else text.replace("e", ".0e", 1)
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) and value.lower() not in _RESERVED
        return value if plain else json.dumps(value)
    raise TypeError(f"not a YAML scalar: {type(value).__name__}")


def _inline(value: Any) -> str | None:
    """One-line form of a scalar, an empty container or a list of scalars; None when it needs a block."""
    if isinstance(value, dict):
        return "{}" if not value else None
    if isinstance(value, list):
        if any(isinstance(v, (dict, list)) for v in value):
            return None
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return _scalar(value)


def _literal(value: Any) -> bool:
    """A multi-line string that reads back the same as a ``|-`` block."""
    return (isinstance(value, str) and "\n" in value and value.strip("\n") == value
            and all(line == line.strip() and line.isprintable() for line in value.split("\n")))


def _block(value: dict | list, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            line = _inline(item)
            if _literal(item):
                out.append(f"{pad}{_scalar(str(key))}: |-")
                out.extend(f"{pad}  {text}" if text else "" for text in item.split("\n"))
            elif line is not None:
                out.append(f"{pad}{_scalar(str(key))}: {line}")
            else:
                out.append(f"{pad}{_scalar(str(key))}:")
                _block(item, indent + 2, out)
        return
    for item in value:
        line = _inline(item)
        if line is not None:
            out.append(f"{pad}- {line}")
        else:
            start = len(out)
            _block(item, indent + 2, out)
            out[start] = f"{pad}- {out[start][indent + 2:]}"


def render(doc: dict[str, Any] | None = None) -> str:
    """The document as YAML text."""
    out = ["# Generated by `rapport schemas` (make schemas) from schemas/ and pipeline/ops/topics.py: do not edit."]
    _block(document() if doc is None else doc, 0, out)
    return "\n".join(out) + "\n"


def write(path: Path = PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path


def stale(path: Path = PATH) -> list[str]:
    """``[path.name]`` when the file is missing or differs from the models, else ``[]``."""
    return [] if path.exists() and path.read_text(encoding="utf-8") == render() else [path.name]
