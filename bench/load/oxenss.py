"""Session's own storage server (oxen-storage, C++) as a load target, beside our node.

Nothing of it lives in this repository: it is built outside the checkout (Session's sources and
Debian's libraries; ``docs/performance.md``, "Side by side with Session's storage server", says
how), into a directory called the *oxenss root* (``--oxenss-root`` or ``$OXENSS_ROOT``) holding

* ``build/oxen-storage`` — the server;
* ``fake-oxend/fake_oxend`` — a stand-in for oxend (Session's chain daemon) answering what the
  server asks it on an OxenMQ socket: the node's keys, a service-node list naming only this
  node (so it is a swarm of one), block hashes and block notifications. It prints the node's
  keys on its standard output, which is how we learn the X25519 key onion requests need.

:class:`OxenssServer` starts both with a fresh database (the TLS and DH files the server makes
on its first start, which takes ~30 s, are kept in ``ROOT/bench-data``), waits until the server
answers ``info`` and accepts a ``store``, and stops them. The server listens for HTTPS on
``host`` (loopback), for OxenMQ on TCP and QUIC on its ``omq_port`` (on every address: the
server has no option to bind it to one).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from session.errors import SessionError

#: Where the binaries sit in the oxenss root.
SERVER_BIN = Path("build") / "oxen-storage"
OXEND_BIN = Path("fake-oxend") / "fake_oxend"

_KEY_LINE = re.compile(r"^(ed25519_pubkey|x25519_pubkey)=([0-9a-f]{64})$", re.M)

_UNVERIFIED = ssl.create_default_context()
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


class OxenssUnavailable(SessionError):
    """Session's storage server cannot be run here: not built, or it did not start."""


def find_root(explicit: str | os.PathLike[str] | None) -> Path:
    """The oxenss root to use (``explicit``, else ``$OXENSS_ROOT``), checked to hold both
    binaries. Raises :class:`OxenssUnavailable` saying what is missing and how to get it."""
    raw = explicit or os.environ.get("OXENSS_ROOT")
    if not raw:
        raise OxenssUnavailable(
            "--target oxenss needs Session's storage server built outside this checkout: "
            "pass its build directory with --oxenss-root DIR (or set OXENSS_ROOT); "
            "docs/performance.md ('Side by side with Session's storage server') says how to "
            "build it"
        )
    root = Path(raw).expanduser().absolute()
    for rel in (SERVER_BIN, OXEND_BIN):
        if not os.access(root / rel, os.X_OK):
            raise OxenssUnavailable(
                f"--target oxenss: no executable {rel} under {root} (the oxenss root holds "
                "build/oxen-storage and fake-oxend/fake_oxend once built; docs/performance.md "
                "says how)"
            )
    return root


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on at ``host`` right now (for the server's command line)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTPS POST, certificate not verified (the server's is self-signed)."""
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_UNVERIFIED) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class OxenssServer:
    """One oxen-storage process and its fake oxend, on ``host`` (loopback)."""

    root: Path
    host: str = "127.0.0.2"
    https_port: int = 0
    omq_port: int = 0
    #: seconds to wait for each process (the server's first start makes its DH parameters:
    #: ~30 s on an idle machine, several minutes on a busy one)
    start_timeout: float = 600.0

    def __post_init__(self) -> None:
        self.data = self.root / "bench-data"
        self.oxend: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.ed25519_hex = ""
        self.x25519 = b""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def pid(self) -> int:
        if self.server is None:
            raise OxenssUnavailable("the server is not running")
        return self.server.pid

    def _wait(
        self, what: str, ok: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path
    ) -> None:
        """Wait until ``ok()`` is true; fail with the log's tail if ``proc`` exits or time
        runs out."""
        deadline = time.monotonic() + self.start_timeout
        while not ok():
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
                raise OxenssUnavailable(f"{what}: exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise OxenssUnavailable(f"{what}: not ready after {self.start_timeout:g} s")
            time.sleep(0.2)

    def start(self) -> OxenssServer:
        """Start the fake oxend and the server; return once the server stores messages."""
        self.data.mkdir(parents=True, exist_ok=True)
        for f in self.data.glob("storage.db*"):
            f.unlink()  # every run starts empty (the TLS and DH files are kept)
        self.https_port = self.https_port or free_port(self.host)
        self.omq_port = self.omq_port or free_port(self.host)
        sock = self.data / "oxend.sock"
        oxend_log = self.data / "fake_oxend.log"
        server_log = self.data / "oxen-storage.log"
        seed = secrets.token_hex(32)
        with open(oxend_log, "wb") as out:
            self.oxend = subprocess.Popen(
                [str(self.root / OXEND_BIN), f"ipc://{sock}", self.host,
                 str(self.https_port), str(self.omq_port), seed],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        keys: dict[str, str] = {}

        def have_keys() -> bool:
            text = oxend_log.read_text(errors="replace") if oxend_log.exists() else ""
            keys.update(dict(_KEY_LINE.findall(text)))
            return len(keys) == 2 and sock.exists()

        started = False
        try:  # a start that fails stops what it started
            self._wait("fake oxend", have_keys, self.oxend, oxend_log)
            self._start_server(keys, sock, server_log)
            started = True
        finally:
            if not started:
                self.stop()
        return self

    def _start_server(self, keys: dict[str, str], sock: Path, server_log: Path) -> None:
        """Start Session's server against the running fake oxend; return once it answers."""
        self.ed25519_hex = keys["ed25519_pubkey"]
        self.x25519 = bytes.fromhex(keys["x25519_pubkey"])
        with open(server_log, "wb") as out:
            self.server = subprocess.Popen(
                [str(self.root / SERVER_BIN), "--testnet", "--data-dir", str(self.data),
                 "--oxend-rpc", f"ipc://{sock}", "--bind-ip", self.host,
                 "--https-port", str(self.https_port), "--omq-port", str(self.omq_port),
                 "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        info = json.dumps({"method": "info", "params": {}}).encode()

        def answers() -> bool:
            try:
                status, _ = post(self.url + "/storage_rpc/v1", info, timeout=2.0)
            except OSError:
                return False
            return status == 200

        self._wait("oxen-storage", answers, self.server, server_log)

    def stop(self) -> None:
        """Stop the server, then its oxend (SIGTERM, SIGKILL after 10 s)."""
        for p in (self.server, self.oxend):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.server = self.oxend = None
        (self.data / "oxend.sock").unlink(missing_ok=True)
