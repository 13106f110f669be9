"""Running under systemd and as an operator: the printed unit, sd_notify and the watchdog,
journald's native protocol, the data-directory lock, the operator's own addresses in logs,
and which registry refusals are permanent."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from session.cli.node import main as node_main
from session.community.cli import main as community_main
from session.errors import ConfigError, RegistryError
from session.fileserver.cli import main as fs_main
from session.node.daemon import permanent_refusal
from session.service import systemd
from session.service.datadir import DataDirLock
from session.service.logs import IP_MASK, own_addresses, setup_logging


@pytest.fixture
def dgram(tmp_path: Path) -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "sock"))
    s.settimeout(5)
    yield s
    s.close()


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for h in list(root.handlers):
        if getattr(h, "_session_handler", False):
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


# ---------------------------------------------------------------------------- the unit


@pytest.mark.parametrize(
    ("cli", "program"),
    [
        (node_main, "session-node"),
        (fs_main, "session-fileserver"),
        (community_main, "session-community"),
    ],
)
def test_printed_unit_runs_this_install(cli: object, program: str, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["systemd-unit"])  # type: ignore[arg-type]
    assert r.exit_code == 0, r.output
    exec_line = next(line for line in r.output.splitlines() if line.startswith("ExecStart="))
    command = exec_line.removeprefix("ExecStart=").split()[0]
    # this interpreter's environment's console script, by its absolute path (no /usr/bin/env)
    assert command == str(Path(sys.executable).parent / program)
    assert os.access(command, os.X_OK)
    assert "{" not in r.output  # every placeholder filled
    if program == "session-node":
        assert "Type=notify" in r.output and "WatchdogSec=" in r.output
    verify = shutil.which("systemd-analyze")
    if verify is None:
        return
    unit = tmp_path / f"{program}.service"
    unit.write_text(r.output)
    done = subprocess.run(
        [verify, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "not executable" not in done.stderr, done.stderr


def test_unit_for_an_install_under_home() -> None:
    template = "ExecStart={exec} run\nProtectHome={protect_home}\n"
    home = systemd.unit_text(
        template, "session-node", "session.cli.node", command="/home/pi/.venv/bin/session-node"
    )
    assert "ExecStart=/home/pi/.venv/bin/session-node run" in home
    assert "ProtectHome=read-only" in home and "ProtectHome=yes" not in home
    system = systemd.unit_text(
        template, "session-node", "session.cli.node", command="/opt/session/bin/session-node"
    )
    package_under_home = systemd._under_home(str(Path(systemd.__file__).resolve()))
    assert ("ProtectHome=yes" in system) is not package_under_home


def test_program_command_falls_back_to_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/nowhere/else"])
    command = systemd.program_command("no-such-program", "session.cli.node")
    assert command == f"{Path(sys.executable).absolute()} -P -m session.cli.node"
    out = subprocess.run(
        [*command.split(), "version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("session-node ")


# ---------------------------------------------------------------------------- sd_notify


def test_notify_path_and_abstract_sockets(dgram: socket.socket, tmp_path: Path) -> None:
    path = str(tmp_path / "sock")
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": path})
    assert dgram.recv(100) == b"READY=1"
    assert not systemd.notify("READY=1", {})
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "absent")})
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"session-test-{os.getpid()}"
    abstract.bind(b"\0" + name.encode())
    try:
        abstract.settimeout(5)
        assert systemd.notify("STATUS=x", {"NOTIFY_SOCKET": "@" + name})
        assert abstract.recv(100) == b"STATUS=x"
    finally:
        abstract.close()


def test_watchdog_interval() -> None:
    pid = str(os.getpid())
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert systemd.watchdog_interval({}) is None


async def test_notifier_pings_until_closed(dgram: socket.socket, tmp_path: Path) -> None:
    n = systemd.Notifier({"NOTIFY_SOCKET": str(tmp_path / "sock"), "WATCHDOG_USEC": "20000"})
    n.start_watchdog()
    loop = asyncio.get_running_loop()
    dgram.setblocking(False)
    got = [await loop.sock_recv(dgram, 100) for _ in range(3)]
    assert got == [b"WATCHDOG=1"] * 3
    n.ready("serving")
    while (msg := await loop.sock_recv(dgram, 100)) == b"WATCHDOG=1":
        pass
    assert msg == b"READY=1\nSTATUS=serving"
    await n.close()
    off = systemd.Notifier({})
    off.start_watchdog()
    off.ready()
    assert off._watchdog is None


# ---------------------------------------------------------------------------- journald


def parse_journal(data: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            data = rest
        else:  # KEY\n<u64 le length><value>\n
            (n,) = struct.unpack("<Q", rest[:8])
            fields[line.decode()] = rest[8 : 8 + n].decode()
            data = rest[8 + n + 1 :]
    return fields


def test_logs_go_to_journald_as_fields(
    dgram: socket.socket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_root: None,
) -> None:
    stream = (tmp_path / "stderr").open("w")
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    monkeypatch.setattr(systemd, "JOURNAL_SOCKET", str(tmp_path / "sock"))
    assert systemd.under_journal(stream)
    setup_logging("info", "auto", stream=stream, keep=own_addresses("https://192.0.2.9:22030"))
    log = logging.getLogger("session.test")
    log.warning("peer %s, registry 192.0.2.9", "198.51.100.4", extra={"swarm_id": 7})
    first = parse_journal(dgram.recv(65536))
    assert first["MESSAGE"] == f"peer {IP_MASK}, registry 192.0.2.9"
    assert first["PRIORITY"] == "4" and first["LOGGER"] == "session.test"
    assert first["SWARM_ID"] == "7" and first["CODE_FUNC"] == "test_logs_go_to_journald_as_fields"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    second = parse_journal(dgram.recv(65536))
    assert second["MESSAGE"].startswith("failed\nTraceback") and second["PRIORITY"] == "3"
    stream.close()
    assert (tmp_path / "stderr").read_text() == ""  # nothing doubled on stderr

    monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # another stream: JSON lines as before
    with open(os.devnull, "w") as other:
        assert not systemd.under_journal(other)


def test_own_addresses() -> None:
    keep = own_addresses("https://[2001:db8::5]:22030", "203.0.113.4", "", "example.org")
    assert {str(a) for a in keep} == {"2001:db8::5", "203.0.113.4"}


# ---------------------------------------------------------------------------- the lock


def test_data_dir_lock(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path / "d", "session-node")
    first.acquire()
    try:
        # flock is per open file: a second open in this process conflicts like another process
        with pytest.raises(ConfigError, match=rf"already running .* \(pid {os.getpid()}\)"):
            DataDirLock(tmp_path / "d", "session-node").acquire()
    finally:
        first.release()
    again = DataDirLock(tmp_path / "d", "session-node")
    again.acquire()
    again.release()
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o700


# ---------------------------------------------------------------------------- registration


@pytest.mark.parametrize(
    ("status", "message", "permanent"),
    [
        (0, "registry at x is unreachable: timed out", False),
        (503, "registry refused the request (503): busy", False),
        (429, "slow down", False),
        (409, "address 192.0.2.1 port 22021 is already registered by node ab", True),
        (409, "request is not newer than the node's last accepted request", False),
        (400, "request timestamp is 900 s away from the registry's clock", False),
        (401, "signature does not verify", True),
        (400, "storage_port and storage_lmq_port must differ", True),
    ],
)
def test_permanent_refusals(status: int, message: str, permanent: bool) -> None:
    assert permanent_refusal(RegistryError(message, status)) is permanent


async def test_a_second_file_server_on_one_data_directory_is_refused(tmp_path: Path) -> None:
    from session.fileserver import server as fs_server
    from session.fileserver.config import load_config

    cfg = load_config(
        None,
        env={},
        overrides={"data_dir": str(tmp_path), "network.port": 0, "network.tls": False},
    )
    ready = asyncio.Event()
    first = asyncio.ensure_future(fs_server.run(cfg, lambda _server: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        with pytest.raises(ConfigError, match="another session-fileserver is already running"):
            await fs_server.run(cfg, lambda _server: pytest.fail("must not start"))
    finally:
        first.cancel()
        await asyncio.wait([first])
    lock = DataDirLock(tmp_path, "session-fileserver")  # released once the first one stopped
    lock.acquire()
    lock.release()
