"""Logs of a real service site under malformed requests: aiohttp's parser errors (which quote the
raw request bytes) reach the log as one redacted line without a traceback, and a flood of bad
requests writes a bounded number of lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from aiohttp import web

from session.service.logs import ID_MASK, IP_MASK, RateLimitFilter, redact, setup_logging
from session.service.server import serve

SID = "05" + "ab12" * 16
IP = "203.0.113.9"

MALFORMED = [
    b"GET / HTTP/1.1\r\nX-" + SID.encode() + b" " + IP.encode() + b"\r\n\r\n",  # bad header
    b"GET /" + SID.encode() + b"\x01" + IP.encode() + b" HTTP/1.1\r\n\r\n",  # bad path
    b"POST / HTTP/1.1\r\nContent-Length: x" + SID.encode() + b"\r\n\r\n",  # bad length
    b"GET / HTTP/1.1\r\nHost: x"
    + IP.encode()
    + b"\r\nTransfer-Encoding: "
    + SID.encode()
    + b"\r\n\r\n",
]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    setup_logging("info", "json", stream=stream)
    yield stream
    for h in list(root.handlers):
        if getattr(h, "_session_handler", False):
            root.removeHandler(h)
    root.setLevel(old_level)


async def send_raw(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    async with asyncio.timeout(10):
        out = await reader.read()
    writer.close()
    return out


@pytest.mark.parametrize(
    "text",
    [
        f"b'Content-Length: x{SID}'",  # a letter right before the ID
        f"b'X-{SID}\\r\\nHost'",
        f"Host: x{IP}\\r\\n",
        f"\\n{SID.upper()}z",
    ],
)
def test_ids_and_addresses_next_to_letters_are_masked(text: str) -> None:
    out = redact(text)
    assert SID not in out and SID.upper() not in out and IP not in out
    assert ID_MASK in out or IP_MASK in out


async def test_parser_errors_are_one_redacted_line(log_stream: io.StringIO) -> None:
    served = await serve(web.Application(), "127.0.0.1", 0)
    try:
        for raw in MALFORMED:
            assert (await send_raw(served.port, raw)).split(b" ", 2)[1] == b"400"
    finally:
        await served.close()
    text = log_stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    bad = [d for d in lines if d["logger"] == "aiohttp.server"]
    assert len(bad) == len(MALFORMED)
    for d in bad:
        assert d["msg"].startswith("Error handling request from")
        assert "exc" not in d and d["level"] == "info"
    assert SID not in text and SID[2:] not in text and IP not in text
    assert "Traceback" not in text and "ab12ab12" not in text


async def test_ten_thousand_bad_requests_write_a_bounded_log(log_stream: io.StringIO) -> None:
    served = await serve(web.Application(), "127.0.0.1", 0)
    sent = 0

    async def worker(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            await send_raw(served.port, MALFORMED[0])
            sent += 1

    t0 = time.monotonic()
    try:
        await asyncio.gather(*(worker(500) for _ in range(20)))
    finally:
        await served.close()
    elapsed = time.monotonic() - t0
    assert sent == 10_000
    lines = log_stream.getvalue().splitlines()
    limiter = RateLimitFilter()
    # a burst, then a trickle for as long as the flood lasted
    assert len(lines) <= limiter.burst + elapsed * limiter.per_second + 1
    assert "similar messages dropped" in lines[-1] or len(lines) <= limiter.burst


def test_rate_limit_per_kind_and_refill() -> None:
    now = [0.0]
    f = RateLimitFilter(burst=3, per_second=1.0, clock=lambda: now[0])

    def rec(msg: str, name: str = "x") -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, "f", 1, msg, ("arg",), None)

    assert [f.filter(rec("bad %s")) for _ in range(5)] == [True, True, True, False, False]
    assert f.filter(rec("other %s"))  # another kind has its own budget
    assert f.filter(rec("bad %s", name="y"))
    now[0] = 1.0
    r = rec("bad %s")
    assert f.filter(r) and r.getMessage() == "bad arg (2 similar messages dropped)"
    assert not f.filter(rec("bad %s"))
