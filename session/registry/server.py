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
from session.registry.chain import ChainError, ChainFollower, ChainOptions, ChainReader, connect
from session.registry.health import HealthRules
from session.registry.state import DEFAULT_NAME_TERM, DEFAULT_STAKE_REQUIREMENT, Registry
from session.service.config import ConnectionLimits
from session.service.server import Served, serve, stop_on_signals
from session.service.tasks import cancel_and_wait, spawn
from session.service.tls import server_ssl_context

log = logging.getLogger("session.registry")

MAX_BODY = 64 * 1024
REGISTRY_KEY: web.AppKey[Registry] = web.AppKey("registry", Registry)
#: The devnet's in-process chain (answers ``/chain``) and the follower it wakes up.
DEVCHAIN_KEY: web.AppKey[Any] = web.AppKey("devchain")
FOLLOWER_KEY: web.AppKey[Any] = web.AppKey("follower")
#: JSON-RPC methods after which the devnet chain has a new block to read.
_MINING = frozenset({"eth_sendRawTransaction", "evm_mine"})

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
    why = registry.not_listed_reason(node.pubkey_ed25519)
    if why is not None:
        log.info("node %s announced itself but is not listed: %s", node.pubkey_ed25519, why)
        return web.json_response(
            {"result": {"node": node.to_json(), "height": registry.height, "not_listed": why}}
        )
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


async def handle_chain(request: web.Request) -> web.Response:
    """``POST /chain``: Ethereum JSON-RPC to the devnet's in-process chain (see
    :mod:`session.registry.devchain`); the node list follows every new block at once."""
    devchain = request.app[DEVCHAIN_KEY]
    try:
        doc = await _json_body(request)
    except DecodeError as e:
        body = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": JSONRPC_PARSE_ERROR, "message": str(e)},
        }
        return web.json_response(body, status=400)
    batch = doc if isinstance(doc, list) else [doc]
    answers = [devchain.rpc(d) for d in batch]
    if any(isinstance(d, dict) and d.get("method") in _MINING for d in batch):
        request.app[FOLLOWER_KEY].sync()
    return web.json_response(answers if isinstance(doc, list) else answers[0])


async def handle_health(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    return web.json_response({"ok": True, "height": registry.height})


def make_app(registry: Registry, devchain: Any = None, follower: Any = None) -> web.Application:
    """The registry's aiohttp application (``/chain`` too with a devnet chain)."""
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
    if devchain is not None:
        app[DEVCHAIN_KEY] = devchain
        app[FOLLOWER_KEY] = follower
        app.router.add_post("/chain", handle_chain)
    return app


class RegistryServer:
    """A running registry site; :meth:`close` stops it."""

    def __init__(
        self,
        served: Served,
        registry: Registry,
        url: str,
        chain_info: dict[str, Any] | None = None,
        poller: asyncio.Task[None] | None = None,
    ) -> None:
        self.served = served
        self.registry = registry
        self.url = url
        self.health_task = spawn(health_loop(registry), log, "health rules loop")
        #: the chain and contract the node list comes from (``nodes.json`` names them)
        self.chain_info = chain_info
        self._poller = poller

    async def close(self) -> None:
        await cancel_and_wait([self.health_task, *([self._poller] if self._poller else [])])
        await self.served.close()


async def _follow(follower: ChainFollower, poll: float) -> None:
    """Read a remote chain every ``poll`` seconds (in a thread: web3 blocks) and apply it."""
    while True:
        await asyncio.sleep(poll)
        try:
            points = await asyncio.to_thread(follower.reader.sync)
        except ChainError as e:
            log.warning("%s (the node list stays as it was)", e)
            continue
        follower.apply(points)


async def _attach_chain(
    registry: Registry, chain: ChainOptions, stake_requirement: int, seed: str | bytes | None
) -> tuple[ChainFollower, Any, dict[str, Any]]:
    """The follower of ``chain`` attached to ``registry``, the devnet chain (or None) and the
    chain's description; the node list is read up to the chain's head before returning."""
    if chain.devnet:
        # eth-tester and py-evm only for a devnet chain (the package's devnet extra).
        from session.registry.devchain import DevChain  # noqa: PLC0415 - optional dependency

        text_seed = seed.decode() if isinstance(seed, bytes) else (seed or "devnet")
        devchain = DevChain(
            text_seed, min_tokens=stake_requirement, unlock_blocks=chain.unlock_blocks
        )
        reader = ChainReader(
            devchain.w3,
            devchain.contract,
            min_tokens=stake_requirement,
            start_block=devchain.deploy_block,
        )
        follower = ChainFollower(registry, reader)
        follower.sync()
        return follower, devchain, devchain.describe("")
    assert chain.rpc is not None and chain.contract is not None
    w3 = connect(chain.rpc)
    remote = await asyncio.to_thread(
        ChainReader, w3, chain.contract, min_tokens=stake_requirement, start_block=chain.start_block
    )
    follower = ChainFollower(registry, remote)
    follower.apply(await asyncio.to_thread(remote.sync))
    info = {
        "rpc": chain.rpc,
        "chain_id": remote.chain_id,
        "contract": remote.address,
        "token": remote.token.address,
        "deploy_block": chain.start_block,
        "unlock_blocks": remote.unlock_blocks,
        "decimals": remote.decimals,
    }
    return follower, None, info


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
    chain: ChainOptions | None = None,
) -> RegistryServer:
    """Load (or create) the registry in ``data_dir`` and start its HTTPS site.

    ``port=0`` picks a free port; the returned server's ``url`` carries the real one. With
    ``chain``, the node list is the staking contract's (read before the site opens).
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
    follower: ChainFollower | None = None
    devchain: Any = None
    info: dict[str, Any] | None = None
    if chain is not None:
        follower, devchain, info = await _attach_chain(registry, chain, stake_requirement, seed)
    ssl_ctx = server_ssl_context(data)
    try:
        served = await serve(
            make_app(registry, devchain, follower),
            host,
            port,
            ssl_context=ssl_ctx,
            limits=limits,
            max_body=MAX_BODY,
        )
    except OSError as e:
        raise RegistryError(f"cannot listen on {host}:{port}: {e.strerror}", 0) from None
    url = _url(host, served.port)
    poller = None
    if info is not None and devchain is not None:
        info["rpc"] = url + "/chain"
    elif follower is not None and chain is not None:
        poller = asyncio.create_task(_follow(follower, chain.poll))
    return RegistryServer(served, registry, url, info, poller)


async def run(
    host: str = "127.0.0.1",
    port: int = 22030,
    data_dir: str | os.PathLike[str] = ".",
    stake_requirement: int = DEFAULT_STAKE_REQUIREMENT,
    seed: str | bytes | None = None,
    *,
    on_ready: Callable[[RegistryServer], None] | None = None,
    stop: asyncio.Event | None = None,
    limits: ConnectionLimits | None = None,
    name_term: int = DEFAULT_NAME_TERM,
    health: HealthRules | None = None,
    chain: ChainOptions | None = None,
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
            chain=chain,
        )
        try:
            log.info("registry listening on %s (height %d)", server.url, server.registry.height)
            if server.chain_info is not None:
                c = server.chain_info
                log.info("node list from contract %s on chain %s", c["contract"], c["chain_id"])
            if on_ready is not None:
                on_ready(server)
            await stopped.wait()
        finally:
            await server.close()


__all__ = ["ChainOptions", "RegistryServer", "make_app", "run", "start"]
