"""Command-line pieces every service's CLI shares (``session-node``, ``session-fileserver``,
``session-community``)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click
import uvloop

from session.errors import ConfigError, SessionError
from session.identity import Identity
from session.node import keys
from session.service.config import as_dict
from session.service.logs import setup_logging
from session.service.systemd import unit_text

F = TypeVar("F", bound=Callable[..., Any])
#: A click decorator adding options to a command function.
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def config_options(env_config: str, data_dir_help: str) -> Callable[[F], F]:
    """``--config`` (also from the environment variable ``env_config``) and ``--data-dir``."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "--data-dir", type=click.Path(file_okay=False, path_type=Path), help=data_dir_help
        )(fn)
        fn = click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=env_config,
            help="TOML config file.",
        )(fn)
        return fn

    return decorate


def server_run_options(*extra: Callable[[F], F]) -> Callable[[F], F]:
    """The options of a standalone server's ``run`` and ``check-config``: ``--listen-host``,
    ``--port``, ``--tls/--no-tls``, the server's own (``extra``), ``--log-level`` and
    ``--log-format``; :func:`run_overrides` turns the common ones into config overrides."""
    opts: list[Callable[[F], F]] = [
        click.option("--listen-host", help="Address to listen on."),
        click.option("--port", type=click.IntRange(0, 65535), help="Port (0 picks a free one)."),
        click.option("--tls/--no-tls", default=None, help="Serve HTTPS (default) or plain HTTP."),
        *extra,
        click.option(
            "--log-level", type=click.Choice(["debug", "info", "warning", "error", "critical"])
        ),
        click.option("--log-format", type=click.Choice(["auto", "json", "console"])),
    ]

    def decorate(fn: F) -> F:
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def run_overrides(data_dir: Path | None, flags: dict[str, Any], *extra: str) -> dict[str, Any]:
    """Config overrides (dotted names; None: not given) from ``--data-dir``, the common options
    of :func:`server_run_options` and the server's own: ``extra`` names their settings
    (``storage.max_ttl``), each set by the flag named as its last part (``--max-ttl``)."""
    names = {
        "network.listen_host": "listen_host",
        "network.port": "port",
        "network.tls": "tls",
        "logging.level": "log_level",
        "logging.format": "log_format",
        **{name: name.rsplit(".", 1)[-1] for name in extra},
    }
    return {"data_dir": data_dir, **{k: flags.get(v) for k, v in names.items()}}


def exit_on_errors(fn: F) -> F:
    """Turn our errors (and OS errors) into one sentence on stderr and exit code 1; output
    piped into a reader that stops early (``| head``) ends quietly with exit code 0."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SessionError, ValueError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except BrokenPipeError:
            # the reader of stdout went away (`show-id | head -1`): what is left goes nowhere,
            # and that is no error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            click.echo(f"error: {e.strerror or e}{where}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]  # functools.wraps loses the signature


def key_doc(identity: Identity) -> dict[str, str]:
    """A server's public keys as its ``show-id --json`` and ready line give them."""
    return {
        "pubkey_ed25519": bytes(identity.ed25519_public).hex(),
        "pubkey_x25519": bytes(identity.x25519_public).hex(),
    }


def run_server(
    cfg: Any,
    serve: Callable[[Any, Callable[[Any], None]], Coroutine[Any, Any, None]],
    ready_doc: Callable[[Any], dict[str, Any]],
) -> None:
    """A standalone server's ``run``: logging as ``cfg.logging`` says (to stderr), then
    ``serve(cfg, on_ready)`` on uvloop until SIGTERM/SIGINT. Once listening, one JSON line on
    stdout for supervisors (the devnet): ``{"ready": true, **ready_doc(server), and the
    server's public keys}``."""
    lc = cfg.logging
    setup_logging(lc.level, lc.format, unsafe=lc.unsafe_logging, stream=sys.stderr)

    def ready(server: Any) -> None:
        doc = {"ready": True, **ready_doc(server), **key_doc(server.identity)}
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()

    try:
        uvloop.run(serve(cfg, ready))
    except KeyboardInterrupt:
        pass


def add_server_commands(
    group: click.Group,
    *,
    program: str,
    module: str,
    load: Callable[..., Any],
    options: Decorator,
    run_options: Decorator,
    x25519_note: str = "",
    warnings: Callable[[Any], list[str]] | None = None,
) -> None:
    """Add the commands every standalone server (file and community servers) has to
    ``group``: ``keygen``, ``show-id``, ``check-config``, ``systemd-unit``, ``example-config``.

    ``load(config_path, data_dir, **flags)`` gives the config (it has ``data_dir``);
    ``module`` is the package holding ``resources/<program>.service`` and
    ``resources/<program>.example.toml``; ``x25519_note`` follows the X25519 key in the
    human-readable key listing; ``warnings(cfg)`` lists what ``check-config`` warns about
    without failing (a setting that works but likely not as the operator meant)."""

    def resource(name: str) -> str:
        return resources.files(module).joinpath("resources", name).read_text("utf-8")

    def echo_keys(identity: Identity) -> None:
        doc = key_doc(identity)
        click.echo(f"ed25519: {doc['pubkey_ed25519']}")
        click.echo(f"x25519:  {doc['pubkey_x25519']}{x25519_note}")

    @group.command()
    @options
    @click.option(
        "--force", is_flag=True, help="Replace an existing key (clients must re-learn it)."
    )
    @exit_on_errors
    def keygen(config_path: Path | None, data_dir: Path | None, force: bool) -> None:
        """Create the server's Ed25519 key (its X25519 onion key is derived) and print both."""
        cfg = load(config_path, data_dir)
        identity = keys.generate(cfg.data_dir, force=force)
        click.echo(f"key file: {keys.key_path(cfg.data_dir)}")
        echo_keys(identity)

    @group.command("show-id")
    @options
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @exit_on_errors
    def show_id(config_path: Path | None, data_dir: Path | None, as_json: bool) -> None:
        """Print the server's public keys (clients reach it with the X25519 one)."""
        cfg = load(config_path, data_dir)
        path = keys.key_path(cfg.data_dir)
        if not path.exists():
            raise ConfigError(f"no key file at {path}; run '{program} keygen' (or `run`)")
        keys.check_permissions(path)
        identity = keys.load(cfg.data_dir)
        if as_json:
            click.echo(json.dumps(key_doc(identity)))
        else:
            echo_keys(identity)

    @group.command("check-config")
    @options
    @run_options
    @click.option("--show", is_flag=True, help="Print the effective configuration as JSON.")
    @exit_on_errors
    def check_config(
        config_path: Path | None, data_dir: Path | None, show: bool, **flags: Any
    ) -> None:
        """Validate the configuration (file + environment + flags) and the key file."""
        cfg = load(config_path, data_dir, **flags)
        if show:
            click.echo(json.dumps(as_dict(cfg), indent=2))
        path = keys.key_path(cfg.data_dir)
        if path.exists():
            keys.check_permissions(path)
        else:
            click.echo(f"warning: no key file at {path}; `run` creates one", err=True)
        for warning in warnings(cfg) if warnings else []:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"configuration ok (data dir {cfg.data_dir})")

    @group.command("systemd-unit")
    def systemd_unit() -> None:
        """Print the systemd unit file for this install (its absolute path in ExecStart)."""
        click.echo(unit_text(resource(f"{program}.service"), program, module), nl=False)

    @group.command("example-config")
    def example_config() -> None:
        """Print the commented example configuration."""
        click.echo(resource(f"{program}.example.toml"), nl=False)
