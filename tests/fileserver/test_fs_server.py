"""The file server's routes over real HTTPS on 127.0.0.1 and as a v4 onion destination: the
§5.5 API, its error answers, hostile bodies (never a 500), and that nothing it logs or stores
names a Session ID, a file name or a content type."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session.errors import StorageError
from session.fileserver.config import FileServerConfig, NetworkConfig, StorageConfig
from session.fileserver.server import RunningFileServer, start
from session.fileserver.store import file_id
from session.identity import Identity
from session.service.tls import ensure_certificate
from session.testing.hostile import ANSWER_WITHIN, CONTENT_ENCODINGS, hostile_bodies, probe
from session.testing.http import one_hop_v4
from session.testing.waits import until

DAY = 86_400


def config(tmp: Path, **storage: Any) -> FileServerConfig:
    ensure_certificate(tmp)
    return FileServerConfig(
        data_dir=tmp,
        network=NetworkConfig(listen_host="127.0.0.1", port=0),
        storage=replace(StorageConfig(), **storage),
    )


@pytest.fixture
async def fs(tmp_path: Path) -> AsyncIterator[RunningFileServer]:
    server = await start(config(tmp_path, max_file_size=100_000, quota_bytes=250_000))
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as s:
        yield s


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None, **headers: str
) -> tuple[int, bytes]:
    async with http.request(method, url, data=body, headers=headers) as r:
        return r.status, await r.read()


async def test_upload_download_info_extend_over_https(
    fs: RunningFileServer, http: aiohttp.ClientSession
) -> None:
    assert fs.url.startswith("https://")
    blob = os.urandom(5000)
    status, body = await call(http, "POST", f"{fs.url}/file", blob)
    assert status == 200
    doc = json.loads(body)
    assert doc["id"] == file_id(blob) and len(doc["id"]) == 44
    assert abs(doc["expires"] - (doc["expires"] // 1)) < 1  # a number of seconds
    assert await call(http, "GET", f"{fs.url}/file/{doc['id']}") == (200, blob)
    status, body = await call(http, "GET", f"{fs.url}/file/{doc['id']}/info")
    info = json.loads(body)
    assert status == 200 and info["size"] == 5000
    assert 14 * DAY - 60 < info["expires"] - info["uploaded"] <= 14 * DAY
    # X-FS-TTL on extend: never shortens; capped at max_ttl (30 days by default).
    status, body = await call(
        http, "POST", f"{fs.url}/file/{doc['id']}/extend", **{"X-FS-TTL": str(365 * DAY)}
    )
    ext = json.loads(body)
    assert status == 200 and 30 * DAY - 60 < ext["expires"] - ext["uploaded"] <= 30 * DAY + 60


async def test_ttl_header_and_legacy_json_pair(
    fs: RunningFileServer, http: aiohttp.ClientSession
) -> None:
    blob = b"legacy \x00\x01 bytes"
    status, body = await call(
        http,
        "POST",
        f"{fs.url}/files",
        json.dumps({"file": base64.b64encode(blob).decode()}).encode(),
        **{"X-FS-TTL": "3600"},
    )
    doc = json.loads(body)
    assert status == 200 and doc == {"status_code": 200, "result": file_id(blob)}
    status, body = await call(http, "GET", f"{fs.url}/files/{doc['result']}")
    assert status == 200 and base64.b64decode(json.loads(body)["result"]) == blob
    _, body = await call(http, "GET", f"{fs.url}/file/{doc['result']}/info")
    info = json.loads(body)
    assert 3590 < info["expires"] - info["uploaded"] <= 3600


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "says"),
    [
        ("POST", "/file", b"", {}, 400, "empty"),
        ("POST", "/file", b"x" * 100_001, {}, 413, "limit is 100000 bytes"),
        ("POST", "/file", b"x", {"X-FS-TTL": "soon"}, 400, "whole number of seconds"),
        ("POST", "/file", b"x", {"X-FS-TTL": "0"}, 400, "positive"),
        ("GET", "/file/" + "A" * 44, None, {}, 404, "expired"),
        ("GET", "/file/nope", None, {}, 400, "44 characters"),
        ("GET", "/file/" + "A" * 44 + "/info", None, {}, 404, "no such file"),
        ("POST", "/file/" + "A" * 44 + "/extend", None, {}, 404, "no such file"),
        ("POST", "/files", b"[1]", {}, 400, "JSON object"),
        ("POST", "/files", b'{"file": "***"}', {}, 400, "base64"),
        ("POST", "/files", b"{", {}, 400, "not valid JSON"),
        ("DELETE", "/file/" + "A" * 44, None, {}, 405, "Method Not Allowed"),
    ],
)
async def test_bad_requests_get_one_sentence(
    fs: RunningFileServer,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    got, text = await call(http, method, fs.url + path, body, **headers)
    assert got == status and says in text.decode()


async def test_quota_gives_507_and_keeps_what_is_stored(
    fs: RunningFileServer, http: aiohttp.ClientSession
) -> None:
    stored = [os.urandom(100_000), os.urandom(100_000)]
    for blob in stored:
        assert (await call(http, "POST", f"{fs.url}/file", blob))[0] == 200
    status, text = await call(http, "POST", f"{fs.url}/file", os.urandom(100_000))
    assert status == 507 and b"full" in text
    for blob in stored:
        assert await call(http, "GET", f"{fs.url}/file/{file_id(blob)}") == (200, blob)


async def test_the_sweep_deletes_expired_files(tmp_path: Path) -> None:
    fs = await start(config(tmp_path, sweep_interval=0.05))
    try:
        info = fs.service.store.put(b"short-lived", 60, now=0.0)  # expired long ago
        path = tmp_path / "store" / "files" / info.id
        async with asyncio.timeout(10):
            while path.exists():
                await asyncio.sleep(0.02)
        assert fs.service.store.count() == 0
    finally:
        await fs.close()


async def test_close_waits_for_a_sweep_still_inside_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown cancels the sweep task, but its thread cannot be stopped: the store is closed
    only once that thread is done (closing SQLite under it crashed the process in CI)."""
    fs = await start(config(tmp_path, sweep_interval=3600))
    store = fs.service.store
    entered, release = threading.Event(), threading.Event()
    real_sweep = store.sweep
    order: list[str] = []

    def slow_sweep(now: float | None = None) -> int:
        entered.set()
        release.wait(60)
        n = real_sweep(now)
        order.append("swept")
        return n

    real_close = store.close

    def close() -> None:
        order.append("closed")
        real_close()

    monkeypatch.setattr(store, "sweep", slow_sweep)
    monkeypatch.setattr(store, "close", close)
    fs.sweeper.cancel()  # the first sweep already ran; start one that blocks in its thread
    fs.sweeper = asyncio.ensure_future(fs.service.sweep())
    assert await asyncio.to_thread(entered.wait, 60)
    closing = asyncio.ensure_future(fs.close())
    await asyncio.sleep(0)  # close() runs up to the store's lock, which the sweep holds
    assert order == []
    release.set()
    await asyncio.wait_for(closing, 60)
    assert order == ["swept", "closed"]


