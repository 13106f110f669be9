"""Canonical bencoding, as libsession's group and config formats need it.

Strings decode to ``bytes``, integers to ``int``, lists to ``list``, dicts to ``dict`` with
``bytes`` keys. Decoding is strict: dict keys must be ascending and unique, integers and
lengths canonical, nothing may follow the value — so ``encode(decode(b)) == b`` always holds,
which matters wherever a hash or signature covers the encoding. Encoding sorts dict keys
(``str`` keys and values are UTF-8 encoded; ``bool`` is an integer).
"""

from __future__ import annotations

import itertools
from typing import Any

from session.errors import DecodeError

__all__ = ["MAX_DEPTH", "decode", "decode_prefix", "encode"]

MAX_DEPTH = 64


def encode(value: Any) -> bytes:
    """The canonical bencoding of ``value`` (int, bytes, str, list/tuple, dict)."""
    out: list[bytes] = []
    _enc(value, out)
    return b"".join(out)


def _enc(v: Any, out: list[bytes]) -> None:
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        out.append(b"i%de" % v)
    elif isinstance(v, (bytes, bytearray, memoryview, str)):
        b = v.encode() if isinstance(v, str) else bytes(v)
        out.append(b"%d:" % len(b))
        out.append(b)
    elif isinstance(v, (list, tuple)):
        out.append(b"l")
        for x in v:
            _enc(x, out)
        out.append(b"e")
    elif isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else bytes(k), x) for k, x in v.items())
        for (a, _), (b, _) in itertools.pairwise(items):
            if a == b:
                raise ValueError(f"duplicate dict key {a!r} after encoding")
        out.append(b"d")
        for k, x in items:
            out.append(b"%d:" % len(k))
            out.append(k)
            _enc(x, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode a {type(v).__name__}")


def decode(data: bytes) -> Any:
    """The one canonical value filling ``data``; raises DecodeError otherwise."""
    v, end = decode_prefix(data)
    if end != len(data):
        raise DecodeError("bad bencoding: bytes follow the value")
    return v


def decode_prefix(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """The value starting at ``pos`` and the position after it; raises DecodeError."""
    try:
        return _dec(bytes(data), pos, 0)
    except (IndexError, ValueError) as e:
        raise DecodeError(f"bad bencoding: {e}") from None


def _int(text: bytes) -> int:
    digits = text[1:] if text.startswith(b"-") else text
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30) or text == b"-0":
        raise ValueError("an integer is not canonical")
    return int(text)


def _dec(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    c = data[pos]
    if c == 0x69:  # i
        end = data.index(b"e", pos)
        return _int(data[pos + 1 : end]), end + 1
    if c == 0x6C:  # l
        items = []
        pos += 1
        while data[pos] != 0x65:
            v, pos = _dec(data, pos, depth + 1)
            items.append(v)
        return items, pos + 1
    if c == 0x64:  # d
        d: dict[bytes, Any] = {}
        last: bytes | None = None
        pos += 1
        while data[pos] != 0x65:
            if not 0x30 <= data[pos] <= 0x39:
                raise ValueError("a dict key is not a string")
            k, pos = _str(data, pos)
            if last is not None and k <= last:
                raise ValueError("dict keys are not in ascending order")
            last = k
            d[k], pos = _dec(data, pos, depth + 1)
        return d, pos + 1
    if 0x30 <= c <= 0x39:
        return _str(data, pos)
    raise ValueError(f"unexpected byte {c:#x} at {pos}")


def _str(data: bytes, pos: int) -> tuple[bytes, int]:
    colon = data.index(b":", pos)
    n = data[pos:colon]
    if not n.isdigit() or (len(n) > 1 and n[0] == 0x30):
        raise ValueError("a string length is not canonical")
    end = colon + 1 + int(n)
    if end > len(data):
        raise ValueError("a string runs past the end")
    return data[colon + 1 : end], end
