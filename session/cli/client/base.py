"""The ``session`` group, its shared options and the helpers every command module uses.

Every command takes ``--home DIR`` (or ``SESSION_HOME``; where identities live),
``--network nodes.json|URL`` (or ``SESSION_NETWORK``; only needed until a node list is cached),
``--identity ID`` (which of several identities to use; default: the current one), ``--timeout
SECONDS`` (how long a network step may take; default 30) and ``--json`` (machine-readable
output). The options work before or after the command name.

Exit codes: 0 ok, 1 error (one sentence on stderr; with ``--json`` also ``{"error": ...}`` on
stdout), 2 usage error (click's own), 130 interrupted.

Imports of the client (``session.client``), of the native core (``session.identity``) and of
``segno`` are lazy (``# noqa: PLC0415``) so that
``session --help`` and ``session id list`` start fast: importing this package takes 0.08 s, with
the client 0.30 s (measured with ``/usr/bin/time python -c 'import …'``).
Someone else's text reaches the terminal only through :func:`shown` / :func:`shown_name`
(:func:`session.text.for_terminal`); ``--json`` documents carry it exactly.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import platformdirs

from session.errors import NetworkError, NotEnoughNodes, SessionError
from session.text import for_terminal

log = logging.getLogger("session.cli")

if TYPE_CHECKING:
    from session.client import Client, Message
    from session.proto.snodes import FileServer, ServiceNode

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Seconds a network command may take before it gives up.
DEFAULT_TIMEOUT = 30.0


class CliError(Exception):
    """A failure reported to the user as one sentence (exit code 1)."""


class CliInterrupted(Exception):
    """Ctrl-C, answered with one sentence saying what the command had done (exit code 130);
    ``status`` says it for ``--json`` (e.g. sent, queued, none, unknown)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------------
# options shared by the group and every command


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value is not False:
        ctx.ensure_object(dict)[param.name] = value
    return value


def common(fn: F) -> F:
    opts = [
        click.option(
            "--home",
            type=click.Path(file_okay=False, path_type=Path),
            expose_value=False,
            callback=_remember,
            help="Profile directory holding the identities "
            "(default: $SESSION_HOME, else the user data directory).",
        ),
        click.option(
            "--network",
            metavar="nodes.json|URL",
            expose_value=False,
            callback=_remember,
            help="Node list: a devnet/registry nodes.json file or a registry URL "
            "(default: $SESSION_NETWORK, else the cached list).",
        ),
        click.option(
            "--identity",
            "-i",
            metavar="SESSION_ID",
            expose_value=False,
            callback=_remember,
            help="Use this identity instead of the current one.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=1),
            expose_value=False,
            callback=_remember,
            help=f"Seconds a network step may take (default {DEFAULT_TIMEOUT:g}).",
        ),
        click.option(
            "--json",
            "json",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_remember,
            help="Print JSON (one document, or one per line for chat).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def opt(name: str) -> Any:
    return click.get_current_context().ensure_object(dict).get(name)


def json_mode() -> bool:
    return bool(opt("json"))


def timeout() -> float:
    return float(opt("timeout") or DEFAULT_TIMEOUT)


def home() -> Path:
    home = opt("home") or os.environ.get("SESSION_HOME")
    if home:
        return Path(home).expanduser()

    return Path(platformdirs.user_data_dir("session-network"))


def emit(doc: Any) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False))


def report(doc: Any, line: str) -> None:
    """A command's outcome: ``doc`` as one JSON document with ``--json``, else ``line``."""
    if json_mode():
        emit(doc)
    else:
        click.echo(line)


def fail(message: str) -> None:
    message = message.strip() or "unknown error"
    if json_mode():
        emit({"error": message})
    # An error may echo what someone else sent (a node's answer, a name): sanitised, one line.
    click.echo(f"error: {for_terminal(message)}", err=True)
    sys.exit(1)


def errors(fn: F) -> F:
    """Turn expected failures into one sentence on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (CliError, SessionError, ValueError, LookupError) as e:
            # a bare KeyError's str() is the repr of its key; other messages are kept whole
            # (one may end in a quoted name: "no group is named … by 'x'")
            plain = type(e) is KeyError and len(e.args) == 1
            fail(str(e.args[0]) if plain else str(e))
        except BrokenPipeError:
            _quiet_exit()
        except OSError as e:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            fail(f"{e.strerror or e}{where}")
        except CliInterrupted as e:
            if json_mode():
                emit({"error": str(e), "interrupted": True, "status": e.status})
            click.echo(str(e), err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        finally:
            _flush_quietly()

    return wrapper  # type: ignore[return-value]


def _flush_quietly() -> None:
    """Flush stdout; when its reader went away (``session inbox | head -3``) stop quietly:
    the rest of the output goes nowhere and Python's exit does not report a broken pipe."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_exit()


