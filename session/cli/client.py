"""``session``: the command-line client.

Commands::

    session id new | restore | list | use ID | show | name NAME
    session send ID TEXT
    session inbox
    session history ID
    session chat ID
    session requests [accept ID | decline ID]
    session block ID / session unblock ID

Every command takes ``--home DIR`` (or ``SESSION_HOME``; where identities live),
``--network nodes.json|URL`` (or ``SESSION_NETWORK``; only needed until a node list is cached),
``--identity ID`` (which of several identities to use; default: the current one), ``--timeout
SECONDS`` (how long a network step may take; default 30) and ``--json`` (machine-readable
output). The options work before or after the command name.

Exit codes: 0 ok, 1 error (one sentence on stderr; with ``--json`` also ``{"error": ...}`` on
stdout), 2 usage error (click's own), 130 interrupted.

Imports are lazy so that ``session --help`` and ``session id list`` start fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from session.client import Client
    from session.proto.snodes import ServiceNode

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Seconds a network command may take before it gives up.
DEFAULT_TIMEOUT = 30.0


class CliError(Exception):
    """A failure reported to the user as one sentence (exit code 1)."""


# ------------------------------------------------------------------------------------------
# options shared by the group and every command


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value is not False:
        ctx.ensure_object(dict)[param.name] = value
    return value


def _common(fn: F) -> F:
    opts = [
        click.option("--home", type=click.Path(file_okay=False, path_type=Path), expose_value=False,
                     callback=_remember, help="Profile directory holding the identities "
                     "(default: $SESSION_HOME, else the user data directory)."),
        click.option("--network", metavar="nodes.json|URL", expose_value=False, callback=_remember,
                     help="Node list: a devnet/registry nodes.json file or a registry URL "
                     "(default: $SESSION_NETWORK, else the cached list)."),
        click.option("--identity", "-i", metavar="SESSION_ID", expose_value=False, callback=_remember,
                     help="Use this identity instead of the current one."),
        click.option("--timeout", type=click.FloatRange(min=1), expose_value=False, callback=_remember,
                     help=f"Seconds a network step may take (default {DEFAULT_TIMEOUT:g})."),
        click.option("--json", "json", is_flag=True, default=False, expose_value=False,
                     callback=_remember, help="Print JSON (one document, or one per line for chat)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _opt(name: str) -> Any:
    return click.get_current_context().ensure_object(dict).get(name)


def _json_mode() -> bool:
    return bool(_opt("json"))


def _timeout() -> float:
    return float(_opt("timeout") or DEFAULT_TIMEOUT)


def _home() -> Path:
    home = _opt("home") or os.environ.get("SESSION_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("session-network"))


def _emit(doc: Any) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False))


def _fail(message: str) -> None:
    message = message.strip() or "unknown error"
    if _json_mode():
        _emit({"error": message})
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _errors(fn: F) -> F:
    """Turn expected failures into one sentence on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from session.errors import SessionError

        try:
            return fn(*args, **kwargs)
        except (CliError, SessionError, ValueError, LookupError) as e:
            _fail(str(e).strip("'\""))
        except OSError as e:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            _fail(f"{e.strerror or e}{where}")
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _run(coro: Awaitable[T]) -> T:
    import asyncio

    return asyncio.run(coro)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# helpers


def _session_id(text: str) -> str:
    """A user's Session ID from user input (surrounding blanks and upper case tolerated)."""
    from session.identity import parse_session_id

    sid = text.strip().lower()
    parse_session_id(sid)  # raises InvalidSessionID with a sentence saying what is wrong
    return sid


def _short(sid: str) -> str:
    return f"{sid[:8]}…{sid[-4:]}"


def _store() -> Any:
    from session.client import IdentityStore

    return IdentityStore(_home())


