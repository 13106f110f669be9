"""The ``{"method": ..., "params": {...}}`` envelope: from a body to a typed request, the
checks every request goes through (in Session's order), and the body forwarded to swarm
peers."""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from session import _core
from session.errors import RpcStatusError
from session.proto.rpc.auth import Account
from session.proto.rpc.codec import parse_json
from session.proto.rpc.constants import DEFAULT_HARDFORK
from session.proto.rpc.fields import ParseError
from session.proto.rpc.meta import META_METHODS, Batch, IfElse, Request
from session.proto.rpc.requests import (
    METHOD_CLASSES,
    AccountMethod,
    Expire,
    RecursiveRequest,
    Retrieve,
    Store,
    parse_sub_request,
)

#: Every method name the node answers.
METHODS = frozenset(METHOD_CLASSES) | META_METHODS


def parse_params(method: str, params: Any, *, forwarded: bool = False) -> Request:
    """Validate ``params`` of ``method``; raises :class:`RpcStatusError` (400) when
    malformed. ``forwarded``: the request came from a swarm peer (only recursive methods
    may)."""
    if method not in METHODS:
        raise RpcStatusError(400, f"no method {method}")
    if not isinstance(params, dict):
        raise RpcStatusError(400, "invalid json: no `params` field")
    try:
        req: Request
        if method in ("batch", "sequence"):
            req = Batch.parse(params, method == "sequence")
        elif method == "ifelse":
            req = IfElse.parse(params)
        else:
            req = parse_sub_request(method, params)
    except ParseError as e:
        raise RpcStatusError(400, f"invalid request: {e}") from None
    except (ValueError, TypeError, binascii.Error) as e:  # decoding corner cases
        raise RpcStatusError(400, f"invalid request: {e}") from None
    if forwarded and not req.RECURSIVE:
        raise RpcStatusError(
            400, "invalid request: received invalid forwarded non-forwardable request"
        )
    return req


def parse_request(body: bytes | str | Mapping[str, Any], *, forwarded: bool = False) -> Request:
    """Parse a ``{"method", "params"}`` body (raw JSON or already decoded).

    A client's unsigned ``store`` in JSON bytes with nothing but ``pubkey``, ``timestamp``,
    ``ttl``, ``data`` and ``namespace`` (a message to a public inbox: most of a node's
    requests) is read by the core in one call (``_core.parse_plain_store``), which gives the
    same :class:`Store` as :func:`parse_document` or declines; everything else, every error
    among it, goes through :func:`parse_document`."""
    if type(body) is bytes:
        plain = _core.parse_plain_store(body)
        if plain is not None:
            prefix, key, namespace, timestamp, expiry, data = plain
            return Store(Account(prefix, key), namespace, timestamp, expiry, data)
    return parse_document(body if isinstance(body, Mapping) else parse_json(body), forwarded)


def parse_document(doc: Any, forwarded: bool = False) -> Request:
    """The request in a decoded ``{"method", "params"}`` body (the full parser)."""
    if not isinstance(doc, Mapping):
        raise RpcStatusError(400, "invalid json: no `method` field")
    method = doc.get("method")
    if not isinstance(method, str):
        raise RpcStatusError(400, "invalid json: no `method` field")
    params = doc.get("params")
    if not isinstance(params, dict):
        raise RpcStatusError(400, "invalid json: no `params` field")
    return parse_params(method, params, forwarded=forwarded)


def forward_body(req: RecursiveRequest) -> dict[str, Any]:
    """The JSON body sent to swarm peers for a recursive request (same shape as a client body;
    the peer parses it with ``parse_request(..., forwarded=True)``)."""
    return {"method": req.METHOD, "params": req.to_params()}


def precheck(
    req: Request, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
) -> None:
    """Time-window, TTL and hard-fork checks that Session runs before verifying the signature.
    Raises :class:`RpcStatusError` (403, 406, 401)."""
    if isinstance(req, AccountMethod):
        req.precheck(now_ms, forwarded=forwarded, hf=hf)


def needs_verification(req: Request) -> bool:
    """Whether ``req`` carries a signature that must be verified."""
    return isinstance(req, AccountMethod) and req.needs_verification()


def skip_revoke_check(req: Request) -> bool:
    """Whether a revoked subaccount token is accepted anyway (unrevocable namespaces)."""
    return isinstance(req, AccountMethod) and req.skip_revoke_check()


def verify_request(req: Request, *, revoked: bool = False) -> None:
    """Verify the request signature (after :func:`precheck`). ``revoked``: whether the request's
    subaccount token is on the owner's revocation list (ignored where Session ignores it).
    Raises RpcStatusError(401)."""
    if isinstance(req, AccountMethod):
        req.verify(revoked=revoked)


def applied_expiries(req: Expire, now_ms: int) -> list[int]:
    """The expiries a node applies: each clamped to now + 30 days."""
    return req.applied_expiries(now_ms)


def expire_extend_only(req: Expire) -> bool:
    """See :meth:`Expire.extend_only`."""
    return req.extend_only()


def retrieve_limits(req: Retrieve) -> tuple[int | None, int]:
    """See :meth:`Retrieve.limits`."""
    return req.limits()


__all__ = [
    "METHODS",
    "applied_expiries",
    "expire_extend_only",
    "forward_body",
    "needs_verification",
    "parse_params",
    "parse_request",
    "precheck",
    "retrieve_limits",
    "skip_revoke_check",
    "verify_request",
]
