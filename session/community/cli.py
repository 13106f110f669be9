"""``session-community``: the community server operator's command line.

Service commands as ``session-fileserver`` has them: ``run``, ``keygen``, ``show-id``,
``check-config``, ``systemd-unit``, ``example-config``; and the admin commands SOGS has:
``room add|list|delete``, ``mod add|remove``, ``ban``, ``unban``, ``url``. Admin commands
write the database directly (safe while the server runs: SQLite in WAL mode).

Exit codes: 0 ok, 1 runtime error (one sentence on stderr), 2 usage error. ``run`` prints one
JSON line ``{"ready": true, "url", "admin_url", "pubkey_ed25519", "pubkey_x25519"}`` on stdout
once listening (for the devnet and other supervisors) and logs to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click
import segno

from session.community.config import (
    ENV_CONFIG,
    CommunityConfig,
    base_url,
    join_url,
    join_url_warning,
    load_config,
)
from session.community.store import (
    DB_FILE,
    CommunityStore,
    Room,
    check_id,
    check_token,
    keys_for_id,
)
from session.errors import ConfigError
from session.node import keys
from session.service.cli import (
    add_server_commands,
    config_options,
    exit_on_errors,
    run_overrides,
    run_server,
    server_run_options,
)
from session.text import for_terminal

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Run and manage a Session community server (open groups, SOGS-compatible)."""


_options = config_options(ENV_CONFIG, "Data directory (keys/, tls/, store/).")


_run_options = server_run_options(
    click.option(
        "--admin-port", type=click.IntRange(-1, 65535), help="Loopback admin port (-1: off)."
    ),
    click.option("--public-url", help="Base URL of join URLs (http(s)://host[:port])."),
)


def _load(config_path: Path | None, data_dir: Path | None, **flags: Any) -> CommunityConfig:
    extra = ("network.admin_port", "network.public_url")
    return load_config(config_path, overrides=run_overrides(data_dir, flags, *extra))


@main.command()
@_options
@_run_options
@exit_on_errors
def run(config_path: Path | None, data_dir: Path | None, **flags: Any) -> None:
    """Run the community server until SIGTERM/SIGINT."""
    cfg = _load(config_path, data_dir, **flags)
    # The server module pulls in aiohttp (~0.3 s): only `run` needs it.
    from session.community.server import run as serve  # noqa: PLC0415 - see above

    run_server(cfg, serve, lambda s: {"url": s.url, "admin_url": s.admin_url})


add_server_commands(
    main,
    program="session-community",
    module="session.community",
    load=_load,
    options=_options,
    run_options=_run_options,
    x25519_note="  (the public_key of join URLs)",
    warnings=lambda cfg: [w] if (w := join_url_warning(cfg)) else [],
)


def resource_text(name: str) -> str:
    """A file shipped in ``session/community/resources``."""
    return resources.files("session.community").joinpath("resources", name).read_text("utf-8")


# -- admin commands ---------------------------------------------------------------------------
def _store(cfg: CommunityConfig, *, create: bool = False) -> CommunityStore:
    """The server's store; unless ``create``, :class:`ConfigError` when the data directory
    has none (a command run from the wrong directory must not act on a new, empty one)."""
    root = cfg.data_dir / "store"
    if not create and not (root / DB_FILE).exists():
        raise ConfigError(
            f"no community database in {root.resolve()}: give the server's --data-dir or"
            " --config (`room add` creates one)"
        )
    return CommunityStore(root)


def _server_pk(cfg: CommunityConfig) -> str:
    return bytes(keys.load_or_generate(cfg.data_dir).x25519_public).hex()


@main.group()
def room() -> None:
    """Add, list and delete rooms."""


@room.command("add")
@_options
@click.argument("token")
@click.argument("name")
@click.option("--description", help="The room's description.")
@exit_on_errors
def room_add(
    config_path: Path | None, data_dir: Path | None, token: str, name: str, description: str | None
) -> None:
    """Create room TOKEN (letters, digits, '_', '-') named NAME."""
    cfg = _load(config_path, data_dir)
    store = _store(cfg, create=True)
    try:
        r = store.add_room(token, name, description)
    finally:
        store.close()
    click.echo(f"room {r.token} created in {cfg.data_dir.resolve()}")


