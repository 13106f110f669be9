"""Closed groups through the client library on a loopback devnet (registry + nodes on
127.0.0.1): create with invites, accept from the message requests, exchange, rename, remove
with a rekey and a revocation (the removed member's later fetches are refused, and the stored
bytes do not open with their keys), the 101st member refused, and bad input dropped with a
logged reason while the conversation keeps working. Clients run without background loops:
each step flushes and polls explicitly, so every wait is on a condition."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from session.client import Client
from session.client.groups import CONTROL
from session.errors import DecryptionError, GroupError, GroupFull, InvalidInput, NetworkError
from session.groups import control
from session.groups.crypto import GroupIdentity
from session.identity import Identity
from session.proto import session_pb2 as pb

pytestmark = pytest.mark.integration


@pytest.fixture
async def people(tmp_path: Path, devnet: Any) -> AsyncIterator[list[Client]]:
    out = []
    for name in ("Alice", "Bob", "Carol"):
        c = Client.open(tmp_path / name, str(devnet.dir / "nodes.json"), background=False)
        await c.start()
        await c.set_display_name(name)
        out.append(c)
    try:
        yield out
    finally:
        for c in out:
            await c.close()


async def settle(*cs: Client) -> None:
    for c in cs:
        assert await c.drain(30) == 0, c.delivery_error


async def poll(*cs: Client) -> None:
    for c in cs:
        await c.poll_once()


async def joined_group(admin: Client, name: str, members: list[Client]) -> str:
    """A group ``admin`` creates with ``members``, who each accept; its ID."""
    gid = await admin.groups.create(name, [m.session_id for m in members])
    await settle(admin)
    for m in members:
        await m.poll_once()
        await m.groups.accept(gid)
    await settle(*members)
    return gid


def other_device(c: Client, home: Path, devnet: Any) -> Client:
    """Another device of ``c``'s user: a client restored from its recovery phrase."""
    return Client.open(
        home, str(devnet.dir / "nodes.json"), background=False, mnemonic=c.identity.mnemonic
    )


def bodies(c: Client, gid: str) -> list[str | None]:
    return [m.body for m in c.messages(gid)]


