"""``session chat ID``: an interactive conversation on the client's own background loops.

The client polls, delivers and sweeps in the background (:meth:`Client.start_background`); this
module only reads lines, calls the client's public operations and prints its events.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from session.cli.client.base import (
    attachment_lines,
    clock,
    common,
    emit,
    errors,
    json_mode,
    main,
    message_doc,
    name_of,
    open_session,
    parse_id,
    print_message,
    run,
    shown,
    timeout,
)
from session.errors import SessionError

if TYPE_CHECKING:
    from session.client import Client, Event
    from session.client.events import EventStream

log = logging.getLogger("session.cli")
#: Seconds between our typing indicators while typing goes on (Session shows one for 20 s).
TYPING_EVERY_S = 10.0
#: Seconds the peer's "is typing" line stays without a new indicator.
TYPING_SHOWN_S = 20.0


@main.command()
@common
@click.argument("session_id")
@click.option(
    "--history",
    "show_history",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Earlier messages to show first.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between polls of your swarm.",
)
@errors
def chat(session_id: str, show_history: int, poll_interval: float) -> None:
    """Chat with SESSION_ID: type a line and press Enter to send it.

    Incoming messages, typing indicators, deliveries and read receipts are printed as they
    arrive; messages you see are marked read (those of a message request once you reply,
    which accepts the request). Commands: /typing (send a typing indicator), /help,
    /quit (or end of input) to leave; an unknown /command is refused, never sent."""
    peer = parse_id(session_id)
    run(_chat(peer, show_history, poll_interval))


def _say(kind: str, text: str, **fields: Any) -> None:
    """One chat event: a JSON line with ``--json``, else ``text`` (already sanitised)."""
    if json_mode():
        emit({"event": kind, **fields})
    else:
        click.echo(text)


def stdin_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Read standard input in a thread (a pipe or a terminal alike); None marks its end."""
    try:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(lines.put_nowait, None)


CHAT_HELP = """\
  type a line and press Enter to send it
  /typing   send a typing indicator
  /help     this list
  /quit     leave (after queued messages are delivered, up to --timeout); Ctrl-D too
  //text    send a line that starts with a slash
"""


