"""``rapport replay``: the whole processing logic in one process over a JSONL file, no broker.

Input lines are ``{"topic": ..., "key": ..., "value": {...}}``; a ``value`` that is a string is taken
as the raw bytes of the record (how malformed input is written down). Output lines have the same
form, in order. The same input gives the same output (``--fixed-clock`` also pins ``emitted_at``).
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import orjson

from pipeline.core.engine import Engine
from pipeline.core.records import RawRecord
from pipeline.drivers.codec import jsonl_line

INPUT_ERROR_TOPIC = "replay.input"


def read_records(lines: Iterator[bytes]) -> Iterator[RawRecord]:
    """Replay-file lines as raw records; offsets count per topic, all in partition 0."""
    offsets: Counter[str] = Counter()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
            topic, key, value = doc["topic"], doc.get("key"), doc["value"]
            raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
            key_raw = None if key is None else (key if isinstance(key, str) else orjson.dumps(key).decode()).encode()
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            topic, key_raw, raw = INPUT_ERROR_TOPIC, None, line.rstrip(b"\n")  # the engine dead-letters it
        yield RawRecord(topic, 0, offsets[topic], key_raw, raw)
        offsets[topic] += 1


class Progress:
    """A one-line progress report on stderr, at most a few times a second."""

    def __init__(self, total_bytes: int | None, enabled: bool) -> None:
        self.total, self.enabled, self.start, self.last = total_bytes, enabled, time.monotonic(), 0.0

    def update(self, records: int, done_bytes: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.25):
            return
        self.last = now
        rate = records / max(now - self.start, 1e-9)
        pct = f"{100 * done_bytes / self.total:5.1f}% " if self.total else ""
        sys.stderr.write(f"\rreplay {pct}{records:,} records  {rate:,.0f}/s" + ("\n" if final else ""))
        sys.stderr.flush()


def replay(engine: Engine, source: BinaryIO, sink: BinaryIO, batch_size: int = 1000, prefix: str = "",
           progress: Progress | None = None) -> int:
    """Feed every record of ``source`` through ``engine`` in batches; write outputs to ``sink``. Returns records read."""
    batch: list[RawRecord] = []
    n = 0

    def flush() -> None:
        for emit in engine.process_batch(batch):
            sink.write(jsonl_line(prefix + emit.topic, emit))
        batch.clear()
        if progress:
            progress.update(n, source.tell() if source.seekable() else 0)

    for rec in read_records(iter(source)):
        batch.append(rec)
        n += 1
        if len(batch) >= batch_size:
            flush()
    flush()
    if progress:
        progress.update(n, source.tell() if source.seekable() else 0, final=True)
    return n


def replay_file(engine: Engine, input_path: Path, output_path: Path, batch_size: int = 1000, show_progress: bool = True) -> int:
    size = input_path.stat().st_size if input_path.is_file() else None
    with open(input_path, "rb") as src, open(output_path, "wb") as dst:
        return replay(engine, src, dst, batch_size, progress=Progress(size, show_progress))


def fixed_clock(at: datetime):
    return lambda: at
