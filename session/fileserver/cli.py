"""``session-fileserver``: the file server operator's command line.

Subcommands: ``run``, ``keygen``, ``show-id``, ``check-config``, ``systemd-unit``,
``example-config``. Exit codes: 0 ok, 1 runtime error (one sentence on stderr), 2 usage error.
``run`` prints one JSON line ``{"ready": true, "url", "pubkey_ed25519", "pubkey_x25519"}`` on
stdout once listening (for the devnet and other supervisors) and logs to stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click

from session.fileserver.config import ENV_CONFIG, FileServerConfig, load_config
from session.service.cli import (
    add_server_commands,
    config_options,
    exit_on_errors,
    run_overrides,
    run_server,
    server_run_options,
)

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Run and manage a Session file server (blind storage for attachments)."""


_options = config_options(ENV_CONFIG, "Data directory (keys/, tls/, store/).")


_run_options = server_run_options(
    click.option("--default-ttl", type=click.IntRange(min=1), help="Seconds a file lives."),
    click.option("--max-ttl", type=click.IntRange(min=1), help="Cap on X-FS-TTL (seconds)."),
    click.option("--quota-bytes", type=click.IntRange(min=1), help="Total bytes stored."),
)


def _load(config_path: Path | None, data_dir: Path | None, **flags: Any) -> FileServerConfig:
    extra = ("storage.default_ttl", "storage.max_ttl", "storage.quota_bytes")
    return load_config(config_path, overrides=run_overrides(data_dir, flags, *extra))


@main.command()
@_options
@_run_options
@exit_on_errors
def run(config_path: Path | None, data_dir: Path | None, **flags: Any) -> None:
    """Run the file server until SIGTERM/SIGINT."""
    cfg = _load(config_path, data_dir, **flags)
    # The server module pulls in aiohttp (~0.3 s): only `run` needs it.
    from session.fileserver.server import run as serve  # noqa: PLC0415 - see above

    run_server(cfg, serve, lambda s: {"url": s.url})


add_server_commands(
    main,
    program="session-fileserver",
    module="session.fileserver",
    load=_load,
    options=_options,
    run_options=_run_options,
)


def resource_text(name: str) -> str:
    """A file shipped in ``session/fileserver/resources``."""
    return resources.files("session.fileserver").joinpath("resources", name).read_text("utf-8")


__all__ = ["main", "resource_text"]
