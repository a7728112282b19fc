"""State and checkpoints as an explicit, versioned encoding: what survives an upgrade.

An encoded value is ``rapport-state:<format>\\n`` followed by JSON. Every class that state holds is
registered here under a stable name (not its module path), with its fields by name (a field at its
default is left out, and decoding fills it in, so a released field's default never changes): renaming or
moving a class, adding a field with a default, or dropping one does not break a changelog. Fields
a newer release wrote and this one does not know are ignored; fields this one has and the value
lacks take their defaults. A change that needs more bumps ``FORMAT`` and adds a migration.

Learned models (river's and ours) stay pickled, inside a node that records the library versions
that wrote them (``LIBRARIES``), as river's own checkpoints are.

Values written before this encoding (pickled entries, format 0) still load. A value of an unknown or
newer format is refused with ``StateFormatError``, which names the versions.

>>> from pipeline.core.profile import CustomerState
>>> st = CustomerState("c-1", 10, 20, channels={"web"})
>>> data = dumps(st)
>>> data.split(b"\\n")[0]
b'rapport-state:1'
>>> loads(data) == st
True
>>> loads(b"rapport-state:9\\n{}")
Traceback (most recent call last):
...
pipeline.core.encoding.StateFormatError: state written in format 9; this release reads formats 0-1 (upgrade rapport, or rebuild the state from the inbound topics)
"""
from __future__ import annotations

import base64
import dataclasses
import pickle
import sys
from collections import deque
from collections.abc import Callable
from importlib import metadata
from math import isfinite
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel

from pipeline.core.cart import Cart, CartLine, Carts
from pipeline.core.clock import Watermark
from pipeline.core.identity import Merge
from pipeline.core.messages import Expect, HandedOver, Handover, Publish, Recount, Release, Routed, Tick
from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import Scored, SentimentModel
from pipeline.core.privacy import Resolved
from pipeline.core.profile import CustomerState, Purchase
from pipeline.core.records import Event, Identifier
from pipeline.core.sequencer import Sequencer
from pipeline.core.triggers import cart_recovered, churn_risk, negative_emotion
from pipeline.core.versions import ChurnLearner, Label, Versions
from schemas.inbound import INBOUND
from schemas.outbound import ConsentChange

FORMAT = 1
MAGIC = b"rapport-state:"
TAG = "$"


class StateFormatError(ValueError):
    """A state value this release cannot read."""


#: Stable name -> dataclass (fields by name; defaults fill what a value lacks).
DATACLASSES: dict[str, type] = {
    "customer": CustomerState, "purchase": Purchase, "carts": Carts, "cart": Cart, "cart_line": CartLine,
    "identifier": Identifier, "merge": Merge, "label": Label, "scored": Scored, "handover": Handover,
    "handed_over": HandedOver, "routed": Routed, "tick": Tick, "expect": Expect, "release": Release,
    "recount": Recount, "publish": Publish, "privacy.resolved": Resolved,
    "trigger.cart_recovered": cart_recovered.State, "trigger.cart_recovered.abandoned": cart_recovered.Abandoned,
    "trigger.churn_risk": churn_risk.State, "trigger.negative_emotion": negative_emotion.State,
}
#: Stable name -> plain class, encoded by its attributes (``__getstate__``/``__setstate__`` when it has them).
OBJECTS: dict[str, type] = {"watermark": Watermark, "sequencer": Sequencer, "versions": Versions,
                            "churn_learner": ChurnLearner}
#: Stable name -> pydantic model (its JSON form).
MODELS: dict[str, type[BaseModel]] = {"consent_change": ConsentChange}
#: Learned models: pickled, with the versions of the libraries that wrote them.
PICKLED: tuple[type, ...] = (SentimentModel, ChurnModel)
LIBRARIES = ("river", "kiwipiepy", "numpy")

_NAME = {cls: name for table in (DATACLASSES, OBJECTS, MODELS) for name, cls in table.items()}


class _Spec(NamedTuple):
    """A registered dataclass: its name and class, and its encoder and decoder (``_compile``)."""

    name: str
    cls: type
    encode: Callable[[Callable[[Any], Any], object], dict]
    decode: Callable[[Callable[[Any], Any], dict], object]


def _spec(name: str, cls: type) -> _Spec:
    encode, decode = _compile(name, cls)
    return _Spec(name, cls, encode, decode)