def _pick_identity(store: Any) -> str:
    wanted = _opt("identity")
    if wanted:
        sid = _session_id(wanted)
        if sid not in store.list():
            raise CliError(f"there is no identity {sid} in {store.root} (see `session id list`)")
        return sid
    cur = store.current
    if cur is None:
        raise CliError(f"there is no identity in {store.root} yet: run `session id new` or `session id restore`")
    return str(cur)


async def _load_nodes(source: str) -> list[ServiceNode]:
    """The node list named by ``--network`` (raises CliError saying what was tried)."""
    import asyncio

    from session.client.network import fetch_registry, load_nodes_json

    if source.startswith(("http://", "https://")):
        try:
            nodes = await asyncio.wait_for(fetch_registry(source), _timeout())
        except asyncio.TimeoutError:
            raise CliError(f"cannot reach the network: the registry at {source} did not answer "
                           f"within {_timeout():g} s") from None
        except Exception as e:  # noqa: BLE001 - aiohttp, OS and decode errors alike
            raise CliError(f"cannot reach the network: the registry at {source} failed "
                           f"({type(e).__name__}: {e})") from None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise CliError(f"cannot reach the network: there is no node list at {path} "
                           "(is the devnet running?)")
        nodes = load_nodes_json(path)
    if not nodes:
        raise CliError(f"cannot reach the network: the node list from {source} is empty")
    return nodes


class _Session:
    """One open client for the length of a command."""

    def __init__(self, client: Client, tried: str) -> None:
        self.client = client
        self.tried = tried

    async def connect(self) -> int:
        """Poll our swarm once: proves the network is reachable; returns new messages seen."""
        import asyncio

        from session.client.paths import NotEnoughNodes
        from session.errors import NetworkError

        if not self.client.directory.nodes:
            raise CliError("no network is known yet: pass --network nodes.json|URL "
                           "(or set SESSION_NETWORK)")
        try:
            return await asyncio.wait_for(self.client.poll_once(), _timeout())
        except asyncio.TimeoutError:
            raise CliError(f"cannot reach the network: tried {self.tried}, no answer within "
                           f"{_timeout():g} s") from None
        except (NetworkError, NotEnoughNodes) as e:
            down = len(self.client.failed_nodes)
            if isinstance(e, NotEnoughNodes):
                why = (f"{down} could not be reached and too few are left for an onion path" if down
                       else "too few nodes for an onion path (3 relays and a destination)")
            else:
                why = f"{down} could not be reached; last error: {e}" if down else str(e)
            raise CliError(f"cannot reach the network: tried {self.tried} ({why})") from None

    async def flush(self) -> None:
        """Deliver what the outbox holds (one attempt each, bounded by the timeout)."""
        import asyncio

        try:
            await asyncio.wait_for(self.client.flush_outbox(), _timeout())
        except asyncio.TimeoutError:
            pass


async def _open(*, background: bool = False, poll_interval: float = 1.0) -> _Session:
    from session.client import Client

    store = _store()
    sid = _pick_identity(store)
    source = _opt("network") or os.environ.get("SESSION_NETWORK")
    nodes: list[ServiceNode] | None = None
    if source:
        nodes = await _load_nodes(str(source))
        tried = f"{len(nodes)} nodes from {source}"
    client = Client.open(store.root, nodes, identity=sid, create=False, background=background,
                         poll_interval=poll_interval)
    if not source:
        tried = f"{len(client.directory.nodes)} cached nodes"
    await client.start()
    return _Session(client, tried)


def _name_of(client: Client, sid: str) -> str:
    if sid == client.session_id:
        return "you"
    c = client.db.contact(sid)
    return (c or {}).get("name") or _short(sid)


def _clock(ms: int) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def _message_doc(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "conversation", "author", "sent_ms", "outgoing", "body", "status", "hash", "read_ms")
    return {k: m.get(k) for k in keys}


def _print_message(client: Client, m: dict[str, Any]) -> None:
    who = "you" if m["outgoing"] else _name_of(client, m["author"])
    state = f"  ({m['status']})" if m["outgoing"] else ("" if m["status"] == "read" else "  *new*")
    click.echo(f"  [{_clock(m['sent_ms'])}] {who}: {m['body']}{state}")


