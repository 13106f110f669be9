"""``session id …``: create, restore, list, choose and name identities."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from session.cli.client.base import (
    CliError,
    common,
    emit,
    errors,
    identity_store,
    json_mode,
    main,
    open_session,
    parse_id,
    pick_identity,
    remember_network,
    run,
    shown_name,
)
from session.cli.client.base import qr as qr_code


@main.group("id")
@common
def id_group() -> None:
    """Create, restore, list and choose identities (several may live in one --home)."""


@id_group.command("new")
@common
@click.option(
    "--qr/--no-qr", default=True, show_default=True, help="Print the Session ID as a QR code."
)
@click.option("--use", "make_current", is_flag=True, help="Make it the current identity.")
@errors
def id_new(qr: bool, make_current: bool) -> None:
    """Create an identity; print its Session ID and recovery phrase."""
    store = identity_store()
    ident = store.create()
    if make_current:
        store.use(ident.session_id)
    current = store.current == ident.session_id
    if json_mode():
        emit(
            {
                "session_id": ident.session_id,
                "mnemonic": ident.mnemonic,
                "current": current,
                "home": str(store.root),
            }
        )
        remember_network(ident.session_id)  # (after the phrase is out, whatever happens)
        return
    click.echo(f"Session ID:      {ident.session_id}")
    click.echo(f"Recovery phrase: {ident.mnemonic}")
    click.echo(
        "Write the phrase down and keep it secret: it is the only way to restore this account."
    )
    if qr:
        click.echo(qr_code(ident.session_id), nl=False)
    if current:
        click.echo(f"This is now the current identity in {store.root}.")
    else:
        click.echo(f"Current identity unchanged; switch with `session id use {ident.session_id}`.")
    remember_network(ident.session_id)


@id_group.command("restore")
@common
@click.argument("words", nargs=-1)
@click.option("--use", "make_current", is_flag=True, help="Make it the current identity.")
@errors
def id_restore(words: tuple[str, ...], make_current: bool) -> None:
    """Restore an identity from its recovery phrase.

    The phrase comes from the arguments, else from standard input (prompted, hidden, on a
    terminal)."""
    if words:
        phrase = " ".join(words)
    elif sys.stdin is not None and sys.stdin.isatty():
        phrase = click.prompt("Recovery phrase", hide_input=True)
    else:
        phrase = sys.stdin.read() if sys.stdin is not None else ""
    store = identity_store()

    from session.identity import Identity  # noqa: PLC0415

    ident = Identity.from_mnemonic(" ".join(phrase.split()))
    existed = ident.session_id in store.list()
    store.restore(ident.mnemonic)
    if make_current:
        store.use(ident.session_id)
    current = store.current == ident.session_id
    if json_mode():
        emit(
            {
                "session_id": ident.session_id,
                "existed": existed,
                "current": current,
                "home": str(store.root),
            }
        )
        remember_network(ident.session_id)
        return
    click.echo(
        f"Session ID: {ident.session_id}" + ("  (already present)" if existed else "  (restored)")
    )
    if current:
        click.echo("This is the current identity.")
    else:
        click.echo(f"Switch to it with `session id use {ident.session_id}`.")
    remember_network(ident.session_id)


@id_group.command("list")
@common
@errors
def id_list() -> None:
    """List the identities of --home (* marks the current one)."""
    store = identity_store()
    cur = store.current
    ids = store.list()
    names = run(_display_names(ids))
    if json_mode():
        emit(
            {
                "home": str(store.root),
                "current": cur,
                "identities": [
                    {"session_id": s, "current": s == cur, "display_name": names[s]} for s in ids
                ],
            }
        )
        return
    if not ids:
        click.echo(f"no identity in {store.root} yet: run `session id new` or `session id restore`")
        return
    for s in ids:
        name = f"  {shown_name(names[s])}" if names.get(s) else ""
        click.echo(f"{'*' if s == cur else ' '} {s}{name}")


async def _display_names(ids: list[str]) -> dict[str, str | None]:
    """The display name of each identity (read from its own database; no network)."""
    from session.client import Client  # noqa: PLC0415  (the client stays off `id`'s start-up)

    out: dict[str, str | None] = {}
    for sid in ids:
        c = Client.open(identity_store().root, identity=sid, create=False, background=False)
        try:
            out[sid] = c.display_name
        finally:
            await c.close()
    return out


@id_group.command("use")
@common
@click.argument("session_id")
@errors
def id_use(session_id: str) -> None:
    """Make SESSION_ID the current identity."""
    sid = parse_id(session_id)
    store = identity_store()
    if sid not in store.list():
        raise CliError(f"there is no identity {sid} in {store.root} (see `session id list`)")
    store.use(sid)
    if json_mode():
        emit({"current": sid})
    else:
        click.echo(f"current identity: {sid}")


@id_group.command("show")
@common
@click.option("--phrase", is_flag=True, help="Also print the recovery phrase (keep it secret).")
@click.option("--qr", is_flag=True, help="Also print the Session ID as a QR code.")
@errors
def id_show(phrase: bool, qr: bool) -> None:
    """Print the Session ID of the current (or --identity) identity."""
    store = identity_store()
    ident = store.load(pick_identity(store))
    if json_mode():
        doc = {"session_id": ident.session_id}
        if phrase:
            doc["mnemonic"] = ident.mnemonic
        emit(doc)
        return
    click.echo(ident.session_id)
    if phrase:
        click.echo(ident.mnemonic)
    if qr:
        click.echo(qr_code(ident.session_id), nl=False)


@id_group.command("name")
@common
@click.argument("name", required=False)
@errors
def id_name(name: str | None) -> None:
    """Set the display name sent with your messages (synced to your other devices); without
    NAME, print the current one."""

    async def go() -> dict[str, Any]:
        s = await open_session()
        try:
            if name is None:
                return {"session_id": s.client.session_id, "display_name": s.client.display_name}
            await s.client.set_display_name(name)
            if s.client.node_count:
                await s.flush()
            return {
                "session_id": s.client.session_id,
                "display_name": s.client.display_name,
                "queued": s.client.queued(),
            }
        finally:
            await s.client.close()

    doc = run(go())
    if json_mode():
        emit(doc)
    elif doc["display_name"] is None:
        click.echo('no display name set (set one with `session id name "NAME"`)')
    else:
        click.echo(f"display name: {shown_name(doc['display_name'])}")


@id_group.command("remove")
@common
@click.argument("session_id")
@click.option("--force", is_flag=True, help="Remove it although this is the only copy here.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@errors
def id_remove(session_id: str, force: bool, yes: bool) -> None:
    """Delete identity SESSION_ID and all its messages from --home. Its key file is the only
    copy of the key on this computer, so this needs --force (after saving the recovery phrase
    with `session id show --phrase`), and asks for confirmation unless --yes."""
    sid = parse_id(session_id)
    store = identity_store()
    if sid not in store.list():
        raise CliError(f"there is no identity {sid} in {store.root} (see `session id list`)")
    if not force:
        raise CliError(
            f"{sid} would be deleted with the only copy of its key on this computer: save its "
            f"recovery phrase (`session id show --phrase -i {sid}`), then add --force"
        )
    if not yes and not click.confirm(
        f"Delete identity {sid} and all its messages from {store.root}?", err=True
    ):
        raise CliError("nothing was removed")
    store.remove(sid)
    if json_mode():
        emit({"removed": sid})
    else:
        click.echo(f"removed {sid}")


@id_group.command("avatar")
@common
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--remove", is_flag=True, help="Stop sending a profile picture.")
@click.option("--of", "of", default=None, help="Save this contact's picture instead (into --to).")
@click.option(
    "--to",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=".",
    show_default=True,
)
@errors
def id_avatar(path: Path | None, remove: bool, of: str | None, directory: Path) -> None:
    """Set your profile picture from PATH (resized to 600 px, encrypted with a profile key,
    uploaded through an onion path, sent with your messages and synced to your other devices),
    or --remove it; with --of ID, download a contact's (or your own) picture into --to."""
    if sum((path is not None, remove, of is not None)) != 1:
        raise CliError("give PATH, --remove or --of ID")
    who = parse_id(of) if of is not None else None

    # Pillow stays off the start-up path of the other `id` commands
    from session.avatar import save_copy  # noqa: PLC0415

    async def go() -> dict[str, Any]:
        s = await open_session()
        c = s.client
        try:
            if who is not None:
                if c.contact_avatar_ref(who) is None:
                    raise CliError(f"{who} has not sent a profile picture")
                await s.connect()
                cached = await c.contact_avatar(who)
                assert cached is not None
                try:
                    out = save_copy(cached.read_bytes(), directory, who)
                except FileExistsError as e:
                    raise CliError(f"{e.filename} already exists") from None
                except OSError as e:
                    raise CliError(f"cannot write {e.filename}: {e.strerror}") from None
                return {"session_id": who, "path": out}
            if remove:
                await c.set_avatar(None)
                if c.node_count:  # the UserProfile config tells our other devices
                    await s.flush()
                return {"session_id": c.session_id, "avatar": None, "queued": c.queued()}
            await s.connect()
            ref = await c.set_avatar(path)
            assert ref is not None
            await s.flush()
            return {"session_id": c.session_id, "avatar": ref[0], "queued": c.queued()}
        finally:
            await c.close()

    doc = run(go())
    if json_mode():
        emit(doc)
    elif "path" in doc:
        click.echo(f"saved {doc['path']}")
    else:
        click.echo("profile picture removed" if doc["avatar"] is None else "profile picture set")
