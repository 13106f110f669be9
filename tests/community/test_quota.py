"""The server-wide storage budget (``max_storage_bytes``: room files, post data and DMs
together, 507 past it) and the per-member rate limits on uploads and direct messages (429)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

import pytest

from session.community import store as store_mod
from session.community.server import RunningCommunity
from session.community.store import member_key
from session.errors import StorageError
from session.testing.community import Member


def _dm(data: bytes) -> dict[str, str]:
    return {"message": base64.b64encode(data).decode()}


@pytest.mark.parametrize("limits", [{"max_storage_bytes": 20_000, "max_file_size": 10_000}])
async def test_storage_budget_refuses_with_507_keeps_what_is_stored_and_expiry_frees_it(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = member(), member()
    store = server.service.store
    blobs = [os.urandom(9_000), os.urandom(9_000)]
    fids = []
    for blob in blobs:
        status, doc = await alice.call("POST", "/room/lobby/file", body=blob)
        assert status == 201, doc
        fids.append(doc["id"])
    post = await alice.post(b"hello")
    await bob.call("GET", "/inbox")  # bob becomes known to the server
    assert (await alice.call("POST", f"/inbox/{bob.id}", _dm(b"d" * 500)))[0] == 201
    used = store.used_bytes()
    assert 18_500 < used < 20_000
    stored_files = sorted(p.name for p in store.files.iterdir())

    status, msg = await alice.call("POST", "/room/lobby/file", body=os.urandom(5_000))
    assert status == 507 and b"out of storage space for this upload" in msg
    status, msg = await alice.call("POST", f"/inbox/{bob.id}", _dm(b"d" * 2_000))
    assert status == 507 and b"out of storage space for this message" in msg
    status, msg = await bob.call("POST", "/room/lobby/message", bob.post_doc(b"p" * 2_000))
    assert status == 507 and b"out of storage space for this post" in msg
    status, msg = await alice.call(
        "PUT", f"/room/lobby/message/{post['id']}", alice.post_doc(b"e" * 2_000)
    )
    assert status == 507 and b"out of storage space for this edit" in msg
    # Nothing was stored by the refusals, and nothing stored before was lost.
    assert store.used_bytes() == used
    assert sorted(p.name for p in store.files.iterdir()) == stored_files
    assert not any(store.tmp.iterdir())
    for fid, blob in zip(fids, blobs, strict=True):
        assert await bob.call("GET", f"/room/lobby/file/{fid}") == (200, blob)
    _, msgs = await bob.call("GET", "/room/lobby/messages/recent")
    assert [m["id"] for m in msgs] == [post["id"]]
    assert len((await bob.call("GET", "/inbox"))[1]) == 1

    # Unreferenced uploads expire after an hour; the sweep gives their space back.
    real = store_mod.now
    monkeypatch.setattr(store_mod, "now", lambda: real() + 2 * 3600)
    assert (await server.service.sweep())[0] == 2
    assert store.used_bytes() == used - 18_000
    status, doc = await alice.call("POST", "/room/lobby/file", body=os.urandom(5_000))
    assert status == 201, doc
    assert (await alice.call("POST", f"/inbox/{bob.id}", _dm(b"d" * 2_000)))[0] == 201
    # A restarted store counts the same total from its database.
    assert store_mod.CommunityStore(store.root).used_bytes() == store.used_bytes()


@pytest.mark.parametrize(
    "limits",
    [{"rate_limit_uploads": 2, "rate_limit_uploads_interval": 60.0,
      "rate_limit_dms": 2, "rate_limit_dms_interval": 30.0}],
)  # fmt: skip
async def test_upload_and_dm_rate_limits_per_member_with_admins_exempt(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, admin = member(), member(), member()
    store = server.service.store
    store.add_room("other", "Other")
    store.set_moderator([member_key(admin.id)], None, admin=True, visible=False)
    await bob.call("GET", "/inbox")
    assert (await alice.call("POST", "/room/lobby/file", body=b"one"))[0] == 201
    assert (await alice.call("POST", "/room/other/file", body=b"two"))[0] == 201
    # The limit counts a member's uploads in every room.
    status, msg = await alice.call("POST", "/room/lobby/file", body=b"three")
    assert status == 429 and b"Rate limited: at most 2 uploads per 60 seconds" in msg
    assert (await alice.call("POST", "/room/other/file", body=b"three"))[0] == 429
    assert (await bob.call("POST", "/room/lobby/file", body=b"bob's"))[0] == 201
    for i in range(2):
        assert (await alice.call("POST", f"/inbox/{bob.id}", _dm(b"hi %d" % i)))[0] == 201
    status, msg = await alice.call("POST", f"/inbox/{bob.id}", _dm(b"again"))
    assert status == 429 and b"Rate limited: at most 2 direct messages per 30 seconds" in msg
    assert len((await bob.call("GET", "/inbox"))[1]) == 2
    for i in range(4):  # a server admin is not rate limited
        assert (await admin.call("POST", "/room/lobby/file", body=b"a%d" % i))[0] == 201
        assert (await admin.call("POST", f"/inbox/{bob.id}", _dm(b"a%d" % i)))[0] == 201
    real = store_mod.now
    monkeypatch.setattr(store_mod, "now", lambda: real() + 61)
    assert (await alice.call("POST", "/room/lobby/file", body=b"later"))[0] == 201
    assert (await alice.call("POST", f"/inbox/{bob.id}", _dm(b"later")))[0] == 201


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (OSError(5, "Input/output error"), "the community server cannot store files right now"),
        (StorageError("the community store is closed"), "the community store is closed"),
    ],
)
async def test_a_failing_store_is_a_503_with_one_sentence(
    server: RunningCommunity,
    member: Callable[[], Member],
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    says: str,
) -> None:
    def room(token: str) -> None:
        raise failure

    monkeypatch.setattr(server.service.store, "room", room)
    status, doc = await member().call("GET", "/room/lobby")
    assert status == 503 and says.encode() in doc


async def test_an_encoded_body_is_refused(member: Callable[[], Member]) -> None:
    status, doc = await member().call(
        "POST", "/room/lobby/message", body=b"x" * 10, headers={"Content-Encoding": "gzip"}
    )
    assert status == 400 and b"drop the Content-Encoding header: bodies are raw" in doc
