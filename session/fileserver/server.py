"""The file server's routes (client spec §5.5) and the running service.

Every route is one :class:`~session.service.onion.Routes` table, served as plain HTTP(S) and
behind ``POST /oxen/v4/lsrpc`` as a v4 onion destination opened with the server's own X25519
key. A plain ``POST /file`` streams its body into the store's temp file as it arrives
(:meth:`FileService.post_file_streamed`); behind an onion the body is one AEAD layer, opened
whole. Errors are one sentence with the matching status: 400 bad input, 404 missing or expired,
413 too large, 507 over the disk quota.

Logs carry counts and sizes only: no file ID, no address, no header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from session.errors import InvalidInput, StorageError
from session.fileserver.config import FileServerConfig, max_request_body
from session.fileserver.store import FileInfo, FileNotFound, FileStore, FileTooLarge
from session.identity import Identity
from session.service.onion import Routes, V4Request, V4Response, store_failed
from session.service.server import Served, body_pieces, streams_body
from session.service.site import load_site_identity, raw_bodies_only, run_standalone, start_site
from session.service.tasks import cancel_and_wait, on_worker_exclusive, spawn

log = logging.getLogger("session.fileserver")
T = TypeVar("T")


def _ttl(req: V4Request, default: int, cap: int) -> int:
    """The ``X-FS-TTL`` header (seconds, capped), or ``default``."""
    raw = req.headers.get("x-fs-ttl")
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or len(raw) > 12:
        raise InvalidInput("X-FS-TTL must be a whole number of seconds")
    ttl = int(raw)
    if ttl <= 0:
        raise InvalidInput("X-FS-TTL must be a positive number of seconds")
    return min(ttl, cap)


class FileService:
    """The routes over one :class:`FileStore` (store calls run one at a time off the loop)."""

    def __init__(self, store: FileStore, default_ttl: int, max_ttl: int) -> None:
        self.store = store
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self._lock = asyncio.Lock()
        self.routes = Routes()
        self.routes.add("POST", "/file", self.post_file, plain=self.post_file_streamed)
        self.routes.add("GET", "/file/{id}", self.get_file)
        self.routes.add("GET", "/file/{id}/info", self.get_info)
        self.routes.add("POST", "/file/{id}/extend", self.extend)
        self.routes.add("POST", "/files", self.post_files_legacy)
        self.routes.add("GET", "/files/{id}", self.get_files_legacy)

    async def close(self) -> None:
        """Close the store once no store call runs on a worker thread (a cancelled sweep may
        still be inside SQLite: closing under it crashed the process)."""
        async with self._lock:
            self.store.close()

    async def _call(self, fn: Callable[[], T]) -> T | V4Response:
        # the lock is held until the thread is done, even when this call is cancelled (a
        # shutdown cancelling the sweep): close() takes it before closing the store
        try:
            return await on_worker_exclusive(self._lock, fn)
        except FileTooLarge as e:
            return V4Response.error(413, str(e))
        except FileNotFound as e:
            return V4Response.error(404, str(e))
        except (StorageError, OSError) as e:
            return store_failed(e, "file server", log)

    async def _upload(self, blob: bytes, ttl: int) -> V4Response | tuple[str, float]:
        return await self._commit(lambda: self.store.put(blob, ttl))

    async def _commit(self, store: Callable[[], FileInfo]) -> V4Response | tuple[str, float]:
        """Run ``store`` (a put or a commit) off the loop; the new file's (id, expiry)."""
        got = await self._call(store)
        if isinstance(got, V4Response):
            return got
        log.info("stored a file of %d bytes", got.size)
        return got.id, got.expires

    async def post_file(self, req: V4Request) -> V4Response:
        got = await self._upload(req.body, _ttl(req, self.default_ttl, self.max_ttl))
        if isinstance(got, V4Response):
            return got
        return V4Response.of_json({"id": got[0], "expires": got[1]})

    @streams_body
    async def post_file_streamed(self, request: web.Request) -> web.StreamResponse:
        """Plain ``POST /file``: the body goes to a temp file piece by piece (hashed on the
        way) and is renamed into place once complete; never held in memory whole."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            ttl = _ttl(
                V4Request("POST", request.path, headers=headers), self.default_ttl, self.max_ttl
            )
        except InvalidInput as e:
            return V4Response.error(400, str(e)).to_web()
        size, limit = request.content_length, self.store.max_size
        if size is not None and size > limit:
            msg = f"file too large: {size} bytes, the limit is {limit} bytes"
            return V4Response.error(413, msg).to_web()
        up = self.store.begin()
        try:
            async for piece in body_pieces(request):
                up.write(piece)
            got = await self._commit(lambda: self.store.commit(up, ttl))
        except FileTooLarge as e:
            got = V4Response.error(413, str(e))
        except InvalidInput as e:  # an empty body
            got = V4Response.error(400, str(e))
        finally:
            up.abort()  # (gone already once committed)
        if isinstance(got, V4Response):
            return got.to_web()
        return V4Response.of_json({"id": got[0], "expires": got[1]}).to_web()

    async def get_file(self, req: V4Request) -> V4Response:
        got = await self._call(lambda: self.store.read(req.params["id"]))
        if isinstance(got, V4Response):
            return got
        return V4Response(200, got, {"content-type": "application/octet-stream"})

    async def get_info(self, req: V4Request) -> V4Response:
        got = await self._call(lambda: self.store.info(req.params["id"]))
        if isinstance(got, V4Response):
            return got
        return V4Response.of_json(
            {"size": got.size, "uploaded": got.uploaded, "expires": got.expires}
        )

    async def extend(self, req: V4Request) -> V4Response:
        ttl = _ttl(req, self.default_ttl, self.max_ttl)
        got = await self._call(lambda: self.store.extend(req.params["id"], ttl))
        if isinstance(got, V4Response):
            return got
        return V4Response.of_json(
            {"size": got.size, "uploaded": got.uploaded, "expires": got.expires}
        )

    async def post_files_legacy(self, req: V4Request) -> V4Response:
        doc = req.json()
        if not isinstance(doc, dict) or not isinstance(doc.get("file"), str):
            raise InvalidInput('the body must be a JSON object {"file": "<base64 of the file>"}')
        try:
            blob = base64.b64decode(doc["file"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput('"file" must be standard base64') from None
        got = await self._upload(blob, _ttl(req, self.default_ttl, self.max_ttl))
        if isinstance(got, V4Response):
            return got
        return V4Response.of_json({"status_code": 200, "result": got[0]})

    async def get_files_legacy(self, req: V4Request) -> V4Response:
        got = await self._call(lambda: self.store.read(req.params["id"]))
        if isinstance(got, V4Response):
            return got
        return V4Response.of_json({"status_code": 200, "result": base64.b64encode(got).decode()})

    async def sweep(self) -> int:
        got = await self._call(self.store.sweep)
        return got if isinstance(got, int) else 0


#: Blobs are stored exactly as sent.
_raw_bodies_only = raw_bodies_only(
    "the file server takes raw bytes: drop the Content-Encoding header"
)


def load_identity(cfg: FileServerConfig) -> Identity:
    """The server's key (:func:`~session.service.site.load_site_identity`)."""
    return load_site_identity(cfg.data_dir)


