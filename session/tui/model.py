"""What the terminal messenger shows, computed from the public client API (no Textual here).

:func:`entries` builds the conversations column (1:1 conversations, message requests, closed
groups; communities plug in as another ``kind`` once the client has them), :func:`fuzzy_score`
ranks them for the jump box, and the small formatters turn client rows and events into the
plain strings the widgets render. Every string that came from someone else passes
:func:`session.text.for_terminal` here, and the widgets render these strings as plain text
(never as Textual markup).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import TYPE_CHECKING

from session.client.community import Post
from session.client.db import Message
from session.errors import SessionError
from session.text import duration, for_terminal

if TYPE_CHECKING:
    from session.client import Client
    from session.client.messages import Expiration

#: A Session ID (05…) or closed group ID (03…) anywhere in pasted text (e.g. a QR code's text).
ID_IN_TEXT = re.compile(r"\b(0[35][0-9a-fA-F]{64})\b")

#: Delivery state of one of our messages as a person reads it (the message's stored status).
STATUS_WORDS = {
    "pending": "sending",
    "sent": "sent",
    "read": "read",
    "failed": "failed",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One row of the conversations column. ``kind``: ``direct``, ``request``, ``group``,
    ``invite`` (a group we are invited to) or ``community``."""

    conversation: str
    kind: str
    title: str  # sanitised
    unread: int
    preview: str  # sanitised, one line
    last_ms: int


def short(sid: str) -> str:
    """A Session ID shortened for a narrow column (start and end, to tell two apart)."""
    return f"{sid[:6]}…{sid[-4:]}"


def name_of(client: Client, sid: str) -> str:
    """Who ``sid`` is, sanitised: "you", our nickname for them, the name they chose, or a
    short ID."""
    if sid == client.session_id:
        return "you"
    nick = client.nickname(sid)
    if nick:
        return for_terminal(nick, name=True)
    c = client.contact(sid)
    return for_terminal(c.name, name=True) if c and c.name else short(sid)


def title_of(client: Client, conversation: str) -> str:
    """A conversation's title, sanitised: a group's name, else the person's name."""
    if is_community(conversation):
        try:
            room = client.communities.room(conversation)
        except SessionError:
            return conversation
        return for_terminal(room.name or room.token, name=True)
    if conversation.startswith("03"):
        try:
            return for_terminal(client.groups.info(conversation).name, name=True) or short(
                conversation
            )
        except SessionError:
            return short(conversation)
    if conversation == client.session_id:
        return "Note to self"
    return name_of(client, conversation)


def poster_name(post: Post) -> str:
    """Who wrote a room's post, sanitised: "you", the name they chose, or a short blinded ID."""
    if post.mine:
        return "you"
    return for_terminal(post.name or "", name=True) or short(post.author)


def one_line(text: str | None, width: int = 60) -> str:
    """Someone's text as one sanitised line of at most ``width`` characters."""
    s = for_terminal((text or "").replace("\n", " "))
    return s if len(s) <= width else s[: width - 1] + "…"


def preview_of(m: Message | None) -> str:
    """The preview line of a conversation's last message."""
    if m is None:
        return ""
    body = one_line(m.body)
    if not body and m.attachments:
        body = "[file]"
    return f"you: {body}" if m.outgoing else body


def entries(client: Client) -> list[Entry]:
    """The conversations column, newest first: requests and invites, then conversations."""
    out: list[Entry] = []
    for r in client.requests():
        last = r.messages[-1] if r.messages else None
        kind = "invite" if r.session_id.startswith("03") else "request"
        title = (
            for_terminal(r.name, name=True)
            if r.name
            else (title_of(client, r.session_id) if kind == "invite" else short(r.session_id))
        )
        preview = preview_of(last) if last else "invites you to a group"
        out.append(
            Entry(r.session_id, kind, title, len(r.messages), preview, last.sent_ms if last else 0)
        )
    out += community_entries(client)
    for c in client.conversations():
        last_msgs = client.messages(c.conversation, 1)
        kind = "group" if c.conversation.startswith("03") else "direct"
        out.append(
            Entry(
                c.conversation,
                kind,
                title_of(client, c.conversation),
                c.unread,
                preview_of(last_msgs[-1] if last_msgs else None),
                c.last_ms,
            )
        )
    return out


def community_key(base_url: str, token: str) -> str:
    """The conversation key of a community room (``Client.communities.room`` accepts it)."""
    return f"{base_url}/{token}"


def is_community(conversation: str) -> bool:
    return "://" in conversation


def community_entries(client: Client) -> list[Entry]:
    """The rooms we joined, each with its last post."""
    out = []
    for room in client.communities.rooms():
        key = community_key(room.base_url, room.token)
        last = client.communities.posts(key, limit=1)
        post = last[-1] if last else None
        preview = ""
        if post is not None:
            who = "you" if post.mine else for_terminal(post.name or "", name=True) or "?"
            preview = f"{who}: {one_line(post.body)}"
        out.append(
            Entry(
                key,
                "community",
                for_terminal(room.name or room.token, name=True),
                0,
                preview,
                post.sent_ms if post else room.joined_ms,
            )
        )
    return out


def fuzzy_score(query: str, text: str) -> int | None:
    """How well ``query`` matches ``text`` as a subsequence (lower is better; None: no
    match). Consecutive and early matches score better, so "bo" ranks "Bob" above "Rob O."."""
    q, t = query.lower().strip(), text.lower()
    if not q:
        return 0
    score, pos, last = 0, 0, -1
    for ch in q:
        i = t.find(ch, pos)
        if i < 0:
            return None
        score += (i - last - 1) * 2 + (i if last < 0 else 0)
        last, pos = i, i + 1
    return score


def clock(ms: int, *, now_ms: int | None = None) -> str:
    """The time of a message: HH:MM today, else with its date."""
    t = time.localtime(ms / 1000)
    now = time.localtime((now_ms if now_ms is not None else time.time() * 1000) / 1000)
    if (t.tm_year, t.tm_yday) == (now.tm_year, now.tm_yday):
        return time.strftime("%H:%M", t)
    if t.tm_year == now.tm_year:
        return time.strftime("%d %b", t)
    return time.strftime("%Y-%m-%d", t)


def day_of(ms: int) -> str:
    """The day separator of a message: "Monday 30 November 2026"."""
    return time.strftime("%A %d %B %Y", time.localtime(ms / 1000))


def same_day(a_ms: int, b_ms: int) -> bool:
    a, b = time.localtime(a_ms / 1000), time.localtime(b_ms / 1000)
    return (a.tm_year, a.tm_yday) == (b.tm_year, b.tm_yday)


def expiration_line(client: Client, by: str, exp: Expiration) -> str:
    """The event line of a disappearing-messages change ("Bob set disappearing messages to
    1 hour after sending")."""
    from session.client.messages import ExpirationMode  # noqa: PLC0415

    who = "You" if by == client.session_id else name_of(client, by)
    if exp.mode == ExpirationMode.OFF or exp.seconds <= 0:
        return f"{who} turned disappearing messages off"
    how = "after reading" if exp.mode == ExpirationMode.AFTER_READ else "after sending"
    return f"{who} set disappearing messages to {duration(exp.seconds)} {how}"
