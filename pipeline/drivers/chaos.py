"""``rapport chaos`` (``make chaos``): crashes, rebalances and a paused broker while a backfill flows,
checked against replay of the same records.

On an embedded broker of its own, generated traffic from months ago (≥ 100k records, with
malformed, duplicated and hostile ones) goes through the live inbound topics in three parts, with
pauses longer than every idle setting between them, while:
- workers are SIGKILLed at random moments, three times (each restarted at once);
- a third worker joins mid-stream and later leaves;
- the broker is paused (SIGSTOP, then SIGCONT: the embedded broker forgets its data on restart).

Then the outputs are read back and compared with ``rapport replay`` of the same records:
every trigger replay emits is emitted at least once, no ``trigger_id`` carries different content,
no trigger appears that replay does not emit, every inbound record is applied or dead-lettered,
and the final profiles and identity merges equal replay's. Exit code 1 on any difference.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from confluent_kafka import Consumer

from pipeline.core.engine import TRIGGER_TOPICS
from pipeline.drivers.codec import build_engine
from pipeline.drivers.dev import spawn, stop
from pipeline.drivers.generate import generate
from pipeline.drivers.hostile import hostile
from pipeline.drivers.kafka_io import Publisher
from pipeline.core.records import RawRecord
from pipeline.drivers.replay import run
from pipeline.ops.broker import EmbeddedBroker, free_port
from pipeline.ops.settings import Settings
from pipeline.ops.topics import ensure_topics

KST = timezone(timedelta(hours=9))
TRIGGERS = sorted(TRIGGER_TOPICS.values())
WATCHED = [*TRIGGERS, "profiles.v1", "identity.merges.v1", "dlq.v1"]
IDLE_S = 2.0  # the workers' idle settings in this run: every pause is longer
PAUSE_S = 3 * IDLE_S
#: Hostile mutations mixed into the traffic. Left to the fuzz test: records over the size limit, and event
#: times (a valid one from another month, released at a pause, moves event time on for every later record;
#: replay, which does not pause, applies it at the end of its input).
HOSTILE = {"drop_field", "retype_field", "encoding", "random_bytes", "truncated", "not_an_object", "deep_nesting",
           "big_field"}


def _event_time(value: bytes) -> float | None:
    try:
        return datetime.fromisoformat(orjson.loads(value)["occurred_at"]).timestamp()
    except Exception:  # noqa: BLE001 - hostile records: anything can be wrong with them
        return None


def traffic(seed: int, customers: int, days: float, months_ago: int) -> list[tuple[str, bytes | None, bytes]]:
    """Generated journeys from ``months_ago`` months back, with hostile records spread through them, in
    event-time order: a backfill is loaded from stored data, oldest first. (Records later than the slack,
    produced after a pause, would be applied out of order; replay, which does not pause, would not.)"""
    start = (datetime.now(KST) - timedelta(days=30 * months_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
    records: list[tuple[str, bytes | None, bytes]] = [(g.topic, g.key_bytes(), g.value_bytes())
                                                      for g in generate(seed, customers, start=start, days=days)]
    # Another seed: their event ids are not the valid ones' (two contents under one id and one time would be
    # applied in arrival order, which no deployment can agree on).
    records += [(t, k, v) for m, t, k, v in hostile(seed + 1, count=len(records) // 50, start=start) if m in HOSTILE]
    rng = random.Random(seed)
    first, last = start.timestamp(), start.timestamp() + days * 86400
    keyed = [((_event_time(v) or rng.uniform(first, last)), n, (t, k, v)) for n, (t, k, v) in enumerate(records)]
    return [rec for _, _, rec in sorted(keyed)]


def replayed(settings: Settings, records: list[tuple[str, bytes | None, bytes]]) -> list[dict]:
    """What ``rapport replay`` emits for the records (one partition per topic), as dicts with their topic."""
    engine = build_engine(settings)
    engine.assign((topic, 0) for topic in sorted({t for t, _, _ in records}))
    offsets: Counter[str] = Counter()
    raws = []
    for topic, key, value in records:
        raws.append(RawRecord(topic, 0, offsets[topic], key, value))
        offsets[topic] += 1
    out: list = []
    run(engine, raws, out.extend)
    return [{"topic": e.topic, "key": e.key, **({} if e.value is None else orjson.loads(e.value.model_dump_json())),
             "dead": e.value is None} for e in out if e.topic in WATCHED]


class Cluster:
    """The embedded broker and the workers of one chaos run."""

    def __init__(self, root: Path, partitions: int) -> None:
        self.root = root
        self.broker = EmbeddedBroker(free_port(), root / "broker.log").start()
        self.ns = f"chaos{uuid.uuid4().hex[:6]}."
        self.env = {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": self.broker.bootstrap, "RAPPORT_PII_KEY": "chaos",
                    "RAPPORT_TOPIC_PREFIX": self.ns, "RAPPORT_APP_ID": f"rapport-{self.ns}",
                    "RAPPORT_PARTITIONS": str(partitions), "RAPPORT_STATE_DIR": str(root),
                    "RAPPORT_IDLE_ADVANCE_S": str(IDLE_S), "RAPPORT_IDLE_PARTITION_S": str(IDLE_S)}
        self.settings = Settings(kafka_bootstrap=self.broker.bootstrap, pii_key="chaos", topic_prefix=self.ns,
                                 partitions=partitions)
        ensure_topics(self.settings)
        self.workers: dict[str, subprocess.Popen] = {}
        self.faults: list[str] = []

    def start(self, name: str) -> None:
        env = {**self.env, "RAPPORT_METRICS_PORT": str(free_port())}
        self.workers[name] = spawn(["worker", "--loglevel", "warn"], env, self.root / f"{name}.log")

    def kill(self, name: str) -> None:
        self.workers[name].send_signal(signal.SIGKILL)
        self.workers[name].wait()
        self.faults.append(f"SIGKILL {name}")
        self.start(name)

    def leave(self, name: str) -> None:
        stop([self.workers.pop(name)], grace_s=15.0)  # a graceful leave
        self.faults.append(f"{name} left")

    def pause_broker(self, seconds: float) -> None:
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.broker.proc.send_signal(signal.SIGCONT)
        self.faults.append(f"broker paused {seconds:g} s")

    def close(self) -> None:
        stop(list(self.workers.values()))
        self.broker.stop()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.root.glob("w*.log")))


def produce(cluster: Cluster, records: list[tuple[str, bytes | None, bytes]], rng: random.Random,
            with_faults: bool = True) -> None:
    """Three parts with pauses between them; faults at random moments of each part."""
    pub = Publisher(cluster.settings.bootstrap)
    n = len(records)
    parts = [records[: n // 3], records[n // 3: 2 * n // 3], records[2 * n // 3:]]
    faults = [
        [("kill", "w0"), ("join", "w2")],
        [("pause", ""), ("kill", "w1")],
        [("leave", "w2"), ("kill", "w0")],
    ]
    for part, todo in zip(parts, faults if with_faults else [[], [], []], strict=True):
        moments = sorted(rng.randrange(len(part) // 10, 9 * len(part) // 10) for _ in todo)
        at = dict(zip(moments, todo, strict=True))
        for i, (topic, key, value) in enumerate(part):
            if i in at:
                pub.flush(120)
                what, name = at[i]
                {"kill": cluster.kill, "join": cluster.start, "leave": cluster.leave,
                 "pause": lambda _: cluster.pause_broker(4.0)}[what](name)
                print(f"  {cluster.faults[-1] if what != 'join' else name + ' joined'} ({i:,} of {len(part):,})")
                if what == "join":
                    cluster.faults.append(f"{name} joined")
            pub.send(cluster.settings.topic(topic), key, value)
            if i % 2000 == 0:
                pub.flush(120)
                time.sleep(0.05)  # a steady flow, not one burst: the faults land mid-stream
        pub.flush(120)
        print(f"  part of {len(part):,} records produced; pausing {PAUSE_S:g} s")
        time.sleep(PAUSE_S)


def collect(cluster: Cluster, expected_triggers: set[str], quiet_s: float, timeout_s: float) -> list[dict]:
    """Everything on the watched topics, until every expected trigger is there and nothing new came for
    ``quiet_s`` (or the timeout)."""
    consumer = Consumer({"bootstrap.servers": cluster.settings.bootstrap, "group.id": f"chaos-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([cluster.settings.topic(t) for t in WATCHED])
    got: list[dict] = []
    seen: set[str] = set()
    last_new, deadline = time.monotonic(), time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msgs = consumer.consume(2000, 0.5)
            for m in msgs:
                if m.error():
                    continue
                topic = m.topic().removeprefix(cluster.ns)
                rec = {"topic": topic, "key": None if m.key() is None else m.key().decode(), "dead": m.value() is None}
                if m.value() is not None:
                    rec.update(orjson.loads(m.value()))
                got.append(rec)
                if "trigger_id" in rec:
                    seen.add(rec["trigger_id"])
            if msgs:
                last_new = time.monotonic()
            if seen >= expected_triggers and time.monotonic() - last_new > quiet_s:
                break
    finally:
        consumer.close()
    return got


def _content(rec: dict) -> bytes:
    return orjson.dumps({k: v for k, v in rec.items() if k != "emitted_at"}, option=orjson.OPT_SORT_KEYS)


def final_profiles(records: list[dict]) -> dict[str, bytes]:
    latest: dict[str, dict] = {}
    for r in records:
        if r["topic"] == "profiles.v1":
            latest[r["key"]] = r
    return {k: _content(v) for k, v in latest.items() if not v["dead"]}


def compare(expected: list[dict], got: list[dict]) -> list[str]:
    """What differs from replay (empty: nothing)."""
    problems = []
    want = {r["trigger_id"]: _content(r) for r in expected if r["topic"] in TRIGGERS}
    seen: dict[str, set[bytes]] = {}
    for r in got:
        if r["topic"] in TRIGGERS:
            seen.setdefault(r["trigger_id"], set()).add(_content(r))
    lost = set(want) - set(seen)
    extra = set(seen) - set(want)
    conflicts = [t for t, c in seen.items() if len(c) > 1 or (t in want and c != {want[t]})]
    for name, ids in (("lost", lost), ("not in replay", extra), ("with other content", conflicts)):
        if ids:
            problems.append(f"{len(ids)} triggers {name}: {sorted(ids)[:5]}")
    merges = lambda rs: {r["merge_id"]: _content(r) for r in rs if r["topic"] == "identity.merges.v1"}  # noqa: E731
    if merges(expected) != merges(got):
        problems.append(f"merges differ: {len(merges(expected))} in replay, {len(merges(got))} live")
    pe, pg = final_profiles(expected), final_profiles(got)
    if pe != pg:
        differ = [k for k in pe.keys() | pg.keys() if pe.get(k) != pg.get(k)]
        problems.append(f"{len(differ)} of {len(pe)} final profiles differ, e.g. {differ[:3]}")
    dead = lambda rs: Counter(r["error_type"] for r in rs if r["topic"] == "dlq.v1")  # noqa: E731
    once = {(r["source_topic"], r["partition"], r["offset"], r["error_type"], r["raw"] if r["offset"] < 0 else ""): r
            for r in got if r["topic"] == "dlq.v1"}  # a record read again after a crash is dead-lettered again
    live_dead = Counter(r["error_type"] for r in once.values())
    if dead(expected) != live_dead:
        problems.append(f"dead letters differ: replay {dict(dead(expected))}, live {dict(live_dead)}")
    return problems


def run_chaos(seed: int = 3, customers: int = 6000, days: float = 20.0, partitions: int = 4, faults: bool = True) -> int:
    started = time.monotonic()
    records = traffic(seed, customers, days, months_ago=9)
    print(f"chaos: {len(records):,} records from 9 months ago, {partitions} partitions")
    with tempfile.TemporaryDirectory(prefix="rapport-chaos-") as tmp:
        cluster = Cluster(Path(tmp), partitions)
        print(f"  logs in {tmp} (kept when a check fails)")
        try:
            expected = replayed(cluster.settings, records)
            want = {r["trigger_id"] for r in expected if r["topic"] in TRIGGERS}
            print(f"  replay: {len(want):,} triggers, {sum(r['topic'] == 'dlq.v1' for r in expected):,} dead letters")
            cluster.start("w0")
            cluster.start("w1")
            produce(cluster, records, random.Random(seed), faults)
            got = collect(cluster, want, quiet_s=15.0, timeout_s=450.0)  # the backlog drains in ~150 s here
            problems = compare(expected, got)
            dups = sum(1 for r in got if r["topic"] in TRIGGERS) - len({r["trigger_id"] for r in got if r["topic"] in TRIGGERS})
            print(f"  faults: {', '.join(cluster.faults)}")
            print(f"  live: {len({r['trigger_id'] for r in got if r['topic'] in TRIGGERS}):,} distinct triggers "
                  f"({dups:,} re-emitted with the same content), {len(final_profiles(got)):,} final profiles")
            if problems:
                kept = Path(tempfile.mkdtemp(prefix="rapport-chaos-failed-"))
                for log in Path(tmp).glob("*.log"):
                    (kept / log.name).write_bytes(log.read_bytes())
                print("FAILED:\n  " + "\n  ".join(problems) + f"\n  logs: {kept}")
                return 1
        finally:
            cluster.close()
    print(f"chaos: passed in {time.monotonic() - started:.0f} s: every replay trigger emitted, none other, no id with "
          "other content, final profiles, merges and dead letters equal replay's")
    return 0
