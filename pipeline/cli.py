"""The ``rapport`` command line."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from pipeline.ops import logs
from pipeline.ops.settings import Settings


def _worker(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers.worker import run_worker
    from pipeline.ops.topics import ensure_topics

    ensure_topics(s)
    run_worker(s, args.loglevel)


def _broker(args: argparse.Namespace, s: Settings) -> None:
    import signal
    import subprocess

    from pipeline.ops.broker import command, die_with_parent

    port = args.port or s.broker_port
    print(f"embedded broker (Tansu, memory only) on 127.0.0.1:{port}; Ctrl-C or SIGTERM stops it", file=sys.stderr)
    proc = subprocess.Popen(command(port), preexec_fn=die_with_parent)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # a SIGTERM to us must not leave Tansu running
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()


def _topics(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.ops.topics import ALL_TOPICS, align_configs, check_topics, ensure_topics, expected_config

    if args.check:
        report = check_topics(s)
        for name, problems in report.items():
            print(f"{name:<32} {'ok' if not problems else 'MISMATCH: ' + '; '.join(problems)}")
        bad = sum(1 for p in report.values() if p)
        if bad:
            sys.exit(f"rapport topics --check: {bad} of {len(report)} topics differ from what Rapport expects")
        return
    created = ensure_topics(s)
    updated = align_configs(s)
    for spec in ALL_TOPICS:
        name = s.topic(spec.name)
        mark = "created" if name in created else "updated" if name in updated else "exists"
        print(f"{name:<32} {mark:<8} {expected_config(s, spec)}")


def _replay(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers.codec import build_engine, wall_clock
    from pipeline.drivers.replay import fixed_clock, replay_file

    now = fixed_clock(datetime.fromisoformat(args.fixed_clock)) if args.fixed_clock else wall_clock
    engine = build_engine(s, now)
    if args.from_kafka:
        n, where = _replay_kafka(args, s, engine)
    else:
        if args.input is None or args.out is None:
            sys.exit("rapport replay: give INPUT.jsonl --out OUTPUT.jsonl, or --from-kafka (see --help)")
        if not args.input.exists():
            sys.exit(f"rapport replay: no such input file: {args.input}")
        n, where = replay_file(engine, args.input, args.out, s.batch_size, show_progress=not args.quiet), args.out
    stats = engine.stats
    triggers = sum(v for k, v in stats.items() if k.startswith("triggers:"))
    dlq = sum(v for k, v in stats.items() if k.startswith("dlq:"))
    print(f"{n} records -> {where}: {triggers} triggers, {stats['merges']} merges, {dlq} dead letters, "
          f"{stats['duplicates']} duplicates", file=sys.stderr)


def _replay_kafka(args: argparse.Namespace, s: Settings, engine) -> tuple[int, str]:  # noqa: ANN001
    from pipeline.drivers.kafka_io import Publisher
    from pipeline.drivers.replay import file_sink, kafka_sink, replay_kafka
    from pipeline.ops.topics import OUTBOUND_TOPICS, ensure_topics

    if (args.out is None) == (args.namespace is None):
        sys.exit("rapport replay --from-kafka: give exactly one of --out FILE or --namespace NAME")
    start = int(datetime.fromisoformat(args.since).timestamp() * 1000) if args.since else None
    until = int(datetime.fromisoformat(args.until).timestamp() * 1000) if args.until else None
    offsets = {}
    for spec in filter(None, (args.offsets or "").split(",")):
        topic, partition, offset = spec.rsplit(":", 2)
        offsets[(s.topic(topic), int(partition))] = int(offset)
    run = lambda sink: replay_kafka(engine, s, sink, start, until, offsets, args.idle_s, not args.quiet)  # noqa: E731
    if args.out is not None:
        with open(args.out, "wb") as f:
            return run(file_sink(f)), str(args.out)
    prefix = f"{s.topic_prefix}replay.{args.namespace}."
    target = s.model_copy(update={"topic_prefix": prefix})
    ensure_topics(target, OUTBOUND_TOPICS)  # never the live trigger topics: always under replay.<name>.
    return run(kafka_sink(Publisher(s.kafka_client(), prefix))), f"topics {prefix}*"


def _generate(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers import generate as g

    if args.to_kafka:
        from pipeline.drivers.kafka_io import Publisher

        pub = Publisher(s.kafka_client(), s.topic_prefix)
        sent = 0
        try:
            for rec in g.pace(g.live_stream(args.seed), args.rate, args.count):
                pub.send(s.topic(rec.topic), rec.key_bytes(), rec.value_bytes())
                sent += 1
                if sent % max(1, int(args.rate)) == 0:
                    pub.flush()
        except KeyboardInterrupt:
            pass
        pub.flush()
        print(f"sent {sent} records to {s.bootstrap}", file=sys.stderr)
        return
    records = g.generate(args.seed, args.customers, days=args.days, malformed=args.malformed,
                         duplicates=args.duplicates)
    with open(args.out, "wb") as f:
        for rec in records:
            f.write(rec.line())
    print(f"wrote {len(records)} records for {args.customers} customers to {args.out}", file=sys.stderr)


def _tail(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers.tail import tail, trigger_topics

    tail(s.kafka_client(), args.topics or trigger_topics(s.topic_prefix))


def _dev(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers.dev import run_dev

    run_dev(s, args.rate, args.seed)


def _schemas(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.ops import asyncapi
    from schemas import export

    if args.check:
        stale = export.stale() + asyncapi.stale()
        if stale:
            sys.exit(f"stale schemas (run `rapport schemas`): {', '.join(stale)}")
        print("JSON Schemas and asyncapi.yaml are up to date")
        return
    for path in [*export.write(), asyncapi.write()]:
        print(path)


def _dlq(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers import dlq

    if args.action == "export":
        n = dlq.export(s, args.file, args.error_type, args.idle_s)
        print(f"exported {n} dead letters to {args.file}; repair them, then: rapport dlq redrive {args.file}",
              file=sys.stderr)
        return
    if not args.file.exists():
        sys.exit(f"rapport dlq redrive: no such file: {args.file}")
    sent, problems = dlq.redrive(s, args.file)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"re-sent {sent} records to their inbound topics; {len(problems)} lines not sent", file=sys.stderr)
    if problems:
        sys.exit(1)


def _bench(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers import bench

    if args.live:
        from pipeline.drivers import bench_live

        bench_live.main(args.rate, args.seconds)
    else:
        bench.main(args.customers, args.runs)


def _chaos(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers.chaos import run_chaos

    sys.exit(run_chaos(args.seed, args.customers, args.days, args.partitions, not args.no_faults))


def _eval(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers import evaluate

    evaluate.main()


def _build_prior(args: argparse.Namespace, s: Settings) -> None:
    from pipeline.drivers import build_prior

    build_prior.main(args.data)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rapport", description="Streaming customer signals: stitching, models, triggers.")
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run one processing worker against the configured cluster")
    w.add_argument("--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    w.set_defaults(func=_worker)

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker in the foreground")
    b.add_argument("--port", type=int, help="default: RAPPORT_BROKER_PORT (19092)")
    b.set_defaults(func=_broker)

    tp = sub.add_parser("topics", help="create every topic that does not exist yet, set the configs Rapport expects "
                        "on those that do, and list them")
    tp.add_argument("--check", action="store_true", help="create nothing: compare the cluster's topics (partitions, "
                    "replication, configs) with what Rapport expects; exit 1 on any difference")
    tp.set_defaults(func=_topics)

    r = sub.add_parser("replay", help="run the whole processing logic over a JSONL file or a range of the inbound topics")
    r.add_argument("input", type=Path, nargs="?", help="JSONL of {topic, key, value}")
    r.add_argument("--out", type=Path, help="JSONL of every outbound record, in order")
    r.add_argument("--from-kafka", action="store_true", help="read the inbound topics of the configured cluster")
    r.add_argument("--since", metavar="ISO", help="with --from-kafka: records from this time (record timestamp)")
    r.add_argument("--until", metavar="ISO", help="with --from-kafka: records up to this time")
    r.add_argument("--offsets", metavar="TOPIC:PARTITION:OFFSET,...", help="with --from-kafka: start offsets")
    r.add_argument("--namespace", metavar="NAME", help="with --from-kafka: write to topics replay.NAME.<topic>")
    r.add_argument("--idle-s", type=float, default=5.0, help="with --from-kafka: the range ends after this much silence")
    r.add_argument("--fixed-clock", metavar="ISO", help="stamp emitted_at with this time (byte-identical output)")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.set_defaults(func=_replay)

    g = sub.add_parser("generate", help="seeded multi-channel sample traffic, to a file or to Kafka")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--customers", type=int, default=500)
    g.add_argument("--days", type=float, default=30.0)
    g.add_argument("--malformed", type=float, default=0.01, help="share of events also sent malformed")
    g.add_argument("--duplicates", type=float, default=0.01, help="share of events sent twice")
    g.add_argument("--out", type=Path, default=Path("sample.jsonl"))
    g.add_argument("--to-kafka", action="store_true", help="send endless live traffic (event time = now) instead")
    g.add_argument("--rate", type=float, default=50.0, help="events per second with --to-kafka")
    g.add_argument("--count", type=int, help="stop after this many records with --to-kafka")
    g.set_defaults(func=_generate)

    t = sub.add_parser("tail", help="show triggers as they are emitted")
    t.add_argument("topics", nargs="*", help="default: the four trigger topics")
    t.set_defaults(func=_tail)

    d = sub.add_parser("dev", help="broker + topics + worker + sample traffic, triggers live (make run)")
    d.add_argument("--rate", type=float, default=40.0)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=_dev)

    sc = sub.add_parser("schemas", help="write schemas/json and schemas/asyncapi.yaml from the pydantic models")
    sc.add_argument("--check", action="store_true", help="fail when the files are stale")
    sc.set_defaults(func=_schemas)
    q = sub.add_parser("dlq", help="export dead letters for repair, or re-drive repaired ones")
    q.add_argument("action", choices=["export", "redrive"])
    q.add_argument("file", type=Path, help="export: where to write; redrive: the repaired file")
    q.add_argument("--error-type", help="export: only this error type (e.g. validation)")
    q.add_argument("--idle-s", type=float, default=5.0, help="export: the DLQ is read until this much silence")
    q.set_defaults(func=_dlq)

    be = sub.add_parser("bench", help="throughput of the core against a baseline measured in the same run")
    be.add_argument("--customers", type=int, default=8000, help="generated customers (8000: about 200k events)")
    be.add_argument("--runs", type=int, default=2, help="best of this many runs")
    be.add_argument("--live", action="store_true", help="latency of merges and triggers through a live worker instead")
    be.add_argument("--rate", type=float, default=300.0, help="--live: events/s offered")
    be.add_argument("--seconds", type=float, default=30.0, help="--live: how long traffic is measured")
    be.set_defaults(func=_bench)

    ch = sub.add_parser("chaos", help="kill workers, rebalance and pause the broker during a backfill; compare with replay")
    ch.add_argument("--seed", type=int, default=3)
    ch.add_argument("--customers", type=int, default=6000, help="generated people (6000: about 100k records)")
    ch.add_argument("--days", type=float, default=20.0)
    ch.add_argument("--partitions", type=int, default=4)
    ch.add_argument("--no-faults", action="store_true", help="the backfill in parts alone (a baseline)")
    ch.set_defaults(func=_chaos)
    sub.add_parser("eval", help="model figures on real data next to their baselines").set_defaults(func=_eval)

    bp = sub.add_parser("build-prior", help="rebuild the shipped Korean sentiment prior from the rated Korean dev reviews")
    bp.add_argument("--data", metavar="PATH", help="korean_reviews_dev.jsonl (default: RAPPORT_KO_REVIEWS, else ../shared/data/ next to the checkout)")
    bp.set_defaults(func=_build_prior)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = Settings()
    logs.setup(settings.log_format)
    args.func(args, settings)


if __name__ == "__main__":
    main()
