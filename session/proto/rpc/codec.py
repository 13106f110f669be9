"""Encodings of the storage RPC: base64 (standard and URL-safe, padded or not), hex, z-base-32,
and strict JSON request bodies."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from session.errors import RpcStatusError
from session.proto.rpc.constants import MAX_JSON_DEPTH

B64_RE = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")
HEX_RE = re.compile(r"^[0-9a-fA-F]*$")
#: A ``\uD800``–``\uDFFF`` escape: the only way a JSON text can carry a UTF-16 surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def is_b64(s: str) -> bool:
    """Whether ``s`` is base64 as the storage server accepts it (either alphabet, optional
    padding)."""
    if not B64_RE.match(s):
        return False
    body = s.rstrip("=")
    if len(body) % 4 == 1:
        return False
    return len(s) % 4 == 0 if "=" in s else True


def b64decode(s: str) -> bytes:
    """Decode base64 accepted by :func:`is_b64`."""
    s = s.replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def b64(data: bytes) -> str:
    """Standard padded base64 (what the storage server emits)."""
    return base64.b64encode(data).decode()


_Z32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def base32z(data: bytes) -> str:
    """z-base-32 (oxenc ``to_base32z``): 5 bits per character, most significant first."""
    n = int.from_bytes(data, "big")
    bits = len(data) * 8
    out = []
    pad = -bits % 5
    n <<= pad
    bits += pad
    for shift in range(bits - 5, -1, -5):
        out.append(_Z32[(n >> shift) & 31])
    return "".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: One strict decoder for every body (``json.loads(text, parse_constant=...)`` would build a
#: new decoder per call: a third of the cost of decoding a small body).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _too_deep(doc: Any, limit: int) -> bool:
    """Whether ``doc`` nests objects/arrays more than ``limit`` deep (iterative: a deep
    document cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def parse_json(body: bytes | str) -> Any:
    """Strict JSON of a request body. Raises :class:`RpcStatusError` 400 for anything that is
    not UTF-8 JSON (no NaN/Infinity, integers of at most 4,300 digits), a string holding a lone
    UTF-16 surrogate (``"\\ud800"``: not text, so it could never be echoed back), or nesting
    deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        if isinstance(body, str):
            text = body
            body.encode("utf-8")  # a str may hold a raw lone surrogate
        else:
            text = bytes(body).decode("utf-8")
        doc = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise RpcStatusError(400, "invalid json") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _too_deep(doc, MAX_JSON_DEPTH):
        raise RpcStatusError(400, f"invalid json: nested more than {MAX_JSON_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise RpcStatusError(
                400, "invalid json: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)"
            ) from None
    return doc


__all__ = ["B64_RE", "HEX_RE", "b64", "b64decode", "base32z", "is_b64", "parse_json"]
