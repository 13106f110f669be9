"""The messenger's pop-up screens: key help, new conversation, jump, identity, settings and
the file picker. Each returns its result with ``dismiss`` and does its client calls through
the public :class:`session.client.Client` API."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, OptionList, Select, Static, Switch
from textual.widgets.option_list import Option

from session.errors import SessionError
from session.text import for_terminal
from session.tui import model

if TYPE_CHECKING:
    from session.client import Client, IdentityStore

KEYS = """\
Enter       send (a line starting with / is a command)
Ctrl+N      new conversation: Session ID, @name or pasted text
Ctrl+K      jump to a conversation (type part of its name)
Tab         conversations column <-> input box
Up/Down     column: choose; input box: scroll the history
PgUp/PgDn   scroll the history (older messages load at the top)
Ctrl+R      reply to their last message, quoted (Escape: cancel)
Ctrl+O      send a file            F2   identity, QR, phrase
F3          settings               ?/F1 this help
Escape      close a window
Ctrl+Q      quit after queued messages go (again: at once)

/accept /decline /block /unblock   requests and contacts
/rename NAME   your name for this contact (alone: remove it)
/name NAME     your display name
/disappear 5m|1h|12h|1d|1w|off
/file PATH     send a file     /save N [DIR]  save file #N
"""


class HelpScreen(ModalScreen[None]):
    """Every key and command."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss(None)", "Close")
    ]

    def compose(self) -> ComposeResult:
        # scrolls: at 80×24 the list is taller than the screen
        with VerticalScroll(classes="dialog wide tall", id="help"):
            yield Label("Keys", classes="dialog-title")
            yield Static(KEYS, markup=False)
            yield Button("Close", id="close")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)


class NewConversationScreen(ModalScreen[str | None]):
    """Ask for a Session ID, an ``@name`` (resolved on the network) or pasted text."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("New conversation", classes="dialog-title")
            yield Input(placeholder="Session ID, @name, or pasted text", id="who")
            yield Static("", id="error", markup=False)

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        err = self.query_one("#error", Static)
        found = model.ID_IN_TEXT.search(text)
        if found:
            self.dismiss(found.group(1).lower())
            return
        if not text:
            err.update("Type a Session ID (66 hex characters starting 05) or @name.")
            return
        name = text.removeprefix("@")
        err.update(f"Looking up {for_terminal(name)}…")
        try:
            sid = await self.client.resolve_name(name)
        except SessionError as e:
            err.update(for_terminal(str(e)))
            return
        self.dismiss(sid)


class JumpScreen(ModalScreen[str | None]):
    """Fuzzy search over the conversations' titles."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, entries: list[model.Entry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Jump to conversation", classes="dialog-title")
            yield Input(placeholder="type part of a name", id="query")
            yield OptionList(*self._options(""), id="matches", markup=False)

    def _options(self, query: str) -> list[Option]:
        scored = [
            (s, i, e)
            for i, e in enumerate(self.entries)
            if (s := model.fuzzy_score(query, e.title)) is not None
        ]
        scored.sort(key=lambda t: (t[0], t[1]))
        return [Option(e.title, id=e.conversation) for _, _, e in scored]

    @on(Input.Changed, "#query")
    def _filter(self, event: Input.Changed) -> None:
        ol = self.query_one("#matches", OptionList)
        ol.clear_options()
        ol.add_options(self._options(event.value))
        if ol.option_count:
            ol.highlighted = 0

    @on(Input.Submitted, "#query")
    def _pick_first(self) -> None:
        ol = self.query_one("#matches", OptionList)
        if ol.option_count:
            self.dismiss(ol.get_option_at_index(ol.highlighted or 0).id)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def key_down(self) -> None:
        ol = self.query_one("#matches", OptionList)
        ol.action_cursor_down()

    def key_up(self) -> None:
        ol = self.query_one("#matches", OptionList)
        ol.action_cursor_up()


