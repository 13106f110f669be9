"""Fuzz harnesses for the Python entry points that read bytes from strangers.

Each harness takes arbitrary bytes and checks the entry point's contract: it returns a value
of the documented shape or raises the documented typed error (a :class:`SessionError` with a
message that can be sent back or shown, and for the storage RPC a 4xx status). Anything else
(an ``AttributeError``, ``RecursionError``, a 5xx, a message that cannot be encoded as UTF-8)
is a bug and escapes the harness.

``ci/fuzz.sh`` runs them under atheris (``tests/fuzz/run_atheris.py``) for a bounded time from
the corpus kept in ``tests/fuzz/corpus/NAME/``; ``test_fuzz_corpus.py`` replays that corpus in
every pytest run, so what a fuzz run once found stays fixed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping

from session import onion, protocol
from session.client import Client, messages
from session.community import auth
from session.community.config import LimitsConfig
from session.community.server import CommunityService
from session.community.store import CommunityStore
from session.community.store import User as CommunityUser
from session.errors import SessionError
from session.identity import Identity
from session.proto import rpc, snodes
from session.service.onion import V4Request, V4Response


def _check_error(e: SessionError) -> None:
    """A typed error has a non-empty message that can be sent or shown as UTF-8."""
    text = str(e)
    assert text, repr(e)
    text.encode("utf-8")  # a lone surrogate echoed from the input would fail here


def rpc_request(data: bytes) -> None:
    """The storage RPC request parser (a client's HTTPS body or an onion request's payload),
    then the checks a node runs before executing: every refusal is a 4xx with a message."""
    now_ms = int(time.time() * 1000)
    for forwarded in (False, True):
        try:
            req = rpc.parse_request(data, forwarded=forwarded)
            rpc.precheck(req, now_ms, forwarded=forwarded)
            rpc.verify_request(req)
        except SessionError as e:
            status = getattr(e, "status", None)
            assert isinstance(status, int) and 400 <= status < 500, (status, str(e))
            _check_error(e)


def onion_v4(data: bytes) -> None:
    """v4 onion payload framing (requests and responses) and the onion layer split."""
    for decode in (onion.v4_decode_request, onion.v4_decode_response):
        try:
            meta, body = decode(data)
        except SessionError as e:
            _check_error(e)
        else:
            assert isinstance(meta, dict)
            assert body is None or isinstance(body, bytes)
    try:
        blob, layer_meta = onion.decode_layer(data)
    except SessionError as e:
        _check_error(e)
    else:
        assert isinstance(blob, bytes) and isinstance(layer_meta, dict)
        assert len(blob) < len(data)


def node_list(data: bytes) -> None:
    """A node list as a client or node receives it (``get_n_service_nodes`` JSON from the
    registry, a node or a ``nodes.json``), then the swarm map every party builds from it."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return  # the HTTP/JSON layer refuses it before the node list is read
    try:
        nodes = snodes.parse_node_list(doc)
    except SessionError as e:
        _check_error(e)
        return
    smap = snodes.SwarmMap(nodes)
    assert all(n.active for n in smap.nodes)
    assert all(0 <= sid < snodes.INVALID_SWARM_ID for sid in smap.swarms)


_SENDER = Identity.from_seed(bytes(range(16)))
_RECIPIENT = Identity.from_seed(bytes(range(16, 32)))


def content(data: bytes) -> None:
    """Receiving a stored 1:1 message: ``data`` once as the stored body itself (WebSocketMessage
    → Envelope parsing) and once as a sealed plaintext from a known sender (unpadding and the
    protobuf ``Content`` decoding that follows decryption)."""
    stored_b64 = base64.b64encode(data).decode()
    try:
        messages.open_stored(_RECIPIENT, "h", stored_b64)
    except SessionError as e:
        _check_error(e)
    sealed = protocol.encrypt_for_recipient(_SENDER, _RECIPIENT.session_id, data)
    try:
        msg = messages.open_stored(
            _RECIPIENT, "h", base64.b64encode(messages.envelope_bytes(sealed, 1)).decode()
        )
    except SessionError as e:
        _check_error(e)
        return
    assert msg.sender == _SENDER.session_id
    messages.expiration_of(msg.content)


