"""``rapport bench`` (``make bench``): throughput of the core, as ratios to a baseline measured in the same run.

Baseline: decoding alone (orjson + pydantic validation + hashing), the least any pipeline pays per
event. Figures are for one process on generated traffic; the machine is shared and noisy, so the
ratio is the number to compare across runs.
"""
from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone

from pipeline.core.engine import Engine
from pipeline.core.identity import IdentityGraph
from pipeline.core.ingest import Ingest
from pipeline.core.pii import Hasher
from pipeline.core.records import Identifier, RawRecord
from pipeline.core.rules import IDENTIFIER_KINDS, Rules
from pipeline.drivers.codec import jsonl_line
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records

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


def run(customers: int = 1500, runs: int = 3) -> list[tuple[str, str, str]]:
    rules = Rules()
    hasher = Hasher(b"bench-key")
    records: list[RawRecord] = list(read_records(iter(g.line() for g in generate(seed=3, customers=customers))))
    ingest = Ingest(rules, hasher)

    def decode_only() -> int:
        for r in records:
            ingest.decode(r)
        return len(records)

    def engine_only() -> int:
        engine = Engine(rules, hasher, lambda: FIXED)
        for i in range(0, len(records), 1000):
            engine.process_batch(records[i:i + 1000])
        return len(records)

    def engine_and_encode() -> int:
        engine = Engine(rules, hasher, lambda: FIXED)
        for i in range(0, len(records), 1000):
            for e in engine.process_batch(records[i:i + 1000]):
                jsonl_line(e.topic, e)
        return len(records)

    links = identity_links(200_000)

    def identity_only() -> int:
        graph = IdentityGraph(rules)
        for n, ids in enumerate(links):
            graph.resolve(ids, n, str(n))
        return len(links)

    base, n_records = _best_of(runs, decode_only)
    rows = [("decode only (baseline)", f"{base:,.0f} events/s", "1.00")]
    for name, fn in (("engine (all stages)", engine_only), ("engine + JSON encoding of outputs", engine_and_encode)):
        rate, _ = _best_of(runs, fn)
        rows.append((name, f"{rate:,.0f} events/s", f"{rate / base:.2f}"))
    rate, _ = _best_of(runs, identity_only)
    rows.append(("identity resolve (200k link events)", f"{rate:,.0f} links/s", f"{rate / base:.2f}"))

    tracemalloc.start()
    graph = IdentityGraph(rules)
    for n, ids in enumerate(links):
        graph.resolve(ids, n, str(n))
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append(("identity memory", f"{used / max(1, len(graph.owner)):,.0f} bytes/identifier",
                 f"{len(graph.owner):,} ids"))
    rows.append(("input", f"{n_records:,} generated records", f"{customers:,} customers"))
    return rows


def print_table(rows: list[tuple[str, str, str]], header: tuple[str, str, str]) -> None:
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(3)]
    for name, figure, ratio in [header, *rows]:
        print(f"{name:<{widths[0]}}  {figure:>{widths[1]}}  {ratio:>{widths[2]}}", flush=True)


def main(customers: int, runs: int) -> None:
    print_table(run(customers, runs), ("measure", "figure", "vs baseline"))
