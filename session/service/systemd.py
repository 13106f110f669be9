"""Running under systemd: the unit a service prints, ``sd_notify`` readiness and watchdog, and
log records sent to journald in its native, structured form.

**The unit.** :func:`unit_text` fills a shipped unit template for the way the program was
installed: ``ExecStart=`` names the absolute path of the running install (a virtual
environment's ``bin/session-node``, found next to the running interpreter), since
``/usr/bin/env session-node`` finds no virtual environment; and an install under ``/home``
(or ``/root``) gets ``ProtectHome=read-only``, since ``ProtectHome=yes`` would hide it.

**Notifications** follow systemd's documented protocol (``sd_notify(3)``, "the protocol is
simple and stable": one datagram of ``KEY=value`` lines to the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET``, ``@`` meaning the abstract namespace). It is a few lines, so it is written
here rather than taken from the unmaintained ``sdnotify`` package. :class:`Notifier` sends
``READY=1`` once the service serves, ``STATUS=`` lines while it starts, ``STOPPING=1`` on
shutdown, and ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC`` from the event loop (so a wedged
loop is restarted by systemd, per ``WatchdogSec=``).

**Journald.** When stderr is the journal's stream (``$JOURNAL_STREAM`` names its device and
inode, as ``systemd.exec(5)`` documents), :class:`JournalHandler` sends each record with the
native protocol (``MESSAGE``, ``PRIORITY``, ``LOGGER``, ``CODE_FILE``..., and a record's extra
fields) instead of a JSON line in ``MESSAGE``, so ``journalctl -o verbose`` and field matches
(``journalctl LOGGER=session.node``) work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

log = logging.getLogger("session.service.systemd")

#: Where journald listens for the native protocol (``systemd-journald.service(8)``).
JOURNAL_SOCKET = "/run/systemd/journal/socket"
#: A record's message is cut to this size (a datagram larger than the socket's buffer would be
#: refused; journald itself caps a field at 64 KiB by default).
MAX_MESSAGE = 48 * 1024
_HOMES = ("/home", "/root", "/run/user")
_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


# ------------------------------------------------------------------------------------ the unit


def program_command(program: str, module: str) -> str:
    """The absolute command that runs ``program`` from this install: the console script next to
    the running interpreter (a virtual environment's ``bin/``), else the one the shell would
    find, else ``<interpreter> -P -m <module>``. The interpreter's path is kept as it is (not
    resolved): a virtual environment's ``bin/python`` is a symlink to the base interpreter,
    which would not see the environment's packages."""
    beside = Path(sys.executable).parent / program
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == program and argv0.is_file():
        return str(argv0.absolute())
    return f"{Path(sys.executable).absolute()} -P -m {module}"


def _under_home(path: str) -> bool:
    return any(path == h or path.startswith(h + "/") for h in _HOMES)


def unit_text(template: str, program: str, module: str, *, command: str | None = None) -> str:
    """The shipped unit ``template`` with ``{exec}`` replaced by the command of this install
    (:func:`program_command`, or ``command``) and ``{protect_home}`` by ``yes``, or by
    ``read-only`` (with a comment) when the install or this package lives under a home
    directory."""
    command = command or program_command(program, module)
    package_dir = str(Path(__file__).resolve().parent.parent)
    exe = command.split(" ", 1)[0]
    if _under_home(exe) or _under_home(package_dir):
        protect = (
            "read-only\n# The install is under a home directory: read-only, since yes would "
            "hide it.\n# The service's user needs read access to it (and x on each directory)."
        )
    else:
        protect = "yes"
    return template.replace("{exec}", command).replace("{protect_home}", protect)


# ---------------------------------------------------------------------------- sd_notify


