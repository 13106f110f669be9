"""The registry's HTTPS site (aiohttp, self-signed certificate).

Endpoints:

* ``POST /json_rpc`` — ``{"method": "get_n_service_nodes", "params": {...}}`` answers
  ``{"jsonrpc": "2.0", "id": ..., "result": {"service_node_states": [...], "height": ...}}``
  (``get_service_nodes`` is an alias, as in oxend).
* ``POST /register`` — a signed registration (see :mod:`session.registry.messages`); answers
  ``{"result": {"node": <entry>, "height": h}}``.
* ``POST /deregister`` — a signed deregistration; answers ``{"result": {"removed": <key>, ...}}``.
* ``POST /name/register`` — a signed Session name registration (:mod:`session.names`);
  answers ``{"result": {"name_hash": ..., "expiry": t}}``; 409 when someone else holds it.
* ``POST /name/renew`` — a signed renewal by the name's owner; same answer; 404 unknown name.
* ``POST /json_rpc`` with ``ons_names`` — ``{"since": revision}`` → name records changed since
  (what nodes mirror to answer ``ons_resolve``; hashes and encrypted values only).
* ``POST /uptime_proof`` — a node's signed uptime proof (:mod:`session.registry.health`);
  answers ``{"result": {"active": bool, "decommission_count": n}}``; 404 when the node is not
  registered (it registers again).
* ``POST /report`` — a node's signed reachability report about another; ``{"result": {}}``;
  403 when the tester is not an active node.
* ``GET /healthz`` — ``{"ok": true, "height": h}``.

Every ``check_interval`` seconds the registry applies the health rules (decommission,
recommission, deregistration; each logged).

Nothing about names is logged: not the name, its hash, the value or the owner.

Refusals are JSON ``{"error": "<one sentence>"}`` with 400 (malformed or stale), 401 (bad
signature or key pair), 404 (unknown node), 409 (replayed request or address taken).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from session.errors import DecodeError, InvalidInput, InvalidSignature, RegistryError
from session.registry.health import HealthRules
from session.registry.state import DEFAULT_NAME_TERM, DEFAULT_STAKE_REQUIREMENT, Registry
from session.service.config import ConnectionLimits
from session.service.server import Served, serve, stop_on_signals
from session.service.tasks import cancel_and_wait, spawn
from session.service.tls import server_ssl_context

log = logging.getLogger("session.registry")

MAX_BODY = 64 * 1024
REGISTRY_KEY: web.AppKey[Registry] = web.AppKey("registry", Registry)

JSONRPC_PARSE_ERROR = -32700
JSONRPC_INVALID_REQUEST = -32600
JSONRPC_METHOD_NOT_FOUND = -32601
JSONRPC_INVALID_PARAMS = -32602


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> Any:
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("", "identity"):  # aiohttp's decompression is off (make_app)
        raise DecodeError("the registry takes uncompressed JSON: drop the Content-Encoding header")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise DecodeError(f"request body is larger than {MAX_BODY} bytes") from None
    try:
        return json.loads(raw)
    except RecursionError:
        raise DecodeError("request body nests JSON arrays or objects too deeply") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, or an over-long integer
        if "integer string conversion" in str(e):
            raise DecodeError("request body holds an integer with too many digits") from None
        raise DecodeError("request body is not valid JSON") from None


def _refusal(e: Exception) -> web.Response:
    if isinstance(e, InvalidSignature):
        return _error(401, str(e))
    if isinstance(e, RegistryError):
        return _error(e.status or 500, str(e))
    return _error(400, str(e))


async def handle_register(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    try:
        doc = await _json_body(request)
        node = registry.register(doc)
    except (InvalidInput, InvalidSignature, RegistryError) as e:
        log.info("registration refused: %s", e)
        return _refusal(e)
    log.info("registered node %s (height %d)", node.pubkey_ed25519, registry.height)
    return web.json_response({"result": {"node": node.to_json(), "height": registry.height}})


async def handle_deregister(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    try:
        doc = await _json_body(request)
        key = registry.deregister(doc)
    except (InvalidInput, InvalidSignature, RegistryError) as e:
        log.info("deregistration refused: %s", e)
        return _refusal(e)
    log.info("deregistered node %s (height %d)", key, registry.height)
    return web.json_response({"result": {"removed": key, "height": registry.height}})


async def handle_uptime_proof(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    try:
        doc = await _json_body(request)
        key = registry.uptime_proof(doc)
    except (InvalidInput, InvalidSignature, RegistryError) as e:
        log.debug("uptime proof refused: %s", e)
        return _refusal(e)
    node = registry.node(key)
    count = registry.health.nodes[key].decommission_count
    return web.json_response({"result": {"active": node.active, "decommission_count": count}})


async def handle_report(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    try:
        registry.reachability_report(await _json_body(request))
    except (InvalidInput, InvalidSignature, RegistryError) as e:
        log.info("reachability report refused: %s", e)
        return _refusal(e)
    return web.json_response({"result": {}})


async def health_loop(registry: Registry) -> None:
    """Apply the health rules every ``check_interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(registry.health.rules.check_interval)
        done = registry.check_health()
        if done:
            log.info("node list changed by health (height %d)", registry.height)