def _qr(text: str) -> str:
    import io

    import segno

    buf = io.StringIO()
    segno.make(text, error="m").terminal(out=buf, compact=True)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------
# the group


@click.group(context_settings=CONTEXT)
@_common
@click.version_option(package_name="session-network", prog_name="session")
def main() -> None:
    """Session messenger client: identities, messages, requests, chat.

    Start with `session id new`, then e.g.
    `session --network devnet/nodes.json send 05… "hello"`.
    """


# ------------------------------------------------------------------------------------------
# identities


@main.group("id")
@_common
def id_group() -> None:
    """Create, restore, list and choose identities (several may live in one --home)."""


@id_group.command("new")
@_common
@click.option("--qr/--no-qr", default=True, show_default=True, help="Print the Session ID as a QR code.")
@click.option("--use", "make_current", is_flag=True, help="Make it the current identity.")
@_errors
def id_new(qr: bool, make_current: bool) -> None:
    """Create an identity; print its Session ID and recovery phrase."""
    store = _store()
    ident = store.create()
    if make_current:
        store.use(ident.session_id)
    current = store.current == ident.session_id
    if _json_mode():
        _emit({"session_id": ident.session_id, "mnemonic": ident.mnemonic, "current": current,
               "home": str(store.root)})
        return
    click.echo(f"Session ID:      {ident.session_id}")
    click.echo(f"Recovery phrase: {ident.mnemonic}")
    click.echo("Write the phrase down and keep it secret: it is the only way to restore this account.")
    if qr:
        click.echo(_qr(ident.session_id), nl=False)
    if current:
        click.echo(f"This is now the current identity in {store.root}.")
    else:
        click.echo(f"Current identity unchanged; switch with `session id use {ident.session_id}`.")


@id_group.command("restore")
@_common
@click.argument("words", nargs=-1)
@click.option("--use", "make_current", is_flag=True, help="Make it the current identity.")
@_errors
def id_restore(words: tuple[str, ...], make_current: bool) -> None:
    """Restore an identity from its recovery phrase.

    The phrase comes from the arguments, else from standard input (prompted, hidden, on a
    terminal)."""
    if words:
        phrase = " ".join(words)
    elif sys.stdin is not None and sys.stdin.isatty():
        phrase = click.prompt("Recovery phrase", hide_input=True)
    else:
        phrase = sys.stdin.read() if sys.stdin is not None else ""
    store = _store()
    from session.identity import Identity

    ident = Identity.from_mnemonic(" ".join(phrase.split()))
    existed = ident.session_id in store.list()
    store.restore(ident.mnemonic)
    if make_current:
        store.use(ident.session_id)
    current = store.current == ident.session_id
    if _json_mode():
        _emit({"session_id": ident.session_id, "existed": existed, "current": current,
               "home": str(store.root)})
        return
    click.echo(f"Session ID: {ident.session_id}" + ("  (already present)" if existed else "  (restored)"))
    if current:
        click.echo("This is the current identity.")
    else:
        click.echo(f"Switch to it with `session id use {ident.session_id}`.")


@id_group.command("list")
@_common
@_errors
def id_list() -> None:
    """List the identities of --home (* marks the current one)."""
    store = _store()
    cur = store.current
    ids = store.list()
    if _json_mode():
        _emit({"home": str(store.root), "current": cur,
               "identities": [{"session_id": s, "current": s == cur} for s in ids]})
        return
    if not ids:
        click.echo(f"no identity in {store.root} yet: run `session id new` or `session id restore`")
        return
    for s in ids:
        click.echo(f"{'*' if s == cur else ' '} {s}")


