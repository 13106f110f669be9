"""session.service.lifeline: a child ends when the process holding its lifeline's write end
closes it (as the kernel does when that process dies), gracefully first and by SIGKILL if it
hangs. Real processes, no devnet (the devnet's own test is in tests/integration)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from session.service.lifeline import lifeline_command, lifeline_pipe

CHILD = """\
import signal, sys, threading
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("ready", *sys.argv[1:], flush=True)
stop.wait()
print("stopped by SIGTERM", flush=True)
"""


@pytest.fixture
def child_module(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment in which ``lifeline_test_child`` is a module that runs until SIGTERM."""
    (tmp_path / "lifeline_test_child.py").write_text(CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    yield env


def _start(cmd: list[str], env: dict[str, str], fd: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, pass_fds=(fd,)
    )


def test_child_stops_gracefully_when_the_lifeline_closes(child_module: dict[str, str]) -> None:
    r, w = lifeline_pipe()
    proc = _start(lifeline_command(r, "lifeline_test_child", "a", "b"), child_module, r)
    os.close(r)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready a b\n"  # the module ran with its arguments
        assert proc.poll() is None  # alive while the lifeline is open
        os.close(w)  # what the kernel does when the parent dies
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == "stopped by SIGTERM\n"
    assert proc.returncode == 0


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    r, w = lifeline_pipe()
    code = (
        "import signal, sys, threading\n"
        "from session.service.lifeline import watch\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"watch({r}, grace=0.5)\n"
        "print('ready', flush=True)\n"
        "threading.Event().wait()\n"
    )
    proc = _start([sys.executable, "-c", code], dict(os.environ), r)
    os.close(r)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        os.close(w)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -9


def test_a_lifeline_fd_that_is_not_open_is_refused(child_module: dict[str, str]) -> None:
    r, w = lifeline_pipe()
    os.close(r)
    os.close(w)
    out = subprocess.run(
        lifeline_command(r, "lifeline_test_child"),
        env=child_module,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert f"file descriptor {r} is not open" in out.stderr
    assert "ready" not in out.stdout
