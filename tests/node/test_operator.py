"""A node run as an operator runs it (``python -m session.node`` in a child process, as the
devnet and the systemd unit start it): signals stop it in any state, a second node on one data
directory is refused, a port in use is one sentence, systemd hears READY/STATUS/WATCHDOG/
STOPPING on ``$NOTIFY_SOCKET``, and the logs show the operator's own registry address."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from session.identity import Identity
from session.registry import server as registry_server
from session.registry.messages import build_registration

pytestmark = pytest.mark.integration

CLOSED_REGISTRY = "https://127.0.0.1:9"  # the discard port: nothing listens there


class NotifySocket:
    """A stand-in for systemd's notification socket: a thread collects every datagram a child
    sends (as systemd reads them at once; the node drops what a full queue refuses)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:  # closed
                return
            if not data:
                return
            with self._arrived:
                self.messages.append(data.decode())
                self._arrived.notify_all()

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The first message (already received or arriving within ``timeout``) holding ``text``."""
        with self._arrived:
            found: list[str] = []

            def seen() -> bool:
                found[:] = [m for m in self.messages if text in m][:1]
                return bool(found)

            if not self._arrived.wait_for(seen, timeout):
                raise AssertionError(f"no {text!r} in {self.messages!r}")
            return found[0]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(timeout=5)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def start_node(
    data_dir: Path,
    *,
    registry: str = CLOSED_REGISTRY,
    zmq_port: int = 0,
    https_port: int = 0,
    level: str = "info",
    notify: NotifySocket | None = None,
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_NODE_", "NOTIFY_"))}
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify.path)
        env["WATCHDOG_USEC"] = "200000"  # a ping every 0.1 s
    sets = {
        "data_dir": str(data_dir),
        "network.listen_host": "127.0.0.1",
        "network.https_port": str(https_port),
        "network.zmq_port": str(zmq_port),
        "admin.port": "0",
        "registry.url": registry,
        "logging.level": level,
        "logging.format": "json",
    }
    args = [sys.executable, "-m", "session.node"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_signals_stop_a_registering_node_and_a_second_node_is_refused(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    data = tmp_path / "node"
    first = start_node(data, notify=notify_socket)
    try:
        notify_socket.wait_for("attempt 1 failed")
        notify_socket.wait_for("WATCHDOG=1")
        # the same data directory: refused with one sentence naming the running one
        rc, err = finish(start_node(data, level="warning"))
        assert rc == 1
        assert err.strip() == err.strip().splitlines()[-1], err
        assert "already running on the data directory" in err and f"pid {first.pid}" in err
        first.send_signal(signal.SIGTERM)
        rc, err = finish(first, timeout=15)  # at once, not after the registration retries
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert rc == 0, err
    notify_socket.wait_for("STOPPING=1")
    lines = [json.loads(line) for line in err.splitlines()]
    said = [line["msg"] for line in lines]
    assert any(m.startswith("SIGTERM received") for m in said), said
    # the operator's own registry address is shown, not masked
    assert any("https://127.0.0.1:9" in m for m in said), said
    assert "Traceback" not in err


def test_sigint_while_starting_and_a_zmq_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, err = finish(start_node(tmp_path / "a", zmq_port=port, level="warning"))
    assert rc == 1
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: cannot listen for node links on 127.0.0.1 port")
    assert "network.zmq_port" in err

    node = start_node(tmp_path / "b")
    try:
        assert node.stderr is not None
        for line in node.stderr:  # bounded by the fixture timeout; progress is logged
            if "registering with" in line:
                break
        node.send_signal(signal.SIGINT)
        rc, err = finish(node, timeout=15)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert rc == 0, err


async def test_ready_is_notified_once_registered(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    reg = await registry_server.start("127.0.0.1", 0, tmp_path / "registry", seed="operator")
    node = start_node(tmp_path / "node", registry=reg.url, notify=notify_socket)
    try:
        ready = await _in_thread(notify_socket.wait_for, "READY=1")
        assert "STATUS=serving: https" in ready
        assert len(reg.registry.entries) == 1
        node.send_signal(signal.SIGTERM)
        rc, err = await _in_thread(finish, node)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        await reg.close()
    assert rc == 0, err
    steps = [m for m in notify_socket.messages if m.startswith("STATUS=")]
    assert any("keys loaded" in m for m in steps) and any("registering" in m for m in steps)


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Run a blocking wait off the loop, which serves the registry meanwhile."""
    return await asyncio.to_thread(fn, *args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_permanent_registry_refusal_ends_the_node_at_once(tmp_path: Path) -> None:
    reg = await registry_server.start("127.0.0.1", 0, tmp_path / "registry", seed="operator")
    https, zmq_port = _free_port(), _free_port()
    # another node already holds this address and port: the registry refuses ours (409)
    other = Identity.generate()
    reg.registry.register(
        build_registration(
            other, public_ip="127.0.0.1", storage_port=https, storage_lmq_port=https + 1, stake=1
        )
    )
    node = start_node(
        tmp_path / "node", registry=reg.url, https_port=https, zmq_port=zmq_port, level="error"
    )
    try:
        rc, err = await _in_thread(finish, node)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        await reg.close()
    assert rc == 1
    assert err.startswith("error: registry refused the request (409)") and err.count("\n") == 1
    assert "already registered" in err and "Traceback" not in err
