"""``session-node`` through click's CliRunner (daemon and devnet entry points stubbed by
monkeypatching the lazily imported modules' functions)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from session.cli.node import main
from session.identity import Identity
from session.node import keys


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in [v for v in os.environ if v.startswith("SESSION_NODE_")]:
        monkeypatch.delenv(var)
    return CliRunner()


def test_keygen_and_show_id(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(main, ["keygen", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    ident = Identity.from_seed(keys.read_seed(tmp_path))
    assert f"ed25519: {ident.ed25519_public.hex()}" in r.output
    assert ident.x25519_public.hex() in r.output

    again = runner.invoke(main, ["keygen", "--data-dir", str(tmp_path)])
    assert again.exit_code == 1
    assert "already exists" in again.output and "--force" in again.output
    assert Identity.from_seed(keys.read_seed(tmp_path)).ed25519_public == ident.ed25519_public

    shown = runner.invoke(main, ["show-id", "--data-dir", str(tmp_path), "--json"])
    assert shown.exit_code == 0
    assert json.loads(shown.output) == {
        "pubkey_ed25519": ident.ed25519_public.hex(),
        "pubkey_x25519": ident.x25519_public.hex(),
    }
    qr = runner.invoke(main, ["show-id", "--data-dir", str(tmp_path), "--qr"])
    assert qr.exit_code == 0
    assert len(qr.output.splitlines()) > 10
    assert any(ch in qr.output for ch in "▀▄█")

    forced = runner.invoke(main, ["keygen", "--data-dir", str(tmp_path), "--force"])
    assert forced.exit_code == 0
    assert ident.ed25519_public.hex() not in forced.output


def test_show_id_refuses_exposed_key(runner: CliRunner, tmp_path: Path) -> None:
    keys.generate(tmp_path)
    os.chmod(keys.key_path(tmp_path), 0o644)
    r = runner.invoke(main, ["show-id", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.startswith("error: key file") and "chmod 600" in r.output


def test_show_id_without_key(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(main, ["show-id", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "keygen" in r.output


def test_check_config(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n[network]\nhttps_port = 4443\npublic_ip = "192.0.2.7"\n'
    )
    r = runner.invoke(main, ["check-config", "--config", str(cfg), "--show", "--zmq-port", "4444"])
    assert r.exit_code == 0, r.output
    assert "configuration ok" in r.output
    assert "warning: key directory" in r.output  # no key yet: a warning, not a failure
    shown = json.loads(r.output[r.output.index("{") : r.output.rindex("}") + 1])
    assert shown["network"]["https_port"] == 4443 and shown["network"]["zmq_port"] == 4444

    cfg.write_text("[network]\nhttps_port = 'nope'\n")
    bad = runner.invoke(main, ["check-config", "--config", str(cfg)])
    assert bad.exit_code == 1
    assert bad.output.startswith("error: network.https_port") and bad.output.count("\n") == 1

    env = runner.invoke(
        main,
        ["check-config", "--data-dir", str(tmp_path)],
        env={"SESSION_NODE_LIMITS__BURST": "zero"},
    )
    assert env.exit_code == 1 and "limits.burst" in env.output


def test_check_config_and_run_require_an_address_to_announce(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import session.node.daemon as daemon

    monkeypatch.setattr(daemon, "run", lambda config: pytest.fail("daemon must not start"))
    for command in ("check-config", "run"):
        # the defaults: listen on 0.0.0.0 and no public_ip, which cannot be announced
        r = runner.invoke(main, [command, "--data-dir", str(tmp_path)])
        assert r.exit_code == 1, r.output
        assert r.output.startswith("error: network.public_ip is required")
        assert r.output.count("\n") == 1
    r = runner.invoke(main, ["check-config", "--data-dir", str(tmp_path), "--public-ip", "ff02::1"])
    assert r.exit_code == 1 and "network.public_ip is required" in r.output
    # a devnet's node listens on a unicast address and announces that one
    r = runner.invoke(
        main, ["check-config", "--data-dir", str(tmp_path), "--listen-host", "127.0.0.1"]
    )
    assert r.exit_code == 0 and "configuration ok" in r.output


def test_usage_errors_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(main, ["frobnicate"]).exit_code == 2
    assert runner.invoke(main, ["run", "--https-port", "99999"]).exit_code == 2
    assert (
        runner.invoke(main, ["check-config", "--config", str(tmp_path / "no.toml")]).exit_code == 1
    )


def test_version_and_unit(runner: CliRunner) -> None:
    for args in (["version"], ["--version"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 0
        assert r.output.startswith("session-node ") and "core:" in r.output
        assert "target_arch" in r.output
    unit = runner.invoke(main, ["systemd-unit"])
    assert unit.exit_code == 0 and "StateDirectory=session-node" in unit.output
    example = runner.invoke(main, ["example-config"])
    assert example.exit_code == 0
    tomllib.loads(example.output)


def test_run_passes_config_to_daemon(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import session.node.daemon as daemon

    seen: dict[str, Any] = {}

    def fake_run(config: Any) -> int:
        seen["config"] = config
        return 0

    monkeypatch.setattr(daemon, "run", fake_run)
    cfg = tmp_path / "node.toml"
    cfg.write_text('[registry]\nurl = "https://127.0.0.1:9999"\n[logging]\nlevel = "debug"\n')
    r = runner.invoke(
        main,
        [
            "run",
            "--config",
            str(cfg),
            "--data-dir",
            str(tmp_path),
            "--https-port",
            "4000",
            "--public-ip",
            "192.0.2.5",
            "--unsafe-logging",
            "--stake",
            "30000",
        ],
    )
    assert r.exit_code == 0, r.output
    c = seen["config"]
    assert c.data_dir == tmp_path and c.network.https_port == 4000
    assert c.network.public_ip == "192.0.2.5" and c.announce_ip == "192.0.2.5"
    assert c.registry.url == "https://127.0.0.1:9999" and c.registry.stake == 30000
    assert c.logging.level == "debug" and c.logging.unsafe_logging is True

    monkeypatch.setattr(daemon, "run", lambda config: 3)
    r = runner.invoke(main, ["run", "--data-dir", str(tmp_path), "--public-ip", "192.0.2.5"])
    assert r.exit_code == 3


def test_run_refuses_exposed_key(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import session.node.daemon as daemon

    monkeypatch.setattr(daemon, "run", lambda config: pytest.fail("daemon must not start"))
    keys.generate(tmp_path)
    os.chmod(keys.key_path(tmp_path), 0o640)
    r = runner.invoke(main, ["run", "--data-dir", str(tmp_path), "--public-ip", "192.0.2.5"])
    assert r.exit_code == 1 and "group or others" in r.output


def test_devnet_calls_devnet_main(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import session.devnet as devnet

    seen: dict[str, Any] = {}

    def fake_main(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(devnet, "main", fake_main)
    r = runner.invoke(
        main, ["devnet", "--nodes", "7", "--data-dir", str(tmp_path), "--seed", "abc"]
    )
    assert r.exit_code == 0, r.output
    assert seen == {"nodes": 7, "data_dir": tmp_path, "seed": "abc"}
    assert (
        runner.invoke(main, ["devnet", "--nodes", "-1", "--data-dir", str(tmp_path)]).exit_code == 2
    )


def test_registry_command_serves(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import session.registry.__main__ as entry

    seen: dict[str, Any] = {}

    def fake_serve(*args: Any, **kwargs: Any) -> int:
        seen["args"] = args
        seen["kwargs"] = kwargs
        return 0

    monkeypatch.setattr(entry, "serve", fake_serve)
    r = runner.invoke(
        main,
        [
            "registry",
            "--data-dir",
            str(tmp_path),
            "--port",
            "0",
            "--stake-requirement",
            "5",
            "--seed",
            "g",
            "--name-term",
            "60",
            "--chain-rpc",
            "http://127.0.0.1:8545",
            "--chain-contract",
            "0x" + "ab" * 20,
            "--chain-start-block",
            "7",
        ],
    )
    assert r.exit_code == 0, r.output
    assert seen["args"] == ("127.0.0.1", 0, str(tmp_path), 5, "g", "info")
    chain = seen["kwargs"].pop("chain")
    assert seen["kwargs"] == {"name_term": 60}
    assert (chain.rpc, chain.contract, chain.start_block, chain.devnet) == (
        "http://127.0.0.1:8545",
        "0x" + "ab" * 20,
        7,
        False,
    )
    # no staking contract: refused with a sentence (no registration path skips the contract)
    r = runner.invoke(main, ["registry", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "needs its staking contract" in r.output
