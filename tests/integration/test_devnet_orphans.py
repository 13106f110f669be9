"""A devnet's processes end when the process that runs the devnet dies, however it dies: a
``session-node devnet`` killed with SIGKILL leaves no registry, server or node running (each
watches a lifeline pipe; session/service/lifeline.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[tuple[int, str]]:
    """The live child processes of ``pid`` as (pid, start time) pairs, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) and st[1] == pid:
            out.append((int(entry.name), st[2]))
    return out


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a process, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), fields[19]


def _alive(proc: tuple[int, str]) -> bool:
    """The process still runs: it exists, is not a zombie and is the same one (start time)."""
    st = _stat(proc[0])
    return st is not None and st[0] not in ("Z", "X") and st[2] == proc[1]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_sigkilled_devnet_leaves_no_process_running(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-m", "session.cli.node", "devnet", "--nodes", "2",
         "--data-dir", str(tmp_path / "net")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    children: list[tuple[int, str]] = []
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the ready line, or EOF if it failed
        children = _children(parent.pid)
        assert line and json.loads(line)["ready"] is True, (
            parent.stderr.read() if parent.stderr else ""
        )
        # the registry, the file and community servers and the two nodes
        assert len(children) == 5, children
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 60
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for c in children:  # only on failure: never leave the processes this test started
            if _alive(c):
                os.kill(c[0], signal.SIGKILL)