@dataclass
class RunningFileServer:
    """A started file server: its URL, keys and service (for tests and the devnet)."""

    url: str
    identity: Identity
    service: FileService
    served: Served
    sweeper: asyncio.Task[None]

    async def close(self) -> None:
        await cancel_and_wait([self.sweeper])
        await self.served.close()
        await self.service.close()


async def _sweep_forever(service: FileService, interval: float) -> None:
    while True:
        n = await service.sweep()
        if n:
            log.info("swept %d expired files", n)
        await asyncio.sleep(interval)


async def start(cfg: FileServerConfig) -> RunningFileServer:
    """Open the store and start listening; raises ``OSError`` if it cannot listen."""
    identity = await asyncio.to_thread(load_identity, cfg)
    st = cfg.storage
    store = await asyncio.to_thread(
        FileStore, cfg.data_dir / "store", max_size=st.max_file_size, quota=st.quota_bytes
    )
    service = FileService(store, st.default_ttl, st.max_ttl)
    served, url = await start_site(
        service.routes, identity, network=cfg.network, data_dir=cfg.data_dir,
        limits=cfg.connections, max_body=max_request_body(st), middlewares=[_raw_bodies_only],
    )  # fmt: skip
    sweeper = spawn(_sweep_forever(service, st.sweep_interval), log, "the expiry sweep")
    return RunningFileServer(url, identity, service, served, sweeper)


async def run(cfg: FileServerConfig, on_ready: Callable[[RunningFileServer], None]) -> None:
    """Serve until SIGTERM/SIGINT."""
    await run_standalone(
        lambda: start(cfg), on_ready, log, "file server", cfg.data_dir, "session-fileserver"
    )


__all__ = ["FileService", "RunningFileServer", "load_identity", "run", "start"]
