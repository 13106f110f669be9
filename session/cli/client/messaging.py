"""``session send``, ``session inbox`` and ``session history``: messages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from session.cli.client.base import (
    CliError,
    attachment_lines,
    clock,
    common,
    emit,
    errors,
    file_option,
    json_mode,
    main,
    message_doc,
    open_session,
    parse_id,
    progress_bar,
    run,
    short,
    shown,
    shown_name,
    timeout,
)

if TYPE_CHECKING:
    from session.client import Client


@main.command()
@common
@click.argument("session_id")
@click.argument("text", required=False, default="")
@file_option
@click.option("--caption", default="", help="Text sent with the file (same as TEXT).")
@errors
def send(session_id: str, text: str, file: Path | None, caption: str) -> None:
    """Send TEXT (or a file with --file) to SESSION_ID through an onion path; waits until the
    recipient's swarm has it."""
    to = parse_id(session_id)
    if file is None and not text:
        raise CliError("the message is empty")
    if file is not None and text and caption:
        raise CliError("give the caption either as TEXT or with --caption, not both")

    async def go() -> dict[str, Any]:
        s = await open_session()
        c = s.client
        try:
            await s.connect()
            if file is not None:
                size = file.stat().st_size if file.is_file() else None
                with progress_bar(f"encrypting and uploading {file.name}", size) as step:
                    mid = await c.send_file(to, file, caption=caption or text, progress=step)
            else:
                mid = await c.send(to, text)
            await s.flush()
            m = c.message(mid)
            if m is None or m.status != "sent":
                why = c.delivery_error(mid) or f"no answer within {timeout():g} s"
                raise CliError(
                    f"the message was not delivered (tried {s.tried}: {why}); it stays "
                    "queued and goes out with the next `session` command"
                )
            return {
                "message_id": mid,
                "from": c.session_id,
                "to": to,
                "sent_ms": m.sent_ms,
                "hash": m.hash,
                "status": m.status,
            }
        finally:
            await c.close()

    doc = run(go())
    if json_mode():
        emit(doc)
    else:
        click.echo(f"sent to {to} (swarm hash {doc['hash']})")


def _conversation_docs(client: Client) -> list[dict[str, Any]]:
    out = []
    for conv in client.conversations():
        sid = conv.conversation
        msgs = client.messages(sid, 200)
        unread = [m for m in msgs if not m.outgoing and m.status == "received"]
        contact = client.contact(sid)
        name = client.groups.info(sid).name if sid.startswith("03") else None
        out.append(
            {
                "session_id": sid,
                "name": contact.name if contact else name,
                "unread": len(unread),
                "last_ms": conv.last_ms,
                "count": conv.count,
                "messages": [message_doc(m) for m in (unread or msgs[-1:])],
            }
        )
    return out


@main.command()
@common
@click.option("--offline", is_flag=True, help="Show what is stored locally; do not poll.")
@errors
def inbox(offline: bool) -> None:
    """Fetch new messages and list conversations (unread messages, else the last one)."""

    async def go() -> dict[str, Any]:
        s = await open_session()
        c = s.client
        try:
            if not offline:
                await s.connect()
                await s.flush()  # anything queued earlier goes out now
            doc = {
                "session_id": c.session_id,
                "conversations": _conversation_docs(c),
                "requests": len(c.requests()),
                "queued": c.queued(),
            }
            return doc
        finally:
            await c.close()

    doc = run(go())
    if json_mode():
        emit(doc)
        return
    click.echo(f"inbox of {doc['session_id']}")
    if not doc["conversations"]:
        click.echo("  no conversations yet")
    for conv in doc["conversations"]:
        name = shown_name(conv["name"]) if conv["name"] else None
        click.echo(
            f"{name or conv['session_id']}  ({conv['unread']} unread, {conv['count']} messages)"
        )
        for m in conv["messages"]:
            who = "you" if m["outgoing"] else (name or short(m["author"]))
            mark = "  *new*" if not m["outgoing"] and m["status"] == "received" else ""
            click.echo(f"  [{clock(m['sent_ms'])}] {who}: {shown(m['body'])}{mark}")
            for line in attachment_lines(m):
                click.echo(line)
    if doc["requests"]:
        click.echo(f"{doc['requests']} message request(s): see `session requests`")
    if doc["queued"]:
        click.echo(f"{doc['queued']} outgoing item(s) still queued")


@main.command()
@common
@click.argument("session_id")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@errors
def history(session_id: str, limit: int) -> None:
    """Print the stored messages of one conversation (no network)."""
    sid = parse_id(session_id)

    async def go() -> list[dict[str, Any]]:
        s = await open_session()
        try:
            return [message_doc(m) for m in s.client.messages(sid, limit)]
        finally:
            await s.client.close()

    msgs = run(go())
    if json_mode():
        emit({"conversation": sid, "messages": msgs})
        return
    if not msgs:
        click.echo(f"no messages with {sid}")
    for m in msgs:
        who = "you" if m["outgoing"] else short(m["author"])
        click.echo(f"[{clock(m['sent_ms'])}] {who}: {shown(m['body'])}  ({m['status']})")
        for line in attachment_lines(m):
            click.echo(line)


@main.command()
@common
@click.argument("attachment_id", type=click.IntRange(min=1))
@click.option(
    "--to",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=".",
    show_default=True,
    help="Directory to write the file into.",
)
@click.option("--force", is_flag=True, help="Replace a file of the same name.")
@errors
def save(attachment_id: int, directory: Path, force: bool) -> None:
    """Download attachment ATTACHMENT_ID (the #number `session inbox` and `history` show)
    through an onion path, check and decrypt it, and write it under its sanitised name."""

    async def go() -> dict[str, Any]:
        s = await open_session()
        c = s.client
        try:
            att = c.attachment(attachment_id)
            if att is None:
                raise CliError(f"there is no attachment #{attachment_id}")
            await s.connect()
            with progress_bar("downloading and decrypting", None) as step:
                path = await c.save_attachment(attachment_id, directory, force=force, progress=step)
            return {"attachment_id": attachment_id, "path": str(path), "size": att.size}
        finally:
            await c.close()

    doc = run(go())
    if json_mode():
        emit(doc)
    else:
        click.echo(f"saved {shown(doc['path'])} ({doc['size']:,} bytes)")