def _quiet_exit() -> None:
    """The reader of stdout is gone: send what is left to /dev/null and exit 0."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# helpers


def parse_id(text: str) -> str:
    """A user's Session ID from user input (surrounding blanks and upper case tolerated), or
    the Session ID registered under ``@name`` (resolved through onion requests to three random
    nodes that must agree; see :mod:`session.client.names`). Called outside the event loop."""
    if text.strip().startswith("@"):
        from session.cli.client.names import lookup  # noqa: PLC0415 - CLI start-up stays light

        return run(lookup(text))
    return parse_hex_id(text)


def parse_hex_id(text: str) -> str:
    """A Session ID typed as hex (no name lookup)."""
    sid = text.strip().lower()
    from session.identity import parse_session_id  # noqa: PLC0415

    parse_session_id(sid)  # raises InvalidSessionID with a sentence saying what is wrong
    return sid


def short(sid: str) -> str:
    return f"{sid[:8]}…{sid[-4:]}"


def identity_store() -> Any:
    from session.client import IdentityStore  # noqa: PLC0415

    return IdentityStore(home())


def pick_identity(store: Any) -> str:
    wanted = opt("identity")
    if wanted:
        sid = parse_hex_id(wanted)
        if sid not in store.list():
            raise CliError(f"there is no identity {sid} in {store.root} (see `session id list`)")
        return sid
    cur = store.current
    if cur is None:
        raise CliError(
            f"there is no identity in {store.root} yet: "
            "run `session id new` or `session id restore`"
        )
    return str(cur)


async def load_nodes(source: str) -> list[ServiceNode]:
    """The node list named by ``--network`` (raises CliError saying what was tried)."""
    from session.client.network import fetch_registry, load_nodes_json  # noqa: PLC0415

    if source.startswith(("http://", "https://")):
        try:
            nodes = await asyncio.wait_for(fetch_registry(source), timeout())
        except TimeoutError:
            raise CliError(
                f"cannot reach the network: the registry at {source} did not answer "
                f"within {timeout():g} s"
            ) from None
        except SessionError as e:  # unreachable, refused, not a node list
            raise CliError(f"cannot reach the network: {e}") from None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise CliError(
                f"cannot reach the network: there is no node list at {path} "
                "(is the devnet running?)"
            )
        nodes = load_nodes_json(path)
    if not nodes:
        raise CliError(f"cannot reach the network: the node list from {source} is empty")
    return nodes


def file_servers_of(path: Path) -> list[FileServer]:
    """The file servers a ``nodes.json`` lists (a devnet's), for attachments and avatars."""
    from session.proto.snodes import parse_file_servers  # noqa: PLC0415

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read the node list {path}: {e}") from None
    return parse_file_servers(doc) if isinstance(doc, dict) else []


#: ``--file PATH`` of the commands that send a message (a file to attach).
file_option = click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Attach this file (encrypted, padded, uploaded through an onion path; ≤ 10 MB).",
)


