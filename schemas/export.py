"""Write the JSON Schema of every contract record to ``schemas/json/`` (``rapport schemas``)."""
from __future__ import annotations

from pathlib import Path

import orjson

from schemas.inbound import INBOUND
from schemas.outbound import OUTBOUND

JSON_DIR = Path(__file__).parent / "json"


def rendered() -> dict[str, bytes]:
    """File name -> JSON Schema bytes, for every inbound and outbound topic."""
    out: dict[str, bytes] = {}
    for topic, model in {**INBOUND, **OUTBOUND}.items():
        schema = model.model_json_schema(mode="serialization" if topic in OUTBOUND else "validation")
        schema["$id"] = f"rapport/{topic}.schema.json"
        out[f"{topic}.schema.json"] = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    return out


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in rendered().items():
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names whose file is missing or differs from the models."""
    return [n for n, d in rendered().items() if not (directory / n).exists() or (directory / n).read_bytes() != d]