@room.command("list")
@_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@exit_on_errors
def room_list(config_path: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List the rooms."""
    store = _store(_load(config_path, data_dir))
    try:
        rooms = store.rooms()
        docs = [
            {
                "token": r.token,
                "name": r.name,
                "description": r.description,
                "messages": r.message_sequence,
            }
            for r in rooms
        ]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(docs))
        return
    for d in docs:
        click.echo(f"{d['token']}\t{for_terminal(str(d['name']), name=True)}")


@room.command("delete")
@_options
@click.argument("token")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@exit_on_errors
def room_delete(config_path: Path | None, data_dir: Path | None, token: str, yes: bool) -> None:
    """Delete room TOKEN with all its posts and files."""
    store = _store(_load(config_path, data_dir))
    try:
        store.room(token)
        if not yes:
            click.confirm(f"delete room {token} and everything in it?", abort=True)
        store.delete_room(token)
    finally:
        store.close()
    click.echo(f"room {token} deleted")


def _scope_options(fn: F) -> F:
    fn = click.option("--global", "is_global", is_flag=True, help="Server-wide.")(fn)
    fn = click.option("--room", "room_token", help="The room (else --global).")(fn)
    return fn


def _member_keys(cfg: CommunityConfig, member_id: str) -> list[str]:
    """The member keys an ID (05 Session ID or 15 blinded ID) stands for on this server."""
    return keys_for_id(check_id(member_id), _server_pk(cfg), require_blind=cfg.limits.require_blind)


def _scope(room_token: str | None, is_global: bool) -> None:
    if bool(room_token) == is_global:
        raise click.UsageError("give exactly one of --room TOKEN or --global")


def _on_member(
    config_path: Path | None,
    data_dir: Path | None,
    member_id: str,
    room_token: str | None,
    is_global: bool,
    action: Callable[[CommunityStore, list[str], Room | None], T],
) -> tuple[T, Room | None]:
    """Run ``action(store, member keys, room or None for --global)``; its result and the room."""
    _scope(room_token, is_global)
    cfg = _load(config_path, data_dir)
    check_id(member_id)
    store = _store(cfg)
    try:
        member_keys = _member_keys(cfg, member_id)
        r = store.room(room_token) if room_token else None
        return action(store, member_keys, r), r
    finally:
        store.close()


@main.group()
def mod() -> None:
    """Add and remove moderators and admins."""


@mod.command("add")
@_options
@click.argument("member_id")
@_scope_options
@click.option("--admin", is_flag=True, help="An admin (may also pin and add moderators).")
@click.option("--hidden", is_flag=True, help="Not listed in the room's moderators.")
@exit_on_errors
def mod_add(
    config_path: Path | None,
    data_dir: Path | None,
    member_id: str,
    room_token: str | None,
    is_global: bool,
    admin: bool,
    hidden: bool,
) -> None:
    """Make MEMBER_ID (a 05 Session ID or 15 blinded ID) a moderator."""
    _, r = _on_member(
        config_path, data_dir, member_id, room_token, is_global,
        lambda st, ks, rm: st.set_moderator(ks, rm, admin=admin, visible=not hidden),
    )  # fmt: skip
    what = "admin" if admin else "moderator"
    click.echo(f"{what} added {'server-wide' if r is None else 'in ' + r.token}")


@mod.command("remove")
@_options
@click.argument("member_id")
@_scope_options
@exit_on_errors
def mod_remove(
    config_path: Path | None,
    data_dir: Path | None,
    member_id: str,
    room_token: str | None,
    is_global: bool,
) -> None:
    """Remove MEMBER_ID's moderator (and admin) rights."""
    n, _ = _on_member(
        config_path, data_dir, member_id, room_token, is_global, CommunityStore.remove_moderator
    )
    click.echo("moderator removed" if n else "was not a moderator there")


@main.command()
@_options
@click.argument("member_id")
@_scope_options
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds until the ban lifts.")
@exit_on_errors
def ban(
    config_path: Path | None,
    data_dir: Path | None,
    member_id: str,
    room_token: str | None,
    is_global: bool,
    timeout: float | None,
) -> None:
    """Ban MEMBER_ID from a room or the whole server."""
    _on_member(
        config_path, data_dir, member_id, room_token, is_global,
        lambda st, ks, rm: st.ban(ks, rm, timeout),
    )  # fmt: skip
    click.echo("banned" + ("" if timeout is None else f" for {timeout:g} s"))


@main.command()
@_options
@click.argument("member_id")
@_scope_options
@exit_on_errors
def unban(
    config_path: Path | None,
    data_dir: Path | None,
    member_id: str,
    room_token: str | None,
    is_global: bool,
) -> None:
    """Lift MEMBER_ID's ban."""
    n, _ = _on_member(config_path, data_dir, member_id, room_token, is_global, CommunityStore.unban)
    click.echo("unbanned" if n else "was not banned there")


@main.command()
@_options
@click.argument("token")
@click.option("--qr/--no-qr", default=True, help="Also print a terminal QR code.")
@click.option("--public-url", help="Base URL (else network.public_url, else host:port).")
@exit_on_errors
def url(
    config_path: Path | None, data_dir: Path | None, token: str, qr: bool, public_url: str | None
) -> None:
    """Print the join URL of room TOKEN (and a QR code Session's apps can scan)."""
    cfg = _load(config_path, data_dir, public_url=public_url)
    store = _store(cfg)
    try:
        store.room(token)
    finally:
        store.close()
    link = join_url(base_url(cfg), check_token(token), _server_pk(cfg))
    click.echo(link)
    if (warning := join_url_warning(cfg)) is not None:
        click.echo(f"warning: {warning}", err=True)
    if qr:
        segno.make(link, error="m").terminal(compact=True)


__all__ = ["main", "resource_text"]