@contextmanager
def progress_bar(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (only on a terminal, never in --json mode); yields the
    callback that advances it by a number of bytes."""
    from rich.console import Console  # noqa: PLC0415  (only commands that move files need it)
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=json_mode() or not console.is_terminal,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


class Session:
    """One open client for the length of a command."""

    def __init__(self, client: Client, tried: str) -> None:
        self.client = client
        self.tried = tried

    async def connect(self) -> int:
        """Poll our swarm once: proves the network is reachable; returns new messages seen."""
        if not self.client.node_count:
            raise CliError(
                "no network is known yet: pass --network nodes.json|URL (or set SESSION_NETWORK)"
            )
        try:
            seen = await asyncio.wait_for(self.client.poll_once(), timeout())
        except TimeoutError:
            raise CliError(
                f"cannot reach the network: tried {self.tried}, no answer within {timeout():g} s"
            ) from None
        except (NetworkError, NotEnoughNodes) as e:
            down = len(self.client.failed_nodes)
            if isinstance(e, NotEnoughNodes):
                why = (
                    f"{down} of them could not be reached and too few are left for an onion path"
                    if down
                    else "too few nodes for an onion path (3 relays and a destination)"
                )
            else:
                why = (
                    f"no request got through; {down} of them could not be reached; last error: {e}"
                    if down
                    else str(e)
                )
            raise CliError(f"cannot reach the network: tried {self.tried} ({why})") from None
        try:  # our profile picture's file is extended once a day while we use it (§6.9)
            await asyncio.wait_for(self.client.keep_avatar_alive(), timeout())
        except (TimeoutError, SessionError) as e:
            log.warning("could not extend the profile picture's file: %s", e)
        return seen

    async def flush(self) -> None:
        """Deliver what the outbox holds (one attempt each, bounded by the timeout)."""
        try:
            await asyncio.wait_for(self.client.flush_outbox(), timeout())
        except TimeoutError:
            pass


async def open_session(
    *, background: bool = False, poll_interval: float = 1.0, identity: str | None = None
) -> Session:
    """The client of the identity picked (``identity``, else --identity, else the current
    one), with the node list --network names saved for it (later commands need none)."""
    from session.client import Client  # noqa: PLC0415

    store = identity_store()
    sid = identity or pick_identity(store)
    source = opt("network") or os.environ.get("SESSION_NETWORK")
    nodes: list[ServiceNode] | None = None
    if source:
        nodes = await load_nodes(str(source))
        tried = f"{len(nodes)} nodes from {source}"
    client = Client.open(
        store.root,
        nodes,
        identity=sid,
        create=False,
        background=background,
        poll_interval=poll_interval,
    )
    if source and not str(source).startswith(("http://", "https://")):
        client.remember_file_servers(file_servers_of(Path(str(source)).expanduser()))
    if source:  # re-read when every cached node has gone (e.g. a restarted network)
        src = str(source)
        client.remember_bootstrap(src if "://" in src else Path(src).expanduser().resolve())
    if not source:
        tried = f"{client.node_count} cached nodes"
    await client.start()
    return Session(client, tried)


def shown(text: str | None, *, multiline: bool = False) -> str:
    """Someone else's text (a message body, an error that echoes it) as it may be printed;
    ``multiline``: its newlines kept, each further line marked (see :func:`for_terminal`)."""
    return for_terminal(text or "", multiline=multiline)


def shown_name(name: str | None) -> str:
    """A display name someone chose, as it may be printed (look-alikes folded, mixed scripts
    marked; see :mod:`session.text`)."""
    return for_terminal(name or "", name=True)


def name_of(client: Client, sid: str) -> str:
    """Who ``sid`` is, for the terminal: "you", their display name, or a short ID."""
    if sid == client.session_id:
        return "you"
    c = client.contact(sid)
    return shown_name(c.name) if c and c.name else short(sid)


def clock(ms: int) -> str:
    """A message's time: HH:MM:SS today, with the date before that."""
    t, now = time.localtime(ms / 1000), time.localtime()
    if (t.tm_year, t.tm_yday) == (now.tm_year, now.tm_yday):
        return time.strftime("%H:%M:%S", t)
    return time.strftime("%Y-%m-%d %H:%M", t)


def who_line(client: Client, sid: str) -> str:
    """A person as inbox and history name them: display name (or our nickname) and a short ID,
    so two people who both call themselves "Bob" can be told apart."""
    if sid == client.session_id:
        return "you"
    nick = client.nickname(sid)
    c = client.contact(sid)
    name = nick or (c.name if c else None)
    return f"{shown_name(name)} ({short(sid)})" if name else short(sid)


def message_doc(m: Message) -> dict[str, Any]:
    keys = (
        "id",
        "conversation",
        "author",
        "sent_ms",
        "outgoing",
        "body",
        "status",
        "hash",
        "read_ms",
    )
    d = m.to_dict()
    out = {k: d[k] for k in keys}
    out["attachments"] = d["attachments"]
    return out


def attachment_lines(m: dict[str, Any]) -> list[str]:
    """One line per attachment of a message doc: local id (for ``session save``), the
    sanitised name, size and type (all sender-chosen text goes through the sanitiser), and its
    caption unless that is the message's text, already on the message's own line."""
    # the client package (protobuf, the native core) stays off the CLI's start-up path
    from session.client.attachments import safe_filename  # noqa: PLC0415

    lines = []
    for a in m.get("attachments", ()):
        kind = "voice note" if a["voice"] else shown(a["content_type"])
        dims = f", {a['width']}×{a['height']}" if a["width"] and a["height"] else ""
        name = shown(safe_filename(a["file_name"]))
        shows_caption = a["caption"] and a["caption"] != m.get("body")
        caption = f": {shown(a['caption'])}" if shows_caption else ""
        lines.append(f"      [file #{a['id']}] {name} ({a['size']:,} bytes, {kind}{dims}){caption}")
    return lines


def body_line(m: dict[str, Any]) -> str:
    """A message doc's text as printed: sanitised; for a file sent without text, what it is."""
    if m.get("body") or not m.get("attachments"):
        return shown(m.get("body"))
    return "(voice note)" if m["attachments"][0]["voice"] else "(file)"


def print_message(client: Client, m: Message) -> None:
    who = "you" if m.outgoing else name_of(client, m.author)
    state = f"  ({m.status})" if m.outgoing else ("" if m.status == "read" else "  *new*")
    doc = message_doc(m)
    click.echo(f"  [{clock(m.sent_ms)}] {who}: {body_line(doc)}{state}")
    for line in attachment_lines(doc):
        click.echo(line)


def qr(text: str) -> str:
    import segno  # noqa: PLC0415

    buf = io.StringIO()
    segno.make(text, error="m").terminal(out=buf, compact=True)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------
# the group


@click.group(context_settings=CONTEXT)
@common
@click.version_option(package_name="session-network", prog_name="session")
def main() -> None:
    """Session messenger client: identities, messages, requests, chat.

    Start with `session id new`, then e.g.
    `session --network devnet/nodes.json send 05… "hello"`.
    """


def remember_network(sid: str) -> None:
    """When --network is given, save its node list for identity ``sid`` now (an identity just
    made or restored: its later commands need no --network)."""
    if not (opt("network") or os.environ.get("SESSION_NETWORK")):
        return

    async def go() -> None:
        s = await open_session(identity=sid)
        await s.client.close()

    try:
        run(go())
    except (CliError, SessionError, ValueError, OSError) as e:  # (the identity is made anyway)
        click.echo(f"note: the node list was not saved ({for_terminal(str(e))})", err=True)