def _compile(name: str, cls: type) -> tuple[Callable, Callable]:
    """The dataclass's encoder and decoder, as straight-line code over its fields (as ``dataclasses`` writes
    ``__init__``): a state entry holds a customer and a dozen dataclasses more, so a loop over fields that
    asks each its default costs more than the rest of the encoding.

    The encoder writes the fields that ``__init__`` takes by name, leaving out a value at its field's default
    (the same type and equal; an empty deque of the same length bound). The decoder fills in what a value
    lacks from the defaults, decodes nested values with ``dec``, and ignores fields it does not know.
    """
    env: dict[str, Any] = {"cls": cls, "PLAIN": _PLAIN, "NESTED": _NESTED, "isfinite": isfinite, "deque": deque,
                           "ABSENT": _NO_DEFAULT, "setattr_": object.__setattr__, "post_init": getattr(cls, "__post_init__", None),
                           "StateFormatError": StateFormatError}
    frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    enc = ["def encode(enc, v):", f"    out = {{{TAG!r}: {name!r}}}"]
    dec = ["def decode(dec, d):", "    obj = cls.__new__(cls)"]
    for i, f in enumerate(field for field in dataclasses.fields(cls) if field.init):
        at_default = None
        if f.default is not dataclasses.MISSING:
            env[f"D{i}"] = f.default
            fill = f"D{i}"
        elif f.default_factory is not dataclasses.MISSING:
            env[f"F{i}"] = f.default_factory
            env[f"D{i}"] = f.default_factory()
            fill = f"F{i}()"
        else:
            fill = None
        if fill is not None:
            default = env[f"D{i}"]
            env[f"T{i}"] = type(default)
            at_default = (f"tx is deque and not x and x.maxlen == {default.maxlen!r}" if type(default) is deque
                          else f"tx is T{i} and x == D{i}")
        write = f"out[{f.name!r}] = x if tx in PLAIN or tx is float and isfinite(x) else enc(x)"
        enc += [f"    x = v.{f.name}", "    tx = type(x)"]
        enc += [f"    if not ({at_default}):", f"        {write}"] if at_default else [f"    {write}"]
        dec += [f"    x = d.get({f.name!r}, ABSENT)", "    if x is ABSENT:"]
        dec += [f"        x = {fill}" if fill else
                f"        raise StateFormatError({f'a {name} value lacks its field {f.name!r}, which has no default'!r})"]
        dec += ["    elif type(x) in NESTED:", "        x = dec(x)",
                f"    setattr_(obj, {f.name!r}, x)" if frozen else f"    obj.{f.name} = x"]
    enc.append("    return out")
    dec += ["    post_init(obj)" if env["post_init"] else "", "    return obj"]
    exec("\n".join(enc + dec), env)  # noqa: S102 - code built from our own registered dataclasses' fields
    return env["encode"], env["decode"]


_NO_DEFAULT = object()
_NESTED = (dict, list)  # JSON values that may need decoding (scalars are themselves)
_PLAIN = frozenset((str, int, bool, type(None)))  # values that encode as themselves (floats: if finite)
_SPECS = [_spec(name, cls) for name, cls in DATACLASSES.items()]
_BY_CLASS = {spec.cls: spec for spec in _SPECS}  # what the encoder looks up
_BY_NAME = {spec.name: spec for spec in _SPECS}  # what the decoder looks up


def libraries() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


_LIBS = libraries()


def dumps(value: object) -> bytes:
    """The encoded value (see the module docstring)."""
    return MAGIC + b"%d\n" % FORMAT + orjson.dumps(_Encoder().enc(value))


def loads(data: bytes) -> object:
    """A value ``dumps`` wrote, in this format or an older one."""
    if not data.startswith(MAGIC):
        try:
            return pickle.loads(data)  # format 0: pickled entries, written before this encoding
        except Exception as e:  # noqa: BLE001 - any failure means the same thing here
            raise StateFormatError(f"a state value that is neither this encoding nor a format-0 pickle "
                                   f"({type(e).__name__}: {e})") from e
    header, _, body = data.partition(b"\n")
    try:
        version = int(header[len(MAGIC):])
    except ValueError:
        raise StateFormatError(f"a state value with a malformed header {header[:40]!r}") from None
    if version > FORMAT or version < 1:
        raise StateFormatError(f"state written in format {version}; this release reads formats 0-{FORMAT} "
                               "(upgrade rapport, or rebuild the state from the inbound topics)")
    return _Decoder().dec(orjson.loads(body))


