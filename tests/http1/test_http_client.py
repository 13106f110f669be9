"""The small HTTP/1.1 client (:mod:`session.http1.client`) against scripted servers on
127.0.0.1: what it sends, keep-alive reuse, Content-Length, chunked and close-delimited answers,
timeouts, refused connections, answers cut short, oversize answers, the per-host cap and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop

from session.errors import (
    HttpConnectError,
    HttpProtocolError,
    HttpResponseTooLarge,
    HttpTimeout,
    InvalidInput,
    NetworkError,
)
from session.http1.client import HttpClient
from session.service.tls import client_ssl_context, server_ssl_context
from session.testing.waits import until


@dataclass
class Request:
    """One request as the server read it."""

    conn: int  # which connection (0, 1, ...) it came on
    head: bytes
    body: bytes

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


#: What the server does with a request: bytes to write, or None to close without answering.
Answer = Callable[[Request], Awaitable[bytes | None]]


@dataclass
class Server:
    """A server on 127.0.0.1 that reads requests and answers each with ``answer``."""

    answer: Answer
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    active: int = 0
    most_active: int = 0
    closed_by_client: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client += 1
                    return
                req = Request(conn, head, b"")
                length = req.header(b"content-length")
                if length:
                    req.body = await reader.readexactly(int(length))
                self.requests.append(req)
                out = await self.answer(req)
                if out is None:
                    return
                writer.write(out)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.active -= 1
            writer.close()


@contextlib.asynccontextmanager
async def servers() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Starts scripted servers (plain, or TLS with a certificate under a directory); stops
    them on exit."""
    started: list[asyncio.Server] = []

    async def start(answer: Answer, tls: Path | None = None) -> Server:
        s = Server(answer)
        ctx = server_ssl_context(tls) if tls is not None else None
        srv = await asyncio.start_server(s.handle, "127.0.0.1", 0, ssl=ctx)
        started.append(srv)
        port = srv.sockets[0].getsockname()[1]
        s.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        return s

    try:
        yield start
    finally:
        for srv in started:
            srv.close()
            await srv.wait_closed()


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A server on 127.0.0.1 whose connections ``handler`` serves byte by byte; yields its
    port."""
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    async with servers() as start:
        yield start


def reply(body: bytes, status: str = "200 OK", extra: bytes = b"") -> Answer:
    async def answer(req: Request) -> bytes:
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode()
        return head + extra + b"\r\n" + body

    return answer


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def test_sends_the_request_and_reads_a_content_length_answer(serve: Callable) -> None:
    s = await serve(reply(b"hello", "201 Created", b"X-Thing: a\r\nX-Thing: b\r\n"))
    async with HttpClient(user_agent="test-agent") as http:
        r = await http.request(
            "POST", f"{s.url}/onion_req/v2?x=1", body=b"payload", headers={"X-Oxen": "1"}
        )
    assert (r.status, r.body) == (201, b"hello")
    assert r.headers["x-thing"] == "a, b" and r.headers["content-length"] == "5"
    [req] = s.requests
    assert req.line == b"POST /onion_req/v2?x=1 HTTP/1.1"
    assert req.header(b"host") == s.url.removeprefix("http://").encode()
    assert req.header(b"user-agent") == b"test-agent" and req.header(b"x-oxen") == b"1"
    assert req.header(b"content-length") == b"7" and req.body == b"payload"


async def test_keep_alive_reuses_one_connection(serve: Callable) -> None:
    s = await serve(reply(b"ok"))
    async with HttpClient() as http:
        for _ in range(3):
            assert (await http.request("POST", s.url + "/", body=b"x")).body == b"ok"
        assert http.open_connections() == 1
    assert s.connections == 1 and [r.conn for r in s.requests] == [0, 0, 0]


async def test_a_connection_the_server_closes_is_not_reused(serve: Callable) -> None:
    s = await serve(reply(b"ok", extra=b"Connection: close\r\n"))
    async with HttpClient() as http:
        for _ in range(2):
            assert (await http.request("GET", s.url)).body == b"ok"
        assert http.open_connections() == 0
    assert s.connections == 2


async def test_keepalive_off_closes_after_each_answer(serve: Callable) -> None:
    s = await serve(reply(b"ok"))
    async with HttpClient(keepalive=False) as http:
        for _ in range(2):
            await http.request("GET", s.url)
    assert s.connections == 2 and s.requests[0].header(b"connection") == b"close"


async def test_chunked_answer(serve: Callable) -> None:
    async def chunked(req: Request) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
        )

    s = await serve(chunked)
    async with HttpClient() as http:
        r1 = await http.request("GET", s.url)
        r2 = await http.request("GET", s.url)
    assert r1.body == r2.body == b"hello world" and s.connections == 1


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
async def test_an_answer_delimited_by_closing_the_connection(version: bytes) -> None:
    async def writer_closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(version + b" 200 OK\r\nX: y\r\n\r\nall ")
        await writer.drain()
        writer.write(b"of it")
        await writer.drain()
        writer.close()

    async with raw_server(writer_closes) as port:
        async with HttpClient() as http:
            r = await http.request("GET", f"http://127.0.0.1:{port}/")
            assert (r.status, r.body) == (200, b"all of it")
            assert http.open_connections() == 0


async def test_a_silent_server_times_out_and_its_connection_is_dropped(serve: Callable) -> None:
    release = asyncio.Event()

    async def slow_first(req: Request) -> bytes:
        if len(s.requests) == 1:
            await release.wait()
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    s = await serve(slow_first)
    async with HttpClient() as http:
        with pytest.raises(HttpTimeout, match=r"did not answer within 0\.2 s") as e:
            await http.request("GET", s.url, timeout=0.2)
        assert isinstance(e.value, TimeoutError) and isinstance(e.value, NetworkError)
        release.set()
        assert (await http.request("GET", s.url)).body == b"ok"
    assert s.connections == 2  # the timed-out connection was not reused


async def test_nothing_listening_is_a_connect_error() -> None:
    async with HttpClient() as http:
        with pytest.raises(HttpConnectError, match="cannot connect") as e:
            await http.request("GET", f"http://127.0.0.1:{free_port()}/")
    assert isinstance(e.value.os_error, ConnectionRefusedError)


@pytest.mark.parametrize(
    ("written", "match"),
    [
        (b"", "closed the connection before answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "mid-answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "mid-answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Len", "mid-answer"),
        (b"SMTP ready\r\n\r\n", "malformed HTTP answer"),
    ],
    ids=["nothing", "content-length", "chunked", "head", "not-http"],
)
async def test_an_answer_cut_short_is_a_protocol_error(
    serve: Callable, written: bytes, match: str
) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(written)
        await writer.drain()
        writer.close()

    async with raw_server(cut) as port:
        async with HttpClient() as http:
            with pytest.raises(HttpProtocolError, match=match):
                await http.request("POST", f"http://127.0.0.1:{port}/", body=b"x")
            assert http.open_connections() == 0


async def test_an_answer_over_the_cap_is_refused(serve: Callable) -> None:
    big = b"x" * 5000

    async def answer(req: Request) -> bytes:
        if req.line.startswith(b"GET /chunked"):
            chunks = b"".join(b"3e8\r\n" + b"y" * 1000 + b"\r\n" for _ in range(5))
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        return f"HTTP/1.1 200 OK\r\nContent-Length: {len(big)}\r\n\r\n".encode() + big

    s = await serve(answer)
    async with HttpClient(max_size=4096) as http:
        with pytest.raises(HttpResponseTooLarge, match="more than 4096 bytes") as e:
            await http.request("GET", s.url + "/length")
        assert e.value.limit == 4096
        with pytest.raises(HttpResponseTooLarge, match="more than 100 bytes"):
            await http.request("GET", s.url + "/length", max_size=100)
        with pytest.raises(HttpResponseTooLarge):
            await http.request("GET", s.url + "/chunked")
        r = await http.request("GET", s.url + "/length", max_size=5000)  # exactly the cap
        assert r.body == big
        r = await http.request("GET", s.url + "/chunked", max_size=5000)
        assert r.body == b"y" * 5000
    assert s.connections == 4  # each refused answer's connection was closed


@pytest.mark.parametrize(
    ("start", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nX: ", "response head over"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\nX: ", "trailers"),
    ],
)
async def test_a_huge_response_head_or_trailer_is_refused(start: bytes, error: str) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(start)
        for _ in range(100):  # bounded: 1.6 MB of one header value, never ended
            writer.write(b"a" * 16384)
            try:
                await writer.drain()
            except ConnectionError:
                return
        writer.close()

    async with raw_server(endless) as port:
        async with HttpClient() as http:
            with pytest.raises(HttpProtocolError, match=error):
                await http.request("GET", f"http://127.0.0.1:{port}/")


async def test_the_per_host_cap_holds_concurrent_requests(serve: Callable) -> None:
    s = await serve(reply(b"ok"))
    async with HttpClient(per_host=2) as http:
        rs = await asyncio.gather(*(http.request("GET", s.url) for _ in range(6)))
    assert [r.body for r in rs] == [b"ok"] * 6
    assert s.connections == 2 and s.most_active == 2


async def test_without_a_cap_concurrent_requests_use_their_own_connections(
    serve: Callable,
) -> None:
    """The reference for the test above: six at once do open six connections."""
    s = await serve(reply(b"ok"))
    async with HttpClient(per_host=6) as http:
        await asyncio.gather(*(http.request("GET", s.url) for _ in range(6)))
    assert s.connections == 6


async def test_tls_with_the_callers_context(serve: Callable, tmp_path: Path) -> None:
    s = await serve(reply(b"secret"), tls=tmp_path)
    async with HttpClient(ssl_context=client_ssl_context()) as http:
        for _ in range(2):
            assert (await http.request("POST", s.url + "/x", body=b"y")).body == b"secret"
    assert s.connections == 1
    async with HttpClient() as http:
        with pytest.raises(InvalidInput, match="ssl_context"):
            await http.request("GET", s.url)


async def test_tls_to_a_plain_server_is_a_connect_error() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the TLS hello
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(plain) as port:
        async with HttpClient(ssl_context=client_ssl_context()) as http:
            with pytest.raises(HttpConnectError, match="cannot connect"):
                await http.request("GET", f"https://127.0.0.1:{port}/")


async def test_bytes_after_the_answer_make_the_connection_unusable(serve: Callable) -> None:
    s = await serve(reply(b"ok", extra=b"Content-Type: text/plain\r\n"))
    original = s.answer

    async def with_junk(req: Request) -> bytes | None:
        out = await original(req)
        return None if out is None else out + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\njunk"

    s.answer = with_junk
    async with HttpClient() as http:
        for _ in range(2):
            assert (await http.request("GET", s.url)).body == b"ok"
    assert s.connections == 2


async def test_an_idle_connection_is_closed_after_the_idle_timeout(serve: Callable) -> None:
    s = await serve(reply(b"ok"))
    async with HttpClient(idle_timeout=0.05) as http:
        await http.request("GET", s.url)
        assert http.open_connections() == 1
        await until(lambda: http.open_connections() == 0)
        await until(lambda: s.closed_by_client == 1)


async def test_a_reused_connection_closed_unanswered_is_retried_only_when_idempotent(
    serve: Callable,
) -> None:
    """The server's keep-alive timer closes the connection just as the client reuses it: a GET
    goes again on a fresh connection; a POST (perhaps processed) is the caller's to retry."""

    async def answer_once_per_connection(req: Request) -> bytes | None:
        if sum(r.conn == req.conn for r in s.requests) > 1:
            return None  # closes without answering
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    s = await serve(answer_once_per_connection)
    async with HttpClient() as http:
        await http.request("GET", s.url)
        assert (await http.request("GET", s.url)).body == b"ok"
        assert s.connections == 2
        with pytest.raises(HttpProtocolError, match="before answering"):
            await http.request("POST", s.url, body=b"x")
    assert s.connections == 2


