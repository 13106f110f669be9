"""Logging for every service (node, registry, file and community servers): stdlib ``logging``,
one handler on the root logger, one pipeline for our loggers and the libraries' alike.

JSON lines when the stream is not a TTY (journald, log shippers), a readable console format
on a TTY. A redaction filter masks IPv4/IPv6 addresses and 66-hex Session IDs (in the message,
its arguments, extra fields and tracebacks) unless ``unsafe_logging`` is on — the idea of
arti's ``safelog``. Keys are never passed to the logger in the first place.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import re
import sys
from typing import Any, TextIO

IP_MASK = "[ip]"
ID_MASK = "[session-id]"

# Candidates are broad; each is confirmed with the ipaddress module before masking.
_V6_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_:.])[0-9A-Fa-f:][0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.-]+)?")
_V4_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_.])(?:\d{1,3}\.){3}\d{1,3}(?![0-9A-Za-z_]|\.\d)")
_SESSION_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{66}(?![0-9A-Za-z])")

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}


def _mask_v6(m: re.Match[str]) -> str:
    token = m.group(0)
    if token.count(":") < 2:
        return token
    # Trailing dots/colons belong to the sentence, not the address.
    core = token.rstrip(".")
    try:
        ipaddress.IPv6Address(core.split("%", 1)[0])
    except ValueError:
        return token
    return IP_MASK + token[len(core):]


def _mask_v4(m: re.Match[str]) -> str:
    try:
        ipaddress.IPv4Address(m.group(0))
    except ValueError:
        return m.group(0)
    return IP_MASK


def redact(text: str) -> str:
    """``text`` with Session IDs and IP addresses masked."""
    text = _SESSION_ID.sub(ID_MASK, text)
    text = _V6_CANDIDATE.sub(_mask_v6, text)
    return _V4_CANDIDATE.sub(_mask_v4, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Masks addresses and Session IDs in every record unless ``unsafe`` is set."""

    def __init__(self, unsafe: bool = False) -> None:
        super().__init__()
        self.unsafe = unsafe

    def filter(self, record: logging.LogRecord) -> bool:
        if self.unsafe:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, _redact_value(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds"),
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
) -> logging.Handler:
    """Install the one root handler (replacing a previous one from this function).

    ``fmt`` is ``"json"``, ``"console"`` or ``"auto"`` (console on a TTY, else JSON).
    """
    stream = sys.stderr if stream is None else stream
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        fmt = "console" if isatty is not None and isatty() else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"log format must be auto, json or console, not {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RedactingFilter(unsafe))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


def setup(logging_config: Any, stream: TextIO | None = None) -> logging.Handler:
    """:func:`setup_logging` from a :class:`session.service.config.LoggingConfig`."""
    lc = logging_config
    return setup_logging(lc.level, lc.format, unsafe=lc.unsafe_logging, stream=stream)


__all__ = [
    "ConsoleFormatter",
    "JsonFormatter",
    "RedactingFilter",
    "redact",
    "setup",
    "setup_logging",
]
