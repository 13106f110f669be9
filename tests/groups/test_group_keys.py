"""The group Keys config (session.groups.keys): rekey messages recomputed independently with
libsodium (PyNaCl) and hashlib, key rotation on removal checked on real ciphertext, supplements
for added members, the 60-day retention, concurrent rekeys by two admins, bad key messages."""

from __future__ import annotations

import hashlib

import pytest
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
    crypto_sign_seed_keypair,
    randombytes_buf_deterministic,
)
from nacl.signing import SigningKey

from session.errors import DecryptionError, InvalidInput, InvalidSignature
from session.groups import bt
from session.groups.crypto import GroupIdentity
from session.groups.keys import KEY_EXPIRY_MS, MAX_MEMBERS, GroupKeys, NoGroupKey
from session.identity import Identity

DAY = 24 * 3600 * 1000


def h(data: bytes, key: bytes, size: int) -> bytes:
    return hashlib.blake2b(data, key=key, digest_size=size).digest()


def reference_rekey(seed: bytes, session_ids: list[str], gen: int) -> tuple[bytes, bytes]:
    """The rekey message as libsession builds it, from libsodium primitives."""
    pk, sk = crypto_sign_seed_keypair(seed)
    ids = sorted(session_ids)
    h2 = h(seed, b"SessionGroupKeySeed", 32)
    h1 = h(b"".join(s.encode() for s in ids) + str(gen).encode() + h2, b"SessionGroupKeyGen", 56)
    key, nonce = h1[:32], h1[32:]
    admin = crypto_aead_xchacha20poly1305_ietf_encrypt(
        key, None, nonce, h(seed, b"SessionGroupKeyAdminKey", 32)
    )
    a = crypto_sign_ed25519_sk_to_curve25519(sk)
    big_a = crypto_sign_ed25519_pk_to_curve25519(pk)
    entries = []
    for s in ids:
        b = bytes.fromhex(s[2:])
        k = h(crypto_scalarmult(a, b) + big_a + b, b"SessionGroupKeyMemberKey", 32)
        entries.append(crypto_aead_xchacha20poly1305_ietf_encrypt(key, None, nonce, k))
    if len(entries) % 75:
        n = 75 - len(entries) % 75
        junk = randombytes_buf_deterministic(48 * n, h(h1 + sk, b"SessionGroupJunkMembers", 32))
        entries += [junk[i : i + 48] for i in range(0, len(junk), 48)]
    body = bt.encode({b"#": nonce, b"G": gen, b"K": admin, b"k": entries})[:-1]
    sig = SigningKey(seed).sign(body).signature
    return body + b"1:~64:" + sig + b"e", key


@pytest.mark.parametrize("n", [1, 3, 75, 76])
def test_rekey_matches_an_independent_libsodium_computation(n: int) -> None:
    group = GroupIdentity(bytes(range(32)))
    ids = [Identity(bytes([i]) * 16).session_id for i in range(1, n + 1)]
    keys = GroupKeys(group.group_id, Identity(), admin=group)
    msg = keys.rekey(reversed(ids))
    want, key = reference_rekey(group.seed(), ids, 0)
    assert msg == want
    assert keys.encryption_key == key and keys.pending_config == msg


class Group:
    """A group with an admin device and member devices, loading key messages like clients."""

    def __init__(self, n_members: int) -> None:
        self.group = GroupIdentity.generate()
        self.admin_me = Identity()
        self.admin = GroupKeys(self.group.group_id, self.admin_me, admin=self.group)
        self.people = [Identity() for _ in range(n_members)]
        self.devices = {p.session_id: GroupKeys(self.group.group_id, p) for p in self.people}
        self.t = 1_700_000_000_000
        self.stored: list[tuple[str, bytes, int]] = []

    def store(self, msg: bytes, at: int | None = None) -> tuple[str, bytes, int]:
        self.t = at if at is not None else self.t + 1000
        item = (hashlib.sha256(msg).hexdigest(), msg, self.t)
        self.stored.append(item)
        return item

    def deliver(self, item: tuple[str, bytes, int], to: list[GroupKeys]) -> list[bool]:
        return [d.load_key_message(*item) for d in to]

    def everyone(self) -> list[GroupKeys]:
        return [self.admin, *self.devices.values()]

    def ids(self, *people: Identity) -> list[str]:
        return [self.admin_me.session_id, *(p.session_id for p in people)]


def test_removal_rotates_the_key_and_supplements_add_members() -> None:
    g = Group(3)
    bob, carol, dave = g.people
    first = g.store(g.admin.rekey(g.ids(bob, carol)))
    assert g.deliver(first, g.everyone()) == [True, True, True, False]  # dave is not in it yet
    assert g.admin.pending_config is None  # loading its own message settles it
    old = g.devices[bob.session_id].encrypt_message(b"before")
    assert g.devices[carol.session_id].decrypt_message(old).sender == bob.session_id
    with pytest.raises(NoGroupKey):
        g.devices[dave.session_id].decrypt_message(old)

    # remove Carol: a new generation without her
    second = g.store(g.admin.rekey(g.ids(bob)))
    assert g.deliver(second, g.everyone()) == [True, True, False, False]
    carol_keys = g.devices[carol.session_id]
    assert carol_keys.current_generation == 0 and g.admin.current_generation == 1
    after = g.devices[bob.session_id].encrypt_message(b"after")
    assert g.admin.decrypt_message(after).plaintext == b"after"
    with pytest.raises(DecryptionError):
        carol_keys.decrypt_message(after)  # the real stored bytes stay closed to her
    assert carol_keys.decrypt_message(old).plaintext == b"before"

    # add Dave with a supplement: he gets every generation, old messages included
    supp = g.store(g.admin.key_supplement([dave.session_id]))
    assert g.deliver(supp, [g.devices[dave.session_id], carol_keys]) == [True, False]
    dave_keys = g.devices[dave.session_id]
    assert [k.generation for k in dave_keys.keys] == [0, 1]
    assert dave_keys.decrypt_message(old).plaintext == b"before"
    assert dave_keys.decrypt_message(after).plaintext == b"after"
    assert dave_keys.encryption_key == g.admin.encryption_key


