"""Subaccount credentials and group request signatures through the public API
(session.groups.auth), against libsession's subaccount vectors and the node's verify_auth."""

from __future__ import annotations

import base64

import pytest

from session.errors import InvalidInput, InvalidSignature
from session.groups.auth import (
    SubaccountSigner,
    member_auth_data,
    member_token,
    verify_subaccount_request,
)
from session.groups.crypto import GroupIdentity
from session.identity import Identity
from session.proto.rpc.auth import Access, Account, Auth, sign, verify_auth
from session.proto.rpc.requests import Retrieve, Store
from vectorlib import case_ids, load_vectors

SUB = load_vectors("subaccount", "subaccount_sign")
SIGS = load_vectors("group_signatures", "sign")


def b64(s: str) -> bytes:
    return base64.b64decode(s)


@pytest.mark.parametrize("case", SUB, ids=case_ids(SUB))
def test_subaccount_vectors(case: dict) -> None:
    group = GroupIdentity(bytes.fromhex(case["group_seed"]))
    assert group.ed25519_public.hex() == case["group_pk"]
    member = Identity(bytes.fromhex(case["member_ed25519_seed"]))
    assert member.session_id == case["member_session_id"]
    flags = case["token_flags"]
    write, delete = bool(flags & Access.WRITE), bool(flags & Access.DELETE)
    auth = member_auth_data(group, member.session_id, write=write, delete=delete)
    assert auth.hex() == case["member_auth_data"]
    assert (
        member_token(group, member.session_id, write=write, delete=delete).hex()
        == case["subaccount"]
    )
    signer = SubaccountSigner(member, group.group_id, auth)
    assert (signer.can_write, signer.can_delete) == (write, delete)
    text = case["signed_text_utf8"].encode()
    a = signer.auth(text)
    assert a.subaccount == b64(case["subaccount_b64"])
    assert a.subaccount_sig == b64(case["subaccount_sig_b64"])
    assert a.signature == b64(case["signature_b64"])
    # the storage server's check (ours in Rust, and the node's verify_auth) accepts it
    acct = Account.parse(group.group_id)
    assert acct is not None
    verify_subaccount_request(group.group_id, a.subaccount, a.subaccount_sig, a.signature, text)
    assert verify_auth(acct, a, text, Access.READ, revoked=False)
    assert not verify_auth(acct, a, text, Access.READ, revoked=True)
    assert not verify_auth(acct, a, text + b"0", Access.READ, revoked=False)
    with pytest.raises(InvalidSignature):
        verify_subaccount_request(
            group.group_id, a.subaccount, a.subaccount_sig, a.signature, text + b"0"
        )


@pytest.mark.parametrize("case", SIGS, ids=case_ids(SIGS))
def test_admin_request_signature_vectors(case: dict) -> None:
    """An admin signs the group's requests with the group key (a Signer for rpc.sign)."""
    group = GroupIdentity(bytes.fromhex(case["ed25519_seed"]))
    acct = Account.parse(group.group_id)
    assert acct is not None
    cls = {"retrieve": Retrieve, "store": Store}[case["method"]]
    if cls is Retrieve:
        req = Retrieve(acct, namespace=case["namespace"], timestamp=case["timestamp_ms"])
    else:
        req = Store(
            acct,
            namespace=case["namespace"],
            timestamp=case["timestamp_ms"],
            expiry=case["timestamp_ms"] + 3_600_000,
            data=b"x",
        )
    assert req.signature_text() == case["signed_text_utf8"].encode()
    params = sign(req, group)
    assert params["signature"] == case["signature_b64"]
    assert "pubkey_ed25519" not in params
    assert verify_auth(
        acct, Auth(b64(params["signature"])), req.signature_text(), Access.WRITE, revoked=False
    )


def test_member_signs_group_requests_end_to_end() -> None:
    group = GroupIdentity.generate()
    bob = Identity()
    signer = SubaccountSigner(bob, group.group_id, member_auth_data(group, bob.session_id))
    acct = Account.parse(group.group_id)
    assert acct is not None
    req = Retrieve(acct, namespace=11, timestamp=1_700_000_000_000)
    params = signer.sign(req)
    assert set(params) >= {"signature", "subaccount", "subaccount_sig"}
    parsed = Retrieve.parse({**req.to_params(), **params})
    assert parsed.auth is not None
    assert verify_auth(acct, parsed.auth, req.signature_text(), Access.WRITE, revoked=False)
    # a read-only member may retrieve but not store or delete
    ro = SubaccountSigner(bob, group.group_id, member_auth_data(group, bob.session_id, write=False))
    a = ro.auth(b"store111")
    assert verify_auth(acct, a, b"store111", Access.READ, revoked=False)
    assert not verify_auth(acct, a, b"store111", Access.WRITE, revoked=False)
    with pytest.raises(InvalidSignature, match="write"):
        verify_subaccount_request(
            group.group_id,
            a.subaccount or b"",
            a.subaccount_sig or b"",
            a.signature,
            b"store111",
            Access.WRITE,
        )
    # a request for another account is refused before signing
    other = Account.parse(GroupIdentity.generate().group_id)
    assert other is not None
    with pytest.raises(InvalidInput):
        signer.sign(Retrieve(other, namespace=11, timestamp=1))


def test_bad_grants_are_refused() -> None:
    group, other_group = GroupIdentity.generate(), GroupIdentity.generate()
    bob, carol = Identity(), Identity()
    auth = member_auth_data(group, bob.session_id)
    with pytest.raises(InvalidSignature):  # Carol cannot use Bob's grant
        SubaccountSigner(carol, group.group_id, auth)
    with pytest.raises(InvalidSignature):  # a grant of another group
        SubaccountSigner(bob, other_group.group_id, auth)
    tampered = bytearray(auth)
    tampered[1] |= Access.DELETE  # raising one's own rights breaks the admin signature
    with pytest.raises(InvalidSignature):
        SubaccountSigner(bob, group.group_id, bytes(tampered))
    with pytest.raises(InvalidInput):
        SubaccountSigner(bob, group.group_id, auth[:99])
    with pytest.raises(InvalidInput):
        SubaccountSigner(bob, "05" + group.group_id[2:], auth)
    with pytest.raises(InvalidInput):
        member_auth_data(group, group.group_id)  # a group is not a member
