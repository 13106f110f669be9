"""The node's HTTP/1.1 server (session/http1/server.py) over raw sockets on 127.0.0.1: keep-alive,
pipelined requests answered in order, chunked bodies, ``Expect: 100-continue``, HEAD, 404/405,
HTTP/1.0, malformed requests (400, 414, 431, never a traceback), a failing handler (500, logged),
and a graceful close that lets a request in flight finish. The connection limits are tested for
both servers in test_limits.py; the node's routes in tests/node/test_http_site.py."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session.http1 import MAX_HEAD
from session.http1 import server as http1
from session.service.accept import Gate
from session.service.config import ConnectionLimits
from session.service.tls import client_ssl_context, server_ssl_context
from session.testing.waits import until

BOUND = 10.0  # how long a test waits for an outcome before failing


class App:
    """Routes that record what reached them; ``/slow`` waits for :attr:`release`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.hang_cancelled = asyncio.Event()
        self.seen: list[tuple[str, str, bytes]] = []
        self.pending: list[http1.Pending] = []
        self.ended: list[bytes] = []  # bodies of the Pending answers whose on_end ran

    async def echo(self, request: http1.Request) -> http1.Response:
        self.seen.append((request.method, request.path, request.body))
        return http1.Response(200, b"echo:" + request.body, headers={"X-Path": request.path})

    async def slow(self, request: http1.Request) -> http1.Response:
        self.seen.append((request.method, request.path, request.body))
        self.started.set()
        await self.release.wait()
        return http1.Response(200, b"slow done")

    async def broken(self, request: http1.Request) -> http1.Response:
        raise RuntimeError("a bug in a handler")

    async def broken_later(self, request: http1.Request) -> http1.Response:
        await asyncio.sleep(0)  # waits a loop turn: the rest runs in a task
        raise RuntimeError("a bug after waiting")

    async def turns(self, request: http1.Request) -> http1.Response:
        # bare loop turns, then a future from another task: each way a handler can wait
        for _ in range(3):
            await asyncio.sleep(0)
        value = await asyncio.ensure_future(asyncio.sleep(0, result=b"after turns"))
        try:  # a future that fails: its exception reaches the handler where it waits
            await self.failing()
        except LookupError as e:
            value += str(e).encode()
        return http1.Response(200, value)

    async def in_a_task(self, request: http1.Request) -> http1.Response:
        # what needs a current task (asyncio.timeout, TaskGroup) in the very first step, as
        # the node's name lookups use a timed registry request before any wait
        async with asyncio.timeout(5):
            assert asyncio.current_task() is not None
            await asyncio.sleep(0)
        return http1.Response(200, b"in a task")

    def failing(self) -> asyncio.Future[None]:
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_exception, LookupError(", caught"))
        return fut

    async def hang(self, request: http1.Request) -> http1.Response:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.hang_cancelled.set()
            raise
        raise AssertionError("unreachable: nothing sets the event")

    # -- synchronous handlers: an answer now, later (Pending), or the rest in a task ---------
    def now_echo(self, request: http1.Request) -> http1.Response:
        self.seen.append((request.method, request.path, request.body))
        return http1.Response(200, b"now:" + request.body)

    def now_or_rest(self, request: http1.Request) -> http1.Response | Coroutine[Any, Any, Any]:
        self.seen.append((request.method, request.path, request.body))
        if request.body != b"wait":
            return http1.Response(200, b"now")
        return self.in_a_task(request)  # the rest needs a task (asyncio.timeout): it has one

    def later(self, request: http1.Request) -> http1.Pending:
        self.seen.append((request.method, request.path, request.body))
        pending = http1.Pending(on_end=lambda: self.ended.append(request.body))
        self.pending.append(pending)
        self.started.set()
        return pending

    def now_broken(self, request: http1.Request) -> http1.Response:
        raise RuntimeError("a bug in a synchronous handler")

    def later_broken(self, request: http1.Request) -> http1.Pending:
        pending = http1.Pending()

        def make() -> http1.Response:
            raise RuntimeError("a bug in a callback answering later")

        # the callback answers through Pending.answer_with, whose guard turns the bug into 500
        asyncio.get_running_loop().call_soon(pending.answer_with, make)
        return pending

    def answered_before_returned(self, request: http1.Request) -> http1.Pending:
        pending = http1.Pending(on_end=lambda: self.ended.append(request.body))
        pending.answer(http1.Response(201, b"already"))
        return pending

    def routes(self) -> http1.Routes:
        return {
            "/now": {"POST": self.now_echo},
            "/now-or-rest": {"POST": self.now_or_rest},
            "/later": {"POST": self.later},
            "/now-broken": {"GET": self.now_broken},
            "/later-broken": {"GET": self.later_broken},
            "/already": {"GET": self.answered_before_returned},
            "/echo": {"POST": self.echo, "GET": self.echo},
            "/slow": {"GET": self.slow},
            "/broken": {"GET": self.broken},
            "/broken-later": {"GET": self.broken_later},
            "/turns": {"GET": self.turns},
            "/hang": {"GET": self.hang},
            "/in-a-task": {"GET": self.in_a_task},
        }