class _Encoder:
    def __init__(self) -> None:
        self.pickled: dict[int, int] = {}  # id of a pickled object -> its index (shared versions are kept once)

    def enc(self, v: Any) -> Any:
        t = type(v)
        if v is None or t is str or t is bool or t is int:
            return v
        spec = _BY_CLASS.get(t)
        if spec is not None:
            return spec.encode(self.enc, v)
        if t is float:
            return v if isfinite(v) else {TAG: "float", "v": repr(v)}
        if t is list:
            return [x if type(x) in _PLAIN else self.enc(x) for x in v]
        if t is dict:
            if all(type(k) is str for k in v) and TAG not in v:
                return {k: self.enc(x) for k, x in v.items()}
            return {TAG: "map", "i": [[self.enc(k), self.enc(x)] for k, x in v.items()]}
        if t is tuple:
            return {TAG: "tuple", "i": [self.enc(x) for x in v]}
        if t is set or t is frozenset:
            return {TAG: "set", "i": [self.enc(x) for x in sorted(v, key=repr)]}
        if t is deque:
            return {TAG: "deque", "i": [x if type(x) in _PLAIN else self.enc(x) for x in v], "max": v.maxlen}
        if t is bytes:
            return {TAG: "bytes", "b": base64.b64encode(v).decode()}
        if t is Event:
            return {TAG: "event", "topic": v.topic, "ts": v.ts, "ids": [[i.kind, i.hash] for i in v.identifiers],
                    "body": v.body.model_dump(mode="json")}
        if isinstance(v, PICKLED):
            if id(v) in self.pickled:
                return {TAG: "ref", "n": self.pickled[id(v)]}
            self.pickled[id(v)] = len(self.pickled)
            return {TAG: "pickle", "libs": _LIBS, "b": base64.b64encode(pickle.dumps(v, pickle.HIGHEST_PROTOCOL)).decode()}
        name = _NAME.get(t)
        if name is None:
            raise TypeError(f"{t.__module__}.{t.__qualname__} is not registered in pipeline.core.encoding")
        if isinstance(v, BaseModel):
            return {TAG: name, "m": v.model_dump(mode="json")}
        state = v.__getstate__() if hasattr(t, "__getstate__") and t.__getstate__ is not object.__getstate__ else vars(v)
        return {TAG: name, **{k: self.enc(x) for k, x in state.items()}}


class _Decoder:
    def __init__(self) -> None:
        self.pickled: list[object] = []

    def dec(self, v: Any) -> Any:
        t = type(v)
        if t is list:
            return [self.dec(x) if type(x) in _NESTED else x for x in v]
        if t is not dict:
            return v
        tag = v.get(TAG)
        dec = self.dec
        if tag is None:
            return {k: dec(x) if type(x) in _NESTED else x for k, x in v.items()}
        spec = _BY_NAME.get(tag)
        if spec is not None:
            return spec.decode(dec, v)
        if tag == "tuple":
            return tuple([dec(x) if type(x) in _NESTED else x for x in v["i"]])
        if tag == "deque":
            return deque([dec(x) if type(x) in _NESTED else x for x in v["i"]], maxlen=v["max"])
        if tag == "set":
            return {self._key(dec(x)) if type(x) in _NESTED else x for x in v["i"]}
        if tag == "map":
            return {self._key(dec(k)) if type(k) in _NESTED else k: dec(x) if type(x) in _NESTED else x for k, x in v["i"]}
        if tag == "bytes":
            return base64.b64decode(v["b"])
        if tag == "float":
            return float(v["v"])
        if tag == "event":
            body = INBOUND[v["topic"]].model_validate(v["body"])
            return Event(v["topic"], v["ts"], tuple(Identifier(k, h) for k, h in v["ids"]), body)
        if tag == "pickle":
            self.pickled.append(pickle.loads(base64.b64decode(v["b"])))
            return self.pickled[-1]
        if tag == "ref":
            return self.pickled[v["n"]]
        if tag in MODELS:
            return MODELS[tag].model_validate(v["m"])
        if tag in OBJECTS:
            cls = OBJECTS[tag]
            obj = cls.__new__(cls)
            state = {k: self.dec(x) for k, x in v.items() if k != TAG}
            if hasattr(cls, "__setstate__") and cls.__setstate__ is not getattr(object, "__setstate__", None):
                obj.__setstate__(state)
            else:
                obj.__dict__.update(state)
            return obj
        raise StateFormatError(f"a state value holds an unknown type {tag!r} (written by a newer release?)")

    @staticmethod
    def _key(k: Any) -> Any:
        return tuple(k) if type(k) is list else k  # keys are hashable: tuples written as lists stay tuples
