"""``session group …``: closed groups (03 IDs) through :attr:`session.client.Client.groups`.

A group is named by its full ID or by a unique prefix of its name. Group names, member names
and messages come from other people: they are printed only through
:func:`session.text.for_terminal` (``shown`` / ``shown_name``); ``--json`` output is exact.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from session.cli.client.base import (
    CliError,
    Session,
    clock,
    common,
    emit,
    errors,
    file_option,
    json_mode,
    main,
    message_doc,
    name_of,
    open_session,
    parse_id,
    print_message,
    progress_bar,
    run,
    shown,
    shown_name,
    timeout,
)
from session.cli.client.chat import _Chat, _say, converse_until_done
from session.text import duration as in_words

if TYPE_CHECKING:
    from session.client import Client, Event
    from session.client.groups import Group


def group_doc(g: Group) -> dict[str, Any]:
    return g.to_dict()


def _print_group(c: Client, g: Group) -> None:
    role = "admin" if g.admin else "member"
    click.echo(f"{shown_name(g.name)}  {g.group_id}")
    click.echo(f"  you: {role}, {g.status}; {len(g.members)} member(s)")
    if g.description:
        click.echo(f"  about: {shown(g.description)}")
    if g.disappear_after_send:
        click.echo(f"  messages disappear {in_words(g.disappear_after_send)} after sending")
    for m in g.members:
        mark = " (admin)" if m in g.admins else ""
        click.echo(f"    {name_of(c, m)}{mark}  {m}")


async def _with_client(
    op: Callable[[Session], Awaitable[Any]], *, connect: bool | None = True, flush: bool = True
) -> Any:
    """Open the client, poll once (``connect``; None: only when a network is known, so that
    commands reading local state work offline), run ``op``, deliver what it queued."""
    s = await open_session()
    try:
        if connect or (connect is None and s.client.node_count):
            await s.connect()
        out = await op(s)
        if flush:
            left = await s.client.drain(timeout())
            if left:
                raise CliError(
                    f"{left} item(s) were not delivered within {timeout():g} s (tried {s.tried});"
                    " they stay queued and go out with the next `session` command"
                )
        return out
    finally:
        await s.client.close()


def _ids(values: tuple[str, ...]) -> list[str]:
    return [parse_id(v) for v in values]


def _done(doc: dict[str, Any], text: str) -> None:
    if json_mode():
        emit(doc)
    else:
        click.echo(text)


@main.group()
def group() -> None:
    """Closed groups (up to 100 members): create, invite, chat, administer."""


@group.command("create")
@common
@click.argument("name")
@click.argument("members", nargs=-1)
@click.option("--description", default="", help="What the group is about.")
@errors
def create(name: str, members: tuple[str, ...], description: str) -> None:
    """Create group NAME (you are its admin) and invite the Session IDs given."""
    ids = _ids(members)

    async def op(s: Session) -> dict[str, Any]:
        gid = await s.client.groups.create(name, ids, description=description)
        return group_doc(s.client.groups.info(gid))

    doc = run(_with_client(op))
    _done(doc, f"created {shown_name(doc['name'])}: {doc['group_id']} ({len(ids)} invited)")


@group.command("list")
@common
@click.option("--offline", is_flag=True, help="Do not poll first.")
@errors
def list_(offline: bool) -> None:
    """Your groups and the groups you are invited to."""

    async def op(s: Session) -> list[dict[str, Any]]:
        return [group_doc(g) for g in s.client.groups.all()]

    docs = run(_with_client(op, connect=not offline, flush=False))
    if json_mode():
        emit({"groups": docs})
        return
    if not docs:
        click.echo("no groups yet")
    for d in docs:
        role = "admin" if d["admin"] else d["status"]
        n = len(d["members"])
        # (an invitation's or a removed member's list is not known here: no count)
        count = f", {n} member{'' if n == 1 else 's'}" if d["status"] == "joined" else ""
        click.echo(f"{shown_name(d['name'])}  ({role}{count})  {d['group_id']}")


@group.command("info")
@common
@click.argument("group_ref", metavar="G")
@click.option("--offline", is_flag=True, help="Do not poll first.")
@errors
def info(group_ref: str, offline: bool) -> None:
    """Name, description, members and admins of group G (polled first when a network is
    known; stored state otherwise)."""

    async def op(s: Session) -> tuple[dict[str, Any], Any]:
        g = s.client.groups.info(group_ref)
        if not json_mode():
            _print_group(s.client, g)
        return group_doc(g), None

    doc, _ = run(_with_client(op, connect=False if offline else None, flush=False))
    if json_mode():
        emit(doc)


@group.command("invite")
@common
@click.argument("group_ref", metavar="G")
@click.argument("members", nargs=-1, required=True)
@click.option(
    "--no-history",
    is_flag=True,
    help="They read only what is sent from now on (the group gets a new key), not the "
    "messages still stored.",
)
@errors
def invite(group_ref: str, members: tuple[str, ...], no_history: bool) -> None:
    """Admin: add and invite members to group G (they can read the messages the group's swarm
    still holds, unless --no-history)."""
    ids = _ids(members)

    async def op(s: Session) -> dict[str, Any]:
        added = await s.client.groups.invite(group_ref, ids, share_history=not no_history)
        return {"group_id": s.client.groups.resolve(group_ref), "invited": added}

    doc = run(_with_client(op))
    _done(doc, f"invited {len(doc['invited'])} member(s)")


@group.command("accept")
@common
@click.argument("group_ref", metavar="G")
@errors
def accept(group_ref: str) -> None:
    """Join group G you were invited to."""

    async def op(s: Session) -> dict[str, Any]:
        await s.client.groups.accept(group_ref)
        return group_doc(s.client.groups.info(group_ref))

    doc = run(_with_client(op))
    _done(doc, f"joined {shown_name(doc['name'])} ({len(doc['members'])} members)")


@group.command("decline")
@common
@click.argument("group_ref", metavar="G")
@errors
def decline(group_ref: str) -> None:
    """Decline the invitation to group G (nobody is told)."""

    async def op(s: Session) -> dict[str, Any]:
        gid = s.client.groups.resolve(group_ref)
        await s.client.groups.decline(gid)
        return {"group_id": gid, "declined": True}

    doc = run(_with_client(op, flush=False))
    _done(doc, "invitation declined")


@group.command("send")
@common
@click.argument("group_ref", metavar="G")
@click.argument("text", required=False, default="")
@file_option
@errors
def send(group_ref: str, text: str, file: Path | None) -> None:
    """Send TEXT (or a file with --file, TEXT being its caption) to group G."""
    if not text and file is None:
        raise CliError("the message is empty")

    async def op(s: Session) -> dict[str, Any]:
        if file is not None:
            gid = s.client.groups.resolve(group_ref)
            size = file.stat().st_size if file.is_file() else None
            with progress_bar(f"encrypting and uploading {file.name}", size) as step:
                mid = await s.client.send_file(gid, file, caption=text, progress=step)
        else:
            mid = await s.client.groups.send(group_ref, text)
        gid = s.client.groups.resolve(group_ref)
        return {"group_id": gid, "message_id": mid, "name": s.client.groups.info(gid).name}

    doc = run(_with_client(op))
    _done(doc, f"sent to {shown_name(doc['name']) or doc['group_id']}")


@group.command("history")
@common
@click.argument("group_ref", metavar="G")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--offline", is_flag=True, help="Do not poll first.")
@click.option("--keep-unread", is_flag=True, help="Do not mark the group read.")
@errors
def history(group_ref: str, limit: int, offline: bool, keep_unread: bool) -> None:
    """Fetch new messages (when a network is known and answers; otherwise the stored ones,
    saying so) and print the last ones of group G, with their attachments; marks the group
    read here and on your other devices (groups send no read receipts)."""

    async def go() -> list[dict[str, Any]]:
        s = await open_session()
        c = s.client
        try:
            gid = c.groups.resolve(group_ref)
            if not offline and c.node_count:
                try:
                    await s.connect()
                except CliError as e:  # (the network did not answer: what is stored here)
                    click.echo(f"{shown(str(e))}: showing the stored messages", err=True)
            msgs = c.messages(gid, limit)
            if not json_mode():
                for m in msgs:
                    _print_line(c, m)
            if not keep_unread:
                await c.mark_read(gid)
            return [message_doc(m) for m in msgs]
        finally:
            await c.close()

    docs = run(go())
    if json_mode():
        emit({"messages": docs})


def _print_line(c: Client, m: Any) -> None:
    if m.status == "control":
        click.echo(f"  [{clock(m.sent_ms)}] -- {shown(m.body)} --")
        return
    print_message(c, m)


@group.command("remove")
@common
@click.argument("group_ref", metavar="G")
@click.argument("members", nargs=-1, required=True)
@click.option("--delete-messages", is_flag=True, help="Also delete their messages.")
@errors
def remove(group_ref: str, members: tuple[str, ...], delete_messages: bool) -> None:
    """Admin: remove members from group G (a new key they cannot read)."""
    ids = _ids(members)

    async def op(s: Session) -> dict[str, Any]:
        await s.client.groups.remove(group_ref, ids, delete_messages=delete_messages)
        return {"group_id": s.client.groups.resolve(group_ref), "removed": ids}

    doc = run(_with_client(op))
    _done(doc, f"removed {len(ids)} member(s)")


@group.command("promote")
@common
@click.argument("group_ref", metavar="G")
@click.argument("member")
@errors
def promote(group_ref: str, member: str) -> None:
    """Admin: make MEMBER an admin of group G."""
    sid = parse_id(member)

    async def op(s: Session) -> dict[str, Any]:
        await s.client.groups.promote(group_ref, sid)
        return {"group_id": s.client.groups.resolve(group_ref), "promoted": sid}

    doc = run(_with_client(op))
    _done(doc, "promoted to admin")


@group.command("rename")
@common
@click.argument("group_ref", metavar="G")
@click.argument("name")
@errors
def rename(group_ref: str, name: str) -> None:
    """Admin: rename group G."""

    async def op(s: Session) -> dict[str, Any]:
        gid = s.client.groups.resolve(group_ref)
        await s.client.groups.rename(gid, name)
        return group_doc(s.client.groups.info(gid))

    doc = run(_with_client(op))
    _done(doc, f"renamed to {shown_name(doc['name'])}")


@group.command("describe")
@common
@click.argument("group_ref", metavar="G")
@click.argument("description")
@errors
def describe(group_ref: str, description: str) -> None:
    """Admin: set the description of group G."""

    async def op(s: Session) -> dict[str, Any]:
        gid = s.client.groups.resolve(group_ref)
        await s.client.groups.set_description(gid, description)
        return group_doc(s.client.groups.info(gid))

    doc = run(_with_client(op))
    _done(doc, "description set")


@group.command("leave")
@common
@click.argument("group_ref", metavar="G")
@errors
def leave(group_ref: str) -> None:
    """Leave group G (the others are told; it is forgotten here)."""

    async def op(s: Session) -> dict[str, Any]:
        gid = s.client.groups.resolve(group_ref)
        await s.client.groups.leave(gid)
        return {"group_id": gid, "left": True}

    doc = run(_with_client(op))
    _done(doc, "left the group")


_DURATION = re.compile(r"^(\d+)\s*([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds from ``30``, ``30s``, ``5m``, ``12h``, ``1d``, ``2w``."""
    m = _DURATION.match(text.strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise CliError(f"not a duration: {text!r} (e.g. 30s, 5m, 12h, 1d, 2w)")
    return int(m.group(1)) * _UNITS[m.group(2)]


@group.command("disappear")
@common
@click.argument("group_ref", metavar="G")
@click.argument("mode", type=click.Choice(["off", "after-send"]))
@click.argument("duration", required=False)
@errors
def disappear(group_ref: str, mode: str, duration: str | None) -> None:
    """Admin: messages of group G disappear DURATION after sending (or `off`)."""
    if mode == "off":
        seconds = 0
    elif duration is None:
        raise CliError("after-send needs a DURATION (e.g. 1d)")
    else:
        seconds = parse_duration(duration)

    async def op(s: Session) -> dict[str, Any]:
        gid = s.client.groups.resolve(group_ref)
        await s.client.groups.set_disappearing(gid, seconds)
        return {"group_id": gid, "disappear_after_send": seconds}

    doc = run(_with_client(op))
    _done(
        doc,
        "disappearing messages off"
        if not seconds
        else f"messages disappear {in_words(seconds)} after sending",
    )


GROUP_CHAT_HELP = """\
  type a line and press Enter to send it to the group
  /help     this list
  /quit     leave (after queued messages are delivered, up to --timeout); Ctrl-D too
  //text    send a line that starts with a slash"""


class _GroupChat(_Chat):
    """A chat whose peer is a group: lines go to the group, its events are printed."""

    def __init__(self, client: Client, gid: str) -> None:
        self.c = client
        self.peer = gid
        self.accepted = True
        self.name = shown_name(client.groups.info(gid).name)

    async def read_all(self) -> None:
        """Read receipts are off in groups."""

    async def line(self, line: str) -> bool:
        text = line.strip()
        if not text:
            return True
        if text == "/quit":
            return False
        if text == "/help":
            _say("help", GROUP_CHAT_HELP)
            return True
        if text.startswith("/") and not text.startswith("//"):
            word = text.split()[0]
            why = f"unknown command {shown(word)} (not sent; /help lists them)"
            _say("error", f"  {why}", error=word)
            return True
        if text.startswith("//"):
            line = line.replace("//", "/", 1)  # "//" sends a line that starts with "/"
        mid = await self.c.groups.send(self.peer, line)
        _say("queued", f"  you: {shown(line)}  (sending…)", message_id=mid, body=line)
        return True

    async def event(self, ev: Event) -> None:
        from session.client import MessageReceived, MessageSent  # noqa: PLC0415

        if getattr(ev, "conversation", None) != self.peer:
            return
        if isinstance(ev, MessageReceived) and not ev.outgoing:
            m = self.c.message(ev.message_id)
            if m is not None and m.status == "control":
                _say("control", f"  -- {shown(ev.body)} --", body=ev.body)
            else:
                who = name_of(self.c, ev.author)
                _say(
                    "message",
                    f"  [{clock(ev.sent_ms)}] {who}: {shown(ev.body)}",
                    author=ev.author,
                    body=ev.body,
                    sent_ms=ev.sent_ms,
                )
        elif isinstance(ev, MessageSent):
            _say("sent", "  (delivered)", message_id=ev.message_id, hash=ev.hash)


@group.command("chat")
@common
@click.argument("group_ref", metavar="G")
@click.option("--poll-interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
@errors
def chat(group_ref: str, poll_interval: float) -> None:
    """Chat in group G: type a line and press Enter to send it; /help lists the commands, /quit
    (or end of input) leaves; another /word is refused, never sent (//text sends "/text")."""
    run(_group_chat(group_ref, poll_interval))


async def _group_chat(group_ref: str, poll_interval: float) -> None:
    s = await open_session(background=False, poll_interval=poll_interval)
    c = s.client
    events = c.events()
    try:
        await s.connect()
        gid = c.groups.resolve(group_ref)
        if c.groups.info(gid).status != "joined":
            raise CliError("you are not a member of this group (accept its invitation first)")
        c.start_background()
        gc = _GroupChat(c, gid)
        _say("start", f"chatting in {gc.name} ({gid}); /help, /quit or Ctrl-D leaves", group_id=gid)
        for m in c.messages(gid, 10):
            if json_mode():
                emit({"event": "history", **message_doc(m)})
            else:
                _print_line(c, m)
        await converse_until_done(gc, events)
    finally:
        events.close()
        await c.close()
