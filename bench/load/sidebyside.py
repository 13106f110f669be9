"""Request scenarios: one storage request per HTTPS round trip, closed loop, against our node
and (``--target oxenss``) Session's own storage server in the same run, for CPU per request.

``python -m bench.load info,store,retrieve,onion,onion-store,onion-path --target oxenss``

Each server is alone in its network (a swarm of one) by default: our node on a one-node devnet,
the C++ server (:mod:`bench.load.oxenss`) with its oxend stand-in. With ``--nodes N`` each is
a swarm of N: our N-node devnet, and N of Session's servers whose stand-ins list all of them;
requests go to the first node, a ``store`` is replicated to the other N-1 before it is
answered (Session's protocol, the same on both), and CPU per request is summed over the N
server processes: what a replicated message costs the whole swarm. The load is the same for
both:
``--workers`` processes, each keeping ``--concurrency`` requests in flight, each request on the
next of its keep-alive HTTPS connections, which come from ``--ips-per-worker`` loopback source
addresses (``--base-ip``; both servers limit every address to 300 requests/s, as Session's
storage server does). A *round* runs one scenario against one server for ``--duration``
seconds; rounds alternate between the servers (``--rounds`` each, the order flipped every
round so a drift of the machine's load falls on both). What a round measures:

* the server processes' CPU clocks (user + system, all their threads) between the round's
  start and end, from /proc: **CPU per answered request** (the oxend stand-ins and our registry
  are not counted: they serve the nodes, not the clients);
* answered requests per second, latency p50/p99 (an HDR histogram per worker), errors by kind
  (status, a reply that is not what the request asked for, connection errors).

The scenarios (what a client sends; the same JSON bodies to both servers):

* ``info`` — ``{"method": "info"}``;
* ``store`` — a fresh 256-byte message (``--size``) to a public inbox (namespace 0, no
  signature) of one of 64 accounts;
* ``retrieve`` — a signed retrieve of all messages of one of 16 accounts, each holding 10
  messages stored before the rounds (the reply's message count is checked);
* ``onion`` — an onion request of one layer to the server itself: it peels the layer, runs
  ``info`` and answers encrypted (the client opens every reply);
* ``onion-store`` — an onion request of one layer to the server itself whose payload is a
  ``store`` as above (a fresh layer each request): it peels the layer, stores the message and
  answers encrypted (the client opens every reply and checks the stored hash);
* ``onion-path`` — a 3-hop path (three relays and the destination): four peels and three
  forwards over the node-to-node links (OxenMQ for the C++ server, ours for ours) per
  request, the work a 3-hop request costs a whole network. Every hop is the server itself,
  or with ``--nodes`` 4 or more the first node (where requests go) relays to two other nodes
  of its network and the last of them to a fourth, the destination;
* ``path-store`` — the same path with a ``store`` as above for its payload (a fresh onion
  each request): with ``--nodes 12``, the whole way of a sent message into its swarm, four
  peels, three forwards and twelve copies, what a message costs the network before its
  recipient fetches it.

``--profile`` adds one unmeasured round per scenario against our node under py-spy (the thread
holding the GIL, 200 Hz: a flame graph SVG, a per-function summary, and the samples'
shares by node layer: ``results.KIND.profile``). The result is
``result.json`` (schema ``session-load-sidebyside/1``, :func:`validate`) with, per scenario,
each round and the ratios ours / C++ of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import queue
import shutil
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httptools
import psutil
from nacl import bindings as sodium
from nacl.exceptions import CryptoError
from rich.console import Console
from rich.table import Table

from bench.load import report
from bench.load.oxenss import OxenssNetwork, OxenssUnavailable, find_root, swarm_stored
from session import onion
from session.devnet import Devnet
from session.errors import DecryptionError
from session.identity import Identity
from session.proto import rpc

SCHEMA = "session-load-sidebyside/1"

SCENARIOS = {
    "info": "HTTPS round trips of the storage RPC `info` (closed loop; --target oxenss: "
    "against Session's C++ storage server too, CPU per request ours / C++)",
    "store": "stores of fresh 256-byte messages to public inboxes (as `info`)",
    "retrieve": "signed retrieves of an account's 10 messages (as `info`)",
    "onion": "one-layer onion requests to the node itself: peel, info, encrypted reply",
    "onion-store": "one-layer onion requests to the node itself whose payload is a store "
    "(as `store`): peel, store, encrypted reply",
    "onion-path": "3-hop onion requests (4 peels): every hop is the node itself, or with "
    "--nodes 4 or more the node and two others relay to a fourth",
    "path-store": "3-hop onion requests whose payload is a store (as `store`): a message's "
    "whole way into its swarm, relays and copies",
}

#: Accounts that get stores, and accounts prefilled for retrieves (with this many messages).
STORE_ACCOUNTS = 64
RETRIEVE_ACCOUNTS = 16
PREFILL = 10
#: Time to live of every message stored (milliseconds).
TTL_MS = 3_600_000
#: Onion frames built ahead per worker and server (replayed in turn: neither server keeps
#: seen onions, and building them would cost the client more than the server's answer).
FRAMES = 32
#: Relays of a 3-hop path (other nodes of the network when it has more than this many).
RELAYS = 3
#: py-spy's sampling rate in the profiled round (samples per second).
SPY_HZ = 200


@dataclass(frozen=True)
class Target:
    """A server under load, as a worker needs it (picklable)."""

    name: str  # "ours" | "oxenss"
    host: str
    port: int
    ed25519_hex: str
    x25519_hex: str
    #: the network's server processes, the one requests go to first (their CPU is summed)
    pids: tuple[int, ...]
    #: nodes in the swarm: a store's reply must say the others stored it too
    swarm: int = 1
    #: three other nodes of the network (Ed25519 hex, X25519 hex): after this node, the
    #: two other relays and the destination of a 3-hop path; empty: every hop is this node
    relays: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------- requests


def account_id(seed: int, prefix: str = "05") -> str:
    """A deterministic Session ID (66 hex) for store accounts (no key needed: public inbox)."""
    return prefix + hashlib.blake2b(seed.to_bytes(8, "big"), digest_size=32).hexdigest()


def retrieve_identity(i: int) -> Identity:
    """The owner of retrieve account ``i`` (the same in every worker and the driver)."""
    return Identity.from_seed(hashlib.blake2b(b"bench-retrieve-%d" % i, digest_size=32).digest())


def message_data(size: int, tag: bytes) -> bytes:
    """``size`` bytes of message content unique by ``tag``."""
    return (tag + os.urandom(size))[:size]


def _account(session_id: str) -> rpc.Account:
    acct = rpc.Account.parse(session_id)
    if acct is None:
        raise ValueError(f"not a Session ID: {session_id!r}")
    return acct


def store_body(account: str, data: bytes, now_ms: int) -> bytes:
    req = rpc.Store(_account(account), 0, now_ms, now_ms + TTL_MS, data)
    return json.dumps({"method": "store", "params": req.to_params()}).encode()


def retrieve_body(ident: Identity, now_ms: int) -> bytes:
    params = rpc.sign(rpc.Retrieve(_account(ident.session_id), 0, None, timestamp=now_ms), ident)
    return json.dumps({"method": "retrieve", "params": params}).encode()


INFO_BODY = json.dumps({"method": "info", "params": {}}).encode()


def one_layer_onion(node_x25519: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """An onion of one layer whose destination is the node itself (``onion.build`` wants a
    path of at least one relay): ``LE32(n) ‖ seal(LE32(len) ‖ payload ‖ {"headers":""}) ‖
    {"ephemeral_key", "enc_type"}``. Returns the frame and the XChaCha20 key of the reply
    (BLAKE2b-256 of the shared secret ‖ our ephemeral key ‖ the node's key)."""
    a = os.urandom(32)
    a_pub = sodium.crypto_scalarmult_base(a)
    inner = struct.pack("<I", len(payload)) + payload + b'{"headers":""}'
    blob = onion.encrypt_hop("xchacha20", a, node_x25519, inner)
    frame = onion.encode_layer(blob, {"ephemeral_key": a_pub.hex(), "enc_type": "xchacha20"})
    shared = sodium.crypto_scalarmult(a, node_x25519)
    key = hashlib.blake2b(shared + a_pub + node_x25519, digest_size=32).digest()
    return frame, key


def open_xchacha_reply(key: bytes, raw: bytes) -> bytes:
    """The plaintext of a node's reply to :func:`one_layer_onion` (base64 or raw
    ``nonce(24) ‖ ciphertext ‖ tag``); raises ValueError if it does not open."""
    with contextlib.suppress(ValueError):
        raw = base64.b64decode(raw, validate=True)
    if len(raw) < 40:
        raise ValueError("reply too short")
    try:
        return bytes(
            sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(raw[24:], None, raw[:24], key)
        )
    except CryptoError as e:
        raise ValueError(f"reply does not open: {e}") from None


def _inner_body(plain: bytes) -> tuple[str, str | None]:
    """The inner body of an opened onion reply, ``{"status": code, "body": "<JSON>"}``
    (Session's v3), and what is wrong with the reply (None: a 200 with a text body)."""
    try:
        doc = json.loads(plain)
    except ValueError:
        return "", "reply not JSON"
    if not isinstance(doc, dict):
        return "", "reply not an object"
    code = doc.get("status", doc.get("status_code"))
    if code != 200:
        return "", f"inner status {code}"
    body = doc.get("body")
    return (body, None) if isinstance(body, str) else ("", "inner body not text")


def onion_reply_error(plain: bytes) -> str | None:
    """What is wrong with an opened onion reply to ``info`` (None: it is the node's 200 with
    its version)."""
    body, wrong = _inner_body(plain)
    if wrong is None and '"version"' not in body:
        return "inner body not info"
    return wrong


Check = Callable[[int, bytes], str | None]


class Requests:
    """Builds the requests of one scenario for one server, and checks each reply."""

    def __init__(self, kind: str, target: Target, size: int, worker: int) -> None:
        self.kind = kind
        self.target = target
        self.size = size
        self.seq = itertools.count()
        self.tag = b"w%d-" % worker
        self.frames: list[tuple[bytes, Any]] = []
        x = self.x25519 = bytes.fromhex(target.x25519_hex)
        if kind == "onion":
            self.frames = [one_layer_onion(x, INFO_BODY) for _ in range(FRAMES)]
        # The requests go to the target, so it is the first hop; with relays the next two and
        # the destination are the three other nodes (in one swarm, any member takes a store).
        me = onion.Hop(target.ed25519_hex, x)
        others = [onion.Hop(ed, bytes.fromhex(xx)) for ed, xx in target.relays]
        self.hops = [me, *others[:2]] if others else [me] * 3
        last = others[2] if others else me
        self.dest = onion.NodeDestination(last.ed25519_hex, last.x25519)
        if kind == "onion-path":
            self.frames = [onion.build(self.hops, self.dest, INFO_BODY) for _ in range(FRAMES)]
        self.idents = (
            [retrieve_identity(i) for i in range(RETRIEVE_ACCOUNTS)] if kind == "retrieve" else []
        )

    def next(self) -> tuple[str, bytes, Check]:
        """The path, body and reply check of the next request."""
        n = next(self.seq)
        if self.kind == "info":
            return "/storage_rpc/v1", INFO_BODY, check_info
        if self.kind in ("store", "onion-store", "path-store"):
            data = message_data(self.size, self.tag + str(n).encode() + b"-")
            now = time.time_ns() // 1_000_000
            body = store_body(account_id(n % STORE_ACCOUNTS), data, now)
            swarm = self.target.swarm
            if self.kind == "store":
                return "/storage_rpc/v1", body, lambda s, b: check_store(s, b, swarm)
            if self.kind == "path-store":
                frame, path_key = onion.build(self.hops, self.dest, body)
                return (
                    "/onion_req/v2",
                    frame,
                    lambda s, b: check_path_store(s, b, path_key, swarm),
                )
            layer, reply_key = one_layer_onion(self.x25519, body)
            return (
                "/onion_req/v2",
                layer,
                lambda s, b: check_onion_store(s, b, reply_key, swarm),
            )
        if self.kind == "retrieve":
            ident = self.idents[n % len(self.idents)]
            return (
                "/storage_rpc/v1",
                retrieve_body(ident, time.time_ns() // 1_000_000),
                (check_retrieve),
            )
        frame, key = self.frames[n % len(self.frames)]
        if self.kind == "onion":
            return "/onion_req/v2", frame, lambda s, b: check_onion(s, b, key)
        return "/onion_req/v2", frame, lambda s, b: check_onion_path(s, b, key)


def check_info(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"status {status}"
    return None if b'"version"' in body else "reply not info"


def check_store(status: int, body: bytes, swarm: int = 1) -> str | None:
    """A ``store``'s reply: 200 with the stored hash, and in a swarm of more than one, every
    member's result stored."""
    if status != 200:
        return f"status {status}"
    if b'"hash"' not in body:
        return "reply without hash"
    return _swarm_short(body, swarm)


def _swarm_short(body: bytes, swarm: int) -> str | None:
    if swarm == 1:
        return None
    stored = swarm_stored(body)
    return None if stored == swarm else f"stored by {stored} of the swarm's {swarm}"


def check_retrieve(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"status {status}"
    try:
        msgs = json.loads(body)["messages"]
    except (ValueError, KeyError, TypeError):
        return "reply without messages"
    return None if len(msgs) == PREFILL else f"{len(msgs)} messages, wanted {PREFILL}"


def _opened_onion(status: int, body: bytes, key: bytes) -> tuple[str, str | None]:
    """The inner body of a one-layer onion reply (HTTP 200, sealed with ``key``), and what is
    wrong with the reply (None: a 200 inside too)."""
    if status != 200:
        return "", f"status {status}"
    try:
        plain = open_xchacha_reply(key, body)
    except ValueError:
        return "", "reply does not open"
    return _inner_body(plain)


def check_onion(status: int, body: bytes, key: bytes) -> str | None:
    """An opened onion reply to ``info``: the node's 200 with its version."""
    inner, wrong = _opened_onion(status, body, key)
    if wrong is None and '"version"' not in inner:
        return "inner body not info"
    return wrong


def check_onion_store(status: int, body: bytes, key: bytes, swarm: int = 1) -> str | None:
    """An opened onion reply to a ``store``: the node's 200 with the stored hash (and every
    member's, as :func:`check_store`)."""
    return _stored_inner(*_opened_onion(status, body, key), swarm)


def _stored_inner(inner: str, wrong: str | None, swarm: int) -> str | None:
    """What is wrong with an onion reply's inner body to a ``store`` (``wrong``: what opening
    it found)."""
    if wrong is None and '"hash"' not in inner:
        return "inner body without hash"
    return wrong or _swarm_short(inner.encode(), swarm)


def _opened_path(status: int, body: bytes, key: Any) -> tuple[bytes, str | None]:
    """The plaintext of a reply to an :func:`session.onion.build` request (base64 or raw),
    and what is wrong with it (None: it opened)."""
    if status != 200:
        return b"", f"status {status}"
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError:
        raw = body
    try:
        return bytes(key.decrypt(raw)), None
    except (DecryptionError, ValueError) as e:
        return b"", f"reply does not open: {type(e).__name__}"


def check_onion_path(status: int, body: bytes, key: Any) -> str | None:
    plain, wrong = _opened_path(status, body, key)
    return wrong or onion_reply_error(plain)


def check_path_store(status: int, body: bytes, key: Any, swarm: int = 1) -> str | None:
    """An opened reply to a 3-hop ``store``: the node's 200 with the stored hash (and every
    member's, as :func:`check_store`)."""
    plain, wrong = _opened_path(status, body, key)
    return wrong or _stored_inner(*_inner_body(plain), swarm)


# ---------------------------------------------------------------------- HTTP client


class Conn:
    """One keep-alive HTTPS connection from one source address (httptools parses replies)."""

    def __init__(self, target: Target, local_ip: str | None, ctx: ssl.SSLContext) -> None:
        self.target = target
        self.local_ip = local_ip
        self.ctx = ctx
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        #: connections opened (1 for the whole round when the server keeps it alive)
        self.opened = 0
        self.head = (
            f"Host: {target.host}:{target.port}\r\nContent-Type: application/json\r\n"
        ).encode()

    async def open(self) -> None:
        self.opened += 1
        self.reader, self.writer = await asyncio.open_connection(
            self.target.host,
            self.target.port,
            ssl=self.ctx,
            local_addr=(self.local_ip, 0) if self.local_ip else None,
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.head, len(body), body)
        )
        parts: list[bytes] = []
        done = False
        keep_alive = True

        class _Cb:
            def on_headers_complete(self) -> None:
                nonlocal keep_alive
                keep_alive = p.should_keep_alive()  # llhttp forgets it once the message ends

            def on_body(self, b: bytes) -> None:
                parts.append(b)

            def on_message_complete(self) -> None:
                nonlocal done
                done = True

        p = httptools.HttpResponseParser(_Cb())
        while not done:
            data = await self.reader.read(65536)
            if not data:
                self.close()
                raise ConnectionResetError("the server closed the connection")
            p.feed_data(data)
        status = p.get_status_code()
        if not keep_alive:
            self.close()
        return status, b"".join(parts)


# ---------------------------------------------------------------------- worker process


async def _round(cmd: dict[str, Any], wid: int, cmds: Any, results: Any) -> dict[str, Any]:
    """Connect and build the requests, report ``connected``, wait for the driver's ``go``
    (the round's window ``t0``..``t1``: TLS handshakes stay out of it), then send."""
    target = Target(**cmd["target"])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    reqs = Requests(cmd["kind"], target, cmd["size"], wid)
    ips: list[str | None] = list(cmd["ips"]) or [None]
    hist = report.new_histogram()
    ok = 0
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    conns = [[Conn(target, ip, ctx) for ip in ips] for _ in range(cmd["concurrency"])]
    await asyncio.gather(*(c.open() for row in conns for c in row))
    results.put({"kind": "connected", "wid": wid})
    go = await asyncio.get_running_loop().run_in_executor(None, cmds.get)
    t0, t1 = go["t0"], go["t1"]

    async def sender(row: list[Conn]) -> None:
        nonlocal ok
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        for i in itertools.count():
            start = time.monotonic()
            if start >= t1:
                return
            conn = row[i % len(row)]
            path, body, check = reqs.next()
            try:
                status, out = await conn.request(path, body)
                why = check(status, out)
            except (OSError, ssl.SSLError, httptools.HttpParserError) as e:
                conn.close()
                why = f"connection: {type(e).__name__}"
            end = time.monotonic()
            if end > t1:
                return  # answered after the round: its CPU is not in the round's window
            if why is None:
                ok += 1
                report.record(hist, end - start)
            else:
                errors[why] = errors.get(why, 0) + 1
                examples.setdefault(why, out[:200].decode(errors="replace") if why else "")

    cpu0 = time.process_time()
    await asyncio.gather(*(sender(row) for row in conns))
    for row in conns:
        for c in row:
            c.close()
    return {
        "kind": "done",
        "ok": ok,
        "errors": errors,
        "examples": examples,
        "hist": hist.encode().decode(),
        "cpu_s": time.process_time() - cpu0,
        "connections": sum(c.opened for row in conns for c in row),
    }


def worker_main(wid: int, cmds: Any, results: Any) -> None:
    """A load worker: runs the rounds the driver sends (``{"cmd": "round", ...}``) until
    ``{"cmd": "stop"}``."""
    import uvloop

    results.put({"kind": "ready", "wid": wid})
    while True:
        cmd = cmds.get()
        if cmd["cmd"] == "stop":
            return
        out = uvloop.run(_round(cmd, wid, cmds, results))
        results.put(out)


# ---------------------------------------------------------------------- servers


def path_relays(keys: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The :attr:`Target.relays` of the first of a network's nodes (``keys``: each node's
    Ed25519 and X25519 hex, the first being the target): the next :data:`RELAYS` nodes, or
    none when there are not that many others (then the target relays to itself)."""
    return tuple(keys[1 : RELAYS + 1]) if len(keys) > RELAYS else ()


class Servers:
    """Our node on a devnet of ``--nodes`` (default 1) and, with ``--target oxenss``, as many
    of Session's servers in one swarm; requests go to the first node of each."""

    def __init__(self, args: argparse.Namespace, work: Path, console: Console) -> None:
        self.devnet: Devnet | None = None
        self.oxenss: OxenssNetwork | None = None
        self.targets: list[Target] = []
        root = find_root(args.oxenss_root) if args.target == "oxenss" else None
        started = False
        try:  # a start that fails stops what it started
            n = args.nodes
            console.print(f"starting our node{'s' if n > 1 else ''} (a {n}-node devnet)…")
            self.devnet = Devnet(work / "devnet", nodes=n, file_server=False, community=False)
            self.devnet.start()
            node = self.devnet.nodes[0]
            pids = tuple(x.proc.pid for x in self.devnet.nodes if x.proc is not None)
            keys = [(x.pubkey_ed25519 or "", x.pubkey_x25519 or "") for x in self.devnet.nodes]
            if len(pids) != n or not all(ed and x for ed, x in keys):
                raise SystemExit(f"the devnet did not start all {n} nodes with their keys")
            self.targets.append(
                Target("ours", node.host, node.https_port, *keys[0], pids, n, path_relays(keys))
            )
            if root is not None:
                console.print(f"starting {n} of Session's storage servers from {root}…")
                o = self.oxenss = OxenssNetwork(root, n)
                o.start()
                theirs = [(m.ed25519_hex, m.x25519.hex()) for m in o.members]
                self.targets.insert(
                    0,
                    Target("oxenss", o.host, o.members[0].https_port, *theirs[0], o.pids, n,
                           path_relays(theirs)),
                )  # fmt: skip
            started = True
        finally:
            if not started:
                self.stop()

    def stop(self) -> None:
        if self.oxenss is not None:
            self.oxenss.stop()
        if self.devnet is not None:
            self.devnet.stop()


def _post(t: Target, path: str, body: bytes) -> tuple[int, bytes]:
    from bench.load.oxenss import post

    return post(f"https://{t.host}:{t.port}{path}", body)


def prefill(t: Target, size: int, timeout: float = 60.0) -> None:
    """Store :data:`PREFILL` messages in each retrieve account on ``t`` (retrying while the
    server says it is not ready yet)."""
    deadline = time.monotonic() + timeout
    for i in range(RETRIEVE_ACCOUNTS):
        acct = retrieve_identity(i).session_id
        for k in range(PREFILL):
            data = message_data(size, b"prefill-%d-%d-" % (i, k))
            while True:
                status, out = _post(
                    t, "/storage_rpc/v1", store_body(acct, data, time.time_ns() // 1_000_000)
                )
                if status == 200:
                    break
                if status != 503 or time.monotonic() > deadline:
                    raise SystemExit(f"{t.name}: prefill store answered {status}: {out[:200]!r}")
                time.sleep(0.5)


def cpu_s(procs: Sequence[psutil.Process]) -> float:
    """CPU seconds (user + system, every thread) the processes have used, together."""
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def idle_cpu(pids: Sequence[int], seconds: float = 3.0) -> float:
    """CPU seconds per second the processes spend together with no load."""
    procs = [psutil.Process(pid) for pid in pids]
    c0, t0 = cpu_s(procs), time.monotonic()
    time.sleep(seconds)
    return (cpu_s(procs) - c0) / (time.monotonic() - t0)


# ---------------------------------------------------------------------- the run


class SideBySide:
    def __init__(self, args: argparse.Namespace, kinds: Sequence[str]) -> None:
        self.args = args
        self.kinds = list(kinds)
        self.console = Console()
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        name = "-".join(kinds) if len(kinds) < 3 else "requests"
        self.out = (args.out or Path("load-results") / f"{name}-{stamp}").absolute()
        self.work = Path(tempfile.mkdtemp(prefix="bench-sbs-"))
        self.ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        self.cmds: list[Any] = []
        self.results: Any = self.ctx.Queue()
        self.profiles: list[str] = []

    def ips(self, wid: int) -> list[str]:
        a = self.args
        if not a.base_ip:
            return []
        return [f"{a.base_ip}{wid * a.ips_per_worker + k + 2}" for k in range(a.ips_per_worker)]

    def start_workers(self) -> None:
        for wid in range(self.args.workers):
            q = self.ctx.Queue()
            p = self.ctx.Process(target=worker_main, args=(wid, q, self.results), daemon=True)
            p.start()
            self.procs.append(p)
            self.cmds.append(q)
        for _ in self.procs:
            self._get(60)

    def _get(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return dict(self.results.get(timeout=1.0))
            except queue.Empty:
                if any(not p.is_alive() for p in self.procs):
                    raise SystemExit("a worker process died") from None
                if time.monotonic() > deadline:
                    raise SystemExit("a worker did not answer in time") from None

    def stop_workers(self) -> None:
        for q in self.cmds:
            q.put({"cmd": "stop"})
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)

    def round(self, kind: str, t: Target, idle: float, spy: bool = False) -> dict[str, Any]:
        """One round of ``kind`` against ``t``: what it measured."""
        a = self.args
        procs = [psutil.Process(pid) for pid in t.pids]
        for wid, q in enumerate(self.cmds):
            q.put({"cmd": "round", "kind": kind, "target": asdict(t), "ips": self.ips(wid),
                   "concurrency": a.concurrency, "size": a.size})  # fmt: skip
        for _ in self.procs:
            msg = self._get(60)
            if msg["kind"] != "connected":
                raise SystemExit(f"worker {msg.get('wid')}: {msg}")
        t0 = time.monotonic() + 0.2
        t1 = t0 + a.duration
        for q in self.cmds:
            q.put({"cmd": "go", "t0": t0, "t1": t1})
        spies = self.start_spy(kind, t) if spy else []
        time.sleep(max(0.0, t0 - time.monotonic()))
        c0 = cpu_s(procs)
        w0 = time.monotonic()
        time.sleep(max(0.0, t1 - time.monotonic()))
        c1 = cpu_s(procs)
        wall = time.monotonic() - w0
        done = [self._get(a.duration + 60) for _ in self.procs]
        for p in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
        hist = report.new_histogram()
        errors: dict[str, int] = {}
        examples: dict[str, str] = {}
        for d in done:
            hist.decode_and_add(d["hist"])
            for k, v in d["errors"].items():
                errors[k] = errors.get(k, 0) + v
            examples.update(d["examples"])
        ok = sum(d["ok"] for d in done)
        cpu = c1 - c0
        net = max(0.0, cpu - idle * wall)
        return {
            "server": t.name,
            "ok": ok,
            "errors": errors,
            "error_examples": examples,
            "wall_s": round(wall, 3),
            "per_s": round(ok / wall, 1),
            "server_processes": len(procs),
            "server_cpu_s": round(cpu, 3),
            "server_cores": round(cpu / wall, 3),
            "cpu_per_request_us": round(cpu / ok * 1e6, 1) if ok else 0.0,
            "net_cpu_per_request_us": round(net / ok * 1e6, 1) if ok else 0.0,
            "client_cpu_s": round(sum(d["cpu_s"] for d in done), 3),
            "connections": sum(d["connections"] for d in done),
            "latency_ms": report.summary(hist),
            "load_avg": round(os.getloadavg()[0], 2),
        }

    def summarise(self, kind: str, raw: Path, spied: dict[str, Any]) -> dict[str, Any]:
        """Where the profiled round's Python time went: py-spy samples the thread holding the
        GIL (wall-clock samples: on a busy machine a preempted holder is sampled too, so the
        samples give shares, not CPU seconds), charged to node layers (:func:`by_layer`).
        Work done without the GIL (SQLite's queries, the core's peels and signature checks)
        is in the process's CPU but not in these samples. Writes
        ``profile-summary-KIND.txt``."""
        from bench.load.cli import profile_summary

        layers = by_layer(raw)
        out = {
            "server_cpu_per_request_us": spied["cpu_per_request_us"],
            "per_s": spied["per_s"],
            "gil_layers": layers,
        }
        head = (
            f"{kind}: {spied['per_s']:.0f}/s under py-spy, process CPU "
            f"{spied['cpu_per_request_us']:.0f} µs a request; samples of the GIL holder by "
            "layer (innermost frame of a known layer): "
            + ", ".join(f"{k} {v:.0%}" for k, v in layers.items())
        )
        summary = profile_summary([raw], sampled="the thread holding the GIL")
        (self.out / f"profile-summary-{kind}.txt").write_text(head + "\n\n" + summary)
        return out

    def start_spy(self, kind: str, t: Target) -> list[subprocess.Popen[bytes]]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            self.console.print("[yellow]--profile: py-spy is not installed (pip install py-spy)")
            return []
        secs = str(max(1, int(self.args.duration)))
        self.out.mkdir(parents=True, exist_ok=True)
        svg = self.out / f"flame-{kind}-ours.svg"
        raw = self.out / f"raw-{kind}-ours.txt"
        self.profiles += [str(svg), str(self.out / f"profile-summary-{kind}.txt")]
        procs = []
        for path, fmt in ((svg, "flamegraph"), (raw, "raw")):
            procs.append(
                subprocess.Popen(
                    [spy, "record", "-p", str(t.pids[0]), "-d", secs, "-r", str(SPY_HZ),
                     "-o", str(path), "-f", fmt, "--nonblocking", "--gil"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        return procs

    def main(self) -> int:
        a = self.args
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        from bench.load.cli import machine

        mach = machine()
        servers = Servers(a, self.work, self.console)
        scenarios: dict[str, Any] = {}
        try:
            targets = servers.targets
            if "retrieve" in self.kinds:
                for t in targets:
                    prefill(t, a.size)
            idle = {t.name: idle_cpu(t.pids) for t in targets}
            self.console.print(
                "servers at idle (CPU s/s): " + ", ".join(f"{k} {v:.4f}" for k, v in idle.items())
            )
            self.start_workers()
            for kind in self.kinds:
                rounds = []
                for r in range(a.rounds):
                    order = targets if r % 2 == 0 else targets[::-1]
                    for t in order:
                        res = self.round(kind, t, idle[t.name])
                        res["round"] = r
                        rounds.append(res)
                        self.print_round(kind, res)
                sc: dict[str, Any] = {"rounds": rounds, "servers": {}}
                for t in targets:
                    mine = [x for x in rounds if x["server"] == t.name]
                    sc["servers"][t.name] = {
                        "cpu_per_request_us": statistics.median(
                            x["cpu_per_request_us"] for x in mine
                        ),
                        "net_cpu_per_request_us": statistics.median(
                            x["net_cpu_per_request_us"] for x in mine
                        ),
                        "per_s": statistics.median(x["per_s"] for x in mine),
                        "latency_p50_ms": statistics.median(x["latency_ms"]["p50"] for x in mine),
                        "errors": sum(sum(x["errors"].values()) for x in mine),
                    }
                s = sc["servers"]
                if "oxenss" in s and s["oxenss"]["cpu_per_request_us"]:
                    sc["ratios"] = {
                        "cpu_per_request": round(
                            s["ours"]["cpu_per_request_us"] / s["oxenss"]["cpu_per_request_us"], 3
                        ),
                        "per_s": round(s["ours"]["per_s"] / s["oxenss"]["per_s"], 3)
                        if s["oxenss"]["per_s"]
                        else 0.0,
                    }
                if a.profile:
                    ours = next(t for t in targets if t.name == "ours")
                    spied = self.round(kind, ours, idle["ours"], spy=True)
                    raw = self.out / f"raw-{kind}-ours.txt"
                    sc["profile"] = self.summarise(kind, raw, spied)
                    raw.unlink(missing_ok=True)
                scenarios[kind] = sc
        finally:
            self.stop_workers()
            servers.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        mach["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "result.json"
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "scenarios": self.kinds,
            "target": a.target,
            "command": ["python", "-m", "bench.load", *sys.argv[1:]],
            "started": started,
            "machine": mach,
            "load": {
                "nodes": a.nodes,
                "workers": a.workers,
                "concurrency": a.concurrency,
                "ips_per_worker": a.ips_per_worker if a.base_ip else 0,
                "base_ip": a.base_ip,
                "duration_s": a.duration,
                "rounds": a.rounds,
                "size": a.size,
            },
            "idle_cpu_per_s": {k: round(v, 5) for k, v in idle.items()},
            "results": scenarios,
            "files": {
                "json": str(path),
                "profiles": [p for p in self.profiles if Path(p).exists()],
            },
        }
        bad = validate(doc)
        if bad:
            raise SystemExit("internal error: the result breaks its schema: " + "; ".join(bad))
        path.write_text(json.dumps(doc, indent=1))
        self.print_summary(doc)
        self.console.print(f"results: {path}")
        for p in doc["files"]["profiles"]:
            self.console.print(f"  {p}")
        failed = any(s["servers"][n]["errors"] for s in scenarios.values() for n in s["servers"])
        return 3 if failed else 0

    def print_round(self, kind: str, r: dict[str, Any]) -> None:
        err = f", errors {r['errors']}" if r["errors"] else ""
        self.console.print(
            f"  {kind:10s} round {r['round']} {r['server']:6s}: {r['per_s']:8.1f}/s, "
            f"{r['cpu_per_request_us']:7.1f} µs CPU/request ({r['server_cores']:.2f} cores), "
            f"p50 {r['latency_ms']['p50']:.2f} ms{err}  [load {r['load_avg']}]"
        )

    def print_summary(self, doc: dict[str, Any]) -> None:
        tb = Table(title="CPU per request, median of rounds (ours / C++ < 1: ours costs less)")
        for c in ("scenario", "server", "µs CPU/request", "requests/s", "p50 ms", "errors"):
            tb.add_column(c)
        tb.add_column("ours / C++")
        for kind, sc in doc["results"].items():
            for name, s in sc["servers"].items():
                ratio = sc.get("ratios", {}).get("cpu_per_request") if name == "ours" else None
                tb.add_row(
                    kind, name, f"{s['cpu_per_request_us']:.1f}", f"{s['per_s']:.0f}",
                    f"{s['latency_p50_ms']:.2f}", str(s["errors"]),
                    "" if ratio is None else f"{ratio:.2f}",
                )  # fmt: skip
        self.console.print(tb)


# ---------------------------------------------------------------------- profiles

#: Layers of the node a sampled stack is charged to: the innermost frame matching one of a
#: layer's file names decides (first layer listed wins within a frame).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tls", ("ssl.py",)),
    ("sqlite", ("session/storage/",)),
    ("rpc", ("session/proto/rpc/", "session/node/rpc.py")),
    ("onion", ("session/onion.py", "session/node/relay.py")),
    ("node links", ("session/node/links.py", "zmq/")),
    ("http", ("aiohttp/", "session/service/server.py", "session/node/http.py", "session/http1/",
              "httptools", "multidict", "yarl/")),
    ("event loop", ("uvloop", "asyncio/")),
)  # fmt: skip


def by_layer(raw: Path) -> dict[str, float]:
    """Share of py-spy's samples (collapsed ``frame;frame;… count`` lines) per node layer,
    each sample charged to the innermost frame that belongs to a layer of :data:`LAYERS`
    (a socket write under aiohttp's writer counts as http: TLS records and the kernel's
    loopback work included), else ``other``."""
    counts: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        layer = "other"
        for frame in reversed(stack.split(";")):
            hit = next((name for name, keys in LAYERS if any(k in frame for k in keys)), None)
            if hit is not None:
                layer = hit
                break
        counts[layer] = counts.get(layer, 0) + int(n)
    total = sum(counts.values()) or 1
    return {k: round(v / total, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


# ---------------------------------------------------------------------- schema


def validate(doc: Any) -> list[str]:
    """What is wrong with a side-by-side result (empty: it follows the schema)."""
    bad: list[str] = []
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return [f"not a {SCHEMA} document"]
    for k in ("scenarios", "command", "started", "machine", "load", "results", "files"):
        if k not in doc:
            bad.append(f"missing {k!r}")
    for kind, sc in (doc.get("results") or {}).items():
        if kind not in SCENARIOS:
            bad.append(f"results: unknown scenario {kind!r}")
        for name, s in (sc.get("servers") or {}).items():
            for k in ("cpu_per_request_us", "net_cpu_per_request_us", "per_s", "errors"):
                if not isinstance(s.get(k), int | float):
                    bad.append(f"results.{kind}.servers.{name}: missing {k!r}")
        if not sc.get("rounds"):
            bad.append(f"results.{kind}: no rounds")
        if "oxenss" in sc.get("servers", {}) and sc["servers"]["oxenss"]["cpu_per_request_us"]:
            if not isinstance(sc.get("ratios", {}).get("cpu_per_request"), int | float):
                bad.append(f"results.{kind}: no ratio")
    return bad


def parse_kinds(text: str) -> list[str] | None:
    """``info,store`` → the request scenarios named, or None if ``text`` names none of them.
    Raises SystemExit when it mixes them with other scenarios or names unknown ones."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    known = [p for p in parts if p in SCENARIOS]
    if not known:
        return None
    if len(known) != len(parts):
        raise SystemExit(
            f"{text}: a comma list takes request scenarios only ({', '.join(SCENARIOS)})"
        )
    return list(dict.fromkeys(known))


def main(args: argparse.Namespace, kinds: Sequence[str]) -> int:
    if args.target not in ("ours", "oxenss"):
        raise SystemExit("--target: ours or oxenss")
    try:
        if args.target == "oxenss":
            find_root(args.oxenss_root)  # before anything starts: say what is missing
        return SideBySide(args, kinds).main()
    except OxenssUnavailable as e:
        raise SystemExit(str(e)) from None
