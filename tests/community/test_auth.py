"""Request authentication (client spec §4.3): Session's vectors verify, and each failure gets
SOGS's status and message."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from session.blinding import sogs_auth_headers
from session.community import store as store_mod
from session.community.auth import AuthError, authenticate
from session.community.server import RunningCommunity, start
from session.identity import Identity
from session.testing.community import Member, community_config
from vectorlib import case_ids, load_vectors

CASES = load_vectors("sogs_auth")


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_session_vectors_authenticate(case: dict) -> None:
    body = b"" if case["body_utf8"] is None else case["body_utf8"].encode()
    path, _, query = case["path"].partition("?")
    headers = {k.lower(): v for k, v in case["headers"].items()}
    signer = authenticate(
        headers,
        case["method"],
        path,
        query,
        body,
        bytes.fromhex(case["server_pk"]),
        require_blind=case["blinded"],
        now=case["timestamp"],
    )
    assert signer is not None
    if case["blinded"]:
        assert signer.session_id == case["headers"]["X-SOGS-Pubkey"]
    else:
        assert signer.session_id == case["session_id"]
    # One changed byte anywhere in what is signed: 401.
    with pytest.raises(AuthError) as e:
        authenticate(
            headers,
            case["method"],
            path + "x",
            query,
            body,
            bytes.fromhex(case["server_pk"]),
            require_blind=case["blinded"],
            now=case["timestamp"],
        )
    assert e.value.status == 401


def _signed(member: Member, method: str, path: str, **kw: object) -> dict[str, str]:
    return sogs_auth_headers(member.identity, member.pk, method, path, **kw)  # type: ignore[arg-type]


async def test_each_failure_has_sogs_status(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    m = member()
    path = "/room/lobby/messages/recent"
    assert (await m.call("GET", path))[0] == 200
    # A reused nonce: 425.
    h = _signed(m, "GET", path)
    assert (await m.call("GET", path, signed=False, headers=h))[0] == 200
    status, body = await m.call("GET", path, signed=False, headers=h)
    assert status == 425 and b"Nonce cannot be reused" in body
    # 25 hours off: 425.
    h = _signed(m, "GET", path, timestamp=int(time.time()) - 25 * 3600)
    status, body = await m.call("GET", path, signed=False, headers=h)
    assert status == 425 and b"too far from current time" in body
    # A bad signature: 401.
    h = _signed(m, "GET", path)
    sig = bytearray(base64.b64decode(h["X-SOGS-Signature"]))
    sig[5] ^= 1
    h["X-SOGS-Signature"] = base64.b64encode(bytes(sig)).decode()
    status, body = await m.call("GET", path, signed=False, headers=h)
    assert status == 401 and b"verification failed" in body
    # Signed for another path: 401.
    h = _signed(m, "GET", "/room/lobby/messages/recent?limit=5")
    assert (await m.call("GET", path, signed=False, headers=h))[0] == 401
    # Malformed: 400.
    for broken in (
        {"X-SOGS-Pubkey": m.id},
        {**_signed(m, "GET", path), "X-SOGS-Nonce": "short"},
        {**_signed(m, "GET", path), "X-SOGS-Pubkey": "16" + m.id[2:]},
        {**_signed(m, "GET", path), "X-SOGS-Timestamp": "soon"},
        {**_signed(m, "GET", path), "X-SOGS-Signature": "!!"},
    ):
        status, body = await m.call("GET", path, signed=False, headers=broken)
        assert status == 400, (broken, body)
    # An unblinded key on a server that requires blinding: 400 with SOGS's message.
    h = sogs_auth_headers(Identity.generate(), m.pk, "GET", path, blinded=False)
    status, body = await m.call("GET", path, signed=False, headers=h)
    assert status == 400 and b"requires the use of blinded ids" in body


async def test_banned_member_gets_403(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    m = member()
    await m.post(b"hello")
    server.service.store.ban([m.id[:64] + f"{int(m.id[64:], 16) & 0x7F:02x}"], None, None)
    status, body = await m.call("GET", "/room/lobby/messages/recent")
    assert status == 403 and body == b"Banned"
    # Anonymous reading still works; the ban lifts with unban.
    assert (await m.call("GET", "/room/lobby/messages/recent", signed=False))[0] == 200


async def test_unblinded_key_accepted_when_blinding_not_required(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = await start(community_config(tmp_path, require_blind=False))
    try:
        await _unblinded(server, Member(server, http))
    finally:
        await server.close()


async def _unblinded(server: RunningCommunity, m: Member) -> None:
    ident = Identity.generate()
    h = sogs_auth_headers(ident, m.pk, "GET", "/capabilities", blinded=False)
    status, doc = await m.call("GET", "/capabilities", signed=False, headers=h)
    assert status == 200 and "blind" not in doc["capabilities"]
    assert server.service.store.user(ident.session_id, create=False) is not None


async def test_a_nonce_is_kept_while_its_request_could_be_replayed(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = member()
    path = "/room/lobby/messages/recent"
    ts = int(time.time())
    h = _signed(m, "GET", path, timestamp=ts)
    assert (await m.call("GET", path, signed=False, headers=h))[0] == 200
    real = store_mod.now
    monkeypatch.setattr(store_mod, "now", lambda: real() + 23 * 3600)
    await server.service.sweep()
    assert (await m.call("GET", path, signed=False, headers=h))[0] == 425  # still known
    monkeypatch.setattr(store_mod, "now", lambda: real() + 25 * 3600)
    assert (await server.service.sweep())[2] >= 1
    # Forgotten now, and no longer needed: a day later the timestamp itself is refused.
    lower = {k.lower(): v for k, v in h.items()}
    with pytest.raises(AuthError) as e:
        authenticate(
            lower, "GET", path, "", b"", bytes.fromhex(m.pk), require_blind=True, now=ts + 25 * 3600
        )
    assert e.value.status == 425 and "too far from current time" in str(e.value)