async def test_group_lifecycle(people: list[Client], caplog: pytest.LogCaptureFixture) -> None:
    a, b, c = people
    await settle(a, b, c)
    await poll(b, c)  # learn each other's names from the profile pushes is not needed
    gid = await a.groups.create("Book club", [b.session_id, c.session_id], description="books")
    assert gid.startswith("03") and a.groups.info("Book").admin
    await settle(a)
    await poll(b, c)
    # the invite is among the message requests; accept by a prefix of the name
    assert [(r.session_id, r.name) for r in b.requests()] == [(gid, "Book club")]
    await b.groups.accept("book")
    await c.groups.accept(gid)
    assert b.requests() == [] and b.groups.info(gid).status == "joined"
    assert b.groups.info(gid).members == sorted([a.session_id, b.session_id, c.session_id])
    assert b.groups.info(gid).admins == [a.session_id]
    await settle(b, c)

    await a.groups.send(gid, "hello group")
    await settle(a)
    await poll(b, c)
    assert "hello group" in bodies(b, gid) and "hello group" in bodies(c, gid)
    await b.groups.send(gid, "hi from bob")
    await settle(b)
    await poll(a, c)
    assert "hi from bob" in bodies(a, gid) and "hi from bob" in bodies(c, gid)
    assert "Bob joined the group" in bodies(a, gid)

    await a.groups.rename(gid, "Readers")
    await settle(a)
    await poll(b, c)
    assert b.groups.info(gid).name == "Readers"
    assert "Alice renamed the group to Readers" in bodies(b, gid)
    with pytest.raises(GroupError, match="only an admin"):
        await b.groups.rename(gid, "Bob's club")

    # remove Carol: new key generation, her token revoked
    await a.groups.remove(gid, [c.session_id])
    await a.groups.send(gid, "after carol left")
    await settle(a)
    await poll(b)
    assert "after carol left" in bodies(b, gid)
    assert any(m.status == CONTROL and m.body == "Alice removed Carol" for m in b.messages(gid))
    await poll(c)
    assert c.groups.info(gid).status == "removed"
    assert "after carol left" not in bodies(c, gid)
    # the stored bytes of the new message do not open with every key Carol holds
    node = a.rpc.dir.swarm(gid)[0]
    raw = await a.rpc.retrieve(GroupIdentity(a.groups._state(gid).admin_key.seed()), 11, node, "")  # type: ignore[union-attr]
    newest = base64.b64decode(raw["messages"][-1]["data"])
    assert a.groups._state(gid).keys.decrypt_message(newest)  # the admin opens it
    with pytest.raises(DecryptionError):
        c.groups._state(gid).keys.decrypt_message(newest)

    # bad input: a member forges an admin's control message; a stranger's message; a
    # tampered ciphertext. Each is dropped with a logged reason, and the next message arrives.
    st_b = b.groups._state(gid)
    fake = pb.Content()
    mc = fake.dataMessage.groupUpdateMessage.memberChangeMessage
    mc.type = pb.GroupUpdateMemberChangeMessage.REMOVED
    mc.memberSessionIds.append(a.session_id)
    mc.adminSignature = control.sign(
        GroupIdentity.generate(), control.member_change_text(control.MemberChange.REMOVED, 1)
    )
    forged = b.groups._group_content(st_b, fake, b._next_sent_ms())
    stranger = Identity.generate()
    text = pb.Content()
    text.dataMessage.body = "from a stranger"
    env = pb.Envelope(
        type=pb.Envelope.CLOSED_GROUP_MESSAGE,
        timestamp=b._next_sent_ms(),
        content=text.SerializeToString(),
    )
    from session.groups.crypto import encrypt_message

    strangers = encrypt_message(stranger, st_b.keys.encryption_key, env.SerializeToString())
    tampered = bytearray(b.groups._group_content(st_b, text, b._next_sent_ms()))
    tampered[40] ^= 1
    for data in (forged, strangers, bytes(tampered)):
        await b.rpc.store(
            gid,
            11,
            base64.b64encode(data).decode(),
            b.clock.now_ms() + 3_600_000,
            identity=st_b.signer,
        )
    await b.groups.send(gid, "still talking")
    await settle(b)
    with caplog.at_level(logging.INFO, logger="session.client.groups"):
        await poll(a)
    assert "still talking" in bodies(a, gid)
    assert "from a stranger" not in bodies(a, gid)
    assert not any("removed Alice" in (x or "") for x in bodies(a, gid))
    reasons = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("control message" in r for r in reasons)
    assert any("not a member" in r for r in reasons)
    assert len(reasons) >= 3

    # the state survives a restart
    name = a.groups.info(gid).name
    await a.close()
    a2 = Client.open(a.store.root, None, background=False)
    try:
        assert a2.groups.info(gid).name == name and "still talking" in bodies(a2, gid)
        assert a2.groups._state(gid).keys.encryption_key == st_b.keys.encryption_key
    finally:
        await a2.close()


async def test_group_limits(people: list[Client]) -> None:
    a = people[0]
    others = [Identity.generate().session_id for _ in range(100)]
    with pytest.raises(GroupFull, match="at most 100 members"):
        await a.groups.create("too big", others)
    gid = await a.groups.create("full", others[:99])
    assert len(a.groups.info(gid).members) == 100
    with pytest.raises(GroupFull):
        await a.groups.invite(gid, [others[99]])
    with pytest.raises(InvalidInput):
        await a.groups.create("", [])
    with pytest.raises(GroupError, match="no group"):
        a.groups.resolve("nothing like this")


