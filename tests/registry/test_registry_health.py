"""Network health at the registry: uptime proofs, reachability reports, decommissioning,
recommissioning and deregistration (session.registry.health), on a clock the test drives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from session.errors import ConfigError, InvalidInput, InvalidSignature, RegistryError
from session.identity import Identity
from session.proto.snodes import INVALID_SWARM_ID
from session.registry import client, server
from session.registry.config import load_settings
from session.registry.health import HealthRules, build_report, build_uptime_proof
from session.registry.messages import build_registration
from session.registry.state import Registry

RULES = HealthRules(
    proof_timeout=30.0,
    unreachable_after=10.0,
    report_window=60.0,
    min_reporters=3,
    deregister_after=300.0,
    check_interval=1.0,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Net:
    """A registry with ``n`` registered nodes, a clock, and helpers to prove and report."""

    def __init__(self, n: int, data_dir: Path | None = None, rules: HealthRules = RULES) -> None:
        self.clock = Clock()
        self.data_dir = data_dir
        self.rules = rules
        self.reg = self.open()
        self.ids = [Identity.from_seed(os.urandom(32)) for _ in range(n)]
        for i, ident in enumerate(self.ids):
            self.reg.register(self.registration(ident, i))

    def open(self) -> Registry:
        return Registry(self.data_dir, seed="health", clock=self.clock, health=self.rules)

    def ms(self) -> int:
        self.clock.t += 0.001
        return int(self.clock.t * 1000)

    def registration(self, ident: Identity, i: int) -> dict[str, Any]:
        return build_registration(
            ident,
            public_ip="10.0.0.1",
            storage_port=30000 + 2 * i,
            storage_lmq_port=30001 + 2 * i,
            stake=25_000,
            timestamp=self.ms(),
        )

    def key(self, i: int) -> str:
        return self.ids[i].ed25519_public.hex()

    def proof(self, i: int) -> dict[str, Any]:
        return build_uptime_proof(
            self.ids[i],
            version=(2, 8, 0),
            https_port=30000 + 2 * i,
            zmq_port=30001 + 2 * i,
            storage_bytes=4096,
            storage_max_bytes=1 << 30,
            timestamp=self.ms(),
        )

    def prove(self, *nodes: int) -> None:
        for i in nodes:
            self.reg.uptime_proof(self.proof(i))

    def report(self, tester: int, target: int, ok: bool) -> None:
        doc = build_report(
            self.ids[tester], self.key(target), https_ok=ok, link_ok=True, timestamp=self.ms()
        )
        self.reg.reachability_report(doc)

    def advance(self, seconds: float, *, proving: list[int]) -> None:
        """Let ``seconds`` pass in 5 s steps; the nodes in ``proving`` prove every step."""
        left = seconds
        while left > 0:
            step = min(5.0, left)
            self.clock.t += step
            left -= step
            self.prove(*proving)
            self.reg.check_health()

    def entry(self, i: int) -> dict[str, Any]:
        doc = self.reg.get_n_service_nodes({"service_node_pubkeys": [self.key(i)]})
        (e,) = doc["service_node_states"]
        return dict(e)


def test_silent_node_is_decommissioned_its_swarm_refilled_and_it_comes_back() -> None:
    net = Net(8)
    everyone = list(range(8))
    height = net.reg.height
    assert all(net.entry(i)["active"] for i in everyone)
    net.advance(20, proving=everyone)
    assert net.reg.height == height  # proofs alone change nothing
    alive = everyone[1:]
    net.advance(35, proving=alive)  # node 0 silent for 35 s > 30 s
    e = net.entry(0)
    assert e["active"] is False and e["swarm_id"] == INVALID_SWARM_ID
    assert e["decommission_count"] == 1
    assert net.reg.height == height + 1
    listed = net.reg.get_n_service_nodes({"active_only": True})["service_node_states"]
    assert net.key(0) not in {n["pubkey_ed25519"] for n in listed}
    assert all(n["swarm_id"] != INVALID_SWARM_ID for n in listed)  # the swarms are whole
    assert all(n["last_uptime_proof"] == int(net.clock.t) for n in listed)
    assert all(n["storage_server_version"] == [2, 8, 0] for n in listed)

    # proofs resume, but no test passed yet: still decommissioned
    net.advance(5, proving=everyone)
    assert net.entry(0)["active"] is False
    # two passing testers are not enough (min_reporters = 3) ...
    net.report(1, 0, True)
    net.report(2, 0, True)
    net.advance(1, proving=everyone)
    assert net.entry(0)["active"] is False
    # ... a third one recommissions it, into a swarm
    net.report(3, 0, True)
    net.advance(1, proving=everyone)
    e = net.entry(0)
    assert e["active"] is True and e["swarm_id"] != INVALID_SWARM_ID
    assert e["decommission_count"] == 1


def test_one_liar_evicts_no_one_and_three_testers_do() -> None:
    net = Net(8)
    everyone = list(range(8))
    # node 7 lies about everyone, for longer than any window
    for _ in range(30):
        for target in range(7):
            net.report(7, target, False)
        net.advance(5, proving=everyone)
    assert all(net.entry(i)["active"] for i in everyone)
    # a second liar: still not enough (min_reporters = 3)
    for _ in range(4):
        net.report(6, 0, False)
        net.report(7, 0, False)
        net.advance(5, proving=everyone)
    assert net.entry(0)["active"] is True
    # a third distinct tester, failing it long enough, decommissions it
    net.report(5, 0, False)
    net.advance(5, proving=everyone)
    assert net.entry(0)["active"] is True  # its failures do not yet span unreachable_after
    net.report(5, 0, False)
    net.advance(5, proving=everyone)
    net.report(5, 0, False)
    net.advance(1, proving=everyone)
    assert net.entry(0)["active"] is False
    assert "unreachable" in net.reg.health.nodes[net.key(0)].decommission_reason


def test_a_pass_resets_a_testers_run_and_old_reports_expire() -> None:
    net = Net(6)
    everyone = list(range(6))
    for t in (1, 2, 3):
        net.report(t, 0, False)
    net.advance(5, proving=everyone)
    net.report(1, 0, True)  # node 0 answered tester 1 again
    for t in (1, 2, 3):
        net.report(t, 0, False)
    net.advance(6, proving=everyone)
    for t in (1, 2, 3):
        net.report(t, 0, False)
    net.advance(1, proving=everyone)
    assert net.entry(0)["active"] is True  # tester 1's run restarted: only two count
    net.advance(70, proving=everyone)  # every report is past the window
    net.report(1, 0, False)
    net.advance(1, proving=everyone)
    assert net.entry(0)["active"] is True


def test_long_outage_deregisters(caplog: pytest.LogCaptureFixture) -> None:
    net = Net(6)
    with caplog.at_level("WARNING", logger="session.registry.health"):
        net.advance(35, proving=[1, 2, 3, 4, 5])
        assert net.entry(0)["active"] is False
        net.advance(300, proving=[1, 2, 3, 4, 5])
    assert net.key(0) not in net.reg.entries
    logged = [r.getMessage().split(" for ")[0] for r in caplog.records]
    assert logged == [
        f"node {net.key(0)} decommissioned: no uptime proof",
        f"node {net.key(0)} deregistered: decommissioned",
    ]
    with pytest.raises(RegistryError) as e:
        net.prove(0)
    assert e.value.status == 404  # the node registers again
    net.reg.register(net.registration(net.ids[0], 0))
    assert net.entry(0)["active"] is True
    assert net.entry(0)["decommission_count"] == 0


def test_refusals() -> None:
    net = Net(6)
    proof = net.proof(0)
    net.reg.uptime_proof(proof)
    with pytest.raises(RegistryError) as e:
        net.reg.uptime_proof(proof)
    assert e.value.status == 409  # replayed
    bad = dict(net.proof(0), signature="00" * 64)
    with pytest.raises(InvalidSignature):
        net.reg.uptime_proof(bad)
    moved = build_uptime_proof(
        net.ids[0],
        version=(2, 8, 0),
        https_port=40000,
        zmq_port=40001,
        storage_bytes=0,
        storage_max_bytes=0,
        timestamp=net.ms(),
    )
    with pytest.raises(RegistryError) as e:
        net.reg.uptime_proof(moved)
    assert e.value.status == 409 and "register again" in str(e.value)
    with pytest.raises(InvalidInput):
        net.reg.uptime_proof({"pubkey_ed25519": net.key(0)})
    with pytest.raises(InvalidInput, match="itself"):
        net.report(0, 0, False)
    stranger = Identity.from_seed(os.urandom(32))
    doc = build_report(stranger, net.key(0), https_ok=False, link_ok=False, timestamp=net.ms())
    with pytest.raises(RegistryError) as e:
        net.reg.reachability_report(doc)
    assert e.value.status == 403
    # a decommissioned node may not report on others either
    net.advance(35, proving=[1, 2, 3, 4, 5])
    with pytest.raises(RegistryError) as e:
        net.report(0, 1, False)
    assert e.value.status == 403


def test_health_survives_a_registry_restart(tmp_path: Path) -> None:
    net = Net(6, tmp_path)
    net.advance(35, proving=[1, 2, 3, 4, 5])
    assert net.entry(0)["active"] is False
    net.reg = net.open()
    assert net.entry(0)["active"] is False
    assert net.entry(0)["decommission_count"] == 1
    # node 1 dies while the registry is down: decommissioned one proof_timeout after restart
    net.clock.t += 100
    net.reg = net.open()
    net.advance(25, proving=[2, 3, 4, 5])
    assert net.entry(1)["active"] is True  # everyone had a full window from the restart
    net.advance(10, proving=[2, 3, 4, 5])
    assert net.entry(1)["active"] is False


def test_tiny_network_decides_on_proofs_alone() -> None:
    net = Net(2)
    for _ in range(10):
        net.report(1, 0, False)
        net.advance(5, proving=[0, 1])
    assert net.entry(0)["active"] is True  # one tester can never decommission
    net.advance(35, proving=[1])
    assert net.entry(0)["active"] is False
    net.advance(5, proving=[0, 1])
    net.report(1, 0, True)
    net.advance(1, proving=[0, 1])
    assert net.entry(0)["active"] is True


def test_health_settings_are_validated() -> None:
    env = {"SESSION_REGISTRY_HEALTH__MIN_REPORTERS": "1"}
    with pytest.raises(ConfigError, match="one liar"):
        load_settings(env, max_body=65536)
    env = {
        "SESSION_REGISTRY_HEALTH__PROOF_TIMEOUT": "5",
        "SESSION_REGISTRY_HEALTH__CHECK_INTERVAL": "0.5",
    }
    s = load_settings(env, max_body=65536)
    assert s.health.proof_timeout == 5.0 and s.health.check_interval == 0.5


async def test_proofs_and_reports_over_https(tmp_path: Path) -> None:
    rules = HealthRules(proof_timeout=60, unreachable_after=1, report_window=60, check_interval=60)
    srv = await server.start("127.0.0.1", 0, tmp_path, 25_000, seed="h", health=rules)
    try:
        ids = [Identity.from_seed(os.urandom(32)) for _ in range(3)]
        for i, ident in enumerate(ids):
            await client.register(
                srv.url,
                ident,
                public_ip="127.0.0.1",
                storage_port=31000 + 2 * i,
                storage_lmq_port=31001 + 2 * i,
                stake=25_000,
            )
        proof = build_uptime_proof(
            ids[0],
            version=(2, 8, 0),
            https_port=31000,
            zmq_port=31001,
            storage_bytes=1,
            storage_max_bytes=2,
        )
        answer = await client.send_uptime_proof(srv.url, proof)
        assert answer == {"active": True, "decommission_count": 0}
        with pytest.raises(RegistryError) as e:
            await client.send_uptime_proof(srv.url, proof)
        assert e.value.status == 409
        await client.send_report(
            srv.url, build_report(ids[1], ids[0].ed25519_public.hex(), https_ok=False, link_ok=True)
        )
        stranger = Identity.from_seed(os.urandom(32))
        with pytest.raises(RegistryError) as e:
            await client.send_report(
                srv.url,
                build_report(stranger, ids[0].ed25519_public.hex(), https_ok=True, link_ok=True),
            )
        assert e.value.status == 403
        doc = await client.fetch_node_list(
            srv.url,
            {"fields": ["pubkey_ed25519", "last_uptime_proof", "decommission_count", "active"]},
        )
        states = doc["service_node_states"]
        assert len(states) == 3
        assert all(
            set(s) == {"pubkey_ed25519", "last_uptime_proof", "decommission_count", "active"}
            for s in states
        )
        assert all(s["last_uptime_proof"] > 0 and s["active"] for s in states)
    finally:
        await srv.close()


def test_decommissions_refill_a_starving_swarm_by_the_swarm_rules() -> None:
    net = Net(14)
    swarms: dict[int, list[int]] = {}
    for i in range(14):
        swarms.setdefault(net.entry(i)["swarm_id"], []).append(i)
    assert sorted(len(v) for v in swarms.values()) == [7, 7]
    sid, members = next(iter(swarms.items()))
    dead = members[:3]  # leaves 4 in that swarm: under the minimum of 5
    net.advance(35, proving=[i for i in range(14) if i not in dead])
    assert all(net.entry(i)["active"] is False for i in dead)
    sizes: dict[int, int] = {}
    for i in range(14):
        e = net.entry(i)
        if e["active"]:
            sizes[e["swarm_id"]] = sizes.get(e["swarm_id"], 0) + 1
    assert sid in sizes and min(sizes.values()) >= 5  # refilled from the other swarm
    assert sum(sizes.values()) == 11
