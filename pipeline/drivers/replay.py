"""``rapport replay``: the whole processing logic in one process over a JSONL file, no broker.

Input lines are ``{"topic": ..., "key": ..., "value": {...}}``; a ``value`` that is a string is taken
as the raw bytes of the record (how malformed input is written down). Output lines have the same
form, in order. The same input gives the same output (``--fixed-clock`` also pins ``emitted_at``).
"""
from __future__ import annotations

import gc
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import orjson

from pipeline.core.engine import Engine
from pipeline.core.records import Emit, RawRecord
from pipeline.drivers.codec import gc_paused, jsonl_line
from pipeline.drivers.kafka_io import Publisher, read_range, written_ms
from pipeline.ops.settings import Settings
from pipeline.ops.topics import partitions_of
from schemas.inbound import INBOUND

INPUT_ERROR_TOPIC = "replay.input"
_TOPIC = re.compile(rb'"topic"\s*:\s*"([^"]+)"')


def read_records(lines: Iterator[bytes]) -> Iterator[RawRecord]:
    """Replay-file lines as raw records; offsets count per topic, all in partition 0. A line's optional
    ``timestamp`` (ms) is when the record was written, as Kafka's record timestamp is live."""
    offsets: Counter[str] = Counter()
    for line in lines:
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
            topic, key, value, written = doc["topic"], doc.get("key"), doc["value"], doc.get("timestamp")
            raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
            key_raw = None if key is None else (key if isinstance(key, str) else orjson.dumps(key).decode()).encode()
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            topic, key_raw, raw, written = INPUT_ERROR_TOPIC, None, line.rstrip(b"\n"), None  # the engine dead-letters it
        yield RawRecord(topic, 0, offsets[topic], key_raw, raw, written if type(written) is int else None)
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


def run(engine: Engine, records: Iterable[RawRecord], sink: Callable[[list[Emit]], None], batch_size: int = 1000,
        progress: Callable[[int], None] | None = None) -> int:
    """Feed ``records`` through ``engine`` one by one (so that whatever else the iterator tells the engine
    comes between the right records), handing the outputs of every ``batch_size`` records to ``sink``; at
    the end, release everything still held. Returns records read.

    Cyclic garbage collection is paused meanwhile: the engine makes no cyclic garbage (after 100k mixed
    events, a collection finds no unreachable object), so a collection only scans the state it keeps
    (a tenth of a replay's time). A collection every ``COLLECT_EVERY`` records bounds what a rare cycle
    could hold."""
    n = 0
    with gc_paused():
        for rec in records:
            engine.process(rec)
            n += 1
            if n % batch_size == 0:
                sink(engine.end_batch())
                if progress:
                    progress(n)
                if n % COLLECT_EVERY == 0:
                    gc.collect()
        sink(engine.end_batch())
        sink(engine.close_input())
    return n


COLLECT_EVERY = 1_000_000


def file_sink(out: BinaryIO, prefix: str = "") -> Callable[[list[Emit]], None]:
    def write(emits: list[Emit]) -> None:
        for emit in emits:
            out.write(jsonl_line(prefix + emit.topic, emit))
    return write


def inbound_topics_in(path: Path) -> set[str]:
    """The inbound topics a replay file has lines for (one quick pass)."""
    found: set[bytes] = set()
    with open(path, "rb") as f:
        for line in f:
            m = _TOPIC.search(line)
            if m:
                found.add(m.group(1))
    return {t.decode(errors="replace") for t in found} & set(INBOUND)


def replay_file(engine: Engine, input_path: Path, output_path: Path, batch_size: int = 1000, show_progress: bool = True) -> int:
    """A regular file is scanned for its topics first, so that each holds the event-time order back until
    it delivers (as a live worker's assigned partitions do); a pipe is taken topic by topic as it comes."""
    size = input_path.stat().st_size if input_path.is_file() else None
    if size is not None:
        engine.assign((topic, 0) for topic in sorted(inbound_topics_in(input_path)))
    bar = Progress(size, show_progress)
    with open(input_path, "rb") as src, open(output_path, "wb") as dst:
        n = run(engine, read_records(iter(src)), file_sink(dst), batch_size, lambda n: bar.update(n, src.tell()))
        bar.update(n, src.tell(), final=True)
    return n


def kafka_sink(publisher: Publisher) -> Callable[[list[Emit]], None]:
    def send(emits: list[Emit]) -> None:
        publisher.send_emits(emits)
        publisher.flush()
    return send


def replay_kafka(engine: Engine, settings: Settings, sink: Callable[[list[Emit]], None], start_ms: int | None,
                 until_ms: int | None, offsets: dict[tuple[str, int], int] | None, idle_s: float,
                 show_progress: bool = True) -> int:
    """The inbound topics' records in a time or offset range through ``engine``, partition by partition
    as a worker reads them."""
    topics = [settings.topic(t) for t in INBOUND]
    prefix = settings.topic_prefix
    engine.assign(partitions_of(settings, list(INBOUND)))

    def read_to_end(topic: str, partition: int) -> None:  # a range at rest: nothing more will come
        engine.idle([(topic.removeprefix(prefix), partition)])

    bar = Progress(None, show_progress)
    records = (RawRecord(m.topic().removeprefix(prefix), m.partition(), m.offset(), m.key(), m.value(),
                         written_ms(m.timestamp()))
               for m in read_range(settings.kafka_client(), topics, start_ms, until_ms, offsets, idle_s, read_to_end))
    n = run(engine, records, sink, settings.batch_size, lambda n: bar.update(n, 0))
    bar.update(n, 0, final=True)
    return n


def fixed_clock(at: datetime):
    return lambda: at