async def test_groups_reach_our_other_device(
    people: list[Client], tmp_path: Path, devnet: Any
) -> None:
    """A group created on one device, and an invitation accepted on another, reach every device
    of the user through the UserGroups config (namespace 5); the other device then reads and
    writes in the group with the synced secrets."""
    a, b, _ = people
    a2 = other_device(a, tmp_path / "alice-laptop", devnet)
    b2 = other_device(b, tmp_path / "bob-laptop", devnet)
    try:
        await a2.start()
        await b2.start()
        gid = await a.groups.create("two devices", [b.session_id])
        await settle(a)
        await poll(b)
        await b.groups.accept(gid)
        await settle(b)
        await poll(a2, b2)
        assert a2.groups.info(gid).admin and a2.groups.info(gid).status == "joined"
        assert not b2.groups.info(gid).admin and b2.groups.info(gid).status == "joined"
        await a2.groups.send(gid, "from alice's laptop")
        await settle(a2)
        await poll(b2, b)
        assert "from alice's laptop" in bodies(b2, gid) and "from alice's laptop" in bodies(b, gid)
        await b2.groups.send(gid, "from bob's laptop")
        await settle(b2)
        await poll(a)
        assert "from bob's laptop" in bodies(a, gid)
        # read on one device, read on the other (the group's read mark in ConvoInfoVolatile);
        # and a device restored afterwards stores it read too
        await a.mark_read(gid)
        await settle(a)
        await poll(a2)
        assert "from bob's laptop" in bodies(a2, gid)  # (stored, so the mark had to apply)
        unread = [m.body for m in a2.messages(gid) if m.status == "received"]
        assert "from bob's laptop" not in unread
        a3 = other_device(a, tmp_path / "alice-tablet", devnet)
        try:
            await a3.start()
            await poll(a3)
            await a3.groups.poll(gid)
            assert "from bob's laptop" in bodies(a3, gid)
            assert not [m for m in a3.messages(gid) if m.status == "received"]
        finally:
            await a3.close()
    finally:
        await a2.close()
        await b2.close()


async def test_two_admins_remove_at_once_and_a_member_leaves(
    people: list[Client], tmp_path: Path, devnet: Any
) -> None:
    """Alice promotes Bob; each removes a different member without seeing the other's change.
    After polling, both admins issue the same fresh key over the merged membership, and every
    remaining member reads the next message; the removed ones cannot. Then a member leaves and
    an admin removes them with a new key."""
    a, b, c = people
    extra = []
    for n in ("Dave", "Erin"):
        x = Client.open(tmp_path / n, str(devnet.dir / "nodes.json"), background=False)
        await x.start()
        await x.set_display_name(n)
        extra.append(x)
    d, e = extra
    try:
        gid = await a.groups.create("admins", [m.session_id for m in (b, c, d, e)])
        await settle(a)
        for m in (b, c, d, e):
            await m.poll_once()
            await m.groups.accept(gid)
        await settle(b, c, d, e)
        await a.groups.promote(gid, b.session_id)
        await settle(a)
        await poll(b)
        assert b.groups.info(gid).admin
        # at the same moment: Alice removes Carol, Bob removes Dave
        await a.groups.remove(gid, [c.session_id])
        await b.groups.remove(gid, [d.session_id])
        await settle(a, b)
        await poll(a, b)  # each sees the other's key: same generation twice -> a fresh one
        await settle(a, b)
        await poll(a, b, e)
        ka, kb, ke = (x.groups._state(gid).keys for x in (a, b, e))
        assert ka.encryption_key == kb.encryption_key == ke.encryption_key
        assert ka.current_generation == 2
        assert sorted(a.groups.info(gid).members) == sorted(
            [a.session_id, b.session_id, e.session_id]
        )
        assert (
            a.groups.info(gid).members == b.groups.info(gid).members == e.groups.info(gid).members
        )
        await a.groups.send(gid, "after both removals")
        await settle(a)
        await poll(b, e)
        assert "after both removals" in bodies(b, gid) and "after both removals" in bodies(e, gid)
        newest = a.groups._group_content(a.groups._state(gid), pb.Content(), a._next_sent_ms())
        for gone in (c, d):
            with pytest.raises(DecryptionError):
                gone.groups._state(gid).keys.decrypt_message(newest)
        # Erin leaves: Alice (an admin) removes her with a new key on the next poll
        await e.groups.leave(gid)
        assert e.groups.all() == []
        await poll(a)
        await settle(a)
        assert sorted(a.groups.info(gid).members) == sorted([a.session_id, b.session_id])
        assert "Erin left the group" in bodies(a, gid)
        assert a.groups._state(gid).keys.current_generation == 3
    finally:
        for x in extra:
            await x.close()


