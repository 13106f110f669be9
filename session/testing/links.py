"""Node links for tests and benches: a :class:`~session.node.links.NodeLinks` of an identity
that lets any node key connect (no registry behind it)."""

from __future__ import annotations

from typing import Any

from session.identity import Identity
from session.node.links import Authorizer, NodeLinks


async def any_peer(key: bytes) -> bool:
    """An ``authorize`` that admits every connecting key."""
    return True


def open_links(
    ident: Identity,
    handlers: dict[bytes, Any] | None = None,
    authorize: Authorizer = any_peer,
) -> NodeLinks:
    """Links (not started) for ``ident`` serving ``handlers`` (none by default)."""
    return NodeLinks(
        public_x25519=bytes(ident.x25519_public),
        secret_x25519=bytes(ident.export_x25519_secret()),
        handlers={} if handlers is None else handlers,
        authorize=authorize,
    )