async def onion_call(
    fs: RunningFileServer,
    http: aiohttp.ClientSession,
    method: str,
    endpoint: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, bytes]:
    return await one_hop_v4(
        http, fs.url, bytes(fs.identity.x25519_public), method, endpoint, body, headers
    )


async def test_the_same_api_as_a_v4_onion_destination(
    fs: RunningFileServer, http: aiohttp.ClientSession
) -> None:
    blob = os.urandom(20_000)
    status, body = await onion_call(fs, http, "POST", "/file", blob, {"X-FS-TTL": "600"})
    assert status == 200 and json.loads(body)["id"] == file_id(blob)
    assert await onion_call(fs, http, "GET", f"/file/{file_id(blob)}", None, {}) == (200, blob)
    status, body = await onion_call(fs, http, "GET", f"/file/{file_id(blob)}/info", None, {})
    assert status == 200 and json.loads(body)["size"] == 20_000
    status, text = await onion_call(fs, http, "POST", "/file", b"x" * 100_001, {})
    assert status == 413 and b"limit" in text


async def test_logs_and_database_name_no_one_and_nothing(
    tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fs = await start(config(tmp_path))
    sender = Identity.generate().session_id
    secrets = [sender, "holiday-photo.jpg", "image/jpeg"]
    try:
        blob = b"ciphertext only" * 100
        headers = {
            "Content-Type": "image/jpeg",
            "Content-Disposition": 'attachment; filename="holiday-photo.jpg"',
            "X-Session-Id": sender,
        }
        assert (await call(http, "POST", f"{fs.url}/file", blob, **headers))[0] == 200
        assert (await onion_call(fs, http, "POST", "/file", blob + b"!", headers))[0] == 200
        fid = file_id(blob)
        assert (await call(http, "GET", f"{fs.url}/file/{fid}", None, **headers))[0] == 200
    finally:
        await fs.close()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for s in [*secrets, fid, "127.0.0.1"]:
        assert s not in logged
    db = sqlite3.connect(tmp_path / "store" / "files.db")
    dump = "\n".join(db.iterdump())
    assert fid in dump and all(s not in dump for s in secrets)
    names = {p.name for p in (tmp_path / "store").rglob("*")}
    assert all(s not in n for s in secrets for n in names)


# ------------------------------------------------------------------------------------------
# hostile bodies: never a 500, always an answer within a second


class Fired:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, fs: RunningFileServer, http: aiohttp.ClientSession
    ) -> None:
        self.loop = loop
        self.fs = fs
        self.http = http
        u, some = fs.url, "A" * 44
        self.routes = [
            ("POST", f"{u}/file"),
            ("POST", f"{u}/files"),
            ("GET", f"{u}/file/{some}"),
            ("POST", f"{u}/file/{some}/extend"),
            ("GET", f"{u}/files/{some}"),
            ("POST", f"{u}/oxen/v4/lsrpc"),
            ("POST", f"{u}/no/such/path"),
        ]