async def test_remove_with_their_messages(people: list[Client]) -> None:
    """An admin removes a member and deletes their messages: the admin-signed
    deleteMemberContent makes the others drop them too; the rest of the history stays."""
    a, b, c = people
    gid = await joined_group(a, "cleanup", [b, c])
    await c.groups.send(gid, "carol's words")
    await b.groups.send(gid, "bob's words")
    await settle(b, c)
    await poll(a, b)
    assert "carol's words" in bodies(a, gid) and "carol's words" in bodies(b, gid)
    await a.groups.remove(gid, [c.session_id], delete_messages=True)
    assert "carol's words" not in bodies(a, gid)
    await settle(a)
    await poll(b)
    assert "carol's words" not in bodies(b, gid)
    assert "bob's words" in bodies(b, gid) and "Alice removed Carol" in bodies(b, gid)


async def test_quoted_reply_in_a_group_from_the_tui(people: list[Client]) -> None:
    """Ctrl+R in a group's conversation (Textual's pilot on Bob's real client): the reply
    carries Session's quote (sent time and author) to Alice, who shows it with the quote."""
    from session.tui.app import SessionTui
    from session.tui.widgets import MessageLine
    from tests.tui.test_tui_pilot import until

    a, b, _ = people
    await settle(a, b)
    gid = await a.groups.create("Lunch", [b.session_id])
    await settle(a)
    await poll(b)
    await b.groups.accept(gid)
    await a.groups.send(gid, "lunch at noon?")
    await settle(a, b)
    await poll(b)
    [asked] = [m for m in b.messages(gid) if m.body == "lunch at noon?"]
    with pytest.raises(InvalidInput, match="not in this group"):
        await a.groups.send(gid, "wrong", reply_to=replace(asked, conversation=b.session_id))
    app = SessionTui(b)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.open_conversation(gid)
        await pilot.press("ctrl+r")
        replying = app.query_one("#replying")
        assert "replying to Alice: lunch at noon?" in str(replying.render())
        await pilot.press(*"yes!", "enter")
        await until(pilot, lambda: b.messages(gid)[-1].body == "yes!", "reply sent")
        mine = b.messages(gid)[-1]
        assert mine.quote == (asked.sent_ms, a.session_id)
        line = app.query_one(f"#m{mine.id}", MessageLine)
        assert "┃ Alice: lunch at noon?" in str(line.render())
    await settle(b)
    await poll(a)
    [got] = [m for m in a.messages(gid) if m.body == "yes!"]
    assert got.quote == (asked.sent_ms, a.session_id)
    assert a.quoted(got) is not None and a.quoted(got).body == "lunch at noon?"  # type: ignore[union-attr]
    assert "┃ you: lunch at noon?" in MessageLine.content_of(a, got).plain


async def test_a_member_who_left_or_was_removed_can_be_invited_back(
    people: list[Client], tmp_path: Path, devnet: Any
) -> None:
    """Leaving, or being removed, revokes a member's access to the group's swarm; an admin's
    new invitation lets them in again: they accept, read the group and write to it. A new
    device of the admin, restored from the phrase, reads the whole history, Carol's old leave
    included, and does not remove her again."""
    a, b, c = people
    gid = await joined_group(a, "Tennis", [b, c])
    await c.groups.leave(gid)
    await poll(a)  # (Alice sees Carol leave: her token is revoked, the key renewed)
    await settle(a)
    await a.groups.remove(gid, [b.session_id])
    await settle(a)
    await poll(b)
    assert b.groups.all()[0].status == "removed"
    with pytest.raises(GroupError, match="you were removed from this group"):
        await b.groups.send(gid, "still here?")
    # the swarm not reached when letting Carol in again: nothing changed, and the invite can
    # be made again
    real = a.rpc.unrevoke_subaccounts

    async def unreachable(*args: Any) -> None:
        raise NetworkError("no onion path answered")

    a.rpc.unrevoke_subaccounts = unreachable  # type: ignore[method-assign]
    with pytest.raises(NetworkError):
        await a.groups.invite(gid, [c.session_id])
    assert c.session_id not in a.groups.info(gid).members and a.queued() == 0
    a.rpc.unrevoke_subaccounts = real  # type: ignore[method-assign]
    for m in (c, b):
        await a.groups.invite(gid, [m.session_id])
        await settle(a)
        await m.poll_once()
        await m.groups.accept(gid)
        await m.groups.send(gid, f"{m.display_name} is back")
        await settle(m)
    await poll(a, b, c)
    for m in (a, b, c):
        assert {"Carol is back", "Bob is back"} <= set(bodies(m, gid))
    assert "Alice added you" in bodies(c, gid) and "Alice added Carol" in bodies(b, gid)
    everyone = sorted(m.session_id for m in (a, b, c))
    assert sorted(a.groups.info(gid).members) == everyone
    a2 = other_device(a, tmp_path / "alice-new-phone", devnet)
    try:
        await a2.start()
        await poll(a2)
        assert "Carol left the group" in bodies(a2, gid)  # (the old leave, read again)
        await settle(a2)
        await poll(a, c)
        assert sorted(a2.groups.info(gid).members) == sorted(a.groups.info(gid).members) == everyone
        assert c.groups.info(gid).status == "joined"
    finally:
        await a2.close()


