"""Session's own storage server (oxen-storage, C++) as a load target, beside our node.

Nothing of it lives in this repository: it is built outside the checkout (Session's sources and
Debian's libraries; ``docs/performance.md``, "Side by side with Session's storage server", says
how), into a directory called the *oxenss root* (``--oxenss-root`` or ``$OXENSS_ROOT``) holding
Session's sources in ``src/`` and their build in ``build/``, the server being
``build/oxen-storage``.

The server asks oxend (Session's chain daemon) for its keys and the service-node list over
OxenMQ. Our stand-in for it (``oxend_standin.cpp`` beside this file, built against the OxenMQ
of the root's build on first use, :func:`standin`) hands each server the keys of a seed we
choose and a node list we write, naming every server of the network in one swarm.

:class:`OxenssNetwork` starts ``nodes`` servers, each with its stand-in, with fresh databases
(the TLS and DH files a server makes on its first start, which takes ~30 s, are kept in
``ROOT/bench-data``; the others get a copy of the first one's DH parameters), waits until each
answers ``info`` and, for more than one, until a ``store`` to the first is stored by all of
them, and stops them. The servers listen for HTTPS on ``host`` (loopback), for OxenMQ on TCP
and QUIC on their ``omq_port`` (on every address: the server has no option to bind it to one).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
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
from session.identity import Identity
from session.proto import rpc

#: Where the binaries sit in the oxenss root.
SERVER_BIN = Path("build") / "oxen-storage"
#: Our oxend stand-in: its source here, built into the oxenss root (:func:`standin`).
STANDIN_SRC = Path(__file__).with_name("oxend_standin.cpp")
STANDIN_BIN = Path("fake-oxend") / "oxend_standin"

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
    if not os.access(root / SERVER_BIN, os.X_OK):
        raise OxenssUnavailable(
            f"--target oxenss: no executable {SERVER_BIN} under {root} (the oxenss root holds "
            "Session's sources in src/ and their build in build/; docs/performance.md says how)"
        )
    return root


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on at ``host`` right now (for the server's command line)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_omq_port() -> int:
    """A port free for the server's OxenMQ, which it binds on every address, over TCP and
    over UDP (QUIC): free on 0.0.0.0 for both right now."""
    while True:
        port = free_port("0.0.0.0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("0.0.0.0", port))
            except OSError:
                continue  # (taken for UDP: another)
        return port


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
class OxenssNode:
    """One oxen-storage process of a network and its oxend stand-in."""

    data: Path
    seed_hex: str
    ed25519_hex: str
    x25519: bytes
    https_port: int
    omq_port: int
    oxend: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.server is None:
            raise OxenssUnavailable("the server is not running")
        return self.server.pid


def node_keys(seed: bytes) -> tuple[str, bytes]:
    """The Ed25519 public key (hex) and X25519 public key of the node whose Ed25519 seed is
    ``seed``: what the stand-in hands the server, and what the node list names (a Session
    identity's keys, derived as libsodium does)."""
    ident = Identity.from_seed(seed)
    return ident.ed25519_public.hex(), bytes(ident.x25519_public)


def standin(root: Path) -> Path:
    """The oxend stand-in (:data:`STANDIN_SRC`) built against the OxenMQ of the oxenss root's
    build, into ``ROOT/`` :data:`STANDIN_BIN` (built again when the source is newer). Raises
    :class:`OxenssUnavailable` with the compiler's last words when it cannot be built."""
    out = root / STANDIN_BIN
    if out.exists() and out.stat().st_mtime >= STANDIN_SRC.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src, build = root / "src" / "external", root / "build" / "external"
    cmd = [
        "g++", "-std=c++20", "-O2", "-o", str(out), str(STANDIN_SRC),
        f"-I{src / 'oxen-mq'}", f"-I{src / 'oxen-mq' / 'cppzmq'}", f"-I{build / 'oxen-mq'}",
        f"-I{src / 'oxenc'}", f"-I{build / 'oxenc'}", str(build / "oxen-mq" / "liboxenmq.a"),
        "-lzmq", "-lsodium", "-lpthread",
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise OxenssUnavailable(f"cannot build the oxend stand-in: {e}") from None
    if done.returncode != 0:
        raise OxenssUnavailable(
            f"cannot build the oxend stand-in ({' '.join(cmd[:2])} …): {done.stderr[-600:]}"
        )
    return out


@dataclass
class OxenssNetwork:
    """``nodes`` oxen-storage processes, each with its oxend stand-in, on ``host`` (loopback),
    all in one swarm: every stand-in lists every node, so a ``store`` to one is replicated to
    the others (``sn.storage_cc``) and answered once they all have."""

    root: Path
    nodes: int = 1
    host: str = "127.0.0.2"
    #: seconds to wait for each step (the server's first start makes its DH parameters:
    #: ~30 s on an idle machine, several minutes on a busy one)
    start_timeout: float = 600.0

    def __post_init__(self) -> None:
        self.data = self.root / "bench-data"
        self.members: list[OxenssNode] = []

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.members[0].https_port}"

    def _wait(
        self, what: str, ok: Callable[[], bool], procs: dict[Path, subprocess.Popen[bytes]]
    ) -> None:
        """Wait until ``ok()`` is true; fail with its log's tail (the keys of ``procs``) if
        one of ``procs`` exits, or when time runs out."""
        deadline = time.monotonic() + self.start_timeout
        while not ok():
            for log, proc in procs.items():
                if proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
                    raise OxenssUnavailable(f"{what}: exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise OxenssUnavailable(f"{what}: not ready after {self.start_timeout:g} s")
            time.sleep(0.2)

    def start(self) -> OxenssNetwork:
        """Start every stand-in and server; return once the first server stores messages in
        a swarm of all of them."""
        binary = standin(self.root)
        started = False
        try:  # a start that fails stops what it started
            self._make_members()
            for m in self.members:
                self._start_oxend(binary, m)
            first, rest = self.members[0], self.members[1:]
            self._start_server(first)  # first: it makes the DH parameters the others share
            dh = first.data / "dh.pem"
            for m in rest:
                if dh.exists() and not (m.data / "dh.pem").exists():
                    shutil.copyfile(dh, m.data / "dh.pem")
            for m in rest:
                self._start_server(m, wait=False)
            for m in rest:
                self._wait_answers(m)
            self._wait_swarm()
            started = True
        finally:
            if not started:
                self.stop()
        return self

    def _make_members(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        entries = []
        for i in range(self.nodes):
            # node 0 keeps the single server's folder (its TLS and DH files from earlier runs)
            d = self.data if i == 0 else self.data / f"node-{i:02d}"
            d.mkdir(parents=True, exist_ok=True)
            for f in d.glob("storage.db*"):
                f.unlink()  # every run starts empty (the TLS and DH files are kept)
            seed = secrets.token_bytes(32)
            ed, x = node_keys(seed)
            m = OxenssNode(d, seed.hex(), ed, x, free_port(self.host), free_omq_port())
            self.members.append(m)
            entries.append(
                {"service_node_pubkey": ed, "pubkey_ed25519": ed, "pubkey_x25519": x.hex(),
                 "public_ip": self.host, "storage_port": m.https_port,
                 "storage_lmq_port": m.omq_port, "swarm_id": 0, "funded": True,
                 "height": 1_000_000, "snode_revision": 4}
            )  # fmt: skip
        (self.data / "nodes.json").write_text(json.dumps(entries))

    def _start_oxend(self, binary: Path, m: OxenssNode) -> None:
        sock = m.data / "oxend.sock"
        sock.unlink(missing_ok=True)
        log = m.data / "fake_oxend.log"
        with open(log, "wb") as out:
            m.oxend = subprocess.Popen(
                [str(binary), f"ipc://{sock}", m.seed_hex, str(self.data / "nodes.json")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        oxend = m.oxend

        def ready() -> bool:
            return sock.exists() and log.exists() and b"ready" in log.read_bytes()

        self._wait("the oxend stand-in", ready, {log: oxend})

    def _start_server(self, m: OxenssNode, wait: bool = True) -> None:
        """Start Session's server against its running stand-in (and wait until it answers)."""
        with open(m.data / "oxen-storage.log", "wb") as out:
            m.server = subprocess.Popen(
                [str(self.root / SERVER_BIN), "--testnet", "--data-dir", str(m.data),
                 "--oxend-rpc", f"ipc://{m.data / 'oxend.sock'}", "--bind-ip", self.host,
                 "--https-port", str(m.https_port), "--omq-port", str(m.omq_port),
                 "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        if wait:
            self._wait_answers(m)

    def _wait_answers(self, m: OxenssNode) -> None:
        info = json.dumps({"method": "info", "params": {}}).encode()
        url = f"https://{self.host}:{m.https_port}/storage_rpc/v1"

        def answers() -> bool:
            try:
                status, _ = post(url, info, timeout=2.0)
            except OSError:
                return False
            return status == 200

        assert m.server is not None
        self._wait("oxen-storage", answers, {m.data / "oxen-storage.log": m.server})

    def _wait_swarm(self) -> None:
        """Until a store to the first node comes back stored by every node (the servers
        learn their swarm from the stand-ins' node list and link up over OxenMQ)."""
        if self.nodes == 1:
            return
        probe = rpc.Account.parse(f"05{secrets.token_hex(32)}")
        assert probe is not None

        def replicated() -> bool:
            now = time.time_ns() // 1_000_000
            store = rpc.Store(probe, 0, now, now + 3_600_000, b"probe")
            body = json.dumps({"method": "store", "params": store.to_params()}).encode()
            try:
                status, out = post(self.url + "/storage_rpc/v1", body, timeout=10.0)
            except OSError:
                return False
            return status == 200 and swarm_stored(out) == self.nodes

        procs = {m.data / "oxen-storage.log": m.server for m in self.members if m.server}
        self._wait("the swarm", replicated, procs)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(m.pid for m in self.members)

    def stop(self) -> None:
        """Stop the servers and their stand-ins (SIGTERM to all, SIGKILL to any still running
        10 s later)."""
        procs = [m.server for m in self.members] + [m.oxend for m in self.members]
        for p in procs:
            if p is not None and p.poll() is None:
                p.terminate()
        for p in procs:
            if p is not None and p.poll() is None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for m in self.members:
            m.server = m.oxend = None
            (m.data / "oxend.sock").unlink(missing_ok=True)


def swarm_stored(body: bytes) -> int:
    """How many swarm members a ``store`` reply says stored the message (the entries of its
    ``swarm`` with a ``hash`` and no ``failed``); 0 for a reply that is not JSON."""
    try:
        doc = json.loads(body)
    except ValueError:
        return 0
    swarm = doc.get("swarm") if isinstance(doc, dict) else None
    if not isinstance(swarm, dict):
        return 0
    return sum(
        1 for r in swarm.values() if isinstance(r, dict) and "hash" in r and not r.get("failed")
    )