@id_group.command("use")
@_common
@click.argument("session_id")
@_errors
def id_use(session_id: str) -> None:
    """Make SESSION_ID the current identity."""
    sid = _session_id(session_id)
    store = _store()
    if sid not in store.list():
        raise CliError(f"there is no identity {sid} in {store.root} (see `session id list`)")
    store.use(sid)
    if _json_mode():
        _emit({"current": sid})
    else:
        click.echo(f"current identity: {sid}")


@id_group.command("show")
@_common
@click.option("--phrase", is_flag=True, help="Also print the recovery phrase (keep it secret).")
@click.option("--qr", is_flag=True, help="Also print the Session ID as a QR code.")
@_errors
def id_show(phrase: bool, qr: bool) -> None:
    """Print the Session ID of the current (or --identity) identity."""
    store = _store()
    ident = store.load(_pick_identity(store))
    if _json_mode():
        doc = {"session_id": ident.session_id}
        if phrase:
            doc["mnemonic"] = ident.mnemonic
        _emit(doc)
        return
    click.echo(ident.session_id)
    if phrase:
        click.echo(ident.mnemonic)
    if qr:
        click.echo(_qr(ident.session_id), nl=False)


@id_group.command("name")
@_common
@click.argument("name")
@_errors
def id_name(name: str) -> None:
    """Set the display name sent with your messages (synced to your other devices)."""

    async def go() -> dict[str, Any]:
        s = await _open()
        try:
            await s.client.set_display_name(name)
            if s.client.directory.nodes:
                await s.flush()
            return {"session_id": s.client.session_id, "display_name": s.client.display_name,
                    "queued": s.client.outbox.pending_count()}
        finally:
            await s.client.close()

    doc = _run(go())
    if _json_mode():
        _emit(doc)
    else:
        click.echo(f"display name: {doc['display_name']}")


# ------------------------------------------------------------------------------------------
# messages


@main.command()
@_common
@click.argument("session_id")
@click.argument("text")
@_errors
def send(session_id: str, text: str) -> None:
    """Send TEXT to SESSION_ID through an onion path; waits until the recipient's swarm stored it."""
    to = _session_id(session_id)
    if not text:
        raise CliError("the message is empty")

    async def go() -> dict[str, Any]:
        s = await _open()
        c = s.client
        try:
            await s.connect()
            mid = await c.send(to, text)
            await s.flush()
            m = c.db.message(mid) or {}
            if m.get("status") != "sent":
                why = c.delivery_error(mid) or f"no answer within {_timeout():g} s"
                raise CliError(f"the message was not delivered (tried {s.tried}: {why}); it stays "
                               "queued and goes out with the next `session` command")
            return {"message_id": mid, "from": c.session_id, "to": to, "sent_ms": m["sent_ms"],
                    "hash": m["hash"], "status": m["status"]}
        finally:
            await c.close()

    doc = _run(go())
    if _json_mode():
        _emit(doc)
    else:
        click.echo(f"sent to {to} (swarm hash {doc['hash']})")


def _conversation_docs(client: Client) -> list[dict[str, Any]]:
    out = []
    for conv in client.conversations():
        sid = conv["conversation"]
        msgs = client.messages(sid, 200)
        unread = [m for m in msgs if not m["outgoing"] and m["status"] == "received"]
        contact = client.db.contact(sid) or {}
        out.append({"session_id": sid, "name": contact.get("name"), "unread": len(unread),
                    "last_ms": conv["last_ms"], "count": conv["count"],
                    "messages": [_message_doc(m) for m in (unread or msgs[-1:])]})
    return out