async def test_a_disappearing_timer_out_of_range_is_refused_when_set(people: list[Client]) -> None:
    a = people[0]
    gid = await a.groups.create("timers", [])
    for seconds in (1, 9, 15 * 24 * 3600, -5):
        with pytest.raises(InvalidInput, match="between 10 s and 14 days"):
            await a.groups.set_disappearing(gid, seconds)
    await a.groups.set_disappearing(gid, 10)
    await a.groups.send(gid, "still sends")
    assert a.groups.info(gid).disappear_after_send == 10


async def test_a_groups_whole_name_finds_it_beside_longer_names(people: list[Client]) -> None:
    a = people[0]
    readers = await a.groups.create("Readers", [])
    readers2 = await a.groups.create("Readers 2", [])
    assert a.groups.resolve("Readers") == a.groups.resolve("readers") == readers
    assert a.groups.resolve("Readers 2") == a.groups.resolve("readers ") == readers2
    with pytest.raises(GroupError, match="2 groups match 'Read'"):
        a.groups.resolve("Read")
    await a.groups.create("Readers", [])  # (two of that name now: the name alone is not enough)
    with pytest.raises(GroupError, match="3 groups match 'Readers'"):
        a.groups.resolve("Readers")


async def test_a_member_invited_without_history_reads_only_what_comes_after(
    people: list[Client],
) -> None:
    """Invited with share_history=False the group gets a new key: the new member reads what
    is sent from then on, not the messages stored before; the others read both."""
    a, b, c = people
    gid = await joined_group(a, "no history", [b])
    await a.groups.set_description(gid, "the rules")
    await a.groups.send(gid, "before carol")
    await settle(a)
    await a.groups.invite(gid, [c.session_id], share_history=False)
    await settle(a)
    await c.poll_once()
    await c.groups.accept(gid)
    await settle(c)
    await a.groups.send(gid, "after carol")
    await settle(a)
    await poll(b, c)
    assert "after carol" in bodies(c, gid) and "before carol" not in bodies(c, gid)
    assert c.groups.info(gid).description == "the rules"  # (the info config, new key)
    assert {"before carol", "after carol"} <= set(bodies(b, gid))
    assert a.groups._state(gid).keys.current_generation == 1


async def test_a_restored_admin_device_keeps_a_member_invited_back_who_has_not_answered(
    people: list[Client], tmp_path: Path, devnet: Any
) -> None:
    """Carol left and the admin invited her back; before she answers, the admin restores a
    device from the phrase: it reads her old leave and the admin's own later "added", keeps her
    invited, and she can still accept and write."""
    a, b, c = people
    gid = await joined_group(a, "pending", [b, c])
    await c.groups.leave(gid)
    await poll(a)
    await settle(a)
    await a.groups.invite(gid, [c.session_id])
    await settle(a)
    a2 = other_device(a, tmp_path / "alice-restored", devnet)
    try:
        await a2.start()
        await poll(a2)
        assert "Carol left the group" in bodies(a2, gid)  # (the old leave, read again)
        await settle(a2)
        assert c.session_id in a2.groups.info(gid).members
    finally:
        await a2.close()
    await poll(a)
    await c.poll_once()
    await c.groups.accept(gid)
    await c.groups.send(gid, "made it back")
    await settle(c)
    await poll(a, b)
    assert "made it back" in bodies(a, gid) and "made it back" in bodies(b, gid)