class _Chat:
    """The state of one chat: the client, the peer, and whether their request is accepted."""

    def __init__(self, client: Client, peer: str) -> None:
        self.c = client
        self.peer = peer
        contact = client.contact(peer)
        self.accepted = bool(contact and contact.approved)
        self.name = name_of(client, peer)
        #: On a terminal: the peer's typing state, shown in the prompt's bottom line.
        self.typing_since: float | None = None
        self._typing_sent: float | None = None  # when we last said we are typing
        self.redraw: Callable[[], None] = lambda: None
        self.interactive = False  # on a terminal (set by converse_until_done)
        self._pending: set[asyncio.Future[None]] = set()  # typing indicators being queued

    def typing_line(self) -> str:
        """The bottom line under the prompt: "Bob is typing…" for 20 s after an indicator."""
        if self.typing_since is None or time.monotonic() - self.typing_since > TYPING_SHOWN_S:
            return ""
        return f"{self.name} is typing…"

    def typed(self, text: str) -> None:
        """The line being typed changed: tell the peer we are typing (every 10 s while it
        goes on; stopped when the line is emptied). Only to accepted 1:1 contacts."""
        if not self.accepted or not self.peer.startswith("05"):
            return
        now = time.monotonic()
        if text and not text.startswith("/"):
            if self._typing_sent is None or now - self._typing_sent >= TYPING_EVERY_S:
                self._typing_sent = now
                self._pending.add(asyncio.ensure_future(self._typing(True)))
        elif self._typing_sent is not None:
            self._typing_sent = None
            self._pending.add(asyncio.ensure_future(self._typing(False)))

    async def _typing(self, started: bool) -> None:
        try:
            await self.c.send_typing(self.peer, started)
        except SessionError as e:  # an indicator is best effort
            log.debug("typing indicator not sent: %s", e)
        finally:
            self._pending = {f for f in self._pending if not f.done()}

    async def read_all(self) -> None:
        # A message request stays unread (and unreceipted) until it is accepted.
        if self.accepted:
            await self.c.mark_read(self.peer)

    async def line(self, line: str) -> bool:
        """Handle one typed line; False to leave."""
        text = line.strip()
        if not text:
            return True
        if text == "/quit":
            return False
        if text == "/typing":
            await self.c.send_typing(self.peer, True)
            return True
        if text == "/help":
            _say("help", CHAT_HELP.rstrip("\n"))
            return True
        if text.startswith("/") and not text.startswith("//"):
            word = text.split()[0]
            _say("error", f"  unknown command {word} (not sent; /help lists them)", error=word)
            return True
        if text.startswith("//"):
            line = line.replace("//", "/", 1)  # "//" sends a line that starts with "/"
        from session.client.messages import MAX_BODY_CHARS  # noqa: PLC0415  (loaded by now)

        if len(line) > MAX_BODY_CHARS:
            _say(
                "error",
                f"  not sent: the line has {len(line):,} characters; at most "
                f"{MAX_BODY_CHARS:,} fit in one message",
                error="too long",
            )
            return True
        if not self.accepted and any(r.session_id == self.peer for r in self.c.requests()):
            await self.c.accept_request(self.peer)
            _say("accepted", f"(accepted {self.name}'s message request)", peer=self.peer)
        self.accepted = True
        await self.read_all()
        self._typing_sent = None  # a message ends the typing indicator on the other side
        mid = await self.c.send(self.peer, line)
        _say("queued", f"  you: {shown(line)}  (sending…)", message_id=mid, body=line)
        return True

    async def event(self, ev: Event) -> None:
        """Print one client event that concerns this chat (and read what arrived)."""
        from session.client import ConnectionChanged, MessageReceived, Typing  # noqa: PLC0415

        if isinstance(ev, ConnectionChanged):
            if ev.online:
                _say("online", "  (back online)")
            else:
                why = shown(ev.error)
                _say("offline", f"  (network unreachable, retrying: {why})", error=ev.error)
            return
        about = getattr(ev, "conversation", None), getattr(ev, "session_id", None)
        if self.peer not in about:
            return
        if isinstance(ev, MessageReceived) and not ev.outgoing:
            self.name = name_of(self.c, self.peer)  # the message may have changed it
        if isinstance(ev, Typing) or (isinstance(ev, MessageReceived) and not ev.outgoing):
            started = isinstance(ev, Typing) and ev.started
            self.typing_since = time.monotonic() if started else None
            self.redraw()
            if isinstance(ev, Typing) and self.interactive:
                return  # on a terminal the bottom line shows it
        said = self._describe(ev)
        if said is not None:
            _say(said[0], said[1], **said[2])
        if isinstance(ev, MessageReceived) and not ev.outgoing:
            await self.read_all()

    def _attachments(self, message_id: int, fields: dict[str, Any]) -> str:
        """The attachment lines of a received message (added to its JSON ``fields`` too)."""
        m = self.c.message(message_id)
        if m is None or not m.attachments:
            return ""
        doc = message_doc(m)
        fields["attachments"] = doc["attachments"]
        return "".join("\n" + line for line in attachment_lines(doc))

    def _describe(self, ev: Event) -> tuple[str, str, dict[str, Any]] | None:
        """(event kind, sanitised line, JSON fields) of one event of this chat."""
        from session.client import (  # noqa: PLC0415
            MessageDeleted,
            MessageFailed,
            MessageRead,
            MessageReceived,
            MessageSent,
            RequestAccepted,
            Typing,
        )

        name = self.name
        match ev:
            case MessageReceived(outgoing=False):
                fields = {
                    "author": ev.author,
                    "body": ev.body,
                    "sent_ms": ev.sent_ms,
                    "message_id": ev.message_id,
                    "is_request": ev.is_request,
                }
                lines = self._attachments(ev.message_id, fields)
                return (
                    "message",
                    f"  [{clock(ev.sent_ms)}] {name}: {shown(ev.body, multiline=True)}" + lines,
                    fields,
                )
            case MessageReceived():
                fields = {
                    "author": ev.author,
                    "body": ev.body,
                    "sent_ms": ev.sent_ms,
                    "message_id": ev.message_id,
                    "outgoing": True,
                }
                text = (
                    f"  [{clock(ev.sent_ms)}] you (other device): {shown(ev.body, multiline=True)}"
                ) + self._attachments(ev.message_id, fields)
                return "message", text, fields
            case MessageSent():
                fields = {"message_id": ev.message_id, "sent_ms": ev.sent_ms, "hash": ev.hash}
                return "sent", f"  ✓ delivered to {name}'s swarm", fields
            case MessageFailed():
                fields = {"message_id": ev.message_id, "error": ev.error}
                return "failed", f"  ✗ not delivered: {shown(ev.error)}", fields
            case MessageRead():
                last = clock(max(ev.sent_ms)) if ev.sent_ms else "?"
                text = f"  ✓✓ {name} read your messages (up to {last})"
                return "read", text, {"sent_ms": list(ev.sent_ms)}
            case Typing():
                text = f"  … {name} is typing" if ev.started else f"  … {name} stopped typing"
                return "typing", text, {"started": ev.started}
            case MessageDeleted():
                fields = {"message_id": ev.message_id, "reason": ev.reason}
                return "deleted", f"  (a message was deleted: {ev.reason})", fields
            case RequestAccepted():
                return (
                    "request_accepted",
                    f"  {name} accepted your message request",
                    {"peer": self.peer},
                )
        return None


