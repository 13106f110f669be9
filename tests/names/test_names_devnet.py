"""Names end to end on a devnet through the CLI: a name registers at the registry, resolves
through onion requests to three random nodes, a second client's lookup (and ``send @name``)
succeeds, and no node or registry log records the name, its hash or either Session ID; a
registration that lapsed is reported as expired. The devnet logs at debug level (so the log
scan reads everything the processes can say) and registers names for :data:`TERM` seconds."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from session import names
from session.cli.client import main
from session.client import Client
from session.client.network import load_nodes_json

#: Seconds a registration lasts on this devnet: long enough for the first test, short enough
#: for the second one to see a name lapse.
TERM = 20


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from session.devnet import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=5, log_level="debug", name_term=TERM)
    net.start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("SESSION_HOME", "SESSION_NETWORK", "SESSION_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def cli(runner: CliRunner, home: Path, *args: str) -> Result:
    return runner.invoke(main, ["--home", str(home), *args])


def js(r: Result) -> Any:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def error_line(r: Result) -> str:
    assert r.exit_code == 1, r.output
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.integration
def test_name_registers_resolves_and_leaves_no_trace(
    runner: CliRunner, tmp_path: Path, devnet: Any
) -> None:
    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    a = js(cli(runner, ha, "id", "new", "--json"))["session_id"]
    b = js(cli(runner, hb, "id", "new", "--json"))["session_id"]
    # an identity made with --network keeps its node list: its next command needs none
    hc = tmp_path / "carol"
    js(cli(runner, hc, "--network", nodes, "id", "new", "--json"))
    assert js(cli(runner, hc, "inbox", "--json"))["conversations"] == []
    # registered first, looked up only by the next test, once it lapsed
    js(cli(runner, hb, "--network", nodes, "name", "register", "soon-gone", "--json"))

    reg = js(cli(runner, ha, "--network", nodes, "name", "register", "Alice_01", "--json"))
    assert reg["name"] == "alice_01" and reg["session_id"] == a and reg["expiry"] > 0
    # first come, first served: Bob cannot take it
    assert "already taken" in error_line(
        cli(runner, hb, "--network", nodes, "name", "register", "alice_01")
    )
    # malformed and unknown names: one clear sentence each
    assert "a name uses only" in error_line(
        cli(runner, hb, "--network", nodes, "name", "show", "a.b")
    )
    assert "no Session ID is registered" in error_line(
        cli(runner, hb, "--network", nodes, "name", "show", "nobody-here")
    )

    # Bob resolves it (three nodes through onion requests) and writes to @alice_01
    shown = js(cli(runner, hb, "--network", nodes, "name", "show", "@alice_01", "--json"))
    assert shown == {"name": "alice_01", "session_id": a}
    sent = js(cli(runner, hb, "--network", nodes, "send", "@Alice_01", "hi by name", "--json"))
    assert sent["to"] == a and sent["status"] == "sent"
    inbox = js(cli(runner, ha, "--network", nodes, "inbox", "--json"))
    assert inbox["requests"] == 1
    # (no --network: the registry of the network Alice's client last used, as other commands)
    renewed = js(cli(runner, ha, "name", "renew", "alice_01", "--json"))
    assert renewed["expiry"] > reg["expiry"]

    # The lookup asks three distinct random nodes, each through an onion path.
    asked: list[tuple[str, str, str]] = []

    async def lookup() -> str:
        c = Client.open(hb, load_nodes_json(nodes), identity=b, create=False)
        c.transport.observers.append(
            lambda dest, method, params, path: asked.append(
                (dest.pubkey_ed25519, method, path.guard.pubkey_ed25519)
            )
        )
        await c.start()
        try:
            return await c.resolve_name("alice_01")
        finally:
            await c.close()

    assert asyncio.run(lookup()) == a
    ons = [(d, g) for d, m, g in asked if m == "oxend_request"]
    assert len(ons) == 3 and len({d for d, _ in ons}) == 3
    assert all(g != d for d, g in ons)  # the destination is never the path's entry node

    # No log of any node or of the registry records who looked up what.
    h = names.name_hash("alice_01")
    secrets = ["alice_01", names.name_hash_b64("alice_01"), h.hex(), a, b, a[2:], b[2:]]
    logs = [p for p in devnet.dir.rglob("*") if p.is_file() and p.suffix == ".log"]
    assert logs
    for p in logs:
        text = p.read_text(errors="replace")
        for s in secrets:
            assert s not in text, (p, s)


@pytest.mark.integration
def test_lapsed_name_is_reported_expired(runner: CliRunner, tmp_path: Path, devnet: Any) -> None:
    nodes = str(devnet.dir / "nodes.json")
    home = tmp_path / "carol"
    js(cli(runner, home, "id", "new", "--json"))
    # the registration made at the start of the previous test lapses TERM seconds later
    deadline = time.monotonic() + TERM + 60
    while True:
        r = cli(runner, home, "--network", nodes, "name", "show", "soon-gone")
        if r.exit_code == 1:
            break
        assert r.exit_code == 0, r.output
        assert time.monotonic() < deadline, "the name never lapsed"
    assert "has expired" in error_line(r)
    # a lapsed name is free again: Carol takes it and it resolves to her
    took = js(cli(runner, home, "--network", nodes, "name", "register", "soon-gone", "--json"))
    # nodes that answered "expired" just now refresh their copy at most once a second
    deadline = time.monotonic() + 30
    while True:
        r = cli(runner, home, "--network", nodes, "name", "show", "soon-gone", "--json")
        if r.exit_code == 0:
            break
        line = error_line(r)  # until every node asked refreshed: expired, or a disagreement
        assert "has expired" in line or "different answers" in line, line
        assert time.monotonic() < deadline, "the new registration never became visible"
    assert json.loads(r.stdout)["session_id"] == took["session_id"]
