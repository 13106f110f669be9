"""Accounts and request authentication: the signature fields of a request, subaccount tokens,
Session's ``verify_signature``, and :func:`sign` for clients."""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import Any, Protocol, Self, TypeVar

from session.errors import SessionError
from session.identity import ed25519_to_x25519, verify
from session.proto.rpc.codec import HEX_RE, b64, b64decode, is_b64
from session.proto.rpc.constants import SUBACCOUNT_TOKEN_LENGTH
from session.proto.rpc.fields import Params, ParseError, f_str, require


class Access(enum.IntFlag):
    """Subaccount token flags."""

    NONE = 0
    READ = 1
    WRITE = 2
    DELETE = 4
    ANY_PREFIX = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    """A 33-byte account id: network prefix byte + 32-byte key."""

    prefix: int
    key: bytes

    @property
    def hex(self) -> str:
        return f"{self.prefix:02x}{self.key.hex()}"

    @property
    def raw(self) -> bytes:
        return bytes([self.prefix]) + self.key

    @classmethod
    def parse(cls, value: str) -> Account | None:
        """The account of a 66-hex-digit id, or None."""
        if isinstance(value, str) and len(value) == 66 and HEX_RE.match(value):
            raw = bytes.fromhex(value)
            return cls(raw[0], raw[1:])
        return None

    @classmethod
    def load(cls, pk: str | None, getswarm: bool = False) -> Account:
        """The ``pubkey`` parameter (required), with Session's two wordings of the error."""
        acct = cls.parse(require("pubkey", pk))
        if acct is None:
            raise ParseError(
                "Pubkey must be 66 hex digits/33 bytes long"
                if getswarm
                else "Pubkey must be 66 hex digits (33 bytes) long"
            )
        return acct


@dataclasses.dataclass(frozen=True, slots=True)
class Auth:
    """The signature fields of a request."""

    signature: bytes  # 64 bytes
    pubkey_ed25519: bytes | None = None  # 05 accounts: the Ed25519 key behind the X25519 id
    subaccount: bytes | None = None  # 36-byte token
    subaccount_sig: bytes | None = None  # owner's signature of the token

    def to_params(self) -> dict[str, Any]:
        d: dict[str, Any] = {"signature": b64(self.signature)}
        if self.pubkey_ed25519 is not None:
            d["pubkey_ed25519"] = self.pubkey_ed25519.hex()
        if self.subaccount is not None and self.subaccount_sig is not None:
            d["subaccount"] = b64(self.subaccount)
            d["subaccount_sig"] = b64(self.subaccount_sig)
        return d

    @classmethod
    def load(cls, p: Params, acct: Account, sig: str | None, with_subaccount: bool = True) -> Auth:
        """``load_pk_signature`` + ``load_subaccount``: the signature fields of ``p`` (the
        signature, already read as ``sig``, is required)."""
        pk_ed = f_str(p, "pubkey_ed25519")
        sig = require("signature", sig)
        ed: bytes | None = None
        if pk_ed is not None:
            if acct.prefix != 5:
                raise ParseError("pubkey_ed25519 is only permitted for 05[...] pubkeys")
            if len(pk_ed) == 64:
                if not HEX_RE.match(pk_ed):
                    raise ParseError("invalid pubkey_ed25519: value is not hex")
                ed = bytes.fromhex(pk_ed)
            elif len(pk_ed.encode("utf-8", "surrogatepass")) == 32:
                ed = pk_ed.encode("utf-8", "surrogatepass")
            else:
                raise ParseError("Invalid pubkey_ed25519: expected 64 hex char or 32 byte pubkey")
        signature = decode_sig(sig, "invalid signature")
        sub = sub_sig = None
        if with_subaccount:
            sa = f_str(p, "subaccount")
            sa_sig = f_str(p, "subaccount_sig")
            if sa:
                if sa_sig is None:
                    raise ParseError(
                        "invalid subaccount: subaccount_sig is required when using subaccount"
                    )
                sub = decode_token(
                    sa, "invalid subaccount: expected base64 or hex-encoded subaccount token"
                )
                sub_sig = decode_sig(sa_sig, "invalid subaccount signature")
        return cls(signature, ed, sub, sub_sig)


