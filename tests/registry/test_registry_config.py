"""Registry settings: file < environment < --log-level, one-sentence errors, limits applied."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from session.errors import ConfigError
from session.registry import server
from session.registry.__main__ import serve
from session.registry.config import load_settings
from session.service.config import ConnectionLimits


def test_defaults_file_env_flag(tmp_path: Path) -> None:
    assert load_settings({}, max_body=server.MAX_BODY).connections == ConnectionLimits()
    toml = tmp_path / "registry.toml"
    toml.write_text(
        "[connections]\nmax_connections = 100\nmax_connections_per_address = 8\n"
        "idle_timeout = 5.0\n"
        "[logging]\nformat = 'console'\nlevel = 'debug'\n"
    )
    env = {
        "SESSION_REGISTRY_CONFIG": str(toml),
        "SESSION_REGISTRY_CONNECTIONS__MAX_CONNECTIONS": "50",
        "SESSION_REGISTRY_LOGGING__UNSAFE_LOGGING": "no",
    }
    s = load_settings(env, log_level="warning", max_body=server.MAX_BODY)
    assert s.connections.max_connections == 50  # env beats file
    assert s.connections.idle_timeout == 5.0  # file beats default
    assert s.logging.format == "console" and s.logging.level == "warning"  # the flag wins


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SESSION_REGISTRY_CONNECTIONS__NOPE": "1"}, "unknown setting 'connections.nope'"),
        ({"SESSION_REGISTRY_CONNECTIONS__HEADER_TIMEOUT": "0"}, "header_timeout must be positive"),
        ({"SESSION_REGISTRY_CONNECTIONS__MAX_INFLIGHT_BODY_BYTES": "10"}, "at least the largest"),
        ({"SESSION_REGISTRY_LOGGING__FORMAT": "xml"}, "logging.format"),
        ({"SESSION_REGISTRY_CONFIG": "/nonexistent/registry.toml"}, "does not exist"),
    ],
)
def test_bad_settings_are_one_sentence(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(env, max_body=server.MAX_BODY)


def test_entry_point_refuses_bad_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSION_REGISTRY_CONNECTIONS__MAX_CONNECTIONS", "-1")
    assert serve("127.0.0.1", 0, str(tmp_path), 1, None) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "max_connections" in err and err.count("\n") == 1


async def test_registry_site_applies_the_connection_caps(tmp_path: Path) -> None:
    limits = ConnectionLimits(max_connections=4, max_connections_per_address=1)
    srv = await server.start("127.0.0.1", 0, tmp_path, 1, seed="x", limits=limits)
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        _, first = await asyncio.open_connection("127.0.0.1", port)
        reader, second = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # the second from this address is closed at once
        first.close()
        second.close()
        assert srv.served.stats.refused == 1
    finally:
        await srv.close()
