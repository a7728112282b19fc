"""`make run` as a person uses it: in a terminal, stopped with Ctrl-C typed on the keyboard.

The demo runs in a pseudo-terminal of its own; Ctrl-C is the byte 0x03 written to the terminal, which
the terminal turns into SIGINT for its foreground process group, as a keyboard does. Every process the
demo started (broker, worker, generator) carries a marker in its environment, so none can hide.
"""
import os
import pty
import select
import signal
import time
import uuid
from pathlib import Path

import pytest

from pipeline.ops.broker import free_port

pytestmark = pytest.mark.broker

#: How long the demo runs before Ctrl-C (RAPPORT_TEST_CTRL_C_AFTER_S: minutes, by hand).
RUN_S = float(os.environ.get("RAPPORT_TEST_CTRL_C_AFTER_S", "40"))
STOP_WITHIN_S = 5.0


def marked(marker: str) -> list[int]:
    """Processes whose environment holds the marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def read_available(fd: int, into: bytearray, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            try:
                into += os.read(fd, 65536)
            except OSError:
                return


def test_ctrl_c_in_the_demo_stops_everything_within_seconds(tmp_path):
    marker = f"RAPPORT_TEST_MARK={uuid.uuid4().hex}"
    name, value = marker.split("=")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}  # the demo's own defaults
    env.update({name: value, "RAPPORT_STATE_DIR": str(tmp_path), "RAPPORT_BROKER_PORT": str(free_port()),
                "RAPPORT_METRICS_PORT": str(free_port())})
    pid, fd = pty.fork()
    if pid == 0:  # the child: the demo, as `make run` starts it, in the new terminal
        os.chdir(Path(__file__).parents[2])
        os.execve(os.path.join(".venv", "bin", "rapport"), ["rapport", "dev"], env)
    screen = bytearray()
    try:
        read_available(fd, screen, RUN_S)
        assert b"Ctrl-C stops everything" in screen, screen.decode(errors="replace")[-2000:]
        assert len(marked(marker)) >= 4, "the demo, its broker, worker and generator are running"
        os.write(fd, b"\x03")  # Ctrl-C, typed
        pressed = time.monotonic()
        while marked(marker) and time.monotonic() - pressed < 30:
            read_available(fd, screen, 0.1)
        took = time.monotonic() - pressed
        assert not marked(marker), f"still running 30 s after Ctrl-C: {marked(marker)}"
        assert took <= STOP_WITHIN_S, f"everything stopped {took:.1f} s after Ctrl-C"
        assert b"stopped" in screen
        print(f"stopped {took:.1f} s after Ctrl-C, {RUN_S:.0f} s in")
    finally:
        for p in marked(marker):
            os.kill(p, signal.SIGKILL)
        os.close(fd)
        os.waitpid(pid, 0)
