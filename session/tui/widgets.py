"""The widgets of the messenger's main screen: the conversations column and the history.

Everything someone else wrote is rendered as :class:`textual.content.Content` built from plain
strings (``Content.assemble`` never parses markup) after :func:`session.text.for_terminal`,
so neither terminal escapes nor Textual markup in a message can do anything.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import ListItem, Static

from session.client.attachments import safe_filename
from session.client.community import POLL_LIMIT
from session.errors import SessionError
from session.text import for_terminal
from session.tui import model

if TYPE_CHECKING:
    from session.client import Client, Message
    from session.client.community import Post

#: Messages (or a room's posts) loaded per page of history (older pages load when the view
#: reaches the top).
PAGE = 60
#: Posts asked of a room's server at once when the stored history of the room runs out
#: (SOGS's largest page: one onion round trip brings several pages).
ROOM_FETCH = POLL_LIMIT


class ConversationItem(ListItem):
    """One row of the conversations column: title, unread count, time; preview below."""

    def __init__(self, entry: model.Entry) -> None:
        self.entry = entry
        super().__init__(Static(self.content_of(entry), markup=False, classes="conv"))

    @staticmethod
    def content_of(e: model.Entry) -> Content:
        tag = {"request": "? ", "invite": "+ ", "group": "# ", "community": "@ "}.get(e.kind, "")
        unread = f" ({e.unread})" if e.unread and e.kind != "invite" else ""
        when = model.clock(e.last_ms) if e.last_ms else ""
        return Content.assemble(
            (tag, "bold"),
            (e.title, "bold"),
            (unread, "bold reverse" if unread else ""),
            " ",
            (when, "dim"),
            "\n",
            (e.preview, "dim"),
        )


class MessageLine(Static):
    """One stored message in the history (re-rendered when its delivery state changes)."""

    def __init__(self, client: Client, m: Message) -> None:
        self.client = client
        self.message = m
        super().__init__(self.content_of(client, m), markup=False, id=f"m{m.id}", classes="msg")
        if m.status == "control":
            self.add_class("event")

    @staticmethod
    def content_of(client: Client, m: Message) -> Content:
        if m.status == "control":  # a group's event line ("Alice removed Carol")
            return Content.assemble(("— " + for_terminal(m.body or "") + " —", "italic dim"))
        who = "you" if m.outgoing else model.name_of(client, m.author)
        body = for_terminal(m.body or "", multiline=True)
        parts: list[str | tuple[str, str]] = []
        if m.quote is not None:
            q = client.quoted(m)
            said = (
                f"{model.name_of(client, q.author)}: {model.one_line(q.body, 50)}"
                if q is not None
                else "a message not stored here"
            )
            parts.append((f"  ┃ {said}\n", "dim italic"))
        parts += [
            (model.clock(m.sent_ms), "dim"),
            " ",
            (who, "bold" if not m.outgoing else "bold italic"),
            ": ",
            body,
        ]
        if m.outgoing:
            word = model.STATUS_WORDS.get(m.status, m.status)
            parts.append((f"  ({word})", "bold red" if m.status == "failed" else "dim"))
        for a in m.attachments:
            name = for_terminal(safe_filename(a.file_name))
            parts.append(
                (f"\n    [file #{a.id}] {name} ({a.size:,} bytes) — /save {a.id}", "italic")
            )
        return Content.assemble(*parts)

    def refresh_from_client(self) -> None:
        """Read the message again (its delivery or read state changed)."""
        m = self.client.message(self.message.id)
        if m is not None:
            self.message = m
            self.update(self.content_of(self.client, m))


class PostLine(Static):
    """One post of a community room (with the post it quotes, its files and reactions)."""

    def __init__(self, client: Client, post: Post) -> None:
        self.post = post
        super().__init__(self.content_of(client, post), markup=False, classes="msg")

    @staticmethod
    def content_of(client: Client, p: Post) -> Content:
        who = model.poster_name(p)
        parts: list[str | tuple[str, str]] = []
        if p.quote:
            q = client.communities.quoted(p)
            said = (
                f"{model.poster_name(q)}: {model.one_line(q.body, 50)}"
                if q is not None
                else model.one_line(str(p.quote.get("text") or "a post not stored here"), 50)
            )
            parts.append((f"  ┃ {said}\n", "dim italic"))
        parts += [
            (model.clock(p.sent_ms or int(p.posted * 1000)), "dim"),
            " ",
            (who, "bold"),
            ": ",
            for_terminal(p.body or "", multiline=True),
        ]
        if p.edited:
            parts.append(("  (edited)", "dim"))
        for f in p.files:
            name = for_terminal(safe_filename(f.get("file_name")))
            parts.append((f"\n    [file] {name}", "italic"))
        if p.reactions:
            marks = " ".join(
                f"{for_terminal(str(e))} {v.get('count', '') if isinstance(v, dict) else ''}"
                for e, v in p.reactions.items()
            )
            parts.append((f"\n    {marks}", "dim"))
        return Content.assemble(*parts)


class HistoryView(VerticalScroll):
    """The open conversation: a window of loaded pages over the stored history. Only the
    newest :data:`PAGE` messages are read on open; scrolling to the top (or PageUp there)
    reads the page before, so a conversation of 10,000 messages opens as fast as one of 10.
    A community room pages the same way over the posts the client stored, and when those run
    out asks the room's server for older ones (:meth:`CommunityManager.fetch_older`, stored
    by the client for next time)."""

    def __init__(self, client: Client, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]  # Widget's keyword arguments
        self.client = client
        self.conversation: str | None = None
        self.oldest: Message | None = None
        self.newest_ms: int | None = None
        self.exhausted = True
        self._loading = False
        #: A room's oldest loaded post id, and whether its server has nothing older.
        self.oldest_post: int | None = None
        self._server_done = False
        #: Held while the window's lines are replaced or a page is put on top (redraws on
        #: the client's events can come while one is under way).
        self._redraw = asyncio.Lock()

    async def open(self, conversation: str | None) -> None:
        """Show the newest page of ``conversation`` (None: nothing open)."""
        async with self._redraw:
            await self._open(conversation)

    async def _open(self, conversation: str | None) -> None:
        self.conversation = conversation
        await self.remove_children()
        self.oldest, self.newest_ms, self.exhausted = None, None, True
        self.oldest_post, self._server_done = None, False
        if conversation is None:
            return
        if model.is_community(conversation):
            await self._open_room(conversation)
            return
        page = self.client.messages(conversation, PAGE)
        self.exhausted = len(page) < PAGE
        self.oldest = page[0] if page else None
        self.newest_ms = page[-1].sent_ms if page else None
        await self.mount_all(self._lines(page, None))
        self.scroll_end(animate=False, immediate=True)

    async def _open_room(self, key: str) -> None:
        """A community room: its newest stored page of posts (older ones page in at the top)."""
        posts = self.client.communities.posts(key, limit=PAGE)
        self.oldest_post = posts[0].id if posts else None
        self.exhausted = not posts
        await self.mount_all(self._post_lines(posts))
        self.scroll_end(animate=False, immediate=True)

    def _post_lines(self, posts: list[Post]) -> list[Static]:
        out: list[Static] = []
        prev: int | None = None
        for p in posts:
            ms = _post_ms(p)
            if prev is None or not model.same_day(prev, ms):
                out.append(Static(f"── {model.day_of(ms)} ──", markup=False, classes="day"))
            out.append(PostLine(self.client, p))
            prev = ms
        return out

    async def refresh_room(self) -> None:
        """Read the open room's loaded posts again (new posts, edits, reactions, deletions),
        keeping the view where it is unless it was following the end."""
        async with self._redraw:
            await self._refresh_room()

    async def _refresh_room(self) -> None:
        key = self.conversation
        if key is None or not model.is_community(key):
            return
        at_end = self.scroll_y >= self.max_scroll_y - 1
        y = self.scroll_y
        since = self.oldest_post - 1 if self.oldest_post is not None else 0
        posts = self.client.communities.posts(key, since=since, limit=self.loaded + ROOM_FETCH)
        if self.oldest_post is None and posts:
            self.oldest_post = posts[0].id
            self.exhausted = False
        await self.remove_children()
        await self.mount_all(self._post_lines(posts))
        if at_end:
            self.scroll_end(animate=False, immediate=True)
        else:
            self.call_after_refresh(lambda: self.scroll_to(y=y, animate=False))

    def _lines(self, page: list[Message], prev_ms: int | None) -> list[Static]:
        out: list[Static] = []
        for m in page:
            if prev_ms is None or not model.same_day(prev_ms, m.sent_ms):
                out.append(Static(f"── {model.day_of(m.sent_ms)} ──", markup=False, classes="day"))
            out.append(MessageLine(self.client, m))
            prev_ms = m.sent_ms
        return out

    @property
    def loaded(self) -> int:
        """How many messages (or a room's posts) are in the window."""
        return len(self.query(MessageLine)) + len(self.query(PostLine))

    async def load_older(self) -> int:
        """Read the page before the oldest loaded message and put it on top, keeping what is
        on screen in place; returns how many messages were added."""
        if self.conversation is None or self.exhausted or self._loading:
            return 0
        self._loading = True
        try:
            if model.is_community(self.conversation):
                return await self._load_older_posts(self.conversation)
            if self.oldest is None:
                return 0
            page = self.client.messages(self.conversation, PAGE, before=self.oldest)
            self.exhausted = len(page) < PAGE
            if not page:
                return 0
            conv = self.conversation
            if not await self._prepend(conv, self._lines(page, None), page[-1].sent_ms,
                                       self.oldest.sent_ms):  # fmt: skip
                return 0
            self.oldest = page[0]
            return len(page)
        finally:
            self._loading = False

    async def _load_older_posts(self, key: str) -> int:
        """A room's page before its oldest loaded post: from the client's store, and when that
        runs out, from the room's server (stored by the client, so only asked once)."""
        rooms = self.client.communities
        before = self.oldest_post
        if before is None:
            return 0
        page = rooms.posts(key, before=before, limit=PAGE)
        if len(page) < PAGE and not self._server_done:
            try:
                listed = await rooms.fetch_older(
                    key, before=page[0].id if page else before, limit=ROOM_FETCH
                )
            except SessionError as err:
                self.notify(
                    f"Older posts not loaded: {for_terminal(str(err))}",
                    severity="warning",
                    markup=False,
                )
            else:
                self._server_done = listed < ROOM_FETCH
            if self.conversation != key:
                return 0  # another conversation was opened meanwhile
            page = rooms.posts(key, before=before, limit=PAGE)
        self.exhausted = len(page) < PAGE and self._server_done
        if not page:
            return 0
        if not await self._prepend(
            key, self._post_lines(page), _post_ms(page[-1]), self._oldest_post_ms()
        ):
            return 0
        self.oldest_post = page[0].id
        return len(page)

    def _oldest_post_ms(self) -> int | None:
        first = self.query(PostLine)
        return _post_ms(first.first(PostLine).post) if first else None

    async def _prepend(
        self, conversation: str, lines: list[Static], page_last_ms: int, oldest_ms: int | None
    ) -> bool:
        """Put a page's lines on top, keeping what is on screen in place (one day separator
        where the same day continues into the loaded page); False if ``conversation`` is no
        longer the open one."""
        async with self._redraw:
            if self.conversation != conversation:
                return False
            await self._prepend_now(lines, page_last_ms, oldest_ms)
            return True

    async def _prepend_now(
        self, lines: list[Static], page_last_ms: int, oldest_ms: int | None
    ) -> None:
        first_day = self.query(".day").first(Static) if self.query(".day") else None
        if (
            first_day is not None
            and oldest_ms is not None
            and self.children
            and self.children[0] is first_day
            and model.same_day(page_last_ms, oldest_ms)
        ):
            await first_day.remove()  # the same day continues into the loaded page
        height = self.virtual_size.height
        await self.mount_all(lines, before=0)
        self.call_after_refresh(
            lambda: self.scroll_to(
                y=self.virtual_size.height - height + self.scroll_y, animate=False
            )
        )

    async def add(self, m: Message) -> None:
        """Append a new message (following the end if the view was at the end)."""
        if self.query(f"#m{m.id}"):
            return  # shown already (e.g. sent here, then echoed)
        at_end = self.scroll_y >= self.max_scroll_y - 1
        await self.mount_all(self._lines([m], self.newest_ms))
        self.newest_ms = m.sent_ms if self.newest_ms is None else max(self.newest_ms, m.sent_ms)
        if self.oldest is None:
            self.oldest = m
        if at_end:
            self.scroll_end(animate=False)

    async def event_line(self, text: str) -> None:
        """An event of the conversation ("Bob set disappearing messages to 1 hour")."""
        await self.mount(Static(f"— {text} —", markup=False, classes="event"))
        self.scroll_end(animate=False)

    def refresh_message(self, message_id: int) -> None:
        for line in self.query(f"#m{message_id}").results(MessageLine):
            line.refresh_from_client()

    def refresh_outgoing(self) -> None:
        """Re-read the state of every loaded message of ours (a read receipt arrived)."""
        for line in self.query(MessageLine):
            if line.message.outgoing and line.message.status != "read":
                line.refresh_from_client()

    async def forget(self, message_id: int) -> None:
        for line in self.query(f"#m{message_id}"):
            await line.remove()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new <= 0 < old and not self.exhausted:
            self.run_worker(self.load_older(), group="history")


def _post_ms(p: Post) -> int:
    """When a post was written (its own timestamp, else when the server got it)."""
    return p.sent_ms or int(p.posted * 1000)
