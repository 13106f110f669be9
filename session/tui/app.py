"""``session tui``: the full-screen messenger (Textual) on the public client API.

:class:`SessionTui` takes an open :class:`session.client.Client` whose background loops run
in the same event loop; it reads state with the client's query methods, acts with its
operations and follows its :meth:`~session.client.Client.events` stream. The input box is a
Textual ``Input``: incoming messages are drawn in the history above it and never touch what is
being typed. Layout: conversations column (left), history with typing line, request buttons
and input box (right), status bar (bottom: connection, nodes, paths, outbox, clock offset).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Button, Input, ListView, Static

from session.client import (
    CommunityRoomUpdated,
    ConnectionChanged,
    ContactsSynced,
    ExpirationChanged,
    MessageDeleted,
    MessageFailed,
    MessageRead,
    MessageReceived,
    MessageSent,
    ProfileChanged,
    ReadElsewhere,
    RequestAccepted,
    Typing,
)
from session.client.messages import MAX_BODY_CHARS, Expiration, ExpirationMode
from session.errors import SessionError
from session.text import for_terminal
from session.tui import model
from session.tui.notify import COMMAND, DesktopNotifier
from session.tui.screens import (
    FileScreen,
    HelpScreen,
    IdentityScreen,
    JumpScreen,
    NewConversationScreen,
    SettingsScreen,
)
from session.tui.widgets import ConversationItem, HistoryView

if TYPE_CHECKING:
    from session.client import Client, Event, IdentityStore, Message
    from session.client.community import Post

#: Seconds between typing indicators while typing (Session shows one for 20 s).
TYPING_EVERY_S = 10.0
#: Seconds a peer's typing line stays without a new indicator.
TYPING_SHOWN_S = 20.0
#: Seconds between status bar updates.
STATUS_EVERY_S = 2.0
#: Seconds without a key after which the input box's cursor stops blinking (it stays shown):
#: the blink redraws twice a second, most of the app's idle CPU (measured 0.6 of 0.75 %).
BLINK_IDLE_S = 10.0
#: `/disappear` arguments.
TIMER_WORDS = {"off": 0, "5m": 300, "1h": 3600, "12h": 43200, "1d": 86400, "1w": 604800}

CSS = """
Screen { layout: vertical; }
#main { height: 1fr; }
#convs { width: 28; border-right: solid $primary-darken-2; }
#convs > ListItem { height: 2; }
.conv { text-wrap: nowrap; text-overflow: ellipsis; }
#right { width: 1fr; }
#title { height: 1; background: $primary-darken-2; text-style: bold; padding: 0 1; }
#requestbar { height: 3; display: none; }
#requestbar.shown { display: block; }
#requestbar Button { margin: 0 1; min-width: 10; }
#history { height: 1fr; padding: 0 1; }
.day { color: $text-muted; text-align: center; }
.event { color: $text-muted; text-style: italic; text-align: center; }
#typing { height: 1; color: $text-muted; padding: 0 1; }
#replying { height: auto; max-height: 1; color: $accent; padding: 0 1; }
#compose { height: 3; }
#status { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
.dialog { width: 70; height: auto; max-height: 90%; background: $surface;
          border: thick $primary; padding: 1 2; }
