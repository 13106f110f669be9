"""Reading request parameters with the storage server's ``parse_field`` semantics
(``client_rpc_endpoints.cpp``): absent and ``null`` are both "not given", and a wrong type
gives Session's message ("Invalid value given for 'x': expected ...").

Every reader raises :class:`ParseError`; :func:`session.proto.rpc.parse_params` turns it into
``RpcStatusError(400, "invalid request: <message>")``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from session.proto.rpc.constants import MIN_MS_TIMESTAMP
from session.proto.rpc.namespaces import ALL, NAMESPACE_MAX, NAMESPACE_MIN, NamespaceVar

Params = Mapping[str, Any]
T = TypeVar("T")


class ParseError(Exception):
    """A request parameter is missing or malformed (becomes a 400 "invalid request: ...")."""


def is_int(v: Any) -> bool:
    """A JSON integer (``True``/``False`` are not)."""
    return isinstance(v, int) and not isinstance(v, bool)


def bad(name: str, desc: str) -> ParseError:
    return ParseError(f"Invalid value given for '{name}': expected {desc}")


def f_str(p: Params, name: str) -> str | None:
    v = p.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise bad(name, "string")
    return v


def f_bool(p: Params, name: str) -> bool | None:
    v = p.get(name)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise bad(name, "boolean")
    return v


def f_int(p: Params, name: str) -> int | None:
    v = p.get(name)
    if v is None:
        return None
    if not is_int(v) or not -(2**63) <= v < 2**63:
        raise bad(name, "integer")
    return int(v)


def f_uint(p: Params, name: str) -> int | None:
    v = p.get(name)
    if v is None:
        return None
    if not is_int(v) or not 0 <= v < 2**64:
        raise bad(name, "positive integer")
    return int(v)


def f_ts(p: Params, name: str) -> int | None:
    """A millisecond timestamp."""
    v = p.get(name)
    if v is None:
        return None
    if not is_int(v) or not 0 <= v < 2**63:
        raise bad(name, "integer timestamp (in milliseconds)")
    if v < MIN_MS_TIMESTAMP:
        raise ParseError(f"Invalid timestamp for '{name}': timestamp must be in milliseconds")
    return int(v)


def f_ns(p: Params, name: str, allow_all: bool) -> NamespaceVar | None:
    v = p.get(name)
    if v is None:
        return None
    if is_int(v):
        if not NAMESPACE_MIN <= v <= NAMESPACE_MAX:
            raise ParseError(f"Invalid value given for '{name}': value out of range")
        return int(v)
    if allow_all and v == "all":
        return ALL
    if allow_all or isinstance(v, str):
        raise ParseError(f"Invalid value given for '{name}': expected integer or \"all\"")
    raise bad(name, "16-bit integer")


def f_int_ns(p: Params, name: str) -> int | None:
    """A namespace that may not be ``"all"``."""
    ns = f_ns(p, name, False)
    return None if ns is ALL else ns


def f_str_array(p: Params, name: str) -> list[str] | None:
    v = p.get(name)
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise bad(name, "string array")


def f_int_array(p: Params, name: str) -> list[int] | None:
    v = p.get(name)
    if v is None:
        return None
    if is_int(v):
        return [v]
    if isinstance(v, list) and all(is_int(x) for x in v):
        return list(v)
    raise bad(name, "integer array")


def f_ts_array(p: Params, name: str) -> list[int] | None:
    v = p.get(name)
    if v is None:
        return None
    if is_int(v) and 0 <= v < 2**63:
        return [v]
    if isinstance(v, list) and all(is_int(x) and 0 <= x < 2**63 for x in v):
        return list(v)
    raise bad(name, "timestamp array")


def f_stringified(p: Params, name: str, unsigned: bool) -> int | None:
    """ttl / timestamp of ``store``: an integer or a decimal string."""
    v = p.get(name)
    if isinstance(v, str):
        if re.fullmatch(r"-?[0-9]+" if not unsigned else r"[0-9]+", v):
            n = int(v)
            if (0 if unsigned else -(2**63)) <= n < (2**64 if unsigned else 2**63):
                return n
        raise ParseError(f"Invalid value given for '{name}': {json.dumps(v)}")
    return f_uint(p, name) if unsigned else f_int(p, name)


def require(name: str, v: T | None) -> T:
    """``v``, or "Required field '<name>' missing"."""
    if v is None:
        raise ParseError(f"Required field '{name}' missing")
    return v


def exactly_one(first: str, a: T | None, second: str, b: T | None, alias: bool = False) -> T:
    """The one of ``a`` / ``b`` that is given (both or neither: Session's error)."""
    if a is not None and b is not None:
        raise ParseError(f"Cannot specify both '{first}' and '{second}'")
    if a is not None:
        return a
    if b is not None:
        return b
    raise ParseError(
        f"Required field '{first}' missing"
        if alias
        else f"Required field '{first}' or '{second}' missing"
    )


__all__ = [
    "ParseError",
    "exactly_one",
    "f_bool",
    "f_int",
    "f_int_array",
    "f_int_ns",
    "f_ns",
    "f_str",
    "f_str_array",
    "f_stringified",
    "f_ts",
    "f_ts_array",
    "f_uint",
    "require",
]
