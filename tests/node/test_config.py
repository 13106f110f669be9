"""Node configuration: precedence, coercion, validation, data dir, shipped example."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from session.errors import ConfigError
from session.node.config import (
    NodeConfig,
    as_dict,
    default_data_dir,
    field_names,
    load_config,
)
from session.service.tls import tls_paths


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "node.toml"
    p.write_text(text)
    return p


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(env={"STATE_DIRECTORY": str(tmp_path)})
    assert cfg.network.https_port == 22021 and cfg.network.zmq_port == 22020
    assert cfg.admin.host == "127.0.0.1"
    assert cfg.registry.stake == 25_000
    assert cfg.limits.requests_per_second == 300 and cfg.limits.burst == 600
    assert cfg.data_dir == tmp_path
    assert cfg.keys_dir == tmp_path / "keys"
    assert tls_paths(cfg.data_dir)[0].parent == tmp_path / "tls"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.network.https_port = 1  # type: ignore[misc]


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
data_dir = "/from/file"
[network]
https_port = 1001
zmq_port = 1002
listen_host = "127.0.0.2"
[logging]
level = "debug"
""",
    )
    env = {
        "SESSION_NODE_NETWORK__HTTPS_PORT": "2001",
        "SESSION_NODE_DATA_DIR": "/from/env",
        "SESSION_NODE_LOGGING__UNSAFE_LOGGING": "yes",
        "UNRELATED": "x",
        "SESSION_NODE_CONFIG": "/ignored/by/load_config",
    }
    cfg = load_config(
        path,
        env=env,
        overrides={"network.https_port": 3001, "data_dir": None, "registry.stake": "7"},
    )
    assert cfg.network.https_port == 3001  # flag beats env beats file
    assert cfg.network.zmq_port == 1002  # file beats default
    assert cfg.network.listen_host == "127.0.0.2"
    assert cfg.data_dir == Path("/from/env")  # env beats file; a None flag is ignored
    assert cfg.logging.level == "debug" and cfg.logging.unsafe_logging is True
    assert cfg.registry.stake == 7
    assert load_config(path, env={}, overrides={"data_dir": "/flag"}).data_dir == Path("/flag")
    assert load_config(path, env={}).data_dir == Path("/from/file")


def test_data_dir_resolution(tmp_path: Path) -> None:
    assert default_data_dir({"STATE_DIRECTORY": f"{tmp_path}:/other"}) == tmp_path
    assert (
        load_config(
            env={"STATE_DIRECTORY": str(tmp_path)}, overrides={"data_dir": tmp_path / "x"}
        ).data_dir
        == tmp_path / "x"
    )
    fallback = default_data_dir({})
    assert fallback.is_absolute() and "session-node" in str(fallback)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[network]\nhttps_prot = 1\n", {}, "unknown setting 'network.https_prot'"),
        ("bogus = 1\n", {}, "unknown setting 'bogus'"),
        ("[network]\nhttps_port = 'x'\n", {}, "must be an integer"),
        ("[network]\nhttps_port = 70000\n", {}, "between 0 and 65535"),
        ("network = 3\n", {}, "must be a table"),
        ("[admin]\nhost = '0.0.0.0'\n", {}, "loopback"),
        ("[network]\npublic_ip = 'example.org'\n", {}, "IPv4 or IPv6"),
        ("[logging]\nlevel = 'loud'\n", {}, "logging.level"),
        ("[logging]\nformat = 'xml'\n", {}, "logging.format"),
        ("[registry]\nurl = 'ftp://x'\n", {}, "registry.url"),
        ("[limits]\nmax_onion_hops = 0\n", {}, "max_onion_hops"),
        ("[limits]\nburst = -1\n", {}, "positive"),
        ("[replication]\nforward_hold = -1\n", {}, "forward_hold must be at least 0"),
        ("[replication]\nforward_hold = 2.0\n", {}, "less than replication.forward_deadline"),
        ("[network\n", {}, "not valid TOML"),
        ("", {"SESSION_NODE_NETWORK__NOPE": "1"}, "unknown setting 'network.nope'"),
        ("", {"SESSION_NODE_LOGGING__UNSAFE_LOGGING": "maybe"}, "true or false"),
        ("", {"SESSION_NODE_LIMITS__BURST": "1.5"}, "must be an integer"),
        ("", {"SESSION_NODE_NETWORK": "x"}, "must be a table"),
    ],
)
def test_bad_settings_are_one_clear_error(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text), env=env)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_bool_in_toml_must_be_bool(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="true or false"):
        load_config(write(tmp_path, "[logging]\nunsafe_logging = 'yes'\n"), env={})
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config(write(tmp_path, "[network]\nhttps_port = true\n"), env={})


def test_field_names_cover_the_tree() -> None:
    names = field_names()
    assert "network.https_port" in names and "data_dir" in names
    assert len(names) == len(set(names))
    flat = as_dict(NodeConfig())
    count = sum(len(v) if isinstance(v, dict) else 1 for v in flat.values())
    assert count == len(names)


EXAMPLE = resources.files("session.node").joinpath("resources", "session-node.example.toml")


def test_example_mentions_every_field() -> None:
    text = EXAMPLE.read_text("utf-8")
    section = ""
    seen: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"^\[(\w+)\]\s*$", line)
        if m:
            section = m.group(1) + "."
            continue
        m = re.match(r"^# ([a-z_]+) = ", line)
        if m:
            seen.add(section + m.group(1))
    assert seen == set(field_names())


def test_example_parses_with_options_enabled(tmp_path: Path) -> None:
    """Uncommenting every option gives a valid config equal to the defaults."""
    text = EXAMPLE.read_text("utf-8")
    tomllib.loads(text)  # as shipped (all commented out)
    enabled = re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.M)
    data_dir = tmp_path / "data"
    enabled = enabled.replace('data_dir = "/var/lib/session-node"', f'data_dir = "{data_dir}"')
    cfg = load_config(write(tmp_path, enabled), env={})
    assert cfg == dataclasses.replace(NodeConfig(), data_dir=data_dir)


def test_systemd_unit_is_shipped() -> None:
    unit = resources.files("session.node").joinpath("resources", "session-node.service")
    text = unit.read_text("utf-8")
    for needle in (
        "StateDirectory=session-node",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecStart=",
        "Restart=on-failure",
        "PrivateTmp=yes",
        "ProtectHome={protect_home}",
        "Type=notify",
    ):
        assert needle in text