@main.command()
@_common
@click.option("--offline", is_flag=True, help="Show what is stored locally; do not poll.")
@_errors
def inbox(offline: bool) -> None:
    """Fetch new messages and list conversations (unread messages, else the last one)."""

    async def go() -> tuple[dict[str, Any], Client]:
        s = await _open()
        c = s.client
        try:
            if not offline:
                await s.connect()
                await s.flush()  # anything queued earlier goes out now
            doc = {"session_id": c.session_id, "conversations": _conversation_docs(c),
                   "requests": len(c.requests()), "queued": c.outbox.pending_count()}
            return doc, c
        finally:
            await c.close()

    doc, c = _run(go())
    if _json_mode():
        _emit(doc)
        return
    click.echo(f"inbox of {doc['session_id']}")
    if not doc["conversations"]:
        click.echo("  no conversations yet")
    for conv in doc["conversations"]:
        label = conv["name"] or conv["session_id"]
        click.echo(f"{label}  ({conv['unread']} unread, {conv['count']} messages)")
        for m in conv["messages"]:
            who = "you" if m["outgoing"] else (conv["name"] or _short(m["author"]))
            mark = "  *new*" if not m["outgoing"] and m["status"] == "received" else ""
            click.echo(f"  [{_clock(m['sent_ms'])}] {who}: {m['body']}{mark}")
    if doc["requests"]:
        click.echo(f"{doc['requests']} message request(s): see `session requests`")
    if doc["queued"]:
        click.echo(f"{doc['queued']} outgoing item(s) still queued")


@main.command()
@_common
@click.argument("session_id")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@_errors
def history(session_id: str, limit: int) -> None:
    """Print the stored messages of one conversation (no network)."""
    sid = _session_id(session_id)

    async def go() -> list[dict[str, Any]]:
        s = await _open()
        try:
            return [_message_doc(m) for m in s.client.messages(sid, limit)]
        finally:
            await s.client.close()

    msgs = _run(go())
    if _json_mode():
        _emit({"conversation": sid, "messages": msgs})
        return
    if not msgs:
        click.echo(f"no messages with {sid}")
    for m in msgs:
        who = "you" if m["outgoing"] else _short(m["author"])
        click.echo(f"[{_clock(m['sent_ms'])}] {who}: {m['body']}  ({m['status']})")


# ------------------------------------------------------------------------------------------
# requests and blocking


@main.group(invoke_without_command=True)
@_common
@click.option("--offline", is_flag=True, help="Show what is stored locally; do not poll.")
@click.pass_context
@_errors
def requests(ctx: click.Context, offline: bool) -> None:
    """List message requests (messages from people you have not accepted)."""
    if ctx.invoked_subcommand is not None:
        return

    async def go() -> list[dict[str, Any]]:
        s = await _open()
        c = s.client
        try:
            if not offline:
                await s.connect()
            return [{"session_id": r["session_id"], "name": r.get("name"),
                     "messages": [_message_doc(m) for m in r["messages"]]} for r in c.requests()]
        finally:
            await c.close()

    reqs = _run(go())
    if _json_mode():
        _emit({"requests": reqs})
        return
    if not reqs:
        click.echo("no message requests")
    for r in reqs:
        click.echo(f"{r['session_id']}" + (f"  ({r['name']})" if r["name"] else ""))
        for m in r["messages"]:
            click.echo(f"  [{_clock(m['sent_ms'])}] {m['body']}")
    if reqs:
        click.echo("accept with `session requests accept ID`, drop with `session requests decline ID`, "
                   "or `session block ID`")


def _contact_action(session_id: str, action: str, done: str, needs_network: bool = False) -> None:
    """Run ``Client.<action>(SESSION_ID)``, deliver what it queued, print ``<done> SESSION_ID``."""
    sid = _session_id(session_id)

    async def go() -> dict[str, Any]:
        s = await _open()
        c = s.client
        try:
            if needs_network:
                await s.connect()
            await getattr(c, action)(sid)
            if c.directory.nodes:
                await s.flush()
            return {"session_id": sid, "action": action, "queued": c.outbox.pending_count()}
        finally:
            await c.close()

    doc = _run(go())
    _emit(doc) if _json_mode() else click.echo(f"{done} {doc['session_id']}")


@requests.command("accept")
@_common
@click.argument("session_id")
@_errors
def requests_accept(session_id: str) -> None:
    """Accept SESSION_ID's message request (they are told)."""
    _contact_action(session_id, "accept_request", "accepted", needs_network=True)


