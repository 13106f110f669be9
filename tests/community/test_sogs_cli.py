"""``session-community``: the operator's commands (keys, config, unit file) and the admin
commands (rooms, moderators by Session ID or blinded ID, bans, join URL with QR code)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from session.blinding import blinded15_id
from session.community.cli import main
from session.community.config import CommunityConfig, load_config
from session.community.store import CommunityStore
from session.identity import Identity


def invoke(*args: str) -> str:
    got = CliRunner().invoke(main, list(args))
    assert got.exit_code == 0, got.output
    return got.output


def test_keys_config_and_unit(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert "x25519:" in invoke("keygen", "--data-dir", d)
    keys = json.loads(invoke("show-id", "--json", "--data-dir", d))
    assert len(keys["pubkey_x25519"]) == 64
    assert "configuration ok" in invoke("check-config", "--data-dir", d, "--port", "0")
    example = tomllib.loads(invoke("example-config"))
    (tmp_path / "c.toml").write_text(invoke("example-config"))
    cfg = load_config(tmp_path / "c.toml", env={})
    assert isinstance(cfg, CommunityConfig) and example["limits"]["rate_limit_posts"] == 5
    assert cfg.limits == CommunityConfig().limits and cfg.network == CommunityConfig().network
    assert "ExecStart=" in invoke("systemd-unit")
    bad = CliRunner().invoke(main, ["check-config", "--data-dir", d, "--public-url", "ftp://x"])
    assert bad.exit_code == 1 and "public_url" in bad.output


def test_loopback_join_url_is_called_so(tmp_path: Path) -> None:
    """Without network.public_url, join URLs name the loopback listen address: `url` and
    `check-config` say so (a warning; the command still succeeds) and name the key to set."""
    d = str(tmp_path)
    invoke("keygen", "--data-dir", d)
    invoke("room", "add", "lobby", "Lobby", "--data-dir", d)
    got = CliRunner().invoke(main, ["url", "lobby", "--data-dir", d, "--no-qr"])
    assert got.exit_code == 0 and got.stdout.startswith("https://127.0.0.1:22050/lobby?")
    assert "loopback-only" in got.stderr and "network.public_url" in got.stderr
    checked = CliRunner().invoke(main, ["check-config", "--data-dir", d])
    assert checked.exit_code == 0 and "configuration ok" in checked.stdout
    assert "loopback-only" in checked.stderr and "network.public_url" in checked.stderr
    wild = CliRunner().invoke(main, ["check-config", "--data-dir", d, "--listen-host", "0.0.0.0"])
    assert wild.exit_code == 0 and "wildcard" in wild.stderr
    set_url = ["--public-url", "https://sogs.example.org"]
    quiet = CliRunner().invoke(main, ["check-config", "--data-dir", d, *set_url])
    assert quiet.exit_code == 0 and "public_url" not in quiet.stderr
    quiet = CliRunner().invoke(main, ["url", "lobby", "--data-dir", d, "--no-qr", *set_url])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_rooms_url_and_qr(tmp_path: Path) -> None:
    d = str(tmp_path)
    invoke("keygen", "--data-dir", d)
    invoke("room", "add", "lobby", "Lobby", "--description", "Hello", "--data-dir", d)
    invoke("room", "add", "dev-talk", "Dev talk", "--data-dir", d)
    rooms = json.loads(invoke("room", "list", "--json", "--data-dir", d))
    assert [r["token"] for r in rooms] == ["lobby", "dev-talk"]
    again = CliRunner().invoke(main, ["room", "add", "lobby", "x", "--data-dir", d])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(main, ["room", "add", "../etc", "x", "--data-dir", d])
    assert bad.exit_code == 1 and "room token" in bad.output
    pk = json.loads(invoke("show-id", "--json", "--data-dir", d))["pubkey_x25519"]
    out = invoke("url", "lobby", "--data-dir", d, "--public-url", "http://sogs.example.org")
    assert out.splitlines()[0] == f"http://sogs.example.org/lobby?public_key={pk}"
    assert "█" in out or "▀" in out  # the QR code
    assert CliRunner().invoke(main, ["url", "nowhere", "--data-dir", d]).exit_code == 1
    invoke("room", "delete", "dev-talk", "--yes", "--data-dir", d)
    assert "dev-talk" not in invoke("room", "list", "--data-dir", d)


def test_moderators_and_bans_by_session_id_match_either_sign(tmp_path: Path) -> None:
    d = str(tmp_path)
    invoke("keygen", "--data-dir", d)
    invoke("room", "add", "lobby", "Lobby", "--data-dir", d)
    pk = json.loads(invoke("show-id", "--json", "--data-dir", d))["pubkey_x25519"]
    signs: set[int] = set()
    for _ in range(64):
        member = Identity.generate()
        blinded = blinded15_id(member, pk)
        signs.add(int(blinded[64:], 16) >> 7)
        invoke("mod", "add", member.session_id, "--room", "lobby", "--admin", "--data-dir", d)
        store = CommunityStore(tmp_path / "store")
        try:
            room = store.room("lobby")
            user = store.user(blinded)
            assert user is not None and store.perms(room, user).admin
            assert member.session_id not in json.dumps(store.moderators(room))
        finally:
            store.close()
        if signs == {0, 1}:
            break
    assert signs == {0, 1}
    invoke("mod", "remove", member.session_id, "--room", "lobby", "--data-dir", d)
    invoke("ban", blinded, "--global", "--timeout", "60", "--data-dir", d)
    store = CommunityStore(tmp_path / "store")
    try:
        assert store.banned(store.user(blinded).key)  # type: ignore[union-attr]
        assert not store.perms(store.room("lobby"), store.user(blinded)).moderator
    finally:
        store.close()
    assert "unbanned" in invoke("unban", member.session_id, "--global", "--data-dir", d)
    usage = CliRunner().invoke(main, ["ban", blinded, "--data-dir", d])
    assert usage.exit_code == 2 and "--room TOKEN or --global" in usage.output
    # The database holds no Session ID of anyone the operator named.
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store").iterdir() if p.is_file())
    assert member.session_id.encode() not in raw


def test_a_new_operator_gets_one_clear_sentence(tmp_path: Path) -> None:
    """Commands run against a data directory with no server in it say so instead of creating
    an empty database or a key there; show-id names this program's keygen; non-finite
    intervals in the config are refused."""
    d = str(tmp_path / "nowhere")
    sid = "05" + Identity.generate().session_id[2:]
    for args in (
        ["room", "list"],
        ["room", "delete", "lobby", "--yes"],
        ["url", "lobby"],
        ["mod", "add", sid, "--room", "lobby"],
        ["ban", sid, "--global"],
    ):
        got = CliRunner().invoke(main, [*args, "--data-dir", d])
        assert got.exit_code == 1 and "no community database in" in got.output, (args, got.output)
    assert not (tmp_path / "nowhere").exists()
    got = CliRunner().invoke(main, ["show-id", "--data-dir", d])
    assert got.exit_code == 1 and "run 'session-community keygen'" in got.output, got.output
    assert "created in" in invoke("room", "add", "lobby", "Lobby", "--data-dir", d)
    assert invoke("room", "list", "--data-dir", d).startswith("lobby\t")
    for setting in ("rate_limit_interval = nan", "sweep_interval = inf", "sweep_interval = nan"):
        (tmp_path / "c.toml").write_text(f"[limits]\n{setting}\n")
        got = CliRunner().invoke(main, ["check-config", "--config", str(tmp_path / "c.toml")])
        assert got.exit_code == 1 and "must be a finite number" in got.output, got.output
    for setting, said in (
        ("max_storage_bytes = 1000", "max_storage_bytes must be at least"),
        ("rate_limit_dms = -1", "rate_limit_dms and rate_limit_dms_interval must not be"),
        ("rate_limit_uploads_interval = nan", "must be a finite number"),
    ):
        (tmp_path / "c.toml").write_text(f"[limits]\n{setting}\n")
        got = CliRunner().invoke(main, ["check-config", "--config", str(tmp_path / "c.toml")])
        assert got.exit_code == 1 and said in got.output, got.output
