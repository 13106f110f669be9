"""``session-fileserver``: the file server operator's command line.

Subcommands: ``run``, ``keygen``, ``show-id``, ``check-config``, ``systemd-unit``,
``example-config``. Exit codes: 0 ok, 1 runtime error (one sentence on stderr), 2 usage error.
``run`` prints one JSON line ``{"ready": true, "url", "pubkey_ed25519", "pubkey_x25519"}`` on
stdout once listening (for the devnet and other supervisors) and logs to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click
import uvloop

from session.fileserver.config import ENV_CONFIG, FileServerConfig, load_config
from session.service.cli import add_server_commands, config_options, exit_on_errors, key_doc
from session.service.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Run and manage a Session file server (blind storage for attachments)."""


_options = config_options(ENV_CONFIG, "Data directory (keys/, tls/, store/).")


def _run_options(fn: F) -> F:
    opts = [
        click.option("--listen-host", help="Address to listen on."),
        click.option("--port", type=click.IntRange(0, 65535), help="Port (0 picks a free one)."),
        click.option("--tls/--no-tls", default=None, help="Serve HTTPS (default) or plain HTTP."),
        click.option("--default-ttl", type=click.IntRange(min=1), help="Seconds a file lives."),
        click.option("--max-ttl", type=click.IntRange(min=1), help="Cap on X-FS-TTL (seconds)."),
        click.option("--quota-bytes", type=click.IntRange(min=1), help="Total bytes stored."),
        click.option(
            "--log-level", type=click.Choice(["debug", "info", "warning", "error", "critical"])
        ),
        click.option("--log-format", type=click.Choice(["auto", "json", "console"])),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _load(config_path: Path | None, data_dir: Path | None, **flags: Any) -> FileServerConfig:
    return load_config(
        config_path,
        overrides={
            "data_dir": data_dir,
            "network.listen_host": flags.get("listen_host"),
            "network.port": flags.get("port"),
            "network.tls": flags.get("tls"),
            "storage.default_ttl": flags.get("default_ttl"),
            "storage.max_ttl": flags.get("max_ttl"),
            "storage.quota_bytes": flags.get("quota_bytes"),
            "logging.level": flags.get("log_level"),
            "logging.format": flags.get("log_format"),
        },
    )


@main.command()
@_options
@_run_options
@exit_on_errors
def run(config_path: Path | None, data_dir: Path | None, **flags: Any) -> None:
    """Run the file server until SIGTERM/SIGINT."""
    cfg = _load(config_path, data_dir, **flags)
    lc = cfg.logging
    setup_logging(lc.level, lc.format, unsafe=lc.unsafe_logging, stream=sys.stderr)
    # The server module pulls in aiohttp (~0.3 s): only `run` needs it.
    from session.fileserver.server import RunningFileServer  # noqa: PLC0415 - see above
    from session.fileserver.server import run as serve  # noqa: PLC0415 - see above

    def ready(server: RunningFileServer) -> None:
        doc = {"ready": True, "url": server.url, **key_doc(server.identity)}
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()

    try:
        uvloop.run(serve(cfg, ready))
    except KeyboardInterrupt:
        pass


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
