"""The widgets of the messenger's main screen: the conversations column and the history.

Everything someone else wrote is rendered as :class:`textual.content.Content` built from plain
strings (``Content.assemble`` never parses markup) after :func:`session.text.for_terminal`,
so neither terminal escapes nor Textual markup in a message can do anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import ListItem, Static

from session.client.attachments import safe_filename
from session.text import for_terminal
from session.tui import model

if TYPE_CHECKING:
    from session.client import Client, Message
    from session.client.community import Post

#: Messages loaded per page of history (older pages load when the view reaches the top).
PAGE = 60
#: Posts of a community room shown when it opens.
ROOM_POSTS = 200


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

    def __init__(self, post: Post) -> None:
        self.post = post
        super().__init__(self.content_of(post), markup=False, classes="msg")

    @staticmethod
    def content_of(p: Post) -> Content:
        who = "you" if p.mine else (for_terminal(p.name or "", name=True) or model.short(p.author))
        parts: list[str | tuple[str, str]] = []
        if p.quote:
            quoted = model.one_line(str(p.quote.get("text") or ""), 50)
            parts.append((f"  ┃ {quoted}\n", "dim italic"))
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
    reads the page before, so a conversation of 10,000 messages opens as fast as one of 10."""

    def __init__(self, client: Client, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]  # Widget's keyword arguments
        self.client = client
        self.conversation: str | None = None
        self.oldest: Message | None = None
        self.newest_ms: int | None = None
        self.exhausted = True
        self._loading = False

    async def open(self, conversation: str | None) -> None:
        """Show the newest page of ``conversation`` (None: nothing open)."""
        self.conversation = conversation
        await self.remove_children()
        self.oldest, self.newest_ms, self.exhausted = None, None, True
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
        """A community room: its newest posts (the room keeps them on its server; the client
        stores what it polled)."""
        posts = self.client.communities.posts(key, limit=ROOM_POSTS)
        out: list[Static] = []
        prev: int | None = None
        for p in posts:
            ms = p.sent_ms or int(p.posted * 1000)
            if prev is None or not model.same_day(prev, ms):
                out.append(Static(f"── {model.day_of(ms)} ──", markup=False, classes="day"))
            out.append(PostLine(p))
            prev = ms
        await self.mount_all(out)
        self.scroll_end(animate=False, immediate=True)

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
        """How many messages are in the window."""
        return len(self.query(MessageLine))

    async def load_older(self) -> int:
        """Read the page before the oldest loaded message and put it on top, keeping what is
        on screen in place; returns how many messages were added."""
        if self.conversation is None or self.exhausted or self.oldest is None or self._loading:
            return 0
        self._loading = True
        try:
            page = self.client.messages(self.conversation, PAGE, before=self.oldest)
            self.exhausted = len(page) < PAGE
            if not page:
                return 0
            first_day = self.query(".day").first(Static) if self.query(".day") else None
            if (
                first_day is not None
                and self.children
                and self.children[0] is first_day
                and model.same_day(page[-1].sent_ms, self.oldest.sent_ms)
            ):
                await first_day.remove()  # the same day continues into the loaded page
            height = self.virtual_size.height
            self.oldest = page[0]
            await self.mount_all(self._lines(page, None), before=0)
            self.call_after_refresh(
                lambda: self.scroll_to(
                    y=self.virtual_size.height - height + self.scroll_y, animate=False
                )
            )
            return len(page)
        finally:
            self._loading = False

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
