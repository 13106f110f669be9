"""``session community …``: public rooms on community servers (SOGS), client spec §4.

Every command polls the account's own swarm first (so rooms joined on another device, which
arrive in the UserGroups config, are known), then talks to the room's server through onion
requests signed with the account's blinded key for that server, and pushes the config when the
joined rooms changed. ``ROOM`` is a room token (``lobby``), ``BASE_URL/ROOM`` when two servers
have a room of that name, or the join URL. Posts, names, reactions, quotes and file names were
written by others: they reach the terminal only through :func:`session.text.for_terminal`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from session.cli.client.base import (
    CliError,
    Session,
    common,
    emit,
    errors,
    json_mode,
    main,
    open_session,
    report,
    run,
    short,
    shown,
    shown_name,
    timeout,
)
from session.cli.client.chat import read_input
from session.errors import SessionError

if TYPE_CHECKING:
    from session.client import Client
    from session.client.community import Post, Room

T = TypeVar("T")


@main.group("community")
@common
def community_group() -> None:
    """Community rooms (open groups): join by URL, read, post, react, DM by blinded ID."""


NO_ANSWER = "the community server did not answer within {:g} s"


async def _online(*, poll: str | None = None, all_servers: bool = False) -> Session:
    """An open session whose swarm was polled; then one community poll of the server of room
    ``poll`` (or of every server)."""
    s = await open_session()
    ready = False
    try:
        await s.connect()
        c = s.client
        if poll is not None:
            room = c.communities.room(poll)
            await asyncio.wait_for(c.communities.poll(room.base_url), timeout())
        elif all_servers:
            await asyncio.wait_for(c.communities.poll_all(), timeout())
        ready = True
    except TimeoutError:
        raise CliError(NO_ANSWER.format(timeout())) from None
    finally:
        if not ready:  # whatever ended it, the client is closed before the error goes up
            await s.client.close()
    return s


def with_client(
    op: Callable[[Client], Awaitable[T]],
    *,
    offline: bool = False,
    poll: str | None = None,
    all_servers: bool = False,
) -> T:
    """Run ``op`` on an open client: online (our swarm polled, then the server of room
    ``poll`` or every server; what is queued is pushed afterwards) or ``offline`` (only what
    is stored). Each network step is bounded by --timeout."""

    async def go() -> T:
        s = await (open_session() if offline else _online(poll=poll, all_servers=all_servers))
        try:
            return await asyncio.wait_for(op(s.client), timeout())
        except TimeoutError:
            raise CliError(NO_ANSWER.format(timeout())) from None
        finally:
            if not offline:
                await s.flush()
            await s.client.close()

    return run(go())


def who(c: Client, p: Post) -> str:
    """The poster as the terminal shows them: you, a contact's name, their display name, or a
    short blinded id; the blinded id is always shown so look-alike names can be told apart."""
    if p.mine:
        return "you"
    sid = c.communities.match_contact(p.author, p.base_url)
    contact = c.contact(sid) if sid else None
    if contact is not None and contact.name:
        name = f"{shown_name(contact.name)} (contact)"
    elif p.name:
        name = shown_name(p.name)
    else:
        name = "anonymous"
    return f"{name} [{short(p.author)}]"


def post_doc(c: Client, p: Post) -> dict[str, Any]:
    doc = p.to_dict()
    doc["session_id"] = c.communities.match_contact(p.author, p.base_url)
    return doc


def post_lines(c: Client, p: Post, *, pinned: bool = False) -> list[str]:
    t = time.strftime("%H:%M:%S", time.localtime(p.posted))
    marks = ("  (edited)" if p.edited else "") + ("  (whisper)" if p.whisper else "")
    pin = " [pinned]" if pinned else ""
    lines = [f"  #{p.id}{pin} [{t}] {who(c, p)}: {shown(p.body, multiline=True)}{marks}"]
    if p.quote:
        lines.append(
            f"      ↪ replying to {shown(short(str(p.quote.get('author', ''))))}: "
            f"{shown(str(p.quote.get('text') or ''))}"
        )
    for f in p.files:
        lines.append(
            f"      [file {shown(f['url'].rsplit('/', 1)[-1])}] {shown(f['file_name'] or 'file')}"
            f" ({f['size']:,} bytes, {shown(f['content_type'])})"
        )
    if p.reactions:
        parts = []
        for emoji, r in p.reactions.items():
            mark = (
                "*" if r.get("you") or c.communities.blinded_id(p.base_url) in r["reactors"] else ""
            )
            parts.append(f"{shown(emoji)} {r['count']}{mark}")
        lines.append("      " + "  ".join(parts))
    return lines


def room_line(r: Room) -> str:
    name = shown_name(r.name) if r.name else r.token
    users = r.info.get("active_users")
    active = f", {users} active" if isinstance(users, int) else ""
    return f"{r.token}  {name}  on {r.base_url}{active}\n    {r.join_url}"


# ------------------------------------------------------------------------------ commands


@community_group.command("join")
@common
@click.argument("url")
@errors
def join(url: str) -> None:
    """Join the room of URL (http(s)://host[:port]/ROOM?public_key=<64 hex>)."""
    from session.client.community import parse_join_url  # noqa: PLC0415

    parse_join_url(url)  # a bad URL is refused before anything goes online

    async def op(c: Client) -> dict[str, Any]:
        room = await c.communities.join(url)
        return {
            **room.to_dict(),
            "blinded_id": c.communities.blinded_id(room.base_url),
            "posts": len(c.communities.posts(room.join_url)),
        }

    doc = with_client(op)
    if json_mode():
        emit(doc)
        return
    click.echo(f"joined {doc['room']} ({shown_name(doc['name'])}) on {doc['base_url']}")
    click.echo(f"  you appear there as {doc['blinded_id']} (blinded: not your Session ID)")
    click.echo(f"  {doc['posts']} recent post(s): `session community read {doc['room']}`")


_offline_option = click.option(
    "--offline", is_flag=True, help="Show what is stored locally; do not poll."
)


@community_group.command("list")
@common
@_offline_option
@errors
def list_rooms(offline: bool) -> None:
    """The rooms you joined (on any of your devices)."""

    async def op(c: Client) -> tuple[list[dict[str, Any]], list[str]]:
        rooms = c.communities.rooms()
        docs = [{**r.to_dict(), "blinded_id": c.communities.blinded_id(r.base_url)} for r in rooms]
        return docs, [room_line(r) for r in rooms]

    docs, lines = with_client(op, offline=offline)
    if json_mode():
        emit({"rooms": docs})
        return
    if not docs:
        click.echo("no communities joined: `session community join URL`")
    for line in lines:
        click.echo(line)


@community_group.command("read")
@common
@click.argument("room")
@click.option("--since", type=click.IntRange(min=0), default=0, help="Only posts after this #id.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@_offline_option
@errors
def read(room: str, since: int, limit: int, offline: bool) -> None:
    """Fetch new posts of ROOM and print them (verified posts only; #id for react/edit;
    pinned posts and moderators' whispers are marked)."""

    async def op(c: Client) -> tuple[list[dict[str, Any]], list[str], list[int]]:
        posts = c.communities.posts(room, since=since, limit=limit)
        pins = c.communities.pinned(room)
        docs = [{**post_doc(c, p), "pinned": p.id in pins} for p in posts]
        lines = [ln for p in posts for ln in post_lines(c, p, pinned=p.id in pins)]
        return docs, lines, pins

    docs, lines, pins = with_client(op, offline=offline, poll=None if offline else room)
    if json_mode():
        emit({"room": room, "posts": docs, "pinned": pins})
        return
    if pins:
        click.echo("pinned: " + ", ".join(f"#{i}" for i in pins))
    if not docs:
        click.echo(f"no posts in {shown(room)}" + (f" after #{since}" if since else ""))
    for line in lines:
        click.echo(line)


@community_group.command("post")
@common
@click.argument("room")
@click.argument("text", required=False, default="")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Attach a file (uploaded to the room's files, readable by the room). Repeatable.",
)
@click.option("--reply", "reply_to", type=click.IntRange(min=1), help="Quote post #ID.")
@errors
def post(room: str, text: str, files: tuple[Path, ...], reply_to: int | None) -> None:
    """Post TEXT (and files) to ROOM, signed with your blinded key for its server."""
    if not text and not files:
        raise CliError("the post is empty")

    async def op(c: Client) -> dict[str, Any]:
        return post_doc(c, await c.communities.post(room, text, files=files, reply_to=reply_to))

    doc = with_client(op, poll=room)
    report(doc, f"posted #{doc['id']} to {doc['room']}")


@community_group.command("react")
@common
@click.argument("room")
@click.argument("message_id", type=click.IntRange(min=1))
@click.argument("emoji")
@click.option("--remove", is_flag=True, help="Take your reaction back.")
@errors
def react(room: str, message_id: int, emoji: str, remove: bool) -> None:
    """React to post MESSAGE_ID of ROOM with EMOJI (1-12 characters)."""

    async def op(c: Client) -> bool:
        return await c.communities.react(room, message_id, emoji, remove=remove)

    changed = with_client(op, poll=room)
    verb = "removed from" if remove else "added to"
    report(
        {"room": room, "id": message_id, "emoji": emoji, "removed" if remove else "added": changed},
        f"{shown(emoji)} {verb} #{message_id}" + ("" if changed else " (no change)"),
    )


@community_group.command("edit")
@common
@click.argument("room")
@click.argument("message_id", type=click.IntRange(min=1))
@click.argument("text")
@errors
def edit(room: str, message_id: int, text: str) -> None:
    """Replace the text of your post MESSAGE_ID."""

    async def op(c: Client) -> dict[str, Any]:
        return post_doc(c, await c.communities.edit(room, message_id, text))

    doc = with_client(op, poll=room)
    report(doc, f"edited #{message_id}")


@community_group.command("delete")
@common
@click.argument("room")
@click.argument("message_id", type=click.IntRange(min=1))
@errors
def delete(room: str, message_id: int) -> None:
    """Delete post MESSAGE_ID (yours, or anyone's if you moderate the room)."""
    with_client(lambda c: c.communities.delete(room, message_id), poll=room)
    report({"room": room, "id": message_id, "deleted": True}, f"deleted #{message_id}")


@community_group.command("dm")
@common
@click.argument("blinded_id")
@click.argument("text")
@click.option("--room", help="A room on the recipient's server (needed if you joined several).")
@errors
def dm(blinded_id: str, text: str, room: str | None) -> None:
    """Send TEXT to the member BLINDED_ID (15…/25…) of a community server, end-to-end
    encrypted; they learn your Session ID from the message, the server does not."""
    blinded_id = blinded_id.strip().lower()

    async def op(c: Client) -> dict[str, Any]:
        ref = room
        if ref is None:
            bases = sorted({r.base_url for r in c.communities.rooms()})
            if len(bases) != 1:
                raise CliError(
                    "name the server with --room ROOM" if bases else "join a community first"
                )
            ref = bases[0]
        return (await c.communities.send_dm(ref, blinded_id, text)).to_dict()

    doc = with_client(op)
    report(doc, f"sent to {blinded_id} on {doc['base_url']}")


@community_group.command("dms")
@common
@_offline_option
@click.option(
    "--clear",
    "clear_server",
    metavar="ROOM",
    help="Delete every DM you received on the server of ROOM (there and here), then list.",
)
@errors
def dms(offline: bool, clear_server: str | None) -> None:
    """Fetch and list your community direct messages (received and sent)."""
    if clear_server is not None and offline:
        raise CliError("--clear asks the server: it cannot be --offline")

    async def op(c: Client) -> tuple[int | None, list[dict[str, Any]]]:
        cleared = None
        if clear_server is not None:
            cleared = await c.communities.clear_inbox(clear_server)
        out = []
        for m in c.communities.dms():
            d = m.to_dict()
            contact = c.contact(m.sender_session_id) if m.sender_session_id else None
            d["contact_name"] = contact.name if contact else None
            out.append(d)
        return cleared, out

    cleared, docs = with_client(op, offline=offline, all_servers=not offline)
    if json_mode():
        emit({"dms": docs, **({} if cleared is None else {"cleared": cleared})})
        return
    if cleared is not None:
        click.echo(f"deleted {cleared} received DM{'s' if cleared != 1 else ''} on the server")
    if not docs:
        click.echo("no community direct messages")
    for d in docs:
        t = time.strftime("%H:%M:%S", time.localtime(d["posted"]))
        if d["outgoing"]:
            click.echo(f"  [{t}] you → {d['peer']}: {shown(d['body'], multiline=True)}")
            continue
        name = d["contact_name"] or d["name"]
        label = shown_name(name) if name else "anonymous"
        click.echo(
            f"  [{t}] {label} [{d['peer']}] (Session ID {d['sender_session_id']}):"
            f" {shown(d['body'], multiline=True)}"
        )


@community_group.command("save")
@common
@click.argument("room")
@click.argument("file_id", type=click.IntRange(min=1))
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
def save(room: str, file_id: int, directory: Path, force: bool) -> None:
    """Download room file FILE_ID (the [file ID] lines of `community read`) through an onion
    path and write it under its sanitised name."""

    async def op(c: Client) -> dict[str, Any]:
        path = await c.communities.save_file(room, file_id, directory, force=force)
        return {"room": room, "file_id": file_id, "path": str(path), "size": path.stat().st_size}

    doc = with_client(op, poll=room)
    report(doc, f"saved {shown(doc['path'])} ({doc['size']:,} bytes)")


@community_group.command("leave")
@common
@click.argument("room")
@errors
def leave(room: str) -> None:
    """Leave ROOM here and on your other devices."""

    async def op(c: Client) -> dict[str, Any]:
        return (await c.communities.leave(room)).to_dict()

    doc = with_client(op)
    report({"left": doc}, f"left {doc['room']} on {doc['base_url']}")


@community_group.command("chat")
@common
@click.argument("room")
@click.option(
    "--history",
    "show_history",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Earlier posts to show first.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.5),
    default=2.0,
    show_default=True,
    help="Seconds between polls of the room's server.",
)
@errors
def chat(room: str, show_history: int, poll_interval: float) -> None:
    """Chat in ROOM: each line you type is posted; new posts are printed as they come.
    Commands: /reply ID TEXT, /react ID EMOJI, /help, /quit (or end of input); another /word
    is refused, never posted (//text posts a line starting with /)."""
    run(_chat(room, show_history, poll_interval))


def _say(kind: str, text: str | list[str], **fields: Any) -> None:
    if json_mode():
        emit({"event": kind, **fields})
    else:
        for line in [text] if isinstance(text, str) else text:
            click.echo(line)


CHAT_HELP = """\
  type a line and press Enter to post it to the room
  /reply ID TEXT   reply to post #ID
  /react ID EMOJI  react to post #ID
  /help            this list
  /quit            leave; Ctrl-D too
  //text           post a line that starts with a slash"""


def _post_id(text: str, usage: str) -> int:
    """The post number a chat command names (``#12`` or ``12``)."""
    try:
        return int(text.removeprefix("#"))
    except ValueError:
        raise CliError(f"usage: {usage} (ID is a post number, as in #12)") from None


async def _chat_line(c: Client, room: str, line: str) -> bool:
    """Handle one typed line; False to leave. A line starting with ``/`` is a command: an
    unknown one is refused, never posted to the room (``//`` posts a line starting with /)."""
    text = line.strip()
    if not text:
        return True
    if text == "/quit":
        return False
    if text == "/help":
        _say("help", CHAT_HELP)
        return True
    cmd, _, rest = text.partition(" ")
    try:
        if cmd == "/react":
            mid, _, emoji = rest.strip().partition(" ")
            await c.communities.react(room, _post_id(mid, "/react ID EMOJI"), emoji.strip())
        elif cmd == "/reply":
            mid, _, body = rest.strip().partition(" ")
            await c.communities.post(room, body.strip(), reply_to=_post_id(mid, "/reply ID TEXT"))
        elif text.startswith("/") and not text.startswith("//"):
            why = f"unknown command {shown(cmd)} (not posted; /help lists them)"
            _say("error", f"  {why}", error=cmd)
        else:
            await c.communities.post(room, line.replace("//", "/", 1) if text[:2] == "//" else line)
    except (CliError, ValueError, SessionError) as e:  # a bad id or emoji, unknown post, refusal
        _say("error", f"  ✗ {shown(str(e))}", error=str(e))
    return True


async def _chat(ref: str, show_history: int, poll_interval: float) -> None:
    s = await _online(poll=ref)
    c = s.client
    try:
        room = c.communities.room(ref)
        me = c.communities.blinded_id(room.base_url)
        _say(
            "start",
            f"chatting in {room.token} on {room.base_url} as {me}\n"
            "type a post and press Enter; /reply ID TEXT, /react ID EMOJI, /help; /quit or Ctrl-D"
            " leaves",
            room=room.token,
            base_url=room.base_url,
            blinded_id=me,
        )
        shown_seq: dict[int, int] = {}

        def show_new(initial: bool = False) -> None:
            posts = c.communities.posts(room.join_url, limit=show_history if initial else 1000)
            for p in posts:
                if shown_seq.get(p.id) == p.seqno:
                    continue
                kind = "post" if p.id not in shown_seq else "update"
                shown_seq[p.id] = p.seqno
                _say(kind, post_lines(c, p), **post_doc(c, p))

        show_new(initial=show_history > 0)
        if show_history == 0:
            shown_seq.update(
                {p.id: p.seqno for p in c.communities.posts(room.join_url, limit=1000)}
            )
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        reader = read_input(lines, "session-community-stdin")  # line editing on a terminal
        try:
            while True:
                try:
                    line = await asyncio.wait_for(lines.get(), poll_interval)
                except TimeoutError:
                    line = ""
                if line is None or not await _chat_line(c, room.join_url, line):
                    break
                try:
                    await asyncio.wait_for(c.communities.poll(room.base_url), timeout())
                except (TimeoutError, OSError, SessionError) as e:  # the next poll retries
                    why = str(e) or "no answer"
                    _say("offline", f"  (server unreachable, retrying: {shown(why)})", error=why)
                show_new()
        finally:
            if reader is not None:
                reader.cancel()
        _say("end", "bye")
    finally:
        try:
            await s.flush()
        finally:
            await s.client.close()