class IdentityScreen(ModalScreen[str | None]):
    """Our Session ID and its QR code, the recovery phrase (only after an explicit reveal),
    display name and picture, and the other identities of the profile (dismissed with the
    Session ID to switch to)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, client: Client, store: IdentityStore) -> None:
        super().__init__()
        self.client = client
        self.store = store

    def compose(self) -> ComposeResult:
        import segno  # noqa: PLC0415  (only this screen draws a QR code)

        c = self.client
        buf = io.StringIO()
        segno.make(c.session_id, error="m").terminal(out=buf, compact=True)
        with VerticalScroll(classes="dialog wide tall"):
            yield Label("Your identity", classes="dialog-title")
            yield Static(c.session_id, markup=False, id="sid")
            yield Static(buf.getvalue().rstrip("\n"), markup=False, id="qr")
            yield Button("Reveal recovery phrase", id="reveal", variant="warning")
            yield Static("", id="phrase", markup=False)
            with Horizontal(classes="row"):
                yield Input(
                    value=for_terminal(c.display_name or "", name=True),
                    placeholder="display name",
                    id="name",
                )
                yield Button("Save name", id="save-name")
            with Horizontal(classes="row"):
                yield Input(placeholder="path of a picture (PNG/JPEG)", id="picture")
                yield Button("Set picture", id="set-picture")
            others = [s for s in self.store.list() if s != c.session_id]
            if others:
                yield Label("Switch to another identity:")
                yield OptionList(*[Option(s, id=s) for s in others], id="others", markup=False)
            yield Static("", id="result", markup=False)

    @on(Button.Pressed, "#reveal")
    def _reveal(self) -> None:
        self.query_one("#phrase", Static).update(
            "Anyone with these words owns this identity. Never share them:\n"
            + self.client.identity.mnemonic
        )

    @on(Button.Pressed, "#save-name")
    async def _save_name(self) -> None:
        out = self.query_one("#result", Static)
        try:
            await self.client.set_display_name(self.query_one("#name", Input).value)
        except (SessionError, ValueError) as e:
            out.update(f"Name not changed: {e}")
            return
        out.update("Display name saved.")

    @on(Button.Pressed, "#set-picture")
    async def _set_picture(self) -> None:
        out = self.query_one("#result", Static)
        path = self.query_one("#picture", Input).value.strip()
        out.update("Uploading the picture…")
        try:
            await self.client.set_avatar(Path(path).expanduser() if path else None)
        except (SessionError, ValueError, OSError) as e:
            out.update(f"Picture not set: {for_terminal(str(e))}")
            return
        out.update("Profile picture set." if path else "Profile picture removed.")

    @on(OptionList.OptionSelected, "#others")
    def _switch(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


#: Disappearing-message timers offered in the settings (label, seconds; 0 = off).
TIMERS = [
    ("off", 0),
    ("5 minutes", 300),
    ("1 hour", 3600),
    ("12 hours", 43200),
    ("1 day", 86400),
    ("1 week", 604800),
]


#: Desktop notification choices (label, mode of :mod:`session.tui.notify`).
NOTIFY_CHOICES = [
    ("off (default)", "off"),
    ("sender only", "sender"),
    ("sender and preview", "preview"),
]


class SettingsScreen(ModalScreen[None]):
    """Read receipts, typing indicators, the terminal bell, desktop notifications, and the
    open conversation's disappearing-message timer."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, client: Client, conversation: str | None, bell: bool) -> None:
        super().__init__()
        self.client = client
        self.conversation = conversation
        self.bell = bell

    def compose(self) -> ComposeResult:
        c = self.client
        with Vertical(classes="dialog"):
            yield Label("Settings", classes="dialog-title")
            with Horizontal(classes="row"):
                yield Switch(value=c.read_receipts, id="receipts")
                yield Label("Send read receipts")
            with Horizontal(classes="row"):
                yield Switch(value=c.typing_indicators, id="typing")
                yield Label("Send typing indicators")
            with Horizontal(classes="row"):
                yield Switch(value=self.bell, id="bell")
                yield Label("Bell on new messages in other conversations")
            yield Label("Desktop notifications of messages in other conversations:")
            yield Select(
                NOTIFY_CHOICES,
                value=self.app.notifier.mode,  # type: ignore[attr-defined]  # SessionTui's
                allow_blank=False,
                id="notify",
            )
            conv = self.conversation
            if conv is not None and conv != c.session_id and not model.is_community(conv):
                current = self._current_timer()
                yield Label("Disappearing messages here (after sending):")
                yield Select(TIMERS, value=current, allow_blank=False, id="timer")
            yield Static("", id="result", markup=False)

    def _current_timer(self) -> int:
        conv = self.conversation
        assert conv is not None
        if conv.startswith("03"):
            return self.client.groups.info(conv).disappear_after_send
        contact = self.client.contact(conv)
        secs = contact.exp_seconds if contact and contact.exp_mode else 0
        return secs if secs in {s for _, s in TIMERS} else 0

    @on(Switch.Changed, "#receipts")
    def _receipts(self, event: Switch.Changed) -> None:
        self.client.read_receipts = event.value

    @on(Switch.Changed, "#typing")
    def _typing(self, event: Switch.Changed) -> None:
        self.client.typing_indicators = event.value

    @on(Switch.Changed, "#bell")
    def _bell(self, event: Switch.Changed) -> None:
        self.bell = event.value
        self.app.set_bell(event.value)  # type: ignore[attr-defined]  # SessionTui's setting

    @on(Select.Changed, "#notify")
    def _notify(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.app.set_notifications(event.value)  # type: ignore[attr-defined]  # SessionTui's

    @on(Select.Changed, "#timer")
    async def _timer(self, event: Select.Changed) -> None:
        from session.client.messages import Expiration, ExpirationMode  # noqa: PLC0415

        conv, out = self.conversation, self.query_one("#result", Static)
        assert conv is not None and isinstance(event.value, int)
        if event.value == self._current_timer():
            return
        try:
            if conv.startswith("03"):
                await self.client.groups.set_disappearing(conv, event.value)
            else:
                mode = ExpirationMode.AFTER_SEND if event.value else ExpirationMode.OFF
                await self.client.set_disappearing(conv, Expiration(mode, event.value))
        except SessionError as e:
            out.update(f"Not changed: {for_terminal(str(e))}")
            return
        out.update(f"Disappearing messages: {model.duration(event.value)}.")


class FileScreen(ModalScreen[Path | None]):
    """Pick a file to send: browse the tree or type a path."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            yield Label("Send a file (Enter on a file, or type its path)", classes="dialog-title")
            yield DirectoryTree(self.root, id="tree")
            yield Input(placeholder="path of the file", id="path")

    @on(DirectoryTree.FileSelected)
    def _tree(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)

    @on(Input.Submitted, "#path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())
