"""Network faults between nodes as separate hosts (issue 8, "Faults, survived and measured").

Every node runs as its own process in its own network namespace (``ip netns exec``), listening
on that namespace's address with the default ports, as on separate machines. The test builds::

    root namespace (the test, its clients) ── veth ──┐
                                                     br0 in namespace "hub" (the registry)
    namespace n0 (node-0, 10.x.y.10) ── veth ────────┤
    ...                                              │
    namespace n4 (node-4, 10.x.y.14) ── veth ─ [impairment] ─┘

and then partitions one node (its link goes down) and gives another a slow, lossy link.

Latency and loss: the kernels this runs on may lack ``sch_netem`` (``tc qdisc … netem`` answers
"Specified qdisc kind is unknown"), so the impaired link runs through :func:`impair_link`, a
small forwarder in the hub namespace that copies Ethernet frames between the node's veth and a
bridge port, holding each frame for the delay and dropping the given share at random: the
same effect as netem on that link, on any kernel with veth and packet sockets.

Skipped (with the reason) unless run as root with ``ip netns`` working. Bounded: the whole
module stays well under 90 s; every namespace, link and process is removed in a finalizer,
also when a test fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

# A backstop above the sum of a test's own bounds, so that theirs, which say what did not
# happen, fire first: the first test also pays the module's set-up (up to 45 s for the nodes),
# then up to 20 s for the cut to be noticed, 40 s to send and 50 s to receive.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

NODES = 5
DELAY = 0.08  # one-way latency added on the impaired link (s)
LOSS = 0.05  # share of frames dropped on the impaired link, each way
_UNVERIFIED = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


# ---------------------------------------------------------------------- the impairment forwarder


def forward(a: str, b: str, delay: float, loss: float) -> None:
    """Copy Ethernet frames between interfaces ``a`` and ``b`` (both directions), each frame
    ``delay`` seconds late, a ``loss`` share dropped at random. Runs until killed."""
    eth_p_all, packet_outgoing, sol_packet, packet_vnet_hdr = 0x0003, 4, 263, 15
    socks = []
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(eth_p_all))
        # Frames come with their offload header (checksum still to compute, segmentation) and
        # go out with it, so the kernel finishes them as it would have on the wire.
        s.setsockopt(sol_packet, packet_vnet_hdr, 1)
        s.bind((name, 0))
        socks.append(s)
    rng = random.Random()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        held: list[tuple[float, bytes]] = []
        cond = threading.Condition()

        def sender() -> None:
            while True:
                with cond:
                    while not held:
                        cond.wait()
                    due, frame = held.pop(0)
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the emulated latency itself
                try:
                    dst.send(frame)
                except OSError as e:  # the other side is down: lost, as on a wire
                    print(f"frame of {len(frame)} bytes not passed on: {e}", file=sys.stderr)

        threading.Thread(target=sender, daemon=True).start()
        while True:
            frame, addr = src.recvfrom(70000)
            if addr[2] == packet_outgoing or rng.random() < loss:
                continue  # our own copy going out, or a dropped frame
            with cond:
                held.append((time.monotonic() + delay, frame))
                cond.notify()

    threading.Thread(target=pump, args=(socks[0], socks[1]), daemon=True).start()
    print("forwarding", flush=True)
    pump(socks[1], socks[0])


# ---------------------------------------------------------------------- the namespaces


def _why_not_available() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"snprobe{os.getpid()}"
    try:
        r = subprocess.run(
            ["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns` does not work here: {e}"
    if r.returncode != 0:
        return f"`ip netns add` does not work here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no route of this machine touches."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    used = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        if word and word[0].isdigit():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    rng = random.Random(os.getpid())
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{rng.randrange(100, 250)}.{rng.randrange(1, 250)}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free 10.x.y.0/24 for the test network")


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")


def _http(url: str, doc: Any, timeout: float = 5.0) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(doc).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_UNVERIFIED) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(what: str, pred: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    """Poll ``pred`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


class NetnsNet:
    """A registry in a hub namespace and one node per namespace, joined by a bridge."""

    def __init__(self, root: Path, subnet: ipaddress.IPv4Network) -> None:
        self.dir = root
        self.tag = f"sn{os.getpid() % 100000}"
        self.hub = f"{self.tag}h"
        hosts = list(subnet.hosts())
        self.hub_ip = str(hosts[0])
        self.root_ip = str(hosts[-1])
        self.prefix = subnet.prefixlen
        self.node_ips = [str(hosts[9 + i]) for i in range(NODES)]
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.node_procs: dict[int, subprocess.Popen[bytes]] = {}
        self.forwarders: dict[int, subprocess.Popen[bytes]] = {}
        self.registry_url = ""
        self._logs: list[Any] = []

    # -- topology
    def ns(self, i: int) -> str:
        return f"{self.tag}n{i}"

    def build(self) -> None:
        _ip("netns", "add", self.hub)
        self.namespaces.append(self.hub)
        _ip("link", "set", "lo", "up", ns=self.hub)
        _ip("link", "add", "br0", "type", "bridge", ns=self.hub)
        # One frame per packet everywhere (no GSO super-frames, which the forwarder could not
        # pass on): the bridge's own traffic (the registry), the root side, every node.
        _ip("link", "set", "br0", "gso_max_segs", "1", ns=self.hub)
        _ip("addr", "add", f"{self.hub_ip}/{self.prefix}", "dev", "br0", ns=self.hub)
        _ip("link", "set", "br0", "up", ns=self.hub)
        # the root namespace (the test's clients) joins the bridge like one more host
        _ip(
            "link", "add", f"{self.tag}r", "type", "veth", "peer", "name", "root", "netns", self.hub
        )
        _ip("link", "set", f"{self.tag}r", "gso_max_segs", "1")
        _ip("addr", "add", f"{self.root_ip}/{self.prefix}", "dev", f"{self.tag}r")
        _ip("link", "set", f"{self.tag}r", "up")
        _ip("link", "set", "root", "master", "br0", "up", ns=self.hub)
        for i in range(NODES):
            ns = self.ns(i)
            _ip("netns", "add", ns)
            self.namespaces.append(ns)
            _ip("link", "set", "lo", "up", ns=ns)
            _ip(
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                f"n{i}",
                "netns",
                self.hub,
                ns=ns,
            )
            _ip("link", "set", "eth0", "gso_max_segs", "1", ns=ns)
            _ip("addr", "add", f"{self.node_ips[i]}/{self.prefix}", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            _ip("link", "set", f"n{i}", "master", "br0", "up", ns=self.hub)

    def _log(self, name: str) -> Any:
        d = self.dir / name
        d.mkdir(parents=True, exist_ok=True)
        f = open(d / "process.log", "ab")
        self._logs.append(f)
        return f

    def start_registry(self) -> None:
        cmd = [
            "ip",
            "netns",
            "exec",
            self.hub,
            sys.executable,
            "-m",
            "session.registry",
            "--host",
            self.hub_ip,
            "--port",
            "22030",
            "--data-dir",
            str(self.dir / "registry"),
            "--seed",
            "netfaults",
            "--log-level",
            "warning",
            "--devnet-chain",
        ]
        p = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log("registry"), stdin=subprocess.DEVNULL
        )
        self.procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline()  # the registry prints its ready line or exits
        ready = json.loads(line)
        self.registry_url = ready["url"]
        self.chain = ready["chain"]
        self.staked: set[int] = set()

    def stake(self, i: int) -> bool:
        """Stake node ``i`` through the registry's chain once it has its keys and listens
        (the registry lists only staked nodes); True once staked."""
        if i in self.staked:
            return True
        if not (self.dir / f"node-{i}" / "ready.json").exists():
            return False
        from web3 import HTTPProvider, Web3

        from session.node import keys
        from session.registry.staking import (
            Operator,
            devnet_key,
            fund_and_stake,
            new_account,
            operator_key,
        )

        c = self.chain
        # the hub's address is not loopback: the registry's self-signed certificate is known
        w3 = Web3(HTTPProvider(self.registry_url + "/chain", request_kwargs={"verify": False}))
        op = Operator(w3, c["contract"], new_account(operator_key("netfaults", i)),
                      chain_id=c["chain_id"], token=c["token"])  # fmt: skip
        payload = op.payload(keys.load(self.dir / f"node-{i}"), public_ip=self.node_ips[i],
                             storage_port=22021, storage_lmq_port=22020,
                             amount=25_000 * 10 ** c["decimals"])  # fmt: skip
        fund_and_stake(w3, new_account(devnet_key("netfaults", "deployer")), [(op, payload)])
        self.staked.add(i)
        return True

    def start_node(self, i: int) -> None:
        d = self.dir / f"node-{i}"
        (d / "ready.json").unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_NODE_")}
        env.update(
            {
                "SESSION_NODE_DATA_DIR": str(d),
                "SESSION_NODE_NETWORK__LISTEN_HOST": self.node_ips[i],
                "SESSION_NODE_NETWORK__PUBLIC_IP": self.node_ips[i],
                "SESSION_NODE_REGISTRY__URL": self.registry_url,
                "SESSION_NODE_REGISTRY__POLL_INTERVAL": "0.5",
                "SESSION_NODE_LOGGING__LEVEL": "warning",
                "SESSION_NODE_LOGGING__FORMAT": "json",
                "SESSION_NODE_SHUTDOWN_TIMEOUT": "3",
                "SESSION_NODE_NETWORK__PROXY_PUBLIC": "false",
            }
        )
        cmd = [
            "ip",
            "netns",
            "exec",
            self.ns(i),
            sys.executable,
            "-m",
            "session.node",
            "--ready-file",
            str(d / "ready.json"),
        ]
        p = subprocess.Popen(
            cmd,
            env=env,
            stdout=self._log(f"node-{i}"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.procs.append(p)
        self.node_procs[i] = p

    def url(self, i: int) -> str:
        return f"https://{self.node_ips[i]}:22021"

    def rpc(self, i: int, method: str, params: Any, timeout: float = 5.0) -> tuple[int, Any]:
        return _http(self.url(i) + "/storage_rpc/v1", {"method": method, "params": params}, timeout)

    def keys(self, i: int) -> tuple[str, bytes]:
        """Node ``i``'s Ed25519 (hex) and X25519 keys, as the registry lists them."""
        _, doc = _http(
            self.registry_url + "/json_rpc",
            {"jsonrpc": "2.0", "id": 0, "method": "get_n_service_nodes", "params": {}},
        )
        for e in doc["result"]["service_node_states"]:
            if e["public_ip"] == self.node_ips[i]:
                return e["pubkey_ed25519"], bytes.fromhex(e["pubkey_x25519"])
        raise AssertionError(f"the registry does not list node-{i}")

    def relay_answer(self, via: int, to: int) -> tuple[int, bytes]:
        """What node ``via`` answers when asked to relay an onion to node ``to`` (0 when it
        does not answer within a few seconds)."""
        from session import onion

        ed, x = self.keys(via)
        frame, _ = onion.build(
            [onion.Hop(ed, x)],
            onion.NodeDestination(*self.keys(to)),
            b'{"method": "info", "params": {}}',
        )
        req = urllib.request.Request(self.url(via) + "/onion_req/v2", data=frame, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5, context=_UNVERIFIED) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (TimeoutError, urllib.error.URLError):
            return 0, b""

    def wait_noticed(self, cut: int) -> None:
        """Wait until every other node names ``cut`` unreachable when asked to relay to it:
        its links to the cut node closed (heartbeats stopped) and it says so at once."""
        from session.proto.onion_status import named_next_node

        ed, _ = self.keys(cut)

        def noticed(i: int) -> None:
            wait_until(
                f"node-{i} noticing that node-{cut} is cut off",
                lambda: named_next_node(*self.relay_answer(i, cut)) == ed,
                20,
            )

        with ThreadPoolExecutor(NODES) as pool:
            list(pool.map(noticed, [i for i in range(NODES) if i != cut]))

    def node_ready(self, i: int) -> bool:
        p = self.node_procs[i]
        if p.poll() is not None:
            raise AssertionError(f"node-{i} exited with {p.returncode} (see {self.dir}/node-{i})")
        if not (self.dir / f"node-{i}" / "ready.json").exists():
            return False
        try:
            status, body = self.rpc(i, "get_swarm", {"pubkey": "05" + "00" * 32}, timeout=2.0)
        except OSError:
            return False
        return status == 200 and len(body.get("snodes", [])) == NODES

    # -- faults
    def partition(self, i: int) -> None:
        """Node ``i``'s cable is pulled: nothing reaches it, it reaches nothing (checked)."""
        _ip("link", "set", f"n{i}", "down", ns=self.hub)
        try:
            self.rpc(i, "info", {}, timeout=1.0)
        except OSError:
            return
        raise AssertionError(f"node-{i} still answers after its link went down")

    def heal(self, i: int) -> None:
        _ip("link", "set", f"n{i}", "up", ns=self.hub)

    def impair_link(self, i: int, delay: float, loss: float) -> None:
        """Node ``i``'s link gains ``delay`` seconds each way and loses ``loss`` of its frames:
        its veth leaves the bridge and a forwarder copies frames to a new bridge port."""
        _ip("link", "set", f"n{i}", "nomaster", ns=self.hub)
        _ip("link", "add", f"q{i}", "type", "veth", "peer", "name", f"r{i}", ns=self.hub)
        _ip("link", "set", f"q{i}", "master", "br0", "up", ns=self.hub)
        for dev in (f"r{i}", f"n{i}"):
            _ip("link", "set", dev, "promisc", "on", "up", ns=self.hub)
        p = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.hub,
                sys.executable,
                __file__,
                "forward",
                f"n{i}",
                f"r{i}",
                str(delay),
                str(loss),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log(f"forwarder-{i}"),
        )
        self.procs.append(p)
        self.forwarders[i] = p
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"forwarding", f"forwarder for node-{i} did not start"

    def restore_link(self, i: int) -> None:
        p = self.forwarders.pop(i)
        p.terminate()
        p.wait(10)
        _ip("link", "del", f"q{i}", ns=self.hub)
        _ip("link", "set", f"n{i}", "master", "br0", ns=self.hub)

    # -- teardown
    def close(self) -> None:
        """Stop every process, then remove the namespaces and the root side's link."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", f"{self.tag}r"], capture_output=True, timeout=20)
        for f in self._logs:
            f.close()


@pytest.fixture(scope="module")
def netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsNet]:
    why = _why_not_available()
    if why is not None:
        pytest.skip(why)
    net = NetnsNet(tmp_path_factory.mktemp("netfaults"), _free_subnet())
    try:
        net.build()
        net.start_registry()
        for i in range(NODES):
            net.start_node(i)
        wait_until(
            "every node ready and in the swarm",
            lambda: (
                all([net.stake(i) for i in range(NODES)])
                and all([net.node_ready(i) for i in range(NODES)])
            ),
            timeout=45,
        )
        yield net
    finally:
        net.close()


# ---------------------------------------------------------------------- the tests


def store(net: NetnsNet, at: int, account: Any, data: bytes) -> str:
    from session.testing.http import store_request

    doc = store_request(account.session_id, data)
    status, body = net.rpc(at, doc["method"], doc["params"], timeout=20.0)
    assert status == 200, body
    return str(body["hash"])


def held(net: NetnsNet, at: int, account: Any) -> set[str] | None:
    """The hashes node ``at`` holds for ``account``; None while it says it is still catching
    up with its swarm (it answers 503 rather than from a partial mailbox)."""
    from session.testing.http import retrieve_request

    doc = retrieve_request(account)
    status, body = net.rpc(at, doc["method"], doc["params"], timeout=10.0)
    if status == 503 and b"catching up" in body:
        return None
    assert status == 200, body
    return {m["hash"] for m in body["messages"]}


def holds_all(net: NetnsNet, at: int, account: Any, hashes: set[str]) -> bool:
    got = held(net, at, account)
    return got is not None and hashes <= got


async def expect(
    stream: Any, kind: type, n: int, timeout: float, context: Callable[[], str]
) -> list[Any]:
    """The next ``n`` events of ``kind`` from a client's event stream, within ``timeout``."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        try:
            ev = await asyncio.wait_for(anext(stream), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError(
                f"{len(got)} of {n} {kind.__name__} within {timeout:.0f} s ({context()})"
            ) from None
        if isinstance(ev, kind):
            got.append(ev)
    return got


async def alice_to_bob(netns: NetnsNet, tmp_path: Path, count: int, why: str) -> None:
    """Two clients in the root namespace: Alice sends ``count`` messages, Bob receives them.
    The clients draw every onion path and swarm member themselves."""
    from session.client import Client, MessageReceived, MessageSent

    async with (
        Client.open(tmp_path / "alice", netns.registry_url, poll_interval=0.3) as alice,
        Client.open(tmp_path / "bob", netns.registry_url, poll_interval=0.3) as bob,
    ):
        sent_events, received_events = alice.events(), bob.events()
        texts = [f"message {k} {why}" for k in range(count)]
        ids = [await alice.send(bob.session_id, t) for t in texts]

        def context() -> str:
            return f"Alice left out {len(alice.failed_nodes)} nodes, Bob {len(bob.failed_nodes)}"

        sent = await expect(sent_events, MessageSent, count, 40, context)
        assert sorted(e.message_id for e in sent) == sorted(ids)
        # Bound: generous for a loaded machine. A request whose first hop is the cut node waits
        # out the client's own request timeout before it goes around it (a relay names a cut
        # next node at once, and fails one in flight when the heartbeats drop the link).
        received = await expect(received_events, MessageReceived, count, 50, context)
        assert sorted(e.body for e in received) == sorted(texts)


async def test_clients_deliver_around_a_partitioned_node(netns: NetnsNet, tmp_path: Path) -> None:
    cut = 4
    netns.partition(cut)
    try:
        await asyncio.to_thread(netns.wait_noticed, cut)
        # the cut node is still listed: paths and swarm members through it fail (the relay
        # before it names it), and the clients go around it
        await alice_to_bob(netns, tmp_path, 2, f"while node-{cut} is cut off")
    finally:
        netns.heal(cut)


async def test_clients_deliver_over_a_slow_lossy_link(netns: NetnsNet, tmp_path: Path) -> None:
    from session.identity import Identity

    slow = 3
    netns.impair_link(slow, DELAY, LOSS)
    try:
        # the slow node answers over its link (TCP retransmits what is lost), its stores reach
        # the swarm, and the latency is really there: a request costs at least one added round trip
        probe = Identity.generate()
        t0 = time.monotonic()
        h = await asyncio.to_thread(store, netns, slow, probe, b"over a slow link")
        assert time.monotonic() - t0 >= 2 * DELAY
        await asyncio.to_thread(
            wait_until,
            "the slow node's store served by another member",
            lambda: holds_all(netns, 0, probe, {h}),
            20,
        )
        await alice_to_bob(netns, tmp_path, 1, f"while node-{slow} is slow and lossy")
    finally:
        netns.restore_link(slow)


def test_partitioned_node_catches_up_when_it_returns(netns: NetnsNet) -> None:
    from session.identity import Identity

    cut = 2
    account = Identity.generate()
    netns.partition(cut)
    try:
        with ThreadPoolExecutor(4) as pool:  # each store waits on the cut member a while
            hashes = set(
                pool.map(
                    lambda k: store(netns, k % 2, account, f"while cut off: {k}".encode()), range(8)
                )
            )
        wait_until(
            "a live member serving every acknowledged message",  # (it may be catching up)
            lambda: holds_all(netns, 1, account, hashes),
            timeout=20,
        )
    finally:
        netns.heal(cut)
    wait_until(
        f"node-{cut} holding every message stored while it was cut off",
        lambda: holds_all(netns, cut, account, hashes),
        timeout=20,
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "forward":
    forward(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