@pytest.fixture
async def app() -> AsyncIterator[tuple[App, http1.Served]]:
    a = App()
    served = await http1.serve(a.routes(), "127.0.0.1", 0, max_body=1000, shutdown_timeout=5.0)
    yield a, served
    a.release.set()
    await served.close()


async def read_response(
    reader: asyncio.StreamReader, head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names), body (by Content-Length; none for the
    answer to a ``head`` request)."""
    async with asyncio.timeout(BOUND):
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b"" if head else await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(BOUND):
        try:
            return await reader.read() == b""
        except ConnectionResetError:
            return True


async def answer_to_endless_line(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, dict[str, str], bytes]:
    """Send a line that never ends (at most 12.5 MiB, in 64 KiB writes) until the server
    answers; return its answer."""
    answer = asyncio.ensure_future(read_response(reader))
    try:
        for _ in range(200):
            if answer.done():
                break
            writer.write(b"a" * 65536)
            await writer.drain()
            await asyncio.sleep(0)
    except ConnectionError:
        pass  # the server closed after its answer
    return await answer


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    app: tuple[App, http1.Served],
) -> None:
    a, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    # the first request is slow: the two pipelined behind it wait and are answered after it
    writer.write(
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\ntwo\r\n4\r\n-and\r\n0\r\n\r\n"
    )
    async with asyncio.timeout(BOUND):
        await a.started.wait()
    assert a.seen == [("GET", "/slow", b"")]  # one handler at a time
    a.release.set()
    assert (await read_response(reader))[::2] == (200, b"slow done")
    assert (await read_response(reader))[::2] == (200, b"echo:one")
    status, headers, body = await read_response(reader)
    assert (status, body, headers["x-path"]) == (200, b"echo:two-and", "/echo")
    assert "connection" not in headers  # still open: one more request on it
    writer.write(b"GET /echo?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[::2] == (200, b"echo:")
    writer.close()
    async with asyncio.timeout(BOUND):
        while served.stats.open:
            await asyncio.sleep(0.01)


async def test_many_pipelined_requests_in_one_write(app: tuple[App, http1.Served]) -> None:
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    n = 50  # more than MAX_PIPELINED: reading pauses and resumes
    writer.write(
        b"".join(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%d" % (len(b"%d" % i), i)
            for i in range(n)
        )
    )
    bodies = [(await read_response(reader))[2] for _ in range(n)]
    assert bodies == [b"echo:%d" % i for i in range(n)]
    writer.close()


async def test_routes_head_http10_and_expect_continue(app: tuple[App, http1.Served]) -> None:
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[0] == 404
    writer.write(b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert status == 405 and headers["allow"] == "POST, GET"
    writer.write(b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = await read_response(reader, head=True)
    assert status == 200 and headers["content-length"] == "5"  # the GET's, without its body
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    async with asyncio.timeout(BOUND):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ok")
    assert (await read_response(reader))[::2] == (200, b"echo:ok")
    # HTTP/1.0 without keep-alive: answered, then closed
    writer.write(b"GET /echo HTTP/1.0\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await closed(reader)
    writer.close()


async def test_a_half_closed_connection_gets_its_answers_then_the_close(
    app: tuple[App, http1.Served],
) -> None:
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
    writer.write_eof()  # keep-alive requests, then nothing more: answered, then closed
    assert (await read_response(reader))[::2] == (200, b"echo:")
    assert (await read_response(reader))[::2] == (200, b"echo:")
    assert await closed(reader)
    writer.close()


async def test_an_upgrade_is_answered_as_a_plain_request_then_closed(
    app: tuple[App, http1.Served],
) -> None:
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        b"GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"
    )
    assert (await read_response(reader))[::2] == (200, b"echo:")
    assert await closed(reader)
    writer.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: x1\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + b"a" * 1001, 413),
    ],
)
async def test_bad_requests_get_one_answer_and_a_close(
    app: tuple[App, http1.Served], caplog: pytest.LogCaptureFixture, raw: bytes, status: int
) -> None:
    a, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(raw)
    got, headers, body = await read_response(reader)
    assert (got, headers["connection"]) == (status, "close")
    assert body and b"\n" not in body.rstrip(b"\n")  # one sentence
    assert await closed(reader)
    writer.close()
    assert a.seen == []
    async with asyncio.timeout(BOUND):
        while served.stats.open or served.inflight_body_bytes:
            await asyncio.sleep(0.01)
    no_tracebacks(caplog)


async def test_a_bad_request_behind_good_ones_is_answered_after_them(
    app: tuple[App, http1.Served],
) -> None:
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n")
    assert (await read_response(reader))[::2] == (200, b"echo:")
    assert (await read_response(reader))[0] == 400
    assert await closed(reader)
    writer.close()


@pytest.mark.parametrize(
    ("path", "bug"),
    [
        ("/broken", "a bug in a handler"),
        ("/broken-later", "a bug after waiting"),
        ("/now-broken", "a bug in a synchronous handler"),
        ("/later-broken", "a bug in a callback answering later"),
    ],
)
async def test_a_failing_handler_is_a_logged_500(
    app: tuple[App, http1.Served], caplog: pytest.LogCaptureFixture, path: str, bug: str
) -> None:
    # at once (in the handler's first step) or after it waited (in the task it went on in)
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (500, "close")
    assert any(r.exc_info and bug in str(r.exc_info[1]) for r in caplog.records)
    writer.close()


async def test_a_handler_runs_in_a_task_from_its_first_step(
    app: tuple[App, http1.Served],
) -> None:
    """asyncio.timeout and TaskGroup need a current task: a handler has one from its first
    step (a first step run outside any task made them raise: a 500)."""
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /in-a-task HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = await read_response(reader)
    assert (status, body) == (200, b"in a task")
    writer.close()


async def test_handlers_that_answer_at_once_or_wait_are_answered_in_order(
    app: tuple[App, http1.Served],
) -> None:
    # a handler's first step runs as the request is parsed; one that waits goes on in a task,
    # and the requests behind it wait for its answer
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
        b"GET /turns HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb"
        b"GET /turns HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    answers = [(await read_response(reader))[::2] for _ in range(4)]
    assert answers == [
        (200, b"echo:a"),
        (200, b"after turns, caught"),
        (200, b"echo:b"),
        (200, b"after turns, caught"),
    ]
    writer.close()


async def test_a_waiting_handler_is_cancelled_when_its_peer_goes(
    app: tuple[App, http1.Served], caplog: pytest.LogCaptureFixture
) -> None:
    a, served = app
    _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(BOUND):
        await a.started.wait()
    # a reset, not a half-close (after which the server would still answer)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    async with asyncio.timeout(BOUND):
        await a.hang_cancelled.wait()
        while served.stats.open:
            await asyncio.sleep(0.01)
    no_tracebacks(caplog)


async def test_synchronous_handlers_answer_now_later_or_in_a_task_in_order(
    app: tuple[App, http1.Served],
) -> None:
    """A synchronous handler's answer now, a Pending answered from a callback and the rest of
    one run in a task (with a current task: asyncio.timeout) come back in the requests' order
    on a pipelined connection; the request behind a Pending waits for it."""
    a, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        b"POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
        b"POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb"
        b"POST /now-or-rest HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwait"
        b"POST /now-or-rest HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nc"
        b"GET /already HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert (await read_response(reader))[::2] == (200, b"now:a")
    async with asyncio.timeout(BOUND):
        await a.started.wait()
    await asyncio.sleep(0)  # a loop turn: nothing behind the Pending has started
    assert [path for _, path, _ in a.seen] == ["/now", "/later"]
    assert served.inflight_body_bytes > 0  # the Pending's body is still reserved
    a.pending[0].answer(http1.Response(202, b"later:b", headers={"X-Later": "1"}))
    status, headers, body = await read_response(reader)
    assert (status, body, headers["x-later"]) == (202, b"later:b", "1")
    assert a.ended == [b"b"]
    assert (await read_response(reader))[::2] == (200, b"in a task")
    assert (await read_response(reader))[::2] == (200, b"now")
    assert (await read_response(reader))[::2] == (201, b"already")
    assert a.ended == [b"b", b""]
    a.pending[0].answer(http1.Response(200, b"twice"))  # a second answer is dropped
    writer.write(b"POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nd")
    assert (await read_response(reader))[::2] == (200, b"now:d")
    assert served.inflight_body_bytes == 0
    writer.close()


async def test_a_pending_answer_is_cancelled_when_its_peer_goes(
    app: tuple[App, http1.Served], caplog: pytest.LogCaptureFixture
) -> None:
    """As a waiting handler's task is cancelled: the Pending's on_end runs at once, its body
    reservation is given back, and the answer that comes later is dropped."""
    a, served = app
    _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        b"POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
        b"POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\ny"
    )
    async with asyncio.timeout(BOUND):
        await a.started.wait()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    async with asyncio.timeout(BOUND):
        while served.stats.open:
            await asyncio.sleep(0.01)
    assert a.ended == [b"x"] and a.pending[0].done
    assert served.inflight_body_bytes == 0
    a.pending[0].answer(http1.Response(200, b"too late"))  # dropped: nothing to write to
    assert [path for _, path, _ in a.seen] == ["/later"]  # the one behind it never ran
    no_tracebacks(caplog)


@pytest.mark.parametrize("pending", [False, True])
async def test_close_lets_the_request_in_flight_finish(pending: bool) -> None:
    """In its task, or a Pending answered later from a callback."""
    a = App()
    served = await http1.serve(a.routes(), "127.0.0.1", 0, shutdown_timeout=BOUND)
    busy_reader, busy = await asyncio.open_connection("127.0.0.1", served.port)
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", served.port)
    if pending:
        busy.write(b"POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz")
    else:
        busy.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(BOUND):
        await a.started.wait()
        while served.stats.open < 2:
            await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(served.close())
    assert await closed(idle_reader)  # an idle connection is closed at once
    with pytest.raises(OSError):  # and nothing new is accepted
        await asyncio.open_connection("127.0.0.1", served.port)
    assert not closing.done()
    # the request in flight finishes and is answered, then its connection ends
    if pending:
        a.pending[0].answer(http1.Response(200, b"slow done"))
    else:
        a.release.set()
    status, headers, body = await read_response(busy_reader)
    assert (status, body, headers["connection"]) == (200, b"slow done", "close")
    async with asyncio.timeout(BOUND):
        await closing
    assert served.stats.open == 0
    busy.close()
    idle.close()


async def test_keep_alive_over_tls(tmp_path: Path) -> None:
    a = App()
    served = await http1.serve(a.routes(), "127.0.0.1", 0, ssl_context=server_ssl_context(tmp_path))
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", served.port, ssl=client_ssl_context(), server_hostname="localhost"
        )
        for i in range(3):
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % i)
            assert (await read_response(reader))[::2] == (200, b"echo:%d" % i)
        writer.close()
        try:
            await writer.wait_closed()
        except (ssl.SSLError, ConnectionResetError):
            pass
    finally:
        await served.close()


_STARTS = st.sampled_from(
    [b"", b"GET / HTTP/1.1\r\n", b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n", b"GET /echo"]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(start=_STARTS, junk=st.binary(max_size=300))
def test_any_bytes_get_an_answer_or_a_close_never_a_500(
    caplog: pytest.LogCaptureFixture, start: bytes, junk: bytes
) -> None:
    caplog.clear()

    async def run() -> None:
        a = App()
        limits = ConnectionLimits(header_timeout=1.0, body_timeout=1.0)
        served = await http1.serve(a.routes(), "127.0.0.1", 0, limits=limits, max_body=1000)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(start + junk)
            writer.write_eof()
            async with asyncio.timeout(BOUND):
                out = await reader.read()
            for status in out.split(b"HTTP/1.1 ")[1:]:
                assert not status.startswith(b"5"), out[:300]
            writer.close()
        finally:
            await served.close()

    asyncio.run(run())
    no_tracebacks(caplog)


async def test_a_header_sent_in_many_reads_is_cut_at_the_head_limit(
    app: tuple[App, http1.Served],
) -> None:
    """httptools keeps a header value whole until its line ends: a value that never ends is
    refused once the head passes its limit, not buffered until the header timeout."""
    a, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    await writer.drain()
    status, headers, _ = await answer_to_endless_line(reader, writer)
    assert (status, headers["connection"]) == (431, "close")
    writer.close()
    assert a.seen == []


async def test_a_peer_that_pipelines_and_never_reads_is_closed_when_idle() -> None:
    """Requests queued behind answers the peer does not read do not keep its connection (and
    their body reservations) forever: it is closed after the idle timeout."""
    big = b"x" * (16 * 1024 * 1024)

    async def large(request: http1.Request) -> http1.Response:
        return http1.Response(200, big)

    limits = ConnectionLimits(idle_timeout=0.5)
    served = await http1.serve({"/big": {"POST": large}}, "127.0.0.1", 0, limits=limits)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", served.port))
        _reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na" * 4)
        await writer.drain()
        async with asyncio.timeout(BOUND):
            while served.stats.open or served.inflight_body_bytes:
                await asyncio.sleep(0.05)
        writer.close()
    finally:
        await served.close()


async def test_thousands_of_requests_in_one_read_are_parsed_as_the_queue_drains(
    app: tuple[App, http1.Served],
) -> None:
    """A read full of small pipelined requests is not parsed into thousands of queued requests
    at once: parsing stops near MAX_PIPELINED and resumes as answers go out, in order."""
    a, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    n = 2000
    writer.write(b"GET /slow HTTP/1.1\r\n\r\n" + b"GET /echo HTTP/1.1\r\n\r\n" * n)
    async with asyncio.timeout(BOUND):
        await a.started.wait()
    (conn,) = served._site.gate.connections  # what this bounds is not visible on the wire
    assert isinstance(conn, http1._Connection)
    assert len(conn._queue) < 300  # MAX_PIPELINED + one 4 KiB piece of 22-byte requests
    a.release.set()
    assert (await read_response(reader))[::2] == (200, b"slow done")
    for _ in range(n):
        assert (await read_response(reader))[::2] == (200, b"echo:")
    writer.close()


@pytest.mark.parametrize(
    ("trailers", "status"),
    [
        (b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 1000) for i in range(60)) + b"\r\n", 200),
        (b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 1000) for i in range(70)) + b"\r\n", 431),
        (b"X-T: " + b"t" * 72 * 1024, 431),  # a line not ended yet, held by the parser
    ],
)
async def test_trailers_are_capped_as_a_head_is(
    app: tuple[App, http1.Served], trailers: bytes, status: int
) -> None:
    """A chunked body's trailers may take up to MAX_HEAD (64 KiB, the client's cap on an
    answer's trailers too), ended lines or not."""
    assert MAX_HEAD == 64 * 1024
    _, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"1\r\nz\r\n0\r\n" + trailers
    )
    assert (await read_response(reader))[0] == status
    writer.close()