@pytest.fixture(scope="module")
def fired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fired]:
    tmp = tmp_path_factory.mktemp("fileserver-fired")
    loop = asyncio.new_event_loop()

    async def begin() -> Fired:
        fs = await start(config(tmp))
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
        return Fired(loop, fs, http)

    f = loop.run_until_complete(begin())
    yield f
    loop.run_until_complete(f.http.close())
    loop.run_until_complete(f.fs.close())
    loop.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=hostile_bodies([], ["file", "id", "ttl"]),
    route=st.integers(0, 6),
    coding=CONTENT_ENCODINGS,
)
def test_any_body_at_any_endpoint_gets_an_answer(
    fired: Fired, caplog: pytest.LogCaptureFixture, body: bytes, route: int, coding: str | None
) -> None:
    caplog.clear()
    method, url = fired.routes[route]
    status, took = fired.loop.run_until_complete(probe(fired.http, method, url, body, coding))
    assert status != 500 and status < 600, (url, coding, body[:200])
    assert took < ANSWER_WITHIN, (url, took, body[:200])
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def test_a_plain_upload_streams_to_disk_as_it_arrives(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A chunked POST /file is on disk (in tmp/) before its last byte is sent, and renamed into
    place once complete; one over the limit mid-stream gets 413, one that stalls past the body
    timeout 408, and neither leaves anything behind."""
    cfg = config(tmp_path, max_file_size=100_000, quota_bytes=250_000)
    cfg = replace(cfg, connections=replace(cfg.connections, body_timeout=1.0))
    fs = await start(cfg)
    tmp, files = tmp_path / "store" / "tmp", tmp_path / "store" / "files"
    blob = os.urandom(90_000)

    async def on_disk(n: int) -> None:
        for _ in range(500):
            if any(p.stat().st_size >= n for p in tmp.iterdir()):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no temp file of {n} bytes appeared")

    async def halves() -> AsyncIterator[bytes]:
        yield blob[:50_000]
        await on_disk(50_000)  # the server wrote the first half before it got the second
        yield blob[50_000:]

    async def too_long() -> AsyncIterator[bytes]:
        for _ in range(11):
            yield b"x" * 10_000

    async def stalls() -> AsyncIterator[bytes]:
        yield b"y" * 1000
        # (the last byte only once the server gave up waiting for it: a sleep could end
        # before the server's own body timeout on a loaded machine)
        await until(lambda: fs.served.stats.body_timeouts == 1, "the body timeout")
        yield b"y"

    try:
        async with http.post(f"{fs.url}/file", data=halves()) as r:
            assert r.status == 200
            fid = (await r.json())["id"]
        assert fid == file_id(blob) and (files / fid).read_bytes() == blob
        async with http.post(f"{fs.url}/file", data=too_long()) as r:
            assert r.status == 413 and "over the limit of 100000 bytes" in await r.text()
        try:
            async with http.post(f"{fs.url}/file", data=stalls()) as r:
                assert r.status == 408
        except aiohttp.ClientError:
            pass  # the server may close before the client has sent its last piece
        assert fs.served.stats.body_timeouts == 1
        assert not list(tmp.iterdir())
        assert [p.name for p in files.iterdir()] == [fid]
    finally:
        await fs.close()


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (OSError(5, "Input/output error"), "the file server cannot store files right now"),
        (StorageError("the file store is closed"), "the file store is closed"),
    ],
)
async def test_a_failing_store_is_a_503_with_one_sentence(
    fs: RunningFileServer,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    says: str,
) -> None:
    def read(file: str) -> bytes:
        raise failure

    monkeypatch.setattr(fs.service.store, "read", read)
    status, text = await call(http, "GET", f"{fs.url}/file/{'A' * 44}")
    assert (status, text.decode()) == (503, says)


async def test_an_encoded_body_is_refused(
    fs: RunningFileServer, http: aiohttp.ClientSession
) -> None:
    status, text = await call(
        http, "POST", f"{fs.url}/file", b"x" * 10, **{"Content-Encoding": "gzip"}
    )
    assert (status, text) == (
        400,
        b"the file server takes raw bytes: drop the Content-Encoding header",
    )
