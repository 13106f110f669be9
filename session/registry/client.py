"""Talking to the registry: fetch the node list, register, deregister.

TLS verification is off (the registry's certificate is self-signed, like every node's); the
node list is only a directory, and onion layers to the listed X25519 keys carry the security.
Every call takes an optional :class:`~session.http1.client.HttpClient` (``http``) to reuse
connections; without one it opens and closes its own.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from session.errors import (
    DecodeError,
    HttpConnectError,
    HttpError,
    HttpTimeout,
    NameNotFound,
    NameTaken,
    RegistryError,
)
from session.http1.client import HttpClient
from session.names import build_register, build_renew
from session.proto.snodes import ServiceNode, parse_node_list
from session.registry.messages import Signer, build_deregistration, build_registration
from session.service.tls import client_ssl_context

DEFAULT_TIMEOUT = 10.0
#: Largest registry answer read (a node list of thousands of nodes is a few MB).
MAX_ANSWER = 32 * 1024 * 1024


def registry_http(per_host: int = 4) -> HttpClient:
    """An HTTP client for the registry (its certificate is self-signed: not verified)."""
    return HttpClient(ssl_context=client_ssl_context(), per_host=per_host, max_size=MAX_ANSWER)


@contextlib.asynccontextmanager
async def _client(http: HttpClient | None) -> AsyncIterator[HttpClient]:
    if http is not None:
        yield http
        return
    async with registry_http() as own:
        yield own


async def _post(
    url: str,
    path: str,
    body: Mapping[str, Any],
    http: HttpClient | None,
    timeout: float,
) -> dict[str, Any]:
    target = url.rstrip("/") + path
    data = json.dumps(body).encode()
    try:
        async with _client(http) as client:
            resp = await client.request(
                "POST",
                target,
                body=data,
                headers={"Content-Type": "application/json"},
                timeout=timeout,
                max_size=MAX_ANSWER,
            )
    except HttpTimeout:
        raise RegistryError(f"registry at {url} is unreachable: timed out", 0) from None
    except HttpConnectError as e:
        raise RegistryError(f"registry at {url} is unreachable: {e}", 0) from None
    except HttpError as e:
        raise RegistryError(f"registry at {url} failed to answer: {e}", 0) from None
    raw, status = resp.body, resp.status
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    if status != 200:
        msg = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(msg, dict):
            msg = msg.get("message")
        raise RegistryError(
            f"registry refused the request ({status}): {msg or 'no reason'}", status
        )
    if not isinstance(doc, dict):
        raise RegistryError(f"registry at {url} answered with something that is not JSON", 502)
    if "error" in doc:
        err = doc["error"]
        msg = err.get("message") if isinstance(err, dict) else err
        raise RegistryError(f"registry refused the request: {msg}", 400)
    return doc


async def fetch_node_list(
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """The raw ``get_n_service_nodes`` result document (with ``height``, ``block_hash`` ...)."""
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "get_n_service_nodes",
        "params": dict(params or {}),
    }
    doc = await _post(url, "/json_rpc", body, http, timeout)
    result = doc.get("result")
    if not isinstance(result, dict):
        raise RegistryError("registry answer has no result object", 502)
    return result


async def fetch_nodes(
    url: str,
    *,
    active_only: bool = False,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ServiceNode]:
    """The registry's node list."""
    result = await fetch_node_list(url, {"active_only": active_only}, http=http, timeout=timeout)
    try:
        return parse_node_list(result)
    except DecodeError as e:
        raise RegistryError(f"registry sent a bad node list: {e}", 502) from None


async def fetch_names(
    url: str,
    since: int = 0,
    *,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """The ``ons_names`` result: name records changed after revision ``since``."""
    body = {"jsonrpc": "2.0", "id": 0, "method": "ons_names", "params": {"since": int(since)}}
    doc = await _post(url, "/json_rpc", body, http, timeout)
    result = doc.get("result")
    if not isinstance(result, dict):
        raise RegistryError("registry answer has no result object", 502)
    return result


async def register_name(
    url: str,
    identity: Signer,
    name: str,
    *,
    renew: bool = False,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Register (or, with ``renew``, renew) ``name`` for ``identity``'s own Session ID; returns
    the registration's expiry (Unix seconds). Raises :class:`~session.errors.NameTaken` when
    someone else holds the name, :class:`~session.errors.NameNotFound` when renewing a name
    that is not registered, :class:`~session.errors.RegistryError` for other refusals."""
    doc = build_renew(identity, name) if renew else build_register(identity, name)
    try:
        answer = await _post(url, "/name/renew" if renew else "/name/register", doc, http, timeout)
    except RegistryError as e:
        if e.status == 409 and "someone else" in str(e):
            raise NameTaken(f"the name {name!r} is already taken") from None
        if e.status == 404:
            raise NameNotFound(f"the name {name!r} is not registered") from None
        raise
    expiry = answer.get("result", {}).get("expiry") if isinstance(answer, dict) else None
    if isinstance(expiry, bool) or not isinstance(expiry, int):
        raise RegistryError("registry answered a name registration without its expiry", 502)
    return expiry


async def register(
    url: str,
    identity: Signer,
    *,
    public_ip: str,
    storage_port: int,
    storage_lmq_port: int,
    stake: int,
    timestamp: int | None = None,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ServiceNode:
    """Register (or update) ``identity``'s node; returns the registry's entry for it."""
    doc = build_registration(
        identity,
        public_ip=public_ip,
        storage_port=storage_port,
        storage_lmq_port=storage_lmq_port,
        stake=stake,
        timestamp=timestamp,
    )
    answer = await _post(url, "/register", doc, http, timeout)
    try:
        return ServiceNode.from_json(answer["result"]["node"])
    except (KeyError, TypeError, DecodeError):
        raise RegistryError(
            "registry answered a registration without the node entry", 502
        ) from None


async def deregister(
    url: str,
    identity: Signer,
    *,
    timestamp: int | None = None,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Remove ``identity``'s node from the registry."""
    await _post(
        url, "/deregister", build_deregistration(identity, timestamp=timestamp), http, timeout
    )


async def send_uptime_proof(
    url: str,
    doc: Mapping[str, Any],
    *,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Send a signed uptime proof (:func:`session.registry.health.build_uptime_proof`); returns
    ``{"active": bool, "decommission_count": n}``. A 404 :class:`RegistryError` means the node
    is not registered (any more): register again."""
    answer = await _post(url, "/uptime_proof", doc, http, timeout)
    result = answer.get("result")
    if not isinstance(result, dict):
        raise RegistryError("registry answered an uptime proof without a result", 502)
    return result


async def send_report(
    url: str,
    doc: Mapping[str, Any],
    *,
    http: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Send a signed reachability report (:func:`session.registry.health.build_report`)."""
    await _post(url, "/report", doc, http, timeout)


__all__ = [
    "MAX_ANSWER",
    "deregister",
    "fetch_names",
    "fetch_node_list",
    "fetch_nodes",
    "register",
    "register_name",
    "registry_http",
    "send_report",
    "send_uptime_proof",
]
