"""``rapport dev`` (``make run``): broker, topics, worker and sample traffic on one machine; triggers shown live.

Children run in their own sessions and are stopped on exit (Ctrl-C or SIGTERM), so nothing is left behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.drivers.tail import tail, trigger_topics
from pipeline.ops.broker import EmbeddedBroker, die_with_parent
from pipeline.ops.settings import Settings
from pipeline.ops.topics import ensure_topics

#: Demo-friendly time settings (a real deployment keeps the defaults); an explicit setting wins.
DEMO_ENV = {"RAPPORT_CART_ABANDON_WINDOW_S": "20", "RAPPORT_ALLOWED_LATENESS_S": "5", "RAPPORT_IDLE_ADVANCE_S": "3"}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)


def stop(procs: list[subprocess.Popen], grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL what still runs after ``grace_s`` (Ctrl-C must end everything within 5 s)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run_dev(settings: Settings, rate: float, seed: int) -> None:
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**DEMO_ENV, **os.environ}
    broker: EmbeddedBroker | None = None
    procs: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if settings.embedded:
            broker = EmbeddedBroker(settings.broker_port, logs / "broker.log").start()
            print(f"embedded broker on {broker.bootstrap} (memory only)")
        settings.pii_secret()  # create the development key once, before the children race for it
        created = ensure_topics(settings)
        print(f"topics ready ({len(created)} created)")
        procs.append(spawn(["worker"], env, logs / "worker.log"))
        procs.append(spawn(["generate", "--to-kafka", "--rate", str(rate), "--seed", str(seed)], env,
                            logs / "generate.log"))
        print(f"worker and generator started ({rate:g} events/s); logs in {logs}/")
        print(f"metrics: http://{settings.metrics_host}:{settings.metrics_port}/metrics   "
              f"cart window {env['RAPPORT_CART_ABANDON_WINDOW_S']} s (demo)   Ctrl-C stops everything\n")
        tail(settings.kafka_client(), trigger_topics(settings.topic_prefix))
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...")
        stop(procs)
        if broker:
            broker.stop()
        print("stopped")
