"""``rapport bench`` (``make bench``): throughput of the core, as ratios to a baseline measured in the same run.

Baseline: an orjson parse-and-dump pass over the same generated mixed traffic (at least 200k events),
the least any JSON pipeline pays per event. Then decoding alone (validation and hashing), the whole
engine as ``rapport replay`` runs it on one core (1 and 8 customer partitions in the process), the
identity step's share of the engine's time and the step alone, state bytes per customer, a partition's restore of 100k
customers from their changelog entries, and ``rapport replay`` of a
100k-event file end to end (a process of its own, start-up included), the engine on hostile records
next to valid ones, and a long run's memories against their bounds. The machine is shared and noisy,
so the ratio is the number to compare across runs.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import orjson

from pipeline.core import encoding
from pipeline.core.customers import CustomerStage
from pipeline.core.engine import Engine
from pipeline.core.identity import IdentityGraph
from pipeline.core.ingest import KNOWN_VALUES, Ingest
from pipeline.core.models import morphemes
from pipeline.core.profile import DAY_MS, KEEP_PURCHASES
from pipeline.core.versions import KEEP_EPOCHS, Versions
from pipeline.core.pii import Hasher
from pipeline.core.records import Identifier, RawRecord
from pipeline.core.rules import IDENTIFIER_KINDS, Rules
from pipeline.drivers.codec import gc_paused, tune_gc
from pipeline.drivers.generate import generate
from pipeline.drivers.hostile import hostile
from pipeline.drivers.replay import read_records, run as replay_through
from pipeline.ops.statestore import decode_entries

FIXED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _best_of(runs: int, fn: Callable[[], int]) -> tuple[float, int]:
    """Highest rate of ``runs`` runs of ``fn`` (which returns how many items it handled)."""
    best, n = 0.0, 0
    for _ in range(runs):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best, n


def identity_links(n_events: int, seed: int = 1) -> list[tuple[Identifier, ...]]:
    """Synthetic identifier sets: people with several devices, cookies, emails, linking as they log in."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_events):
        person = rng.randrange(n_events // 4)
        kinds = rng.sample(IDENTIFIER_KINDS, rng.randint(1, 3))
        out.append(tuple(Identifier(k, f"{person}-{rng.randrange(3)}") for k in sorted(kinds, key=IDENTIFIER_KINDS.index)))
    return out


def _engine(rules: Rules, hasher: Hasher, records: list[RawRecord]) -> tuple[Engine, float]:
    """Run the engine over ``records`` as replay does; returns it and the seconds the identity step took."""
    engine = Engine(rules, hasher, lambda: FIXED)
    tune_gc()  # as ``build_engine`` does for replay and the worker
    resolve, spent = engine.identity.resolve, [0.0]

    def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        t = time.perf_counter()
        try:
            return resolve(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t

    engine.identity.resolve = timed  # type: ignore[method-assign]
    replay_through(engine, records, lambda emits: None)
    return engine, spent[0]


def replay_end_to_end(lines: list[bytes]) -> tuple[float, float]:
    """``rapport replay`` of ``lines`` in a process of its own (start-up included), and an orjson
    read-parse-dump-write pass over the same file: events per second of each."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_bytes(b"".join(lines))
        start = time.perf_counter()
        with open(src, "rb") as f, open(out, "wb") as o:
            for line in f:
                o.write(orjson.dumps(orjson.loads(line)) + b"\n")
        base = len(lines) / (time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", str(src), "--out", str(out), "--quiet",
                        "--fixed-clock", "2026-01-01T00:00:00Z"], check=True, capture_output=True,
                       env={**os.environ, "RAPPORT_PII_KEY": "bench"})
        return len(lines) / (time.perf_counter() - start), base


def run(customers: int = 8000, runs: int = 2) -> list[tuple[str, str, str]]:
    rules, hasher = Rules(), Hasher(b"bench-key")
    lines = [r.line() for r in generate(seed=3, customers=customers)]
    records: list[RawRecord] = list(read_records(iter(lines)))
    ingest = Ingest(rules, hasher)

    def parse_and_dump() -> int:
        for line in lines:
            orjson.dumps(orjson.loads(line))
        return len(lines)

    def decode_only() -> int:
        for r in records:
            ingest.decode(r)
        return len(records)

    base, _ = _best_of(runs, parse_and_dump)
    rows = [("orjson parse and dump (baseline)", f"{base:,.0f} events/s", "1.00")]
    rate, _ = _best_of(runs, decode_only)
    rows.append(("decode only (validation, hashing)", f"{rate:,.0f} events/s", f"{rate / base:.3f}"))
    for partitions in (1, 8):
        best, engine, identity_s, seconds = 0.0, None, 0.0, 0.0
        for _ in range(runs):
            start = time.perf_counter()
            engine, identity_s = _engine(rules.model_copy(update={"customer_partitions": partitions}), hasher,
                                         records)
            seconds = time.perf_counter() - start
            best = max(best, len(records) / seconds)
        rows.append((f"engine, replay on one core ({partitions} customer partition{'s' * (partitions > 1)})",
                     f"{best:,.0f} events/s", f"{best / base:.3f}"))
    assert engine is not None
    rows.append(("identity step, share of engine time", f"{identity_s / seconds:.0%}", ""))
    entries = engine.take_changes()
    state = sum(len(encoding.dumps(v)) for k, v in entries.items() if k.startswith(("c/", "i/", "n/", "a/")) and v)
    rows.append(("state per customer (changelog bytes)", f"{state / max(1, len(engine.customers)):,.0f} bytes",
                 f"{len(engine.customers):,} customers"))
    rows.append(restore_row(entries))
    e2e, file_base = replay_end_to_end(lines[:100_000])
    rows.append(("rapport replay, 100k events end to end (start-up included)", f"{e2e:,.0f} events/s",
                 f"{e2e / file_base:.3f} of orjson on the file ({file_base:,.0f}/s)"))

    links = identity_links(200_000)

    def identity_alone() -> int:
        graph = IdentityGraph(rules)
        for n, ids in enumerate(links):
            graph.resolve(ids, n, str(n))
        return len(links)

    rate, _ = _best_of(runs, identity_alone)
    rows.append(("identity step alone (synthetic links: devices, cookies, emails)", f"{rate:,.0f} events/s",
                 f"{rate / base:.3f}"))
    tracemalloc.start()
    graph = IdentityGraph(rules)
    for n, ids in enumerate(links):
        graph.resolve(ids, n, str(n))
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append(("identity memory", f"{used / max(1, len(graph.owner)):,.0f} bytes/identifier",
                 f"{len(graph.owner):,} ids"))
    rows.append(("input", f"{len(records):,} generated records", f"{customers:,} customers"))
    rows += hostile_rows(rules, hasher, base)
    rows += memory_rows(rules, hasher)
    return rows


def restore_row(entries: dict[str, object | None], customers: int = 100_000) -> tuple[str, str, str]:
    """A partition's restore: ``customers`` changelog entries (copies of the engine's customers under new ids,
    encoded as the worker writes them) decoded and rebuilt into a customer stage, broker reads excluded."""
    templates = [(k[2:], encoding.dumps(v)) for k, v in entries.items() if k.startswith("c/") and v]
    raw: dict[str, bytes | None] = {}
    for n in range(customers):
        cid, data = templates[n % len(templates)]
        new = f"{cid}-{n}"
        raw[f"c/{new}"] = data.replace(f'"customer_id":"{cid}"'.encode(), f'"customer_id":"{new}"'.encode(), 1)
    size = sum(len(v) for v in raw.values() if v)
    start = time.perf_counter()
    with gc_paused():  # as the worker restores
        stage = CustomerStage(Rules(), lambda: FIXED, Versions(DAY_MS), 0, 1)
        stage.restore(decode_entries(raw))
    seconds = time.perf_counter() - start
    assert len(stage.customers) == customers
    return (f"restore of {customers:,} customers (decode + rebuild, one core)", f"{seconds:,.1f} s",
            f"{seconds / customers * 1e6:,.0f} µs a customer; {size / 1e6:,.0f} MB of entries")


def hostile_rows(rules: Rules, hasher: Hasher, base: float, count: int = 20_000) -> list[tuple[str, str, str]]:
    """The engine on hostile records (``pipeline.drivers.hostile``) and on valid ones, one after the other."""
    bad = [RawRecord(t, 0, n, k, v) for n, (_, t, k, v) in enumerate(hostile(seed=5, count=count))]
    good = list(read_records(iter(r.line() for r in generate(seed=5, customers=1500))))[:count]
    out = []
    for name, records in (("valid", good), ("hostile", bad)):
        engine = Engine(rules, hasher, lambda: FIXED)
        engine.sentiment.score("준비")  # the analyser's one-time load is not the traffic's cost
        start = time.perf_counter()
        for i in range(0, len(records), 1000):
            engine.process_batch(records[i:i + 1000])
        engine.close_input()
        rate = len(records) / (time.perf_counter() - start)
        out.append((f"engine on {len(records):,} {name} records", f"{rate:,.0f} records/s", f"{rate / base:.3f}"))
    return out


def memory_rows(rules: Rules, hasher: Hasher, customers: int = 1500, days: float = 240.0) -> list[tuple[str, str, str]]:
    """A long run (the same customers for ``days``): every memory that grows with traffic rather than with
    customers stays at its bound, and state per customer stops growing once its bounded logs are full."""
    records = list(read_records(iter(r.line() for r in generate(seed=9, customers=customers, days=days))))
    engine = Engine(rules, hasher, lambda: FIXED)
    rows = []
    for quarter in range(1, 5):
        for i in range((quarter - 1) * len(records) // 4, quarter * len(records) // 4, 1000):
            engine.process_batch(records[i:min(i + 1000, quarter * len(records) // 4)])
        if quarter in (1, 4):
            sample = list(engine.customers.items())[:500]
            per = sum(len(encoding.dumps(st)) for _, st in sample) / max(1, len(sample))
            rows.append((f"long run, after {quarter}/4 of {days:.0f} days: state per customer",
                         f"{per:,.0f} bytes", f"{sum(len(st.purchase_log) for _, st in sample) / max(1, len(sample)):.1f} "
                         f"purchases kept (at most {KEEP_PURCHASES})"))
    rows.append(("long run: event ids remembered (dedup)", f"{len(engine.seen):,}", f"at most {rules.dedup_capacity:,}"))
    rows.append(("long run: identifier values remembered (ingest, as digests)", f"{len(engine.ingest._known):,}",
                 f"at most {KNOWN_VALUES:,}"))
    rows.append(("long run: words analysed by Kiwi and cached", f"{len(morphemes._cache) - len(morphemes._table):,}",
                 f"at most {morphemes.CACHE_LIMIT:,}"))
    rows.append(("long run: churn model versions kept", f"{len(engine.versions.by_epoch):,}", f"at most {KEEP_EPOCHS}"))
    rows.append(("long run: events held by the sequencer", f"{engine.sequencer.held:,}", "bounded by the slack"))
    rows.append(("long run: input", f"{len(records):,} records", f"{customers:,} customers"))
    return rows


def print_table(rows: list[tuple[str, str, str]], header: tuple[str, str, str]) -> None:
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(3)]
    for name, figure, ratio in [header, *rows]:
        print(f"{name:<{widths[0]}}  {figure:>{widths[1]}}  {ratio:>{widths[2]}}", flush=True)


def main(customers: int, runs: int) -> None:
    print_table(run(customers, runs), ("measure", "figure", "vs baseline"))