class _ReceivingClient:
    """One offline client (the identity ``_RECIPIENT``) in a temporary profile, made on first
    use and kept for the whole run."""

    _dir: tempfile.TemporaryDirectory[str] | None = None
    _client: Client | None = None

    @classmethod
    def get(cls) -> Client:
        if cls._client is None:
            cls._dir = tempfile.TemporaryDirectory(prefix="session-fuzz-")
            cls._client = Client(cls._dir.name, mnemonic=_RECIPIENT.mnemonic, background=False)
        return cls._client


def receive(data: bytes) -> None:
    """A client applying a received 1:1 message: ``data`` is a flags byte (bit 0: sent by the
    client's own identity, as a sync message from another device), the envelope's 8-byte
    big-endian timestamp, then the plaintext sealed to the client (its ``Content`` decides what
    is stored and which events fire). Whatever a sender puts there, the client applies it or
    drops it, nothing raises, and what it stored reads back."""
    if len(data) < 9:
        return
    client = _ReceivingClient.get()
    sender = client.identity if data[0] & 1 else _SENDER
    sent_ms = int.from_bytes(data[1:9], "big")
    sealed = protocol.encrypt_for_recipient(sender, client.session_id, data[9:])
    stored = base64.b64encode(messages.envelope_bytes(sealed, sent_ms)).decode()
    row = (hashlib.sha256(data).hexdigest(), stored, 0)
    applied = client.process_stored([row])
    assert len(applied) <= 1
    for inc in applied:  # what was stored reads back
        conversation = inc.content.dataMessage.syncTarget or inc.sender
        client.contact(inc.sender)
        client.messages(conversation, limit=5)


#: Harness name (as in ``ci/fuzz.sh`` and ``tests/fuzz/corpus/NAME``) → harness.
class _Community:
    """One community server's routes over a store in a temporary directory, made on first use
    and kept for the whole run, and a member who is its global admin (so the input reaches
    every parser behind the permission checks)."""

    service: CommunityService | None = None
    user: CommunityUser | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def get(cls) -> tuple[CommunityService, CommunityUser]:
        if cls.service is None or cls.user is None:
            cls._dir = tempfile.TemporaryDirectory()
            store = CommunityStore(cls._dir.name)
            store.add_room("lobby", "Lobby")
            cls.service = CommunityService(store, bytes(32), LimitsConfig())
            cls.user = store.user("15" + bytes(_SENDER.ed25519_public).hex())
            assert cls.user is not None
            store.set_moderator([cls.user.key], None, admin=True, visible=True)
        return cls.service, cls.user


def community(data: bytes) -> None:
    """The community server's request parsing: the input split into the four ``X-SOGS-*``
    headers (authentication answers 400, 401 or 425, never anything else), then the input as
    the body of each route that reads one, sent by an admin: always an answer below 500."""
    service, user = _Community.get()
    values = [*data.decode("utf-8", "replace").split("\n", 3), "", "", "", ""]
    headers = dict(zip(auth.HEADERS, values[:4], strict=True))
    try:
        auth.authenticate(headers, "POST", "/batch", "", data, bytes(32), require_blind=True)
    except auth.AuthError as e:
        assert e.status in (400, 401, 425), e.status
        _check_error(e)
    for method, path in (
        ("POST", "/room/lobby/message"),
        ("PUT", "/room/lobby"),
        ("POST", f"/user/{user.session_id}/ban"),
        ("POST", f"/room/lobby/permissions/{user.session_id}"),
        ("POST", f"/inbox/{user.session_id}"),
        ("POST", "/batch"),
        ("POST", "/sequence"),
    ):
        found = service.routes.resolve(method, path)
        assert not isinstance(found, V4Response)
        handler, params = found
        fn = service._sync[handler]
        req = V4Request(method, path, {}, {}, data, params)
        resp = service._guard(functools.partial(fn, req, user))
        assert 200 <= resp.status < 500, (path, resp.status, resp.body[:200])


HARNESSES: Mapping[str, Callable[[bytes], None]] = {
    "rpc": rpc_request,
    "onion": onion_v4,
    "snodes": node_list,
    "content": content,
    "receive": receive,
    "community": community,
}