async def handle_name(request: web.Request) -> web.Response:
    """``/name/register`` and ``/name/renew`` (logged without name, hash or owner)."""
    registry = request.app[REGISTRY_KEY]
    renew = request.path.endswith("/renew")
    try:
        doc = await _json_body(request)
        rec = registry.renew_name(doc) if renew else registry.register_name(doc)
    except (InvalidInput, InvalidSignature, RegistryError) as e:
        log.info("name %s refused (%s)", "renewal" if renew else "registration", type(e).__name__)
        return _refusal(e)
    log.info("name %s accepted", "renewal" if renew else "registration")
    return web.json_response({"result": {"name_hash": rec.name_hash, "expiry": rec.expiry}})


async def handle_json_rpc(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    req_id: Any = None

    def rpc_error(code: int, message: str, status: int = 200) -> web.Response:
        body = {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}
        return web.json_response(body, status=status)

    try:
        doc = await _json_body(request)
    except DecodeError as e:
        return rpc_error(JSONRPC_PARSE_ERROR, str(e), 400)
    if not isinstance(doc, dict) or not isinstance(doc.get("method"), str):
        return rpc_error(JSONRPC_INVALID_REQUEST, "request must be an object with a method", 400)
    req_id = doc.get("id")
    method = doc["method"]
    if method not in ("get_n_service_nodes", "get_service_nodes", "ons_names"):
        return rpc_error(JSONRPC_METHOD_NOT_FOUND, f"unknown method {method!r}")
    try:
        if method == "ons_names":
            result = registry.names_since(doc.get("params"))
        else:
            result = registry.get_n_service_nodes(doc.get("params") or {})
    except InvalidInput as e:
        return rpc_error(JSONRPC_INVALID_PARAMS, str(e))
    return web.json_response({"jsonrpc": "2.0", "id": req_id, "result": result})


async def handle_health(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    return web.json_response({"ok": True, "height": registry.height})


def make_app(registry: Registry) -> web.Application:
    """The registry's aiohttp application."""
    # auto_decompress off: aiohttp failed on bodies that were not what Content-Encoding said
    # (a 500, or a logged traceback for codings it lacks); _json_body refuses any coding.
    app = web.Application(client_max_size=MAX_BODY, handler_args={"auto_decompress": False})
    app[REGISTRY_KEY] = registry
    app.router.add_post("/json_rpc", handle_json_rpc)
    app.router.add_post("/register", handle_register)
    app.router.add_post("/deregister", handle_deregister)
    app.router.add_post("/uptime_proof", handle_uptime_proof)
    app.router.add_post("/report", handle_report)
    app.router.add_post("/name/register", handle_name)
    app.router.add_post("/name/renew", handle_name)
    app.router.add_get("/healthz", handle_health)
    return app


class RegistryServer:
    """A running registry site; :meth:`close` stops it."""

    def __init__(self, served: Served, registry: Registry, url: str) -> None:
        self.served = served
        self.registry = registry
        self.url = url
        self.health_task = spawn(health_loop(registry), log, "health rules loop")

    async def close(self) -> None:
        await cancel_and_wait([self.health_task])
        await self.served.close()


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


async def start(
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | os.PathLike[str] = ".",
    stake_requirement: int = DEFAULT_STAKE_REQUIREMENT,
    seed: str | bytes | None = None,
    *,
    freshness: float | None = None,
    limits: ConnectionLimits | None = None,
    name_term: int = DEFAULT_NAME_TERM,
    health: HealthRules | None = None,
) -> RegistryServer:
    """Load (or create) the registry in ``data_dir`` and start its HTTPS site.

    ``port=0`` picks a free port; the returned server's ``url`` carries the real one.
    """
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "stake_requirement": stake_requirement,
        "seed": seed,
        "name_term": name_term,
        "health": health,
    }
    if freshness is not None:
        kwargs["freshness"] = freshness
    registry = Registry(data, **kwargs)
    ssl_ctx = server_ssl_context(data)
    try:
        served = await serve(
            make_app(registry), host, port, ssl_context=ssl_ctx, limits=limits, max_body=MAX_BODY
        )
    except OSError as e:
        raise RegistryError(f"cannot listen on {host}:{port}: {e.strerror}", 0) from None
    return RegistryServer(served, registry, _url(host, served.port))


async def run(
    host: str = "127.0.0.1",
    port: int = 22030,
    data_dir: str | os.PathLike[str] = ".",
    stake_requirement: int = DEFAULT_STAKE_REQUIREMENT,
    seed: str | bytes | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    limits: ConnectionLimits | None = None,
    name_term: int = DEFAULT_NAME_TERM,
    health: HealthRules | None = None,
) -> None:
    """Serve the registry until ``stop`` is set, SIGTERM/SIGINT arrives, or cancellation."""
    async with stop_on_signals(stop) as stopped:
        server = await start(
            host,
            port,
            data_dir,
            stake_requirement,
            seed,
            limits=limits,
            name_term=name_term,
            health=health,
        )
        try:
            log.info("registry listening on %s (height %d)", server.url, server.registry.height)
            if on_ready is not None:
                on_ready(server.url)
            await stopped.wait()
        finally:
            await server.close()


__all__ = ["RegistryServer", "make_app", "run", "start"]