async def _converse(chat: _Chat, events: EventStream, lines: asyncio.Queue[str | None]) -> None:
    """Handle typed lines and client events as they come, until /quit or the end of input."""
    line_task: asyncio.Task[str | None] = asyncio.ensure_future(lines.get())
    event_task: asyncio.Task[Event] = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait(
                {line_task, event_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if event_task in done:
                try:
                    ev = event_task.result()
                except StopAsyncIteration:
                    return
                await chat.event(ev)
                event_task = asyncio.ensure_future(anext(events))
            if line_task in done:
                line = line_task.result()
                if line is None or not await chat.line(line):
                    break
                line_task = asyncio.ensure_future(lines.get())
    finally:
        line_task.cancel()
        event_task.cancel()
    if event_task.done() and not event_task.cancelled() and event_task.exception() is None:
        await chat.event(event_task.result())  # arrived together with the last line


async def _chat(peer: str, show_history: int, poll_interval: float) -> None:
    s = await open_session(background=False, poll_interval=poll_interval)
    c = s.client
    events = c.events()  # subscribed before anything can happen
    try:
        await s.connect()
        c.start_background()
        chat = _Chat(c, peer)
        _say(
            "start",
            f"chatting with {peer} as {c.session_id}\n"
            "type a message and press Enter; /typing sends a typing indicator; "
            "/quit or Ctrl-D leaves",
            me=c.session_id,
            peer=peer,
        )
        shown_ids: set[int] = set()
        for m in c.messages(peer, show_history) if show_history else []:
            shown_ids.add(m.id)
            if json_mode():
                emit({"event": "history", **message_doc(m)})
            else:
                print_message(c, m)
        # what the first poll brought is in the history already: each message is shown once
        from session.client import MessageReceived  # noqa: PLC0415

        for ev in events.pending():
            if not (isinstance(ev, MessageReceived) and ev.message_id in shown_ids):
                await chat.event(ev)
        await chat.read_all()
        await converse_until_done(chat, events)
    finally:
        events.close()
        await c.close()


def interactive() -> bool:
    """Whether the chat runs on a terminal (line editing with prompt-toolkit) rather than a
    pipe or --json."""
    return sys.stdin.isatty() and sys.stdout.isatty() and not json_mode()


async def terminal_lines(
    lines: asyncio.Queue[str | None],
    chat: _Chat | None = None,
    *,
    input: Any = None,
    output: Any = None,
) -> None:
    """Read lines on a terminal with prompt-toolkit: the line being typed stays intact while
    messages print above it and arrow keys edit; with a 1:1 or group ``chat``, typing sends
    typing indicators and the peer's typing shows in the bottom line. Puts None at the end of
    input (Ctrl-D)."""
    from prompt_toolkit import PromptSession  # noqa: PLC0415  (only interactive chats)
    from prompt_toolkit.patch_stdout import patch_stdout  # noqa: PLC0415

    session: PromptSession[str] = PromptSession(
        input=input, output=output, bottom_toolbar=chat.typing_line if chat else None
    )
    if chat is not None:
        session.default_buffer.on_text_changed += lambda buf: chat.typed(buf.text)
        chat.redraw = session.app.invalidate
    with patch_stdout():  # printing goes above the prompt (escape sequences neutralised)
        while True:
            try:
                line = await session.prompt_async("> ")
            except (EOFError, KeyboardInterrupt):
                break
            await lines.put(line)
    await lines.put(None)


def read_input(
    lines: asyncio.Queue[str | None], name: str, chat: _Chat | None = None
) -> asyncio.Task[None] | None:
    """Start reading standard input into ``lines`` (None at its end), as every chat command
    does: on a terminal with :func:`terminal_lines`, else (a pipe, --json) in a thread named
    ``name``. Returns the terminal reader's task, to cancel when the chat ends."""
    if interactive():
        if chat is not None:
            chat.interactive = True
        return asyncio.ensure_future(terminal_lines(lines, chat))
    threading.Thread(
        target=stdin_lines, args=(asyncio.get_running_loop(), lines), name=name, daemon=True
    ).start()
    return None


async def converse_until_done(chat: _Chat, events: EventStream) -> None:
    """Read standard input (a terminal with line editing, or a pipe in a thread) and the
    client's events until /quit or the end of input, then leave once what was written reached
    the network (bounded by --timeout)."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    reader = read_input(lines, "session-chat-stdin", chat)
    try:
        await _converse(chat, events, lines)
    finally:
        if reader is not None:
            reader.cancel()
    queued = chat.c.queued()
    if queued:
        _say(
            "waiting",
            f"  waiting up to {timeout():g} s for {queued} queued item(s) to be delivered…",
            queued=queued,
        )
    left = await chat.c.drain(timeout())
    for ev in events.pending():
        await chat.event(ev)
    _say(
        "end",
        "bye" if not left else f"bye ({left} item(s) still queued; they go out next time)",
        queued=left,
    )
