"""``session requests [accept|decline]``, ``session block`` and ``session unblock``."""

from __future__ import annotations

from string import hexdigits
from typing import Any

import click

from session.cli.client import groups
from session.cli.client.base import (
    CliError,
    clock,
    common,
    emit,
    errors,
    json_mode,
    main,
    message_doc,
    open_session,
    parse_id,
    run,
    shown,
    shown_name,
)


@main.group(invoke_without_command=True)
@common
@click.option("--offline", is_flag=True, help="Show what is stored locally; do not poll.")
@click.pass_context
@errors
def requests(ctx: click.Context, offline: bool) -> None:
    """List message requests (messages from people you have not accepted)."""
    if ctx.invoked_subcommand is not None:
        return

    async def go() -> list[dict[str, Any]]:
        s = await open_session()
        c = s.client
        try:
            if not offline:
                await s.connect()
            return [
                {
                    "session_id": r.session_id,
                    "name": r.name,
                    "messages": [message_doc(m) for m in r.messages],
                }
                for r in c.requests()
            ]
        finally:
            await c.close()

    reqs = run(go())
    if json_mode():
        emit({"requests": reqs})
        return
    if not reqs:
        click.echo("no message requests")
    for r in reqs:
        click.echo(f"{r['session_id']}" + (f"  ({shown_name(r['name'])})" if r["name"] else ""))
        for m in r["messages"]:
            click.echo(f"  [{clock(m['sent_ms'])}] {shown(m['body'])}")
    if reqs:
        click.echo(
            "accept with `session requests accept ID`, drop with `session requests decline ID`, "
            "or `session block ID`"
        )


def _contact_action(session_id: str, action: str, done: str, needs_network: bool = False) -> None:
    """Run ``Client.<action>(SESSION_ID)``, deliver what it queued, print ``<done> SESSION_ID``."""
    sid = parse_id(session_id)

    async def go() -> dict[str, Any]:
        s = await open_session()
        c = s.client
        try:
            if action in ("accept_request", "decline_request") and sid not in {
                r.session_id for r in c.requests()
            }:
                contact = c.contact(sid)
                already = " (already a contact)" if contact and contact.approved else ""
                raise CliError(f"there is no message request from {sid}{already}: nothing sent")
            if needs_network:
                await s.connect()
            await getattr(c, action)(sid)
            if c.node_count:
                await s.flush()
            return {"session_id": sid, "action": action, "queued": c.queued()}
        finally:
            await c.close()

    doc = run(go())
    emit(doc) if json_mode() else click.echo(f"{done} {doc['session_id']}")


def _group_invitation(ref: str) -> str | None:
    """``ref`` as a group ID if it is one (``03…``: a group invitation, which `requests` lists
    next to message requests), else None."""
    gid = ref.strip().lower()
    if len(gid) == 66 and gid.startswith("03") and all(ch in hexdigits for ch in gid):
        return gid
    return None


@requests.command("accept")
@common
@click.argument("session_id")
@click.pass_context
@errors
def requests_accept(ctx: click.Context, session_id: str) -> None:
    """Accept SESSION_ID's message request (they are told), or join the group whose
    invitation `requests` lists (a 03… ID: the same as `group accept`)."""
    gid = _group_invitation(session_id)
    if gid is not None:
        ctx.invoke(groups.accept, group_ref=gid)
        return
    _contact_action(session_id, "accept_request", "accepted", needs_network=True)


@requests.command("decline")
@common
@click.argument("session_id")
@click.pass_context
@errors
def requests_decline(ctx: click.Context, session_id: str) -> None:
    """Delete SESSION_ID's message request and its messages (they are not told), or decline
    a group invitation (a 03… ID: the same as `group decline`)."""
    gid = _group_invitation(session_id)
    if gid is not None:
        ctx.invoke(groups.decline, group_ref=gid)
        return
    _contact_action(session_id, "decline_request", "declined")


@main.command()
@common
@click.argument("session_id")
@errors
def block(session_id: str) -> None:
    """Block SESSION_ID: its messages are dropped (synced to your other devices)."""
    _contact_action(session_id, "block", "blocked")


@main.command()
@common
@click.argument("session_id")
@errors
def unblock(session_id: str) -> None:
    """Unblock SESSION_ID."""
    _contact_action(session_id, "unblock", "unblocked")