def test_superseded_keys_expire_after_60_days() -> None:
    g = Group(1)
    (bob,) = g.people
    dev = g.devices[bob.session_id]
    t0 = g.t
    g.deliver(g.store(g.admin.rekey(g.ids(bob)), at=t0), [g.admin, dev])
    g.deliver(g.store(g.admin.rekey(g.ids(bob)), at=t0 + DAY), [g.admin, dev])
    g.deliver(g.store(g.admin.rekey(g.ids(bob)), at=t0 + DAY + KEY_EXPIRY_MS), [g.admin, dev])
    assert [k.generation for k in dev.keys] == [0, 1, 2]  # gen 1 is exactly 60 days old
    late = g.store(g.admin.rekey(g.ids(bob)), at=t0 + DAY + KEY_EXPIRY_MS + 1)
    g.deliver(late, [g.admin, dev])
    assert [k.generation for k in dev.keys] == [1, 2, 3]  # gen 0 dropped, gen 1 still kept
    assert [k.generation for k in g.admin.keys] == [1, 2, 3]
    assert g.stored[0][0] not in dev.current_hashes()
    assert late[0] in dev.current_hashes()


def test_two_admins_removing_different_members_converge() -> None:
    g = Group(4)
    bob, carol, dave, erin = g.people
    admin2 = GroupKeys(g.group.group_id, bob, admin=g.group)  # Bob was promoted
    g.devices[bob.session_id] = admin2
    base = g.store(g.admin.rekey(g.ids(bob, carol, dave, erin)))
    g.deliver(base, g.everyone())
    # at the same moment: admin 1 removes Carol, admin 2 (Bob) removes Dave
    m1 = g.admin.rekey(g.ids(bob, dave, erin))
    m2 = admin2.rekey(g.ids(bob, carol, erin))
    i1, i2 = g.store(m1), g.store(m2)
    devices = g.everyone()
    for n, d in enumerate(devices):  # each device sees the two in its own order
        for item in (i1, i2) if n % 2 else (i2, i1):
            d.load_key_message(*item)
    remaining = [g.admin, admin2, g.devices[erin.session_id]]
    newest = {d.encryption_key for d in remaining}
    assert len(newest) == 1  # everyone left agrees on one key
    assert g.admin.needs_rekey() and admin2.needs_rekey()
    # an admin settles it over the merged membership (both removals)
    final = g.store(g.admin.rekey(g.ids(bob, erin)))
    g.deliver(final, devices)
    assert not g.admin.needs_rekey()
    assert len({d.encryption_key for d in remaining}) == 1
    msg = g.devices[erin.session_id].encrypt_message(b"next")
    for d in remaining:
        assert d.decrypt_message(msg).plaintext == b"next"
    for gone in (carol, dave):
        with pytest.raises(DecryptionError):
            g.devices[gone.session_id].decrypt_message(msg)


def test_bad_key_messages_change_nothing() -> None:
    g = Group(1)
    (bob,) = g.people
    dev = g.devices[bob.session_id]
    good = g.store(g.admin.rekey(g.ids(bob)))
    for pos in (10, len(good[1]) // 2, -10):  # nonce, a member entry, the signature
        tampered = bytearray(good[1])
        tampered[pos] ^= 1
        with pytest.raises(InvalidSignature):
            dev.load_key_message("x", bytes(tampered), g.t)
    other = GroupIdentity.generate()
    foreign = GroupKeys(other.group_id, Identity(), admin=other).rekey([bob.session_id])
    with pytest.raises(InvalidSignature):
        dev.load_key_message("y", foreign, g.t)  # signed by another group's key
    for junk in (b"", b"de", b"not bencode", good[1][:-1]):
        with pytest.raises(InvalidInput):
            dev.load_key_message("z", junk, g.t)
    assert dev.keys == [] and dev.current_hashes() == set()
    assert dev.load_key_message(*good)
    with pytest.raises(InvalidInput, match="only an admin"):
        dev.rekey([bob.session_id])
    with pytest.raises(InvalidInput, match="at most 100"):
        g.admin.rekey([Identity(bytes([i % 256, i // 256]) * 8).session_id for i in range(101)])
    assert MAX_MEMBERS == 100
    with pytest.raises(InvalidInput):
        GroupKeys(g.group.group_id, bob, admin=other)


def test_constants_match_the_core() -> None:
    from session import _core
    from session.groups import crypto, keys

    assert keys.MESSAGE_KEY_MULTIPLE == _core.GROUP_MESSAGE_KEY_MULTIPLE
    assert crypto.MAX_PLAINTEXT == _core.GROUP_MESSAGE_MAX_PLAINTEXT
