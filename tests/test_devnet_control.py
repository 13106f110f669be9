"""The devnet's loopback control site (session/devnet/control.py) over real HTTP on 127.0.0.1,
in front of a recording stand-in for the devnet (no processes are started)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from session.devnet.control import _control_server
from session.devnet.net import DevnetError
from session.registry.extra import MISSING_DEVNET_EXTRA


@dataclass
class _Node:
    name: str
    running: bool = True
    url: str = "https://127.0.0.1:1"
    pubkey_ed25519: str = "ab" * 32


@dataclass
class _Net:
    nodes: list[_Node] = field(default_factory=lambda: [_Node("node-0"), _Node("node-1")])
    fail_add: bool = False

    def node_list(self) -> list[dict[str, Any]]:
        return [{"name": n.name} for n in self.nodes if n.running]

    def add_node(self) -> _Node:
        if self.fail_add:
            raise DevnetError("node-2 not ready in time")
        self.nodes.append(_Node(f"node-{len(self.nodes)}"))
        return self.nodes[-1]

    def remove_node(self, i: int) -> None:
        self.nodes[i].running = False


@pytest.fixture
def site() -> Iterator[tuple[_Net, str]]:
    net = _Net()
    srv = _control_server(net, "127.0.0.1", 0)  # type: ignore[arg-type]  # the stand-in
    try:
        yield net, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _call(url: str, method: str = "POST") -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_nodes_add_and_remove(site: tuple[_Net, str]) -> None:
    net, base = site
    assert _call(f"{base}/nodes", "GET") == (200, [{"name": "node-0"}, {"name": "node-1"}])
    status, doc = _call(f"{base}/add")
    assert status == 200 and doc["name"] == "node-2"
    assert _call(f"{base}/remove/1") == (200, {"removed": "node-1"})
    assert not net.nodes[1].running


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/remove/x", 400, "POST /remove/<i> takes a node's index (0, 1, ...)"),
        ("/remove/-1", 400, "POST /remove/<i> takes a node's index (0, 1, ...)"),
        ("/remove/7", 404, "no running node 7"),
        ("/elsewhere", 404, "unknown path"),
    ],
)
def test_a_bad_request_is_a_4xx_sentence(
    site: tuple[_Net, str], path: str, status: int, error: str
) -> None:
    net, base = site
    assert _call(base + path) == (status, {"error": error})
    assert all(n.running for n in net.nodes)


def test_a_devnet_failure_is_a_500_sentence(site: tuple[_Net, str]) -> None:
    net, base = site
    net.fail_add = True
    assert _call(f"{base}/add") == (500, {"error": "node-2 not ready in time"})


def _without_the_devnet_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make eth-tester (the devnet extra) look uninstalled to ``importlib.util.find_spec``."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "eth_tester" else real(name, *a),
    )


def test_devnet_without_the_devnet_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from session.devnet import control

    _without_the_devnet_extra(monkeypatch)
    assert control.main(nodes=1, data_dir=tmp_path / "net") == 1
    err = capsys.readouterr().err
    assert err == f"error: {MISSING_DEVNET_EXTRA}\n" and "[devnet]" in err
    assert not (tmp_path / "net").exists()  # nothing was started


def test_registry_devnet_chain_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from session.registry.__main__ import serve
    from session.registry.chain import ChainOptions

    _without_the_devnet_extra(monkeypatch)
    code = serve("127.0.0.1", 0, str(tmp_path / "reg"), 25_000, None,
                 chain=ChainOptions(devnet=True))  # fmt: skip
    assert code == 1
    assert capsys.readouterr().err == f"error: {MISSING_DEVNET_EXTRA}\n"
    assert not (tmp_path / "reg").exists()  # nothing was started