def _socket_address(name: str) -> str | bytes | None:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    return None  # vsock: and other kinds are not used for a service on the host


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``"READY=1"``, ``"STATUS=..."``; lines joined by ``\\n``) to the
    service manager; False when not run by one (no ``$NOTIFY_SOCKET``) or it cannot be
    reached."""
    env = os.environ if env is None else env
    address = _socket_address(env.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never block the event loop: a manager that does not read (its queue full) loses
            # a message rather than stalling the service (EAGAIN is an OSError, below).
            sock.sendto(state.encode("utf-8", "replace"), socket.MSG_DONTWAIT, address)
    except OSError as e:
        log.debug("sd_notify failed: %s", e)
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``, as ``sd_watchdog_enabled``
    advises), or None when no watchdog is asked of this process."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (a parent that exec'd us without clearing it)
    return int(usec) / 2_000_000


class Notifier:
    """A service's messages to systemd: status while starting, ready, the watchdog, stopping.
    Every method is a no-op outside systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self.enabled = bool(self._env.get("NOTIFY_SOCKET"))
        self._watchdog: asyncio.Task[None] | None = None

    def status(self, text: str) -> None:
        """``STATUS=text`` (shown by ``systemctl status``)."""
        if self.enabled:
            notify(f"STATUS={text}", self._env)

    def ready(self, status: str = "serving") -> None:
        """``READY=1``: start-up is done."""
        if self.enabled:
            notify(f"READY=1\nSTATUS={status}", self._env)

    def stopping(self) -> None:
        """``STOPPING=1``: the service is shutting down."""
        if self.enabled:
            notify("STOPPING=1\nSTATUS=stopping", self._env)

    def start_watchdog(self) -> None:
        """Ping ``WATCHDOG=1`` from the running loop while it runs (if systemd asked)."""
        interval = watchdog_interval(self._env)
        if interval is None or not self.enabled or self._watchdog is not None:
            return
        self._watchdog = asyncio.ensure_future(self._ping(interval))

    async def _ping(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1", self._env)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Stop the watchdog pings."""
        task, self._watchdog = self._watchdog, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])


# ----------------------------------------------------------------------------- journald


def under_journal(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream`` is connected to journald (``$JOURNAL_STREAM`` is its ``dev:inode``)."""
    env = os.environ if env is None else env
    expected = env.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test's StringIO)
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def _field(name: str, value: str) -> bytes:
    key = name.encode("ascii")
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key + b"=" + data + b"\n"


def _field_name(key: str) -> str | None:
    name = _FIELD_CHARS.sub("_", key.upper()).lstrip("_")
    return name if name and not name[0].isdigit() and len(name) <= 64 else None


class JournalHandler(logging.Handler):
    """Sends records to journald with the native protocol (one datagram per record); falls
    back to ``fallback`` (stderr, which journald reads too) when the socket refuses one."""

    def __init__(
        self,
        identifier: str,
        fallback: TextIO,
        path: str | None = None,
        standard: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.identifier = identifier
        self.fallback = fallback
        self.path = path or JOURNAL_SOCKET
        self.standard = standard  # LogRecord attributes that are not extra fields
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def fields(self, record: logging.LogRecord) -> bytes:
        """The datagram for ``record``."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + " [cut]"
        parts = [
            _field("MESSAGE", message),
            _field("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
            _field("SYSLOG_IDENTIFIER", self.identifier),
            _field("LOGGER", record.name),
            _field("CODE_FILE", record.pathname),
            _field("CODE_LINE", str(record.lineno)),
            _field("CODE_FUNC", record.funcName),
        ]
        for key, value in vars(record).items():
            if key in self.standard:
                continue
            name = _field_name(key)
            if name is not None and name not in ("MESSAGE", "PRIORITY"):
                parts.append(_field(name, str(value)[:MAX_MESSAGE]))
        return b"".join(parts)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.fields(record)
            self.sock.sendto(data, self.path)
        except OSError:  # journald gone or the record too large: stderr still reaches it
            try:
                self.fallback.write(f"{record.levelname} {record.name}: {record.getMessage()}\n")
                self.fallback.flush()
            except (OSError, ValueError):
                self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def default_identifier() -> str:
    """The program's name, as journald's ``SYSLOG_IDENTIFIER``."""
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"


__all__ = [
    "JOURNAL_SOCKET",
    "JournalHandler",
    "Notifier",
    "default_identifier",
    "notify",
    "program_command",
    "under_journal",
    "unit_text",
    "watchdog_interval",
]
