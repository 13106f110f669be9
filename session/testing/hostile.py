"""Hostile JSON request bodies for "never a 500, always an answer within a second" property
tests of any HTTP service (node, registry, and the file and community servers to come).

:func:`hostile_bodies` is a hypothesis strategy of request bodies (bytes): valid JSON of nested
objects and arrays, strings with lone UTF-16 surrogates (``"\\ud800"``), integers thousands of
digits long, nesting hundreds of levels deep, truncated JSON, and raw bytes; given a service's
method or field names it also builds bodies shaped like real requests (``{"method": ...,
"params": {...}}``) so the generated values reach the service's own parsing. :func:`probe`
sends one body and returns the status and how long the answer took.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from hypothesis import strategies as st

#: A request that takes longer than this to be answered counts as hanging: half the shortest
#: server timeout (``header_timeout``, 10 s), so an answer that waited out any timeout is
#: caught, while a loaded machine's scheduling noise (seconds on 2 busy cores) is not.
ANSWER_WITHIN = 5.0


@dataclasses.dataclass(frozen=True)
class _Raw:
    """A JSON fragment written as is (a huge integer, a deep nest: values Python's own JSON
    encoder refuses or cannot build)."""

    text: str


_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
_TEXT = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(st.characters(), _SURROGATES), max_size=6).map("".join),
    st.sampled_from(["", "all", "\u0000", "A" * 43, "05" + "ab" * 32, "\u202e", "0" * 66]),
)
_HUGE_INT = st.integers(300, 6000).map(lambda n: _Raw(("-" if n % 2 else "") + "9" * n))
_DEEP = st.tuples(st.integers(50, 3000), st.booleans()).map(
    lambda d: _Raw("[" * d[0] + "]" * d[0] if d[1] else '{"a":' * d[0] + "0" + "}" * d[0])
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
    _HUGE_INT,
)


def _values(keys: Sequence[str]) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(list(keys)), _TEXT) if keys else _TEXT
    return st.recursive(
        st.one_of(_SCALARS, _DEEP),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=5)
        ),
        max_leaves=12,
    )


def dumps(value: Any) -> str:
    """JSON text of ``value`` (``_Raw`` fragments written as is; surrogates as ``\\udxxx``)."""
    if isinstance(value, _Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def hostile_bodies(
    methods: Sequence[str] = (), keys: Sequence[str] = ()
) -> st.SearchStrategy[bytes]:
    """Request bodies: arbitrary JSON values, ``{"method", "params"}`` envelopes naming one of
    ``methods`` (or a hostile string) with params keyed by ``keys``, the same nested inside
    ``ifelse``/``batch``-like wrappers, truncated JSON and raw bytes."""
    values = _values(keys)
    method = st.one_of(st.sampled_from(list(methods)), _TEXT) if methods else _TEXT
    params = st.dictionaries(st.sampled_from(list(keys)) if keys else _TEXT, values, max_size=6)
    envelope = st.builds(lambda m, p: {"method": m, "params": p}, method, params)
    nested = st.recursive(
        envelope,
        lambda inner: st.one_of(
            st.builds(
                lambda r: {"method": "ifelse", "params": {"if": {"hf_at_least": [1]}, "then": r}},
                inner,
            ),
            st.builds(
                lambda rs: {"method": "batch", "params": {"requests": rs}},
                st.lists(inner, max_size=3),
            ),
        ),
        max_leaves=6,
    )
    text = st.one_of(values, envelope, nested).map(dumps)
    return st.one_of(
        text.map(lambda s: s.encode("utf-8", "surrogatepass")),
        text.map(lambda s: s[: len(s) // 2].encode("utf-8", "surrogatepass")),
        st.binary(max_size=200),
        st.integers(1, 400).map(_ifelse_chain),
    )


def _ifelse_chain(depth: int) -> bytes:
    """``ifelse`` nested ``depth`` levels deep around ``info`` (written as text: too deep for
    a recursive encoder)."""
    head = '{"method":"ifelse","params":{"if":{"hf_at_least":[1]},"then":'
    return (head * depth + '{"method":"info","params":{}}' + "}}" * depth).encode()


#: ``Content-Encoding`` headers to send with a body (None: no header); the bodies are never
#: compressed, so a service that believes the header must refuse them with a 4xx.
CONTENT_ENCODINGS = st.sampled_from([None, None, None, "gzip", "deflate", "br", "identity", "x"])


async def probe(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: bytes,
    content_encoding: str | None = None,
) -> tuple[int, float]:
    """Send ``body`` with ``method`` to ``url`` (with a ``Content-Encoding`` header when
    given); returns (status, seconds until the whole answer arrived)."""
    headers = {} if content_encoding is None else {"Content-Encoding": content_encoding}
    t0 = time.perf_counter()
    async with http.request(method, url, data=body, headers=headers) as r:
        await r.read()
        return r.status, time.perf_counter() - t0


__all__ = ["ANSWER_WITHIN", "CONTENT_ENCODINGS", "dumps", "hostile_bodies", "probe"]