def decode_sig(sig: str, what: str) -> bytes:
    """A base64 Ed25519 signature (86 characters, or 88 with padding)."""
    if not is_b64(sig) or not (len(sig) == 86 or (len(sig) == 88 and sig[86:] == "==")):
        raise ParseError(f"{what}: expected base64 encoded Ed25519 signature")
    return b64decode(sig)


def decode_token(s: str, err: str) -> bytes:
    """A subaccount token, base64 or hex."""
    if is_b64(s) and len(s) == SUBACCOUNT_TOKEN_LENGTH * 4 // 3:
        return b64decode(s)
    if len(s) == SUBACCOUNT_TOKEN_LENGTH * 2 and HEX_RE.match(s):
        return bytes.fromhex(s)
    raise ParseError(err)


@functools.lru_cache(maxsize=1024)
def _x25519_of(ed25519_public: bytes) -> bytes:
    """:func:`session.identity.ed25519_to_x25519`, remembered for the last 1,024 keys (about
    200 KB). A client signs every poll with the same key (a Session app's poll is a batch of
    retrieves of several namespaces, each signed), and the conversion (a point decompression
    and a field inversion) costs about as much as checking the signature itself; Session's
    storage server converts again for every signature. A key that
    does not convert raises, and is not remembered."""
    return bytes(ed25519_to_x25519(ed25519_public))


def verify_auth(
    account: Account, auth: Auth, text: bytes, required: Access, *, revoked: bool
) -> bool:
    """Session's ``verify_signature``: returns whether ``auth`` proves access to ``account``."""
    try:
        if account.prefix == 5 and auth.pubkey_ed25519 is not None:
            pk = auth.pubkey_ed25519
            if _x25519_of(bytes(pk)) != account.key:
                return False
        else:
            pk = account.key
        if auth.subaccount is not None:
            token, token_sig = auth.subaccount, auth.subaccount_sig
            if revoked or token_sig is None:
                return False
            if token[0] != account.prefix and not (token[1] & Access.ANY_PREFIX):
                return False
            if (token[1] & required) != required:
                return False
            verify(pk, token, token_sig)
            pk = token[4:]
        verify(pk, text, auth.signature)
    except (SessionError, ValueError, TypeError):
        return False
    return True


class Signer(Protocol):
    """Who signs a client's requests: a :class:`session.identity.Identity`, or anything with
    the account it owns, its Ed25519 key and a signing method."""

    @property
    def session_id(self) -> str:
        """The signer's own account id (66 hex)."""
        ...

    @property
    def ed25519_public(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class Signable(Protocol):
    """A request that carries a signature (see :func:`sign`)."""

    @property
    def account(self) -> Account: ...

    def signature_text(self) -> bytes: ...

    def to_params(self) -> dict[str, Any]: ...

    def with_auth(self, auth: Auth) -> Self: ...


S = TypeVar("S", bound=Signable)


def signed(request: S, signer: Signer) -> S:
    """``request`` with ``auth`` set: ``signer`` signs its signature text. For a ``05``
    account the signer's Ed25519 key travels as ``pubkey_ed25519`` (the account id is its
    X25519 form); other accounts are the Ed25519 key itself."""
    sig = bytes(signer.sign(request.signature_text()))
    ed = bytes(signer.ed25519_public) if request.account.prefix == 5 else None
    return request.with_auth(Auth(sig, ed))


def sign(request: Signable, signer: Signer) -> dict[str, Any]:
    """The wire ``params`` of ``request`` signed by ``signer``."""
    return signed(request, signer).to_params()


__all__ = [
    "Access",
    "Account",
    "Auth",
    "Signable",
    "Signer",
    "decode_sig",
    "decode_token",
    "sign",
    "signed",
    "verify_auth",
]
