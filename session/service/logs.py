"""Logging for every service (node, registry, file and community servers): stdlib ``logging``,
one handler on the root logger, one pipeline for our loggers and the libraries' alike.

JSON lines when the stream is not a TTY (log shippers), a readable console format on a TTY,
journald's native structured protocol when stderr is the journal (a systemd service). Every
record, from our loggers and from libraries (``aiohttp.*``, ``asyncio``, ``zmq``) alike, passes
three filters on the one root handler:

1. :class:`RateLimitFilter` — per kind (logger, level, message template, exception class): a
   burst, then a trickle; a line says how many similar ones were dropped, so nobody can fill
   an operator's disk by repeating a bad request;
2. :class:`ClientErrorFilter` — a record about a client's fault (an HTTP parse error, a TLS
   failure, a reset) becomes one line naming the error class, with no traceback and no
   exception text (aiohttp's parse errors quote the raw request bytes);
3. :class:`RedactingFilter` — masks IPv4/IPv6 addresses and 66-hex Session IDs (in the message,
   its arguments, extra fields and tracebacks) unless ``unsafe_logging`` is on — the idea of
   arti's ``safelog``. The operator's own addresses (its registry's, its announced address:
   ``keep``) stay readable: they are in the operator's config, and a log that hides them
   cannot say which registry is unreachable. Keys are never passed to the logger in the
   first place.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import logging
import re
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TextIO

from session.service import systemd

#: An IP address, as the ``ipaddress`` module parses it.
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

IP_MASK = "[ip]"
ID_MASK = "[session-id]"

# Candidates are broad; each is confirmed with the ipaddress module before masking.
_V6_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_:.])[0-9A-Fa-f:][0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.-]+)?")
# Only digits and dots may not touch an address or an ID: raw text such as b'...\n05ab…' or
# 'x203.0.113.9' puts letters right before them.
_V4_CANDIDATE = re.compile(r"(?<![0-9.])(?:\d{1,3}\.){3}\d{1,3}(?![0-9]|\.\d)")
_SESSION_ID = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{66}(?![0-9A-Fa-f])")

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _mask_v6(keep: frozenset[Address], m: re.Match[str]) -> str:
    token = m.group(0)
    if token.count(":") < 2:
        return token
    # Trailing dots/colons belong to the sentence, not the address.
    core = token.rstrip(".")
    try:
        addr = ipaddress.IPv6Address(core.split("%", 1)[0])
    except ValueError:
        return token
    if addr in keep:
        return token
    return IP_MASK + token[len(core) :]


def _mask_v4(keep: frozenset[Address], m: re.Match[str]) -> str:
    try:
        addr = ipaddress.IPv4Address(m.group(0))
    except ValueError:
        return m.group(0)
    return m.group(0) if addr in keep else IP_MASK


def own_addresses(*texts: str) -> frozenset[Address]:
    """The IP addresses among ``texts`` (addresses or URLs naming one; anything else, a host
    name or an empty string, is skipped): the ``keep`` set of :func:`redact`."""
    found: set[Address] = set()
    for text in texts:
        host = urllib.parse.urlsplit(text).hostname if "://" in text else text
        try:
            found.add(ipaddress.ip_address(host or ""))
        except ValueError:
            continue
    return frozenset(found)


def redact(text: str, keep: frozenset[Address] = frozenset()) -> str:
    """``text`` with Session IDs and IP addresses masked, except the addresses in ``keep``."""
    text = _SESSION_ID.sub(ID_MASK, text)
    text = _V6_CANDIDATE.sub(functools.partial(_mask_v6, keep), text)
    return _V4_CANDIDATE.sub(functools.partial(_mask_v4, keep), text)


def _redact_value(value: Any, keep: frozenset[Address]) -> Any:
    if isinstance(value, str):
        return redact(value, keep)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v, keep) for v in value)
    if isinstance(value, dict):
        return {k: _redact_value(v, keep) for k, v in value.items()}
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value), keep)


class RedactingFilter(logging.Filter):
    """Masks addresses and Session IDs in every record unless ``unsafe`` is set; the addresses
    in ``keep`` (the operator's own: :func:`own_addresses`) stay readable."""

    def __init__(
        self,
        unsafe: bool = False,
        keep: frozenset[Address] = frozenset(),
    ) -> None:
        super().__init__()
        self.unsafe = unsafe
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        if self.unsafe:
            return True
        keep = self.keep
        record.msg = redact(record.getMessage(), keep)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, keep)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, keep)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, _redact_value(value, keep))
        return True


