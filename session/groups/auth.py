"""Swarm authentication for 03 groups (client spec §3.2.5; libsession ``groups::Keys``
``swarm_make_subaccount`` / ``swarm_subaccount_sign``; storage server ``verify_signature``).

Admins sign the group's swarm requests with the group key itself (a :class:`GroupIdentity`
is a :class:`~session.proto.rpc.auth.Signer`). Other members get *auth data* from an admin
(100 bytes, sent in the invite) and sign as a *subaccount*::

    auth = member_auth_data(group, bob.session_id)          # admin
    signer = SubaccountSigner(bob, group.group_id, auth)     # Bob; checks the grant
    params = signer.sign(request)                            # wire params of a request

The node checks such requests with :func:`session.proto.rpc.auth.verify_auth` (or
:func:`verify_subaccount_request` here): the token's flags, the admin's signature of the
token and the member's signature of the request.
"""

from __future__ import annotations

from typing import Any

from session import _core
from session.errors import InvalidInput, InvalidSignature
from session.groups.crypto import GroupIdentity, parse_group_id
from session.identity import Identity
from session.proto.rpc.auth import Access, Auth, Signable

__all__ = [
    "AUTH_DATA_LEN",
    "SubaccountSigner",
    "member_auth_data",
    "member_token",
    "verify_subaccount_request",
]

AUTH_DATA_LEN = 100


def member_auth_data(
    group: GroupIdentity, member_session_id: str, *, write: bool = True, delete: bool = False
) -> bytes:
    """Admin: the 100-byte grant for ``member_session_id`` (read, plus write/delete as asked):
    ``03 ‖ flags ‖ 00 00 ‖ k ‖ group signature of (03 ‖ flags ‖ 00 00 ‖ kT)``."""
    return _core.subaccount_auth_data(group.seed(), member_session_id, write, delete)


def member_token(
    group: GroupIdentity, member_session_id: str, *, write: bool = True, delete: bool = False
) -> bytes:
    """Admin: the 36-byte token the member presents (what a revocation names)."""
    return _core.subaccount_token(group.seed(), member_session_id, write, delete)


class SubaccountSigner:
    """A member's credentials for the group's swarm.

    Construction checks that ``auth_data`` is the group's valid grant for ``member`` (raises
    InvalidSignature or InvalidInput otherwise), so a bad invite is refused up front.
    """

    __slots__ = ("_auth_data", "_member", "group_id")

    def __init__(self, member: Identity, group_id: str, auth_data: bytes) -> None:
        if len(auth_data) != AUTH_DATA_LEN:
            raise InvalidInput(f"member auth data must be 100 bytes, got {len(auth_data)}")
        _core.subaccount_verify_auth_data(parse_group_id(group_id), member, auth_data)
        self._member = member
        self._auth_data = bytes(auth_data)
        self.group_id = group_id

    @property
    def can_write(self) -> bool:
        return bool(self._auth_data[1] & Access.WRITE)

    @property
    def can_delete(self) -> bool:
        return bool(self._auth_data[1] & Access.DELETE)

    def auth(self, text: bytes) -> Auth:
        """The signature fields for a request whose signature text is ``text``."""
        token, token_sig, sig = _core.subaccount_sign(self._member, self._auth_data, text)
        return Auth(sig, None, token, token_sig)

    def sign(self, request: Signable) -> dict[str, Any]:
        """The wire ``params`` of ``request`` (for the group's account) signed as this member."""
        if request.account.hex != self.group_id:
            raise InvalidInput("this request is not for the group these credentials are for")
        return request.with_auth(self.auth(request.signature_text())).to_params()

    def __repr__(self) -> str:
        return f"SubaccountSigner({self.group_id})"


def verify_subaccount_request(
    group_id: str,
    token: bytes,
    subaccount_sig: bytes,
    signature: bytes,
    text: bytes,
    required: Access = Access.READ,
) -> None:
    """Storage-server check of a member's request on the group's swarm: raises
    InvalidSignature unless the token grants ``required`` and both signatures verify."""
    try:
        _core.subaccount_verify_request(
            parse_group_id(group_id),
            token,
            subaccount_sig,
            signature,
            text,
            bool(required & Access.WRITE),
            bool(required & Access.DELETE),
        )
    except InvalidSignature:
        raise
    except InvalidInput as e:
        raise InvalidSignature(f"subaccount refused: {e}") from None