async def test_a_trailer_that_never_ends_is_cut_at_the_head_limit(
    app: tuple[App, http1.Served],
) -> None:
    """The trailers of a chunked body are headers too: one that never ends is refused once
    past the head limit, not buffered until the body timeout."""
    a, served = app
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\nX-T: ")
    await writer.drain()
    status, headers, _ = await answer_to_endless_line(reader, writer)
    assert (status, headers["connection"]) == (431, "close")
    writer.close()
    assert a.seen == []
    async with asyncio.timeout(BOUND):
        while served.stats.open or served.inflight_body_bytes:
            await asyncio.sleep(0.01)


class _Transport:
    """What the server needs of a transport, in memory: what it wrote, and closing."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.written.append(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def test_a_task_cancelled_before_its_first_step_is_cancelled_where_its_rest_waits(
    recwarn: pytest.WarningsRecorder,
) -> None:
    """The peer is gone before the task of a synchronous handler's rest took its first step
    (read and reset in one loop iteration): the rest still starts and is cancelled where it
    waits, so its ``finally`` blocks run (the site's in-flight count) and no coroutine it holds
    is left never awaited."""
    ran: list[str] = []

    async def inner() -> http1.Response:
        try:
            await asyncio.Event().wait()
        finally:
            ran.append("inner")
        raise AssertionError("unreachable")

    async def outer(rest: Coroutine[Any, Any, http1.Response]) -> http1.Response:
        try:
            return await rest
        finally:
            ran.append("outer")

    def handler(request: http1.Request) -> Coroutine[Any, Any, http1.Response]:
        return outer(inner())

    site = http1._Site({"/x": {"GET": handler}}, Gate(ConnectionLimits(), 1000, None))
    conn = http1._Connection(site, "127.0.0.1")
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]  # an in-memory stand-in
    conn.data_received(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.connection_lost(ConnectionResetError())
    await until(lambda: len(ran) == 2, "the rest's finally blocks")
    assert ran == ["inner", "outer"]
    assert transport.written == []
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
