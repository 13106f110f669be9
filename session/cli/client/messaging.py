"""``session send``, ``session inbox`` and ``session history``: messages."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from session.cli.client.base import (
    CliError,
    CliInterrupted,
    attachment_lines,
    body_line,
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
    who_line,
)
from session.errors import SessionError

if TYPE_CHECKING:
    from session.client import Client


@main.command()
@common
@click.argument("session_id")
@click.argument("words", nargs=-1)
@file_option
@click.option("--caption", default="", help="Text sent with the file (same as TEXT).")
@errors
def send(session_id: str, words: tuple[str, ...], file: Path | None, caption: str) -> None:
    """Send TEXT (or a file with --file) to SESSION_ID through an onion path; waits until the
    recipient's swarm has it. The words of TEXT are joined with spaces (`send ID hello world`);
    `-` reads the text from standard input."""
    to = parse_id(session_id)
    text = sys.stdin.read().rstrip("\n") if words == ("-",) else " ".join(words)
    if file is None and not text.strip():
        raise CliError("the message is empty: nothing was sent")
    if file is not None and text and caption:
        raise CliError("give the caption either as TEXT or with --caption, not both")

    #: where an interrupted send had got to (what a Ctrl-C is answered with)
    outcome: list[str] = []

    async def go() -> dict[str, Any]:
        s = await open_session()
        c = s.client
        # (the message this send makes is the conversation's new outgoing row: found by its id,
        # never by time, which the network's clock offset moves)
        before = {m.id for m in c.messages(to, 50)}
        try:
            try:
                await s.connect()
            except CliError as e:
                raise CliError(f"{e}; nothing was sent") from None
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
                    f"queued; not sent yet (tried {s.tried}: {why}): it goes out with the "
                    "next `session` command that reaches the network"
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
            try:
                mine = [m for m in c.messages(to, 50) if m.outgoing and m.id not in before]
                outcome.append(mine[-1].status if mine else "none")
            except (sqlite3.Error, SessionError):  # (the store busy: the outcome is not known)
                pass
            finally:
                await c.close()

    try:
        doc = run(go())
    except KeyboardInterrupt:
        # Say what the interrupted send left behind, so nobody sends it twice, or not at all.
        status = outcome[0] if outcome else ""
        if status == "sent":
            raise CliInterrupted("interrupted, but the message was sent", "sent") from None
        if status == "none":
            raise CliInterrupted("interrupted: nothing was sent", "none") from None
        if status:
            raise CliInterrupted(
                "interrupted: the message is queued, not sent yet; it goes out with the next "
                "`session` command that reaches the network (do not send it again)",
                "queued",
            ) from None
        raise CliInterrupted(
            f"interrupted: whether the message was sent is not known (see `session history {to}`)",
            "unknown",
        ) from None
    if json_mode():
        emit(doc)
    else:
        click.echo(f"sent to {short(to)} at {clock(doc['sent_ms'])}")


def _exact(m: dict[str, Any]) -> dict[str, Any]:
    """A message doc for --json: the exact fields, without the sanitised display text."""
    return {k: v for k, v in m.items() if k != "author_who"}


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
                "who": who_line(client, sid) if not name else shown_name(name),
                "name": contact.name if contact else name,
                "unread": len(unread),
                "last_ms": conv.last_ms,
                "count": conv.count,
                "messages": [
                    {**message_doc(m), "author_who": who_line(client, m.author)}
                    for m in (unread or msgs[-1:])
                ],
            }
        )
    return out


@main.command()
@common
@click.option("--offline", is_flag=True, help="Show what is stored locally; do not poll.")
@click.option("--mark-read", is_flag=True, help="Mark what is shown read (sends read receipts).")
@errors
def inbox(offline: bool, mark_read: bool) -> None:
    """Fetch new messages and list conversations (unread messages, else the last one)."""

    async def go() -> dict[str, Any]:
        s = await open_session()
        c = s.client
        try:
            if not offline:
                await s.connect()
                await s.flush()  # anything queued earlier goes out now
            convs = _conversation_docs(c)
            if mark_read:
                for conv in convs:
                    if conv["unread"]:
                        await c.mark_read(conv["session_id"])
                if not offline:
                    await s.flush()  # the read receipts
            doc = {
                "session_id": c.session_id,
                "conversations": convs,
                "requests": len(c.requests()),
                "queued": c.queued(),
            }
            return doc
        finally:
            await c.close()

    doc = run(go())
    if json_mode():
        for conv in doc["conversations"]:
            del conv["who"]
            conv["messages"] = [_exact(m) for m in conv["messages"]]
        emit(doc)
        return
    click.echo(f"inbox of {doc['session_id']}")
    if not doc["conversations"]:
        click.echo("  no conversations yet")
    for conv in doc.pop("conversations"):
        count = conv["count"]
        click.echo(
            f"{conv['who']}  ({conv['unread']} unread, {count} message{'' if count == 1 else 's'})"
        )
        for m in conv["messages"]:
            who = "you" if m["outgoing"] else m["author_who"]
            mark = "  *new*" if not m["outgoing"] and m["status"] == "received" else ""
            click.echo(f"  [{clock(m['sent_ms'])}] {who}: {body_line(m)}{mark}")
            for line in attachment_lines(m):
                click.echo(line)
        doc.setdefault("reply_to", conv["session_id"])
    reply_to = doc.get("reply_to")
    if reply_to and reply_to.startswith("03"):  # (a group's ID)
        click.echo(f"reply: session group send {reply_to} TEXT   (or: session group chat G)")
    elif reply_to:
        click.echo(f"reply: session send {reply_to} TEXT   (or: session chat ID)")
    if doc["requests"]:
        click.echo(f"{doc['requests']} message request(s): see `session requests`")
    if doc["queued"]:
        click.echo(f"{doc['queued']} outgoing item(s) still queued")


@main.command()
@common
@click.argument("session_id")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--keep-unread", is_flag=True, help="Do not mark the conversation read.")
@errors
def history(session_id: str, limit: int, keep_unread: bool) -> None:
    """Print the stored messages of one conversation (no network) and mark them read (the
    read receipt, if enabled, goes out with the next command that reaches the network; a
    message request stays unread until accepted)."""
    sid = parse_id(session_id)

    async def go() -> list[dict[str, Any]]:
        s = await open_session()
        c = s.client
        try:
            msgs = [
                {**message_doc(m), "author_who": who_line(c, m.author)}
                for m in c.messages(sid, limit)
            ]
            contact = c.contact(sid)
            if not keep_unread and (sid.startswith("03") or (contact and contact.approved)):
                await c.mark_read(sid)
            return msgs
        finally:
            await c.close()

    msgs = run(go())
    if json_mode():
        emit({"conversation": sid, "messages": [_exact(m) for m in msgs]})
        return
    if not msgs:
        click.echo(f"no messages with {sid}")
    for m in msgs:
        who = "you" if m["outgoing"] else m["author_who"]
        state = f"  ({m['status']})" if m["outgoing"] else ""
        click.echo(f"[{clock(m['sent_ms'])}] {who}: {body_line(m)}{state}")
        for line in attachment_lines(m):
            click.echo(line)
    if msgs:
        click.echo(f"reply: session send {sid} TEXT")


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