#: Exceptions that mean "the client sent something bad or went away", not a fault of ours
#: (aiohttp's parser errors too, see :func:`client_errors`).
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    ssl.SSLError,
    ConnectionError,
    TimeoutError,
    EOFError,
)


def client_errors() -> tuple[type[BaseException], ...]:
    """:data:`CLIENT_ERRORS`, and aiohttp's ``HttpProcessingError`` in a process that loaded
    aiohttp (the registry, file and community servers run on it). Looked up, not imported:
    a node and the client library do not load aiohttp (~11 MB of RSS), and where it is not
    loaded its errors cannot occur."""
    aiohttp_errors = sys.modules.get("aiohttp.http_exceptions")
    if aiohttp_errors is None:
        return CLIENT_ERRORS
    return (*CLIENT_ERRORS, aiohttp_errors.HttpProcessingError)


class ClientErrorFilter(logging.Filter):
    """A record carrying a client's error becomes one INFO line: the message and the error's
    class (and HTTP status), without the traceback or the exception's text, which for
    aiohttp's parser errors quotes the raw request bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not isinstance(exc, client_errors()):
            return True
        status = getattr(exc, "code", None)
        what = type(exc).__name__ + (f" ({status})" if isinstance(status, int) else "")
        record.msg = f"{record.getMessage()}: {what}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        if record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class RateLimitFilter(logging.Filter):
    """At most ``burst`` records of one kind at once, refilled at ``per_second``; the next
    record let through after drops says how many similar ones were dropped.

    A kind is (logger, level, message template, exception class): repeats of one bad request
    share a kind whatever their arguments.
    """

    def __init__(
        self,
        burst: int = 20,
        per_second: float = 0.2,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.per_second = per_second
        self.max_kinds = max_kinds
        self.clock = clock
        self._kinds: dict[tuple[str, int, str, str], list[float]] = {}  # tokens, time, dropped

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        key = (record.name, record.levelno, str(record.msg)[:200], type(exc).__name__)
        now = self.clock()
        state = self._kinds.get(key)
        if state is None:
            if len(self._kinds) >= self.max_kinds:  # bounded: forget the oldest kind
                self._kinds.pop(next(iter(self._kinds)))
            state = self._kinds[key] = [float(self.burst), now, 0.0]
        tokens = min(float(self.burst), state[0] + (now - state[1]) * self.per_second)
        state[1] = now
        if tokens < 1.0:
            state[0] = tokens
            state[2] += 1
            return False
        state[0] = tokens - 1.0
        if state[2]:
            record.msg = f"{record.getMessage()} ({int(state[2])} similar messages dropped)"
            record.args = None
            state[2] = 0.0
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in doc:
                doc[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


_HANDLER_MARK = "_session_handler"


def setup_logging(
    level: str = "info",
    fmt: str = "auto",
    *,
    unsafe: bool = False,
    stream: TextIO | None = None,
    keep: frozenset[Address] = frozenset(),
) -> logging.Handler:
    """Install the one root handler (replacing a previous one from this function).

    ``fmt`` is ``"json"``, ``"console"`` or ``"auto"`` (console on a TTY, journald's native
    protocol when the stream is the journal's, else JSON); ``keep``
    are addresses the logs show unmasked (:class:`RedactingFilter`).
    """
    stream = sys.stderr if stream is None else stream
    journal = False
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        journal = systemd.under_journal(stream)
        fmt = "console" if isatty is not None and isatty() else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"log format must be auto, json or console, not {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler: logging.Handler
    if journal:  # journald's native protocol: every field kept as a field
        handler = systemd.JournalHandler(
            systemd.default_identifier(), stream, standard=_STANDARD_ATTRS
        )
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RateLimitFilter())
    handler.addFilter(ClientErrorFilter())
    handler.addFilter(RedactingFilter(unsafe, keep))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


def setup(
    logging_config: Any,
    stream: TextIO | None = None,
    keep: frozenset[Address] = frozenset(),
) -> logging.Handler:
    """:func:`setup_logging` from a :class:`session.service.config.LoggingConfig`."""
    lc = logging_config
    return setup_logging(lc.level, lc.format, unsafe=lc.unsafe_logging, stream=stream, keep=keep)


__all__ = [
    "CLIENT_ERRORS",
    "ClientErrorFilter",
    "ConsoleFormatter",
    "JsonFormatter",
    "RateLimitFilter",
    "RedactingFilter",
    "client_errors",
    "own_addresses",
    "redact",
    "setup",
    "setup_logging",
]
