"""The devnet's processes: one registry and N service nodes on 127.0.0.1 (see
:mod:`session.devnet`).

Ports: unless ``base_port`` fixes them, every process binds port 0 and reports the ports it got
(the registry in its JSON ready line on stdout, a node in the file named by its
``--ready-file``), so no port is ever probed, closed and handed over. A restarted node asks for
the ports it had (the registry lists them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from session.community.config import join_url
from session.community.store import CommunityStore
from session.node import keys
from session.node.swarm_view import list_version
from session.proto.snodes import INVALID_SWARM_ID, CommunityServer, FileServer, parse_node_list
from session.registry.chain import connect
from session.registry.health import HealthRules
from session.registry.staking import (
    DECIMALS,
    Operator,
    devnet_key,
    fund_and_stake,
    new_account,
    operator_key,
)
from session.service.lifeline import lifeline_command, lifeline_pipe

#: A devnet's health rules: short windows, so a dead node is decommissioned within a minute
#: (20 s without a proof, or three testers failing it for 6 s) and back soon after a restart.
DEVNET_HEALTH = HealthRules(
    proof_timeout=20.0,
    unreachable_after=6.0,
    report_window=30.0,
    min_reporters=3,
    deregister_after=600.0,
    check_interval=1.0,
)

#: Health rules under which the registry decommissions no node within an hour (proofs and
#: reachability tests still run and are reported). For devnets whose tests kill, freeze and
#: restart members on purpose and then need every member in its swarm: under DEVNET_HEALTH the
#: registry acts on each tester's latest report, which can be one about an outage that is over
#: (a tester retests a failing node only after its back-off), so it may take a member out of
#: its swarm seconds after it restarted and served; the member then answers 503 until three
#: testers pass it again (about 10 s), whatever the test waits for beforehand.
#: (Decommissioning itself is tested with its own devnet: tests/integration/test_network_health.)
STEADY_HEALTH = HealthRules(
    proof_timeout=3600.0,
    unreachable_after=3600.0,
    report_window=3600.0,
    min_reporters=3,
    deregister_after=7200.0,
    check_interval=1.0,
)

_UNVERIFIED = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


class DevnetError(RuntimeError):
    """A devnet process did not start, or did not become ready in time."""


def _http(url: str, data: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(
            req, timeout=timeout, context=_UNVERIFIED if url.startswith("https") else None
        ) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class DevnetNode:
    """One node process of a devnet (ports are 0 until the node reports the ones it bound)."""

    def __init__(
        self, index: int, data_dir: Path, host: str, https_port: int, zmq_port: int, admin_port: int
    ) -> None:
        self.index = index
        self.name = f"node-{index:02d}"
        self.data_dir = data_dir
        self.host = host
        self.https_port = https_port
        self.zmq_port = zmq_port
        self.admin_port = admin_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.pubkey_ed25519: str | None = None
        self.pubkey_x25519: str | None = None
        #: the node's registration on the staking contract (0: not staked yet)
        self.registration = 0

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def ready_file(self) -> Path:
        """Where the node writes the ports it listens on, once it listens."""
        return self.data_dir / "ready.json"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def read_ports(self) -> bool:
        """Take the ports from the node's ready file; False while it has not written it."""
        try:
            doc = json.loads(self.ready_file.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as e:
            raise DevnetError(f"{self.name} wrote an unreadable ready file: {e}") from None
        self.https_port = int(doc["https_port"])
        self.zmq_port = int(doc["zmq_port"])
        self.admin_port = int(doc["admin_port"])
        return True

    def ready(self) -> bool:
        """True once the node reported its ports and its ``/readyz`` answers 200."""
        if not self.admin_port and not self.read_ports():
            return False
        try:
            status, _ = _http(self.admin_url + "/readyz", timeout=2.0)
        except OSError:
            return False
        return status == 200

    def __repr__(self) -> str:
        return f"DevnetNode({self.name}, https={self.https_port}, running={self.running})"


class DevnetFileServer:
    """The devnet's file server process (``python -m session.fileserver run``), its data under
    ``DIR/fileserver/``; ``port`` is 0 until it reports the one it bound, then kept across
    restarts."""

    def __init__(self, data_dir: Path, host: str, port: int) -> None:
        self.name = "fileserver"
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.pubkey_ed25519 = ""
        self.pubkey_x25519 = ""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def entry(self) -> FileServer:
        """What ``nodes.json`` lists for it (``file_servers``)."""
        return FileServer(self.url, self.pubkey_ed25519, self.pubkey_x25519)

    def __repr__(self) -> str:
        return f"DevnetFileServer({self.url}, running={self.running})"


class DevnetCommunity:
    """The devnet's community server (``python -m session.community run``, plain HTTP as
    Session's community URLs usually are), its data under ``DIR/community/``, with a room
    ``lobby``; ``port`` is 0 until it reports the one it bound, then kept across restarts."""

    ROOMS: ClassVar[dict[str, str]] = {"lobby": "Lobby"}

    def __init__(self, data_dir: Path, host: str, port: int) -> None:
        self.name = "community"
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.public_key = ""  # X25519, the join URLs' public_key
        self.pubkey_ed25519 = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def entry(self) -> CommunityServer:
        """What ``nodes.json`` lists for it (``community_servers``)."""
        rooms = {t: join_url(self.url, t, self.public_key) for t in self.ROOMS}
        return CommunityServer(self.url, self.public_key, self.pubkey_ed25519, rooms)

    def ensure_rooms(self) -> None:
        """Create the devnet's rooms (before the server starts; kept across restarts)."""
        store = CommunityStore(self.data_dir / "store")
        try:
            have = {r.token for r in store.rooms()}
            for token, name in self.ROOMS.items():
                if token not in have:
                    store.add_room(token, name, "The devnet's room")
        finally:
            store.close()

    def __repr__(self) -> str:
        return f"DevnetCommunity({self.url}, running={self.running})"


class Devnet:
    """A registry and ``nodes`` service nodes on loopback (see the module docstring)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        nodes: int = 3,
        *,
        host: str = "127.0.0.1",
        seed: str = "devnet",
        stake: int = 25_000,
        poll_interval: float = 1.0,
        log_level: str = "warning",
        uvloop: bool = True,
        ready_timeout: float = 60.0,
        base_port: int | None = None,
        extra_env: dict[str, str] | None = None,
        proxy_allow: Sequence[str] = (),
        file_server: bool = True,
        community: bool = True,
        name_term: int | None = None,
        health: HealthRules = DEVNET_HEALTH,
        proof_interval: float = 2.0,
        test_interval: float = 2.0,
        unlock_blocks: int = 4,
    ) -> None:
        if nodes < 0:
            raise ValueError("nodes must not be negative")
        self.dir = Path(data_dir).absolute()
        self.initial = nodes
        self.host = host
        self.seed = seed
        self.stake = stake
        self.poll_interval = poll_interval
        self.log_level = log_level
        self.uvloop = uvloop
        self.ready_timeout = ready_timeout
        self.extra_env = dict(extra_env or {})
        self.proxy_allow = list(proxy_allow)  # "host:port" of the servers nodes may proxy to
        self.name_term = name_term  # seconds a name registration lasts (None: the registry's)
        self._next_port = base_port
        #: the registry's health rules, and how often nodes prove and test (seconds)
        self.health = health
        self.proof_interval = proof_interval
        self.test_interval = test_interval
        self.unlock_blocks = unlock_blocks
        #: the devnet chain as the registry described it (rpc, chain_id, contract, token, ...)
        self.chain: dict[str, Any] = {}
        self._w3: Any = None
        self.nodes: list[DevnetNode] = []
        self.registry_proc: subprocess.Popen[bytes] | None = None
        self.registry_url = ""
        #: The devnet's file server (started before the nodes, which may proxy to it).
        self.file_server: DevnetFileServer | None = (
            DevnetFileServer(self.dir / "fileserver", host, 0) if file_server else None
        )
        #: The devnet's community server (started before the nodes, which may proxy to it).
        self.community: DevnetCommunity | None = (
            DevnetCommunity(self.dir / "community", host, 0) if community else None
        )
        self._lock = threading.RLock()
        self._logs: list[Any] = []
        #: the lifeline pipe every child watches (session.service.lifeline): its write end
        #: is held by this process alone, so the children stop when it dies, however it dies
        self._lifeline: tuple[int, int] | None = None

    # ------------------------------------------------------------------ ports and processes
    def _port(self) -> int:
        """The next fixed port (``base_port`` counting up), or 0: the process picks one."""
        if self._next_port is None:
            return 0
        p = self._next_port
        self._next_port += 1
        return p

    def _command(self, module: str, *args: str) -> list[str]:
        """``python -P -m module args...``, run so that it ends when this process does."""
        if self._lifeline is None:
            self._lifeline = lifeline_pipe()
        return lifeline_command(self._lifeline[0], module, *args)

    def _popen(
        self, cmd: list[str], env: dict[str, str], *, stdout: Any, stderr: Any
    ) -> subprocess.Popen[bytes]:
        """Start a child made by :meth:`_command` (its lifeline's read end passed on)."""
        assert self._lifeline is not None
        return subprocess.Popen(
            cmd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            pass_fds=(self._lifeline[0],),
        )

    def _log(self, d: Path) -> Any:
        d.mkdir(parents=True, exist_ok=True)
        f = open(d / "process.log", "ab")
        self._logs.append(f)
        return f

    def start(self) -> Devnet:
        """Start the registry and the initial nodes; returns once every node is ready."""
        self.dir.mkdir(parents=True, exist_ok=True)
        started = False
        self._spawn_registry()
        try:
            # the registry's chain starts meanwhile (imports, deployment: ~2 s): read its ready
            # line after the servers that do not need it
            if self.file_server is not None:
                self.file_server.port = self._port()
                self.start_file_server()
                self.proxy_allow.append(f"{self.file_server.host}:{self.file_server.port}")
            if self.community is not None:
                self.community.port = self._port()
                self.start_community()
                self.proxy_allow.append(f"{self.community.host}:{self.community.port}")
            self._registry_ready()
            for _ in range(self.initial):
                self._spawn(self._new_node())
            self._wait_all_ready()
            self.wait_converged()
            started = True
        finally:
            if not started:  # whatever stopped the start (an error, Ctrl-C): nothing left running
                self.stop()
        self.write_nodes_json()
        return self

    def _spawn_registry(self) -> None:
        """Start the registry process (:meth:`_registry_ready` waits for its ready line)."""
        rdir = self.dir / "registry"
        rdir.mkdir(parents=True, exist_ok=True)
        port = self._port()
        cmd = self._command(
            "session.registry",
            "--host",
            self.host,
            "--port",
            str(port),
            "--data-dir",
            str(rdir),
            "--seed",
            self.seed,
            "--log-level",
            self.log_level,
            "--devnet-chain",
            "--unlock-blocks",
            str(self.unlock_blocks),
        )
        if self.name_term is not None:
            cmd += ["--name-term", str(self.name_term)]
        env = dict(os.environ)
        for field in dataclasses.fields(HealthRules):
            env[f"SESSION_REGISTRY_HEALTH__{field.name.upper()}"] = str(
                getattr(self.health, field.name)
            )
        self.registry_proc = self._popen(cmd, env, stdout=subprocess.PIPE, stderr=self._log(rdir))

    def _registry_ready(self) -> None:
        """Read the registry's ready line: its URL and the devnet chain it runs."""
        rdir = self.dir / "registry"
        assert self.registry_proc is not None
        line = self._read_line(self.registry_proc, self.ready_timeout)
        try:
            doc = json.loads(line)
            self.registry_url = doc["url"]
            self.chain = dict(doc["chain"])
        except (ValueError, KeyError, TypeError):
            raise DevnetError(
                f"registry did not start (see {rdir / 'process.log'}): {line!r}"
            ) from None
        self._w3 = connect(self.chain["rpc"])

    # ------------------------------------------------------------------ the staking contract
    def operator(self, node: DevnetNode | int) -> Operator:
        """The operator account that stakes ``node`` (one per node, derived from the seed)."""
        n = self._node(node)
        return Operator(
            self._w3,
            self.chain["contract"],
            new_account(operator_key(self.seed, n.index)),
            chain_id=int(self.chain["chain_id"]),
            token=self.chain["token"],
        )

    def stake_nodes(self, nodes: Sequence[DevnetNode | int], tokens: int | None = None) -> None:
        """Fund each node's operator account and stake ``tokens`` (default: the devnet's stake)
        for it through the contract, signed by the node's key (one batch for all of them)."""
        items = []
        for node in nodes:
            n = self._node(node)
            op = self.operator(n)
            payload = op.payload(
                keys.load(n.data_dir),
                public_ip=self.host,
                storage_port=n.https_port,
                storage_lmq_port=n.zmq_port,
                amount=(self.stake if tokens is None else tokens) * 10**DECIMALS,
            )
            items.append((op, payload))
        deployer = new_account(devnet_key(self.seed, "deployer"))
        rids = fund_and_stake(self._w3, deployer, items)
        for node, rid in zip(nodes, rids, strict=True):
            self._node(node).registration = rid

    def exit_node(self, node: DevnetNode | int) -> int:
        """Request the node's exit on the contract and let the unlock period pass (mine that
        many blocks); returns the unlock block. The registry drops the node at that block."""
        n = self._node(node)
        if not n.registration:
            raise DevnetError(f"{n.name} is not staked")
        receipt = self.operator(n).request_exit(n.registration)
        self.mine(int(self.chain["unlock_blocks"]))
        return int(receipt["blockNumber"]) + int(self.chain["unlock_blocks"])

    def withdraw(self, node: DevnetNode | int) -> None:
        """Withdraw the node's stake back to its operator (after :meth:`exit_node`)."""
        n = self._node(node)
        self.operator(n).withdraw(n.registration)

    def mine(self, blocks: int) -> None:
        """Mine empty blocks on the devnet chain (time passing, for unlock periods)."""
        answer = self._w3.provider.make_request("evm_mine", [blocks])
        if "error" in answer:
            raise DevnetError(f"the devnet chain did not mine: {answer['error']}")

    def locked_tokens(self) -> int:
        """Whole tokens the staking contract holds."""
        op_token = self.operator(0).token if self.nodes else None
        if op_token is None:
            return 0
        return int(op_token.functions.balanceOf(self.chain["contract"]).call()) // 10**DECIMALS

    def start_file_server(self) -> DevnetFileServer:
        """Start (or restart, same port and data) the file server; returns once it listens."""
        fs = self.file_server
        if fs is None:
            raise DevnetError("this devnet was made without a file server")
        if fs.running:
            return fs
        fs.proc, doc = self._start_server(
            "file server", "session.fileserver", fs.data_dir, fs.host, fs.port, []
        )
        fs.port, fs.pubkey_ed25519, fs.pubkey_x25519 = doc
        return fs

    def start_community(self) -> DevnetCommunity:
        """Start (or restart, same port and data) the community server; returns once it
        listens."""
        cs = self.community
        if cs is None:
            raise DevnetError("this devnet was made without a community server")
        if cs.running:
            return cs
        cs.data_dir.mkdir(parents=True, exist_ok=True)
        cs.ensure_rooms()
        extra = ["--no-tls", "--admin-port", "-1"]
        cs.proc, doc = self._start_server(
            "community server", "session.community", cs.data_dir, cs.host, cs.port, extra
        )
        cs.port, cs.pubkey_ed25519, cs.public_key = doc
        return cs

    def _start_server(
        self, what: str, module: str, data_dir: Path, host: str, port: int, extra: list[str]
    ) -> tuple[subprocess.Popen[bytes], tuple[int, str, str]]:
        """Start ``python -m <module> run`` (a file or community server) on ``host:port``
        with its data in ``data_dir``; returns the process and the (port, Ed25519 key, X25519
        key) of its ready line."""
        data_dir.mkdir(parents=True, exist_ok=True)
        prefix = "SESSION_" + module.rsplit(".", 1)[1].upper() + "_"
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
        cmd = self._command(
            module, "run", "--data-dir", str(data_dir),
            "--listen-host", host, "--port", str(port), *extra,
            "--log-level", self.log_level, "--log-format", "json",
        )  # fmt: skip
        proc = self._popen(cmd, env, stdout=subprocess.PIPE, stderr=self._log(data_dir))
        line = self._read_line(proc, self.ready_timeout)
        try:
            doc = json.loads(line)
            got = (int(doc["url"].rsplit(":", 1)[1]), doc["pubkey_ed25519"], doc["pubkey_x25519"])
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise DevnetError(
                f"{what} did not start (see {data_dir / 'process.log'}): {line!r}"
            ) from None
        return proc, got

    def stop_community(self, *, kill: bool = False) -> int | None:
        """Stop the community server (SIGTERM, or SIGKILL: a crash); returns its exit code."""
        cs = self.community
        return None if cs is None else stop_process(cs.proc, kill=kill)

    def stop_file_server(self, *, kill: bool = False) -> int | None:
        """Stop the file server (SIGTERM, or SIGKILL: a crash); returns its exit code."""
        fs = self.file_server
        return None if fs is None else stop_process(fs.proc, kill=kill)

    @staticmethod
    def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
        out: list[bytes] = []

        def reader() -> None:
            assert proc.stdout is not None
            out.append(proc.stdout.readline())

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        return out[0].decode(errors="replace").strip() if out else ""

    def _new_node(self) -> DevnetNode:
        with self._lock:
            index = len(self.nodes)
            node = DevnetNode(
                index,
                self.dir / f"node-{index:02d}",
                self.host,
                self._port(),
                self._port(),
                self._port(),
            )
            self.nodes.append(node)
            return node

    def _node_env(self, node: DevnetNode) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_NODE_")}
        env.update(
            {
                "SESSION_NODE_DATA_DIR": str(node.data_dir),
                "SESSION_NODE_NETWORK__LISTEN_HOST": self.host,
                "SESSION_NODE_NETWORK__PUBLIC_IP": self.host,
                "SESSION_NODE_NETWORK__HTTPS_PORT": str(node.https_port),
                "SESSION_NODE_NETWORK__ZMQ_PORT": str(node.zmq_port),
                "SESSION_NODE_ADMIN__PORT": str(node.admin_port),
                "SESSION_NODE_REGISTRY__URL": self.registry_url,
                "SESSION_NODE_REGISTRY__STAKE": str(self.stake),
                "SESSION_NODE_REGISTRY__POLL_INTERVAL": str(self.poll_interval),
                "SESSION_NODE_LOGGING__LEVEL": self.log_level,
                "SESSION_NODE_LOGGING__FORMAT": "json",
                "SESSION_NODE_SHUTDOWN_TIMEOUT": "5",
                "SESSION_NODE_NETWORK__PROXY_PUBLIC": "false",
                "SESSION_NODE_NETWORK__PROXY_ALLOW": ",".join(self.proxy_allow),
                "SESSION_NODE_HEALTH__PROOF_INTERVAL": str(self.proof_interval),
                "SESSION_NODE_HEALTH__TEST_INTERVAL": str(self.test_interval),
                "SESSION_NODE_HEALTH__TEST_TIMEOUT": "3",
                # every client of a devnet connects from this one address: the per-address
                # rate of new connections (a guard against strangers) would throttle them all
                "SESSION_NODE_CONNECTIONS__NEW_CONNECTIONS_PER_SECOND": "1000000",
                "SESSION_NODE_CONNECTIONS__NEW_CONNECTIONS_BURST": "1000000",
            }
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, node: DevnetNode) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.ready_file.unlink(missing_ok=True)
        cmd = self._command("session.node", "--ready-file", str(node.ready_file))
        if not self.uvloop:
            cmd.append("--no-uvloop")
        node.proc = self._popen(
            cmd, self._node_env(node), stdout=self._log(node.data_dir), stderr=subprocess.STDOUT
        )

    # ------------------------------------------------------------------ readiness
    def node_list(self) -> dict[str, Any]:
        """The registry's complete ``get_n_service_nodes`` JSON-RPC response."""
        status, body = _http(
            self.registry_url + "/json_rpc",
            json.dumps(
                {"jsonrpc": "2.0", "id": 0, "method": "get_n_service_nodes", "params": {}}
            ).encode(),
        )
        if status != 200:
            raise DevnetError(f"registry answered {status}: {body[:200]!r}")
        return json.loads(body)

    def _listed(self) -> dict[int, dict[str, Any]]:
        """storage_port → entry of every node the registry lists in a swarm."""
        states = self.node_list()["result"]["service_node_states"]
        return {
            e["storage_port"]: e
            for e in states
            if e.get("swarm_id", INVALID_SWARM_ID) != INVALID_SWARM_ID
        }

    def _wait_ready(self, nodes: list[DevnetNode], timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        pending = list(nodes)
        while pending:
            for n in list(pending):
                if not n.running:
                    raise DevnetError(
                        f"{n.name} exited with {n.proc.returncode if n.proc else '?'} "
                        f"(see {n.data_dir / 'process.log'})"
                    )
            # staked once it reports its ports (listed then, it finds its swarm)
            fresh = [n for n in pending if not n.registration and (n.admin_port or n.read_ports())]
            self.stake_nodes(fresh)
            for n in list(pending):
                if n.ready():
                    pending.remove(n)
            if pending and time.monotonic() > deadline:
                raise DevnetError(f"not ready in time: {', '.join(n.name for n in pending)}")
            if pending:
                time.sleep(0.1)
        # ... and listed by the registry with a swarm
        want = {n.https_port: n for n in nodes}
        while True:
            listed = self._listed()
            for port, n in want.items():
                if port in listed:
                    n.pubkey_ed25519 = listed[port]["pubkey_ed25519"]
                    n.pubkey_x25519 = listed[port]["pubkey_x25519"]
            if all(p in listed for p in want):
                return
            if time.monotonic() > deadline:
                raise DevnetError("the registry does not list every node in a swarm")
            time.sleep(0.1)

    def _wait_all_ready(self) -> None:
        self._wait_ready([n for n in self.nodes if n.running])

    def wait_converged(self, timeout: float | None = None) -> None:
        """Wait until every running node reports the registry's current node list version and
        serves reads (a starting member first catches up with its swarm); ``timeout`` None:
        the devnet's ``ready_timeout``."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while time.monotonic() < deadline:
            want = list_version(parse_node_list(self.node_list()))
            seen = set()
            for n in self.running_nodes():
                try:
                    _, body = _http(n.admin_url + "/metrics", timeout=2.0)
                except OSError:
                    seen.add("?")
                    continue
                if _metric_value(body, "session_node_catching_up") not in (None, 0.0):
                    seen.add("catching up")
                    continue
                seen.add(_metric_label(body, "session_node_list_info", "version"))
            if seen == {want}:
                return
            time.sleep(0.2)
        raise DevnetError("nodes did not converge on the registry's node list")

    # ------------------------------------------------------------------ membership changes
    def running_nodes(self) -> list[DevnetNode]:
        return [n for n in self.nodes if n.running]

    def add_node(self) -> DevnetNode:
        """Start one more node; returns once it is ready and listed."""
        node = self._new_node()
        self._spawn(node)
        self._wait_ready([node])
        self.wait_converged()
        self.write_nodes_json()
        return node

    def _node(self, node: DevnetNode | int) -> DevnetNode:
        return self.nodes[node] if isinstance(node, int) else node

    def deregister(self, node: DevnetNode | int) -> None:
        """Take the node off the node list by its exit on the staking contract (request, then
        the unlock period) and wait until the registry no longer lists it (it keeps running
        until stopped)."""
        n = self._node(node)
        self.exit_node(n)
        deadline = time.monotonic() + self.ready_timeout
        while n.https_port in self._listed():
            if time.monotonic() > deadline:
                raise DevnetError(f"the registry still lists {n.name} after its exit")
            time.sleep(0.1)

    def remove_node(
        self, node: DevnetNode | int, *, deregister: bool = True, grace: float | None = None
    ) -> None:
        """Take a node out of the network: run its exit on the contract, give the others
        ``grace`` seconds to take over its data (default: two poll intervals), stop it
        (SIGTERM) and withdraw its stake."""
        n = self._node(node)
        if deregister:
            self.deregister(n)
            time.sleep(grace if grace is not None else 2 * self.poll_interval + 0.5)
        self.stop_node(n)
        if deregister:
            self.withdraw(n)
        self.write_nodes_json()

    def stop_node(self, node: DevnetNode | int, timeout: float = 15.0) -> int | None:
        """SIGTERM one node and wait; returns its exit code."""
        n = self._node(node)
        if n.proc is None:
            return None
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGTERM)
            try:
                n.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait(5)
        return n.proc.returncode

    def kill_node(self, node: DevnetNode | int) -> None:
        """SIGKILL (a crash): no shutdown work at all."""
        n = self._node(node)
        if n.proc is not None and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait(5)

    def restart_node(self, node: DevnetNode | int) -> DevnetNode:
        """Start a stopped node again with the same data directory and ports."""
        n = self._node(node)
        if n.running:
            self.stop_node(n)
        self._spawn(n)
        self._wait_ready([n])
        self.wait_converged()
        return n

    # ------------------------------------------------------------------ output and shutdown
    def write_nodes_json(self) -> Path:
        path = self.dir / "nodes.json"
        tmp = path.with_suffix(".tmp")
        doc = self.node_list()
        doc["registry"] = self.registry_url  # where `session name register` sends requests
        doc["chain"] = {**self.chain, "height": doc["result"]["height"]}
        if self.file_server is not None:
            doc["file_servers"] = [self.file_server.entry.to_json()]
        if self.community is not None:
            doc["community_servers"] = [self.community.entry.to_json()]
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, path)
        return path

    def stop(self) -> None:
        """Stop every node (SIGTERM, in parallel), then the registry."""
        for n in self.nodes:
            if n.running:
                assert n.proc is not None
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n.proc is not None:
                try:
                    n.proc.wait(15)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
                    n.proc.wait(5)
        self.stop_file_server()
        self.stop_community()
        if self.registry_proc is not None and self.registry_proc.poll() is None:
            self.registry_proc.send_signal(signal.SIGTERM)
            try:
                self.registry_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.registry_proc.kill()
                self.registry_proc.wait(5)
        for f in self._logs:
            with contextlib.suppress(OSError):
                f.close()
        self._logs.clear()
        if self._lifeline is not None and not any(
            p is not None and p.poll() is None for p in self._procs()
        ):
            for fd in self._lifeline:
                os.close(fd)
            self._lifeline = None

    def _procs(self) -> list[subprocess.Popen[bytes] | None]:
        """Every child process this devnet started (None where not started)."""
        servers = [s.proc for s in (self.file_server, self.community) if s is not None]
        return [self.registry_proc, *servers, *(n.proc for n in self.nodes)]

    def exit_codes(self) -> dict[str, int | None]:
        """Exit codes of the nodes (the file server's: :meth:`stop_file_server`)."""
        return {n.name: (n.proc.returncode if n.proc else None) for n in self.nodes}

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen[bytes] | None, *, kill: bool = False) -> int | None:
    """Stop a server process (SIGTERM, or SIGKILL: a crash); returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        if kill:
            proc.kill()
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def _metric_value(body: bytes, metric: str) -> float | None:
    """The value of an unlabelled metric in a Prometheus text page, or None if absent."""
    for line in body.decode(errors="replace").splitlines():
        name, _, value = line.partition(" ")
        if name == metric:
            return float(value)
    return None


def _metric_label(body: bytes, metric: str, label: str) -> str:
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(metric + "{"):
            inside = line[len(metric) + 1 : line.index("}")]
            for part in inside.split(","):
                k, _, v = part.partition("=")
                if k == label:
                    return v.strip('"')
    return ""