async def test_an_interim_100_continue_is_skipped(serve: Callable) -> None:
    async def continued(req: Request) -> bytes:
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    s = await serve(continued)
    async with HttpClient() as http:
        r = await http.request("POST", s.url, body=b"x")
        assert (r.status, r.body) == (200, b"ok") and http.open_connections() == 1


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool(
    serve: Callable,
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def hold(req: Request) -> bytes:
        started.set()
        await release.wait()
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    s = await serve(hold)
    async with HttpClient() as http:
        task = asyncio.create_task(http.request("GET", s.url))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert http.open_connections() == 0
        release.set()
        assert (await http.request("GET", s.url)).body == b"ok"
    assert s.connections == 2


@pytest.mark.parametrize(
    ("method", "url", "headers", "match"),
    [
        ("GET", "ftp://127.0.0.1/", {}, "not an http"),
        ("GET", "http:///path", {}, "needs a host"),
        ("GET", "http://u:p@127.0.0.1/", {}, "needs a host"),
        ("GET", "http://127.0.0.1:99999/", {}, "usable URL"),
        ("GET", "http://127.0.0.1/a b", {}, "path"),
        ("GET", "http://127.0.0.1/", {"X": "a\r\nInjected: 1"}, "header"),
        ("GET", "http://127.0.0.1/", {"Bad Name": "a"}, "header"),
        ("GET", "http://127.0.0.1/", {"Content-Length": "5"}, "sets Content-Length"),
        ("GET", "http://127.0.0.1/", {"X": "ünïcode😀"}, "Latin-1"),
        ("get", "http://127.0.0.1/", {}, "method"),
        ("HEAD", "http://127.0.0.1/", {}, "HEAD"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_sent(
    method: str, url: str, headers: dict[str, str], match: str
) -> None:
    async with HttpClient() as http:
        with pytest.raises(InvalidInput, match=match):
            await http.request(method, url, headers=headers)


async def test_a_closed_client_refuses_requests() -> None:
    http = HttpClient()
    await http.close()
    with pytest.raises(InvalidInput, match="closed"):
        await http.request("GET", "http://127.0.0.1/")


async def test_a_large_body_is_sent_whole(serve: Callable) -> None:
    async def echo_size(req: Request) -> bytes:
        n = str(len(req.body)).encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(n), n)

    s = await serve(echo_size)
    body = bytes(range(256)) * 40_000  # 10 MB: the client waits while the socket is full
    async with HttpClient() as http:
        r = await http.request("POST", s.url, body=body)
    assert r.body == str(len(body)).encode() and s.requests[0].body == body


#: Tests that also run on uvloop's loop, the node's (its transports are not
#: ``asyncio.Transport`` subclasses; the tests above run on asyncio's, the client library's).
ON_UVLOOP = [
    test_sends_the_request_and_reads_a_content_length_answer,
    test_keep_alive_reuses_one_connection,
    test_chunked_answer,
    test_a_silent_server_times_out_and_its_connection_is_dropped,
    test_an_answer_over_the_cap_is_refused,
    test_the_per_host_cap_holds_concurrent_requests,
    test_a_reused_connection_closed_unanswered_is_retried_only_when_idempotent,
    test_a_cancelled_request_does_not_leave_its_connection_in_the_pool,
    test_a_large_body_is_sent_whole,
]


@pytest.mark.parametrize("case", ON_UVLOOP, ids=lambda f: f.__name__.removeprefix("test_"))
def test_on_uvloop(case: Callable[[Callable[..., Awaitable[Server]]], Awaitable[None]]) -> None:
    async def run() -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        async with servers() as start:
            await case(start)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())


def test_tls_on_uvloop_too(tmp_path: Path) -> None:
    async def run() -> None:
        async with servers() as start:
            await test_tls_with_the_callers_context(start, tmp_path)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