@requests.command("decline")
@_common
@click.argument("session_id")
@_errors
def requests_decline(session_id: str) -> None:
    """Delete SESSION_ID's message request and its messages (they are not told)."""
    _contact_action(session_id, "decline_request", "declined")


@main.command()
@_common
@click.argument("session_id")
@_errors
def block(session_id: str) -> None:
    """Block SESSION_ID: its messages are dropped (synced to your other devices)."""
    _contact_action(session_id, "block", "blocked")


@main.command()
@_common
@click.argument("session_id")
@_errors
def unblock(session_id: str) -> None:
    """Unblock SESSION_ID."""
    _contact_action(session_id, "unblock", "unblocked")


# ------------------------------------------------------------------------------------------
# chat


@main.command()
@_common
@click.argument("session_id")
@click.option("--history", "show_history", type=click.IntRange(min=0), default=10, show_default=True,
              help="Earlier messages to show first.")
@click.option("--poll-interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between polls of your swarm.")
@_errors
def chat(session_id: str, show_history: int, poll_interval: float) -> None:
    """Chat with SESSION_ID: type a line and press Enter to send it.

    Incoming messages, typing indicators, deliveries and read receipts are printed as they
    arrive; messages you see are marked read (those of a message request once you reply,
    which accepts the request). Commands: /typing (send a typing indicator),
    /quit (or end of input) to leave."""
    peer = _session_id(session_id)
    _run(_chat(peer, show_history, poll_interval))