.dialog.wide { width: 90%; }
.dialog.tall { height: 90%; }
.dialog-title { text-style: bold; margin-bottom: 1; }
ModalScreen { align: center middle; }
.row { height: auto; }
.row Input { width: 1fr; }
#matches { height: auto; max-height: 12; }
#tree { height: 1fr; }
"""


class SessionTui(App[str | None]):
    """The messenger. ``exit`` value: a Session ID to switch to (the caller reopens the client
    with it), else None."""

    TITLE = "Session"
    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "new", "New", priority=True),
        Binding("ctrl+k", "jump", "Jump", priority=True),
        Binding("f1", "help", "Keys", priority=True),
        Binding("question_mark", "help", "Keys", show=False),
        Binding("f2", "identity", "Identity", priority=True),
        Binding("f3", "settings", "Settings", priority=True),
        Binding("ctrl+o", "attach", "File", priority=True),
        Binding("ctrl+r", "reply", "Reply", priority=True),
        Binding("escape", "cancel_reply", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("up", "line(-1)", show=False),
        Binding("down", "line(1)", show=False),
    ]

    def __init__(
        self,
        client: Client,
        *,
        store: IdentityStore | None = None,
        quit_timeout: float = 30.0,
        bell: bool = False,
        notifications: str = "off",
        notify_command: str = COMMAND,
        blink_idle_s: float = BLINK_IDLE_S,
    ) -> None:
        super().__init__()
        self.client = client
        self.store = store if store is not None else client.store
        self.quit_timeout = quit_timeout
        self.bell_on = bell
        #: Desktop notifications of messages in other conversations (``off`` / ``sender`` /
        #: ``preview``, see :mod:`session.tui.notify`).
        self.notifier = DesktopNotifier(notifications, notify_command)
        self._notice = ""  # a passing note in the status bar
        self._said_unavailable = False
        self._last_key = time.monotonic()
        self.blink_idle_s = blink_idle_s
        self.stream = client.events()  # subscribed now: nothing emitted later is missed
        self.current: str | None = None
        self.entries: list[model.Entry] = []
        #: The message (a room's post in a community) the next one sent replies to (Ctrl+R),
        #: in the open conversation.
        self.reply_to: Message | Post | None = None
        #: Unsent text of the conversations not open (restored when one is opened again).
        self.drafts: dict[str, str] = {}
        self._typing_sent = 0.0
        self._typing_on = False
        self._quitting = False
        self._activity = ""  # an upload in progress, shown in the status bar
        self.queued_at_exit: int | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ListView(id="convs", initial_index=None)
            with Vertical(id="right"):
                yield Static("", id="title", markup=False)
                with Horizontal(id="requestbar"):
                    yield Button("Accept", id="accept", variant="success")
                    yield Button("Decline", id="decline", variant="warning")
                    yield Button("Block", id="block", variant="error")
                yield HistoryView(self.client, id="history")
                yield Static("", id="typing", markup=False)
                yield Static("", id="replying", markup=False)
                yield Input(
                    placeholder="Message (Enter sends; ? or F1: keys)",
                    id="compose",
                    max_length=MAX_BODY_CHARS,
                )
        yield Static("", id="status", markup=False)

    @property
    def history(self) -> HistoryView:
        return self.query_one("#history", HistoryView)

    @property
    def compose_box(self) -> Input:
        return self.query_one("#compose", Input)

    async def on_mount(self) -> None:
        await self.refresh_list()
        if self.entries:
            await self.open_conversation(self.entries[0].conversation)
        else:
            self.query_one("#title", Static).update("No conversations yet: Ctrl+N starts one")
        self.compose_box.focus()
        self.update_status()
        self.set_interval(STATUS_EVERY_S, self.update_status)
        self.set_interval(self.blink_idle_s / 2, self._rest_cursor)
        if self.notifier.mode != "off" and not self.notifier.available():
            self.say_unavailable()
        self.pump_events()

    # ------------------------------------------------------------------ the column

    async def refresh_list(self) -> None:
        """Rebuild the conversations column from the client's state."""
        self.entries = model.entries(self.client)
        lv = self.query_one("#convs", ListView)
        await lv.clear()
        await lv.extend([ConversationItem(e) for e in self.entries])
        self._highlight_current()

    def _highlight_current(self) -> None:
        lv = self.query_one("#convs", ListView)
        for i, e in enumerate(self.entries):
            if e.conversation == self.current:
                if lv.index != i:
                    with lv.prevent(ListView.Highlighted):
                        lv.index = i
                return

    def _read_already(self, message_id: int) -> bool:
        """A message stored read (another device of ours had read it): no bell, no notice."""
        m = self.client.message(message_id)
        return m is not None and m.status == "read"

    def entry(self, conversation: str | None) -> model.Entry | None:
        return next((e for e in self.entries if e.conversation == conversation), None)

    @on(ListView.Selected, "#convs")
    async def _selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, ConversationItem):
            await self.open_conversation(event.item.entry.conversation)
            self.compose_box.focus()

    @on(ListView.Highlighted, "#convs")
    async def _highlighted(self, event: ListView.Highlighted) -> None:
        if isinstance(event.item, ConversationItem) and self.focused is event.list_view:
            await self.open_conversation(event.item.entry.conversation)

    # ------------------------------------------------------------------ the conversation

    async def open_conversation(self, conversation: str) -> None:
        """Show ``conversation`` (marking what it holds read unless it is a request)."""
        if conversation == self.current:
            return
        await self._stop_typing()
        box = self.compose_box
        if self.current is not None:  # what was typed stays with its conversation
            self.drafts[self.current] = box.value
        with box.prevent(Input.Changed):
            box.value = self.drafts.pop(conversation, "")
        self.current = conversation
        self.action_cancel_reply()
        e = self.entry(conversation)
        kind = e.kind if e else ("group" if conversation.startswith("03") else "direct")
        self.set_title(conversation, kind)
        self.query_one("#requestbar").set_class(kind in ("request", "invite"), "shown")
        self.query_one("#typing", Static).update("")
        await self.history.open(conversation)
        self._highlight_current()
        if kind in ("direct", "group") and e is not None and e.unread:
            await self.mark_read(conversation)

    def set_title(self, conversation: str, kind: str = "") -> None:
        """The line above the history: who or what is open, and where."""
        title = model.title_of(self.client, conversation)
        suffix = {
            "request": "  (message request: reply or Accept to accept)",
            "invite": "  (group invitation)",
        }.get(kind, "")
        where = (
            conversation.rpartition("/")[0]
            if model.is_community(conversation)
            else model.short(conversation)
        )
        self.query_one("#title", Static).update(f"{title}  {where}{suffix}")

    async def mark_read(self, conversation: str) -> None:
        try:
            await self.client.mark_read(conversation)
        except SessionError as err:
            self.notify(for_terminal(str(err)), severity="warning", markup=False)
        await self.refresh_list()

    # ------------------------------------------------------------------ sending

    @on(Input.Submitted, "#compose")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if text.startswith("/"):
            if await self.command(text):
                self.compose_box.value = ""
            return
        if not text.strip():
            self.notify("Nothing to send: the message is empty.", severity="warning")
            return
        if await self.send_text(text):
            self.compose_box.value = ""

    async def send_text(self, text: str) -> bool:
        """Send ``text`` to the open conversation (replying to a request accepts it);
        returns whether it was queued (what was typed stays in the box otherwise)."""
        conv = self.current
        if conv is None:
            self.notify("Open a conversation first (Ctrl+N or Ctrl+K).", severity="warning")
            return False
        e = self.entry(conv)
        try:
            if e is not None and e.kind == "invite":
                await self.client.groups.accept(conv)
            elif e is not None and e.kind == "request":
                await self.client.accept_request(conv)
            reply = self.reply_to
            if model.is_community(conv):
                post_id = reply.id if isinstance(reply, model.Post) else None
                await self.client.communities.post(conv, text, reply_to=post_id)
                await self._stop_typing()
                self.action_cancel_reply()
                await self.history.refresh_room()
                await self.refresh_list()
                return True
            message = reply if isinstance(reply, model.Message) else None
            if conv.startswith("03"):
                mid = await self.client.groups.send(conv, text, reply_to=message)
            else:
                mid = await self.client.send(conv, text, reply_to=message)
        except (SessionError, ValueError) as err:
            self.notify(f"Not sent: {for_terminal(str(err))}", severity="error", markup=False)
            return False
        await self._stop_typing()
        self.action_cancel_reply()
        m = self.client.message(mid)
        if m is not None:
            await self.history.add(m)
        if e is None or e.kind in ("request", "invite"):
            await self._reopen_kind(conv)
        else:
            await self.refresh_list()
        return True

    async def _reopen_kind(self, conv: str) -> None:
        """After accepting: the conversation moves from the requests to the conversations."""
        await self.refresh_list()
        self.query_one("#requestbar").set_class(False, "shown")
        self.set_title(conv)

    @on(Input.Changed, "#compose")
    async def _typing(self, event: Input.Changed) -> None:
        conv = self.current
        e = self.entry(conv)
        if conv is None or e is None or e.kind != "direct" or conv == self.client.session_id:
            return
        if not event.value or event.value.startswith("/"):
            await self._stop_typing()
            return
        now = time.monotonic()
        if not self._typing_on or now - self._typing_sent >= TYPING_EVERY_S:
            self._typing_on, self._typing_sent = True, now
            try:
                await self.client.send_typing(conv, True)
            except SessionError as err:
                self.log.warning(f"typing indicator not sent: {err}")

    async def _stop_typing(self) -> None:
        if self._typing_on and self.current and not self.current.startswith("03"):
            self._typing_on = False
            try:
                await self.client.send_typing(self.current, False)
            except SessionError as err:
                self.log.warning(f"typing indicator not sent: {err}")

    # ------------------------------------------------------------------ commands

    async def command(self, line: str) -> bool:
        """Run a /command typed in the input box; returns whether it was understood (an
        unknown command is refused and never sent)."""
        word, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        conv = self.current
        c = self.client
        try:
            match word:
                case "/help":
                    self.action_help()
                case "/accept" | "/decline" | "/block" | "/unblock" if conv is not None:
                    await self.request_action(word[1:], conv)
                case "/rename" if conv is not None and not conv.startswith("03"):
                    c.set_nickname(conv, rest or None)
                    await self.refresh_list()
                    self.set_title(conv)
                case "/name" if rest:
                    await c.set_display_name(rest)
                    self.notify("Display name saved.")
                case "/disappear" if conv is not None and rest in TIMER_WORDS:
                    secs = TIMER_WORDS[rest]
                    if conv.startswith("03"):
                        await c.groups.set_disappearing(conv, secs)
                    else:
                        mode = ExpirationMode.AFTER_SEND if secs else ExpirationMode.OFF
                        await c.set_disappearing(conv, Expiration(mode, secs))
                    exp = Expiration(
                        ExpirationMode.AFTER_SEND if secs else ExpirationMode.OFF, secs
                    )
                    await self.history.event_line(model.expiration_line(c, c.session_id, exp))
                case "/file" if rest:
                    self.send_file(Path(rest).expanduser())
                case "/save" if rest:
                    num, _, where = rest.partition(" ")
                    self.save_file(int(num), Path(where.strip() or ".").expanduser())
                case _:
                    self.notify(
                        f"Unknown or incomplete command {word!r}: nothing was sent "
                        "(/help lists the commands).",
                        severity="error",
                        markup=False,
                    )
                    return False
        except (SessionError, ValueError) as err:
            self.notify(for_terminal(str(err)), severity="error", markup=False)
            return False
        return True

    async def request_action(self, action: str, conv: str) -> None:
        """Accept, decline or block a message request (or group invitation); block/unblock a
        contact."""
        c = self.client
        group = conv.startswith("03")
        if action == "accept":
            await (c.groups.accept(conv) if group else c.accept_request(conv))
            await self._reopen_kind(conv)
            return
        if action == "decline":
            await (c.groups.decline(conv) if group else c.decline_request(conv))
        elif action == "block":
            await c.block(conv)
        elif action == "unblock":
            await c.unblock(conv)
            await self.refresh_list()
            return
        self.current = None
        await self.refresh_list()
        if self.entries:
            await self.open_conversation(self.entries[0].conversation)
        else:
            await self.history.open(None)
            self.query_one("#title", Static).update("")
            self.query_one("#requestbar").set_class(False, "shown")

    @on(Button.Pressed, "#requestbar Button")
    async def _request_button(self, event: Button.Pressed) -> None:
        if self.current is not None and event.button.id:
            try:
                await self.request_action(event.button.id, self.current)
            except SessionError as err:
                self.notify(for_terminal(str(err)), severity="error", markup=False)

    # ------------------------------------------------------------------ files

    @work(group="files")
    async def send_file(self, path: Path) -> None:
        conv = self.current
        if conv is None:
            self.notify("Open a conversation first.", severity="warning")
            return
        try:
            total = path.stat().st_size or 1
        except OSError as err:
            self.notify(f"Cannot read {path}: {err.strerror}", severity="error", markup=False)
            return
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self._activity = f"encrypting {path.name}: {min(100, done * 100 // total)}%"
            self.update_status()

        try:
            self._activity = f"sending {path.name}…"
            self.update_status()
            mid = await self.client.send_file(conv, path, progress=progress)
        except (SessionError, ValueError) as err:
            self.notify(f"File not sent: {for_terminal(str(err))}", severity="error", markup=False)
            return
        finally:
            self._activity = ""
            self.update_status()
        m = self.client.message(mid)
        if m is not None and self.current == conv:
            await self.history.add(m)

    @work(group="files")
    async def save_file(self, attachment_id: int, directory: Path) -> None:
        try:
            self._activity = f"downloading file #{attachment_id}…"
            self.update_status()
            path = await self.client.save_attachment(attachment_id, directory)
        except (SessionError, ValueError) as err:
            self.notify(f"Not saved: {for_terminal(str(err))}", severity="error", markup=False)
            return
        finally:
            self._activity = ""
            self.update_status()
        self.notify(f"Saved {for_terminal(str(path))}", markup=False)

    # ------------------------------------------------------------------ events

    @work(group="events")
    async def pump_events(self) -> None:
        """Follow the client's events for as long as the app runs."""
        async for ev in self.stream:
            try:
                await self.handle_event(ev)
            except SessionError as err:
                self.notify(for_terminal(str(err)), severity="error", markup=False)

    async def handle_event(self, ev: Event) -> None:
        """Reflect one client event on the screen."""
        conv = getattr(ev, "conversation", None)
        here = conv is not None and conv == self.current
        match ev:
            case MessageReceived():
                if self.current is None:  # the first conversation: open it
                    await self.refresh_list()
                    await self.open_conversation(ev.conversation)
                    return
                if here:
                    m = self.client.message(ev.message_id)
                    if m is not None:
                        await self.history.add(m)
                    if not ev.outgoing:
                        self.query_one("#typing", Static).update("")
                    e = self.entry(ev.conversation)
                    if not ev.is_request and not ev.outgoing and (e is None or e.kind != "request"):
                        await self.client.mark_read(ev.conversation)
                elif not ev.outgoing and not self._read_already(ev.message_id):
                    if self.bell_on:
                        self.bell()
                    if self.notifier.mode != "off":
                        self.desktop_notify(ev.conversation, ev.author, ev.body)
                await self.refresh_list()
            case MessageSent() | MessageFailed() if here:
                self.history.refresh_message(ev.message_id)
            case MessageRead() if here:
                self.history.refresh_outgoing()
            case Typing() if here:
                shown = (
                    f"{model.name_of(self.client, ev.conversation)} is typing…"
                    if ev.started
                    else ""
                )
                self.query_one("#typing", Static).update(shown)
                if ev.started:
                    self.set_timer(TYPING_SHOWN_S, self._typing_expired)
            case MessageDeleted():
                if here:
                    await self.history.forget(ev.message_id)
                await self.refresh_list()
            case ExpirationChanged():
                if here:
                    await self.history.event_line(
                        model.expiration_line(self.client, ev.by, ev.expiration)
                    )
            case ReadElsewhere():
                await self.refresh_list()
            case CommunityRoomUpdated():
                # the client's community loop polled: redraw the room if it is open
                if self.current == model.community_key(ev.base_url, ev.room):
                    await self.history.refresh_room()
                await self.refresh_list()
            case RequestAccepted() | ProfileChanged() | ContactsSynced():
                await self.refresh_list()
                if self.current is not None:
                    e = self.entry(self.current)
                    self.set_title(self.current, e.kind if e else "")
            case ConnectionChanged():
                self.update_status()

    @work(group="notify")
    async def desktop_notify(self, conversation: str, author: str, body: str) -> None:
        """A desktop notification of a message in a conversation not open (who, and in
        ``preview`` mode what; see :mod:`session.tui.notify`)."""
        who = model.name_of(self.client, author)
        if conversation.startswith("03"):
            who = f"{who} in {model.title_of(self.client, conversation)}"
        if not await self.notifier.notify(who, body) and not self.notifier.available():
            self.say_unavailable()

    def say_unavailable(self) -> None:
        """Say once in the status bar that desktop notifications cannot be shown here."""
        if self._said_unavailable:
            return
        self._said_unavailable = True
        self.show_notice(f"desktop notifications unavailable ({self.notifier.command} not found)")

    def show_notice(self, text: str, seconds: float = 30.0) -> None:
        """A note in the status bar for ``seconds``."""
        self._notice = text
        self.update_status()

        def clear() -> None:
            if self._notice == text:
                self._notice = ""
                self.update_status()

        self.set_timer(seconds, clear)

    async def on_event(self, event: events.Event) -> None:
        """Every key (before any widget takes it): the input box's cursor blinks again."""
        if isinstance(event, events.Key):
            self._last_key = time.monotonic()
            try:
                box = self.compose_box
            except NoMatches:  # not composed yet, or closing
                box = None
            if box is not None and not box.cursor_blink:
                box.cursor_blink = True
        await super().on_event(event)

    def _rest_cursor(self) -> None:
        """After ``blink_idle_s`` without a key the cursor stops blinking (stays shown)."""
        if time.monotonic() - self._last_key >= self.blink_idle_s:
            try:
                box = self.compose_box
            except NoMatches:  # the app is closing
                return
            if box.cursor_blink:
                box.cursor_blink = False

    def _typing_expired(self) -> None:
        self.query_one("#typing", Static).update("")

    # ------------------------------------------------------------------ status bar

    def status_text(self) -> str:
        """The status bar: connection, nodes, onion paths, outbox, clock offset."""
        c = self.client
        queued = c.queued()
        offset = c.clock_offset_ms / 1000
        bad = c.failed_nodes
        parts = [
            ("online" if c.online else "offline (retrying)")
            if c.node_count
            else "no network known (start with --network)",
            f"{c.node_count} nodes",
            f"{len(c.onion_paths)} paths" + (f" ({len(bad)} bad nodes)" if bad else ""),
            f"outbox {queued}",
            f"clock {offset:+.1f}s",
        ]
        if self._activity:
            parts.append(self._activity)
        if self._notice:
            parts.append(self._notice)
        if self._quitting:
            parts.append(f"quitting: waiting for {queued} queued (Ctrl+Q again: quit now)")
        else:
            parts.append("F1 keys")
        return " · ".join(parts)

    def update_status(self) -> None:
        try:
            bar = self.query_one("#status", Static)
        except NoMatches:  # the app is closing: its timer fired after the screen went
            return
        bar.update(self.status_text())

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_new(self) -> None:
        async def done(sid: str | None) -> None:
            if sid:
                await self.open_conversation(sid)
                self.compose_box.focus()

        self.push_screen(NewConversationScreen(self.client), done)

    def action_jump(self) -> None:
        async def done(conv: str | None) -> None:
            if conv:
                await self.open_conversation(conv)
                self.compose_box.focus()

        self.push_screen(JumpScreen(self.entries), done)

    def action_identity(self) -> None:
        def done(sid: str | None) -> None:
            if sid:
                self.exit(sid)

        self.push_screen(IdentityScreen(self.client, self.store), done)

    def action_settings(self) -> None:
        self.push_screen(SettingsScreen(self.client, self.current, self.bell_on))

    def set_bell(self, on: bool) -> None:
        """The settings' bell switch: used now and saved for the next start."""
        self.bell_on = on
        self.client.set_preference("tui.bell", on)

    def set_notifications(self, mode: str) -> None:
        """The settings' desktop notifications choice: used now and saved for the next start
        (saying once when this machine has no way to show them)."""
        self.notifier.mode = mode
        self.client.set_preference("tui.notifications", mode)
        if mode != "off" and not self.notifier.available():
            self.say_unavailable()

    def action_attach(self) -> None:
        def done(path: Path | None) -> None:
            if path is not None:
                self.send_file(path)

        self.push_screen(FileScreen(Path.cwd()), done)

    def action_page(self, direction: int) -> None:
        h = self.history
        if direction < 0 and h.scroll_y <= 0:
            self.run_worker(h.load_older(), group="history")
        elif direction < 0:
            h.scroll_page_up(animate=False)
        else:
            h.scroll_page_down(animate=False)

    def action_line(self, direction: int) -> None:
        h = self.history
        if direction < 0 and h.scroll_y <= 0:
            self.run_worker(h.load_older(), group="history")
        elif direction < 0:
            h.scroll_up(animate=False)
        else:
            h.scroll_down(animate=False)

    def action_reply(self) -> None:
        """Reply with a quote to the newest message someone else wrote in the open
        conversation (1:1, group or community room)."""
        conv = self.current
        if conv is None:
            self.notify("Open a conversation first.", severity="warning")
            return
        target: Message | Post | None
        if model.is_community(conv):
            posts = self.client.communities.posts(conv, limit=50)
            target = next((p for p in reversed(posts) if not p.mine and p.body), None)
            who = model.poster_name(target) if target is not None else ""
        else:
            msgs = self.client.messages(conv, 50)
            target = next(
                (m for m in reversed(msgs) if not m.outgoing and m.body and m.status != "control"),
                None,
            )
            who = model.name_of(self.client, target.author) if target is not None else ""
        if target is None:
            self.notify("Nothing to reply to yet.", severity="warning")
            return
        self.reply_to = target
        self.query_one("#replying", Static).update(
            f"replying to {who}: {model.one_line(target.body, 50)}  (Escape: cancel)"
        )
        self.compose_box.focus()

    def action_cancel_reply(self) -> None:
        self.reply_to = None
        self.query_one("#replying", Static).update("")

    async def action_quit(self) -> None:
        """Quit once the outbox is empty (bounded by ``quit_timeout``), showing how many
        items wait; a second Ctrl+Q quits at once (what is queued goes out next time)."""
        if self._quitting or not self.client.queued():
            self.queued_at_exit = self.client.queued()
            self.exit(None)
            return
        self._quitting = True
        self.update_status()
        self.drain_then_exit()

    @work(group="quit")
    async def drain_then_exit(self) -> None:
        loop_deadline = time.monotonic() + self.quit_timeout
        while self.client.queued() and time.monotonic() < loop_deadline:
            await self.client.drain(min(1.0, max(0.0, loop_deadline - time.monotonic())))
            self.update_status()
        self.queued_at_exit = self.client.queued()
        self.exit(None)

    def on_unmount(self, _: Any = None) -> None:
        self.stream.close()
