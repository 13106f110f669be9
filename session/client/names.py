"""Resolving Session names the way Session's clients do (client spec §6.8).

The name hash goes to **three random service nodes**, each through its own onion request
(``oxend_request`` → ``ons_resolve``, type 0), and all three answers must be identical; the
value is then decrypted with the key only the name gives. No node learns who asked (onion
requests), and the nodes answer from their copy of the registry's names, so the registry does
not learn what was asked either.

Registering and renewing (``session.registry.client.register_name``) go straight to the
registry over HTTPS, as a Session user's name purchase goes to the chain, not through nodes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from session.client.transport import PathFailure
from session.errors import (
    DecryptionError,
    NameExpired,
    NameLookupFailed,
    NameNotFound,
    NotEnoughNodes,
)
from session.names import SESSION_TYPE, decrypt_value, name_hash_b64, normalize_name
from session.proto.snodes import ServiceNode

#: How many nodes must give the same answer.
AGREE = 3
#: Most nodes asked in one round (a node that fails is replaced by another one).
MAX_ASKED = 9
#: Rounds asked when the nodes disagree: at a registration's expiry, or just after a
#: registration or renewal, nodes' copies differ for a moment, so a disagreement is asked
#: again (of freshly chosen nodes) before it is reported.
ROUNDS = 3
#: Seconds between rounds (nodes refresh a copy that missed at most once a second).
RETRY_DELAY = 1.0


class Requester(Protocol):
    """What resolving needs of :class:`session.client.transport.OnionTransport`: one onion
    request to a node, answering (status, body)."""

    async def request(
        self, dest: ServiceNode, method: str, params: Mapping[str, Any]
    ) -> tuple[int, Any]: ...


#: An answer reduced to what must agree: ("found", value, nonce), ("expired",) or ("unknown",).
Answer = tuple[str, ...]


def _answer(body: Any) -> Answer | None:
    """What a node said, or None when its answer is not an ``ons_resolve`` result."""
    result = body.get("result") if isinstance(body, Mapping) else None
    if not isinstance(result, Mapping):
        return None
    value, nonce = result.get("encrypted_value"), result.get("nonce")
    if isinstance(value, str) and isinstance(nonce, str):
        return ("found", value.lower(), nonce.lower())
    if result.get("expired") is True:
        return ("expired",)
    return ("unknown",)


async def _ask(transport: Requester, node: ServiceNode, h: str) -> Answer | None:
    params = {"endpoint": "ons_resolve", "params": {"type": SESSION_TYPE, "name_hash": h}}
    try:
        status, body = await transport.request(node, "oxend_request", params)
    except (PathFailure, NotEnoughNodes):
        return None
    return _answer(body) if status == 200 else None


async def _round(
    transport: Requester, pool: Sequence[ServiceNode], h: str, name: str
) -> list[Answer]:
    """AGREE answers from ``pool`` (in order; failed nodes replaced by the next ones)."""
    answers: list[Answer] = []
    asked = 0
    while len(answers) < AGREE and asked < min(MAX_ASKED, len(pool)):
        batch = pool[asked : asked + AGREE - len(answers)]
        asked += len(batch)
        got = await asyncio.gather(*(_ask(transport, n, h) for n in batch))
        answers.extend(a for a in got if a is not None)
    if len(answers) < AGREE:
        raise NameLookupFailed(
            f"only {len(answers)} of the {asked} nodes asked about @{name} answered; try again"
        )
    return answers


async def resolve(
    transport: Requester,
    nodes: Sequence[ServiceNode],
    name: str,
    *,
    rng: random.Random | None = None,
    rounds: int = ROUNDS,
    retry_delay: float = RETRY_DELAY,
) -> str:
    """The Session ID registered under ``name``.

    Raises :class:`~session.errors.InvalidName` (malformed), :class:`NameNotFound` (nobody
    registered it), :class:`NameExpired` (its registration lapsed) or
    :class:`NameLookupFailed` (too few nodes answered, or their answers still differ after
    ``rounds`` rounds ``retry_delay`` seconds apart).
    """
    name = normalize_name(name)
    h = name_hash_b64(name)
    rng = rng or random.SystemRandom()
    if len(nodes) < AGREE:
        raise NameLookupFailed(f"a name lookup needs {AGREE} nodes; {len(nodes)} are known")
    for attempt in range(max(1, rounds)):
        if attempt:
            await asyncio.sleep(retry_delay)
        pool = list(nodes)
        rng.shuffle(pool)
        answers = await _round(transport, pool, h, name)
        if len(set(answers)) == 1:
            break
    else:
        raise NameLookupFailed(f"the nodes asked about @{name} gave different answers")
    first = answers[0]
    if first[0] == "unknown":
        raise NameNotFound(f"no Session ID is registered under the name @{name}")
    if first[0] == "expired":
        raise NameExpired(f"the registration of the name @{name} has expired")
    try:
        return decrypt_value(name, bytes.fromhex(first[1]), bytes.fromhex(first[2]))
    except (ValueError, DecryptionError):
        raise NameLookupFailed(
            f"the nodes' answer for @{name} does not decrypt to a Session ID"
        ) from None


__all__ = ["AGREE", "resolve"]