async def _chat(peer: str, show_history: int, poll_interval: float) -> None:
    import asyncio
    import contextlib
    import threading

    from session.client import (
        MessageDeleted,
        MessageFailed,
        MessageRead,
        MessageReceived,
        MessageSent,
        RequestAccepted,
        Typing,
    )

    as_json = _json_mode()
    s = await _open(background=False, poll_interval=poll_interval)
    c = s.client
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    events = c.hub.subscribe()

    def say(kind: str, text: str, **fields: Any) -> None:
        if as_json:
            _emit({"event": kind, **fields})
        else:
            click.echo(text)

    def reader() -> None:
        stream = sys.stdin
        try:
            for line in stream:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(lines.put_nowait, None)

    from session.client.paths import NotEnoughNodes
    from session.errors import SessionError

    async def pump() -> None:
        """Poll our swarm and deliver the outbox (the client's own loops stay off so that a
        network failure can be shown once, as it happens)."""
        offline = False
        while True:
            try:
                await asyncio.wait_for(c.poll_once(), _timeout())
                if c.outbox.pending_count():
                    await c.flush_outbox()
                c.sweep_expired()
                if offline:
                    say("online", "  (back online)")
                offline = False
            except (SessionError, NotEnoughNodes, asyncio.TimeoutError) as e:
                if not offline:
                    say("offline", f"  (network unreachable, retrying: {e or 'timeout'})", error=str(e))
                offline = True
            await asyncio.sleep(poll_interval)

    pump_task: asyncio.Task[None] | None = None
    try:
        await s.connect()
        pump_task = asyncio.ensure_future(pump())
        name = _name_of(c, peer)
        say("start", f"chatting with {peer} as {c.session_id}\n"
                     "type a message and press Enter; /typing sends a typing indicator; /quit or Ctrl-D leaves",
            me=c.session_id, peer=peer)
        for m in c.messages(peer, show_history) if show_history else []:
            if as_json:
                _emit({"event": "history", **_message_doc(m)})
            else:
                _print_message(c, m)
        accepted = bool((c.db.contact(peer) or {}).get("approved"))

        async def read_all() -> None:
            # A message request stays unread (and unreceipted) until it is accepted.
            if accepted and await c.mark_read(peer):
                await c.flush_outbox()

        await read_all()
        threading.Thread(target=reader, name="session-chat-stdin", daemon=True).start()

        async def handle_line(line: str) -> bool:
            nonlocal accepted
            text = line.strip()
            if not text:
                return True
            if text == "/quit":
                return False
            if text == "/typing":
                await c.send_typing(peer, True)
                await c.flush_outbox()
                return True
            if not accepted and any(r["session_id"] == peer for r in c.requests()):
                await c.accept_request(peer)
                say("accepted", f"(accepted {name}'s message request)", peer=peer)
            accepted = True
            await read_all()
            mid = await c.send(peer, line)
            say("queued", f"  you: {line}  (sending…)", message_id=mid, body=line)
            await c.flush_outbox()
            return True

        async def handle_event(ev: Any) -> None:
            nonlocal name
            if getattr(ev, "conversation", None) != peer and getattr(ev, "session_id", None) != peer:
                return
            if isinstance(ev, MessageReceived) and not ev.outgoing:
                name = _name_of(c, peer)
                say("message", f"  [{_clock(ev.sent_ms)}] {name}: {ev.body}", author=ev.author,
                    body=ev.body, sent_ms=ev.sent_ms, message_id=ev.message_id,
                    is_request=ev.is_request)
                await read_all()
            elif isinstance(ev, MessageReceived):
                say("message", f"  [{_clock(ev.sent_ms)}] you (other device): {ev.body}",
                    author=ev.author, body=ev.body, sent_ms=ev.sent_ms, message_id=ev.message_id,
                    outgoing=True)
            elif isinstance(ev, MessageSent):
                say("sent", f"  ✓ delivered to {name}'s swarm", message_id=ev.message_id,
                    sent_ms=ev.sent_ms, hash=ev.hash)
            elif isinstance(ev, MessageFailed):
                say("failed", f"  ✗ not delivered: {ev.error}", message_id=ev.message_id, error=ev.error)
            elif isinstance(ev, MessageRead):
                last = max(ev.sent_ms) if ev.sent_ms else 0
                say("read", f"  ✓✓ {name} read your messages (up to {_clock(last)})", sent_ms=list(ev.sent_ms))
            elif isinstance(ev, Typing):
                say("typing", f"  … {name} is typing" if ev.started else f"  … {name} stopped typing",
                    started=ev.started)
            elif isinstance(ev, MessageDeleted):
                say("deleted", f"  (a message was deleted: {ev.reason})", message_id=ev.message_id,
                    reason=ev.reason)
            elif isinstance(ev, RequestAccepted):
                say("request_accepted", f"  {name} accepted your message request", peer=peer)

        line_task: asyncio.Task[str | None] = asyncio.ensure_future(lines.get())
        event_task: asyncio.Task[Any] = asyncio.ensure_future(events.get())
        try:
            while True:
                done, _ = await asyncio.wait({line_task, event_task}, return_when=asyncio.FIRST_COMPLETED)
                if event_task in done:
                    ev = event_task.result()
                    if ev is None:
                        break
                    await handle_event(ev)
                    event_task = asyncio.ensure_future(events.get())
                if line_task in done:
                    line = line_task.result()
                    if line is None or not await handle_line(line):
                        break
                    line_task = asyncio.ensure_future(lines.get())
        finally:
            line_task.cancel()
            event_task.cancel()
            pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump_task
        # Leave only once what we wrote reached the network (bounded by --timeout).
        deadline = loop.time() + _timeout()
        while c.outbox.pending_count() and loop.time() < deadline:
            await c.flush_outbox()
            if c.outbox.pending_count():
                await asyncio.sleep(0.2)
        while not events.empty():
            ev = events.get_nowait()
            if ev is not None:
                await handle_event(ev)
        left = c.outbox.pending_count()
        say("end", "bye" if not left else f"bye ({left} item(s) still queued; they go out next time)",
            queued=left)
    finally:
        c.hub.unsubscribe(events)
        await c.close()


__all__ = ["main"]
