"""The storage-RPC methods, one class each.

A class owns everything about its method: the method name, how its parameters are parsed
(:meth:`parse`, Session's field order and messages), its fields, its signature text, its checks
before the signature (:meth:`precheck`), the message when the signature fails, and its wire
parameters (:meth:`to_params`, for clients and for forwarding to swarm peers).

Requests that carry an account derive from :class:`AccountMethod`; the node answers them only
for accounts of its own swarm. ``RECURSIVE`` ones fan out to the whole swarm.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from session.errors import RpcStatusError
from session.proto.rpc.auth import Access, Account, Auth, decode_token, verify_auth
from session.proto.rpc.codec import b64, b64decode, is_b64
from session.proto.rpc.constants import (
    DEFAULT_HARDFORK,
    DELETE_BEFORE_FUTURE,
    EXPIRE_PAST_TOLERANCE,
    MAX_MESSAGE_BODY,
    MAX_SUBACCOUNT_TOKENS,
    MULTI_EXPIRY_HARDFORK,
    RETRIEVE_MAX_SIZE,
    SIGNATURE_TOLERANCE,
    SIGNATURE_TOLERANCE_FORWARDED,
    STORE_TOLERANCE,
    TTL_MAXIMUM,
    TTL_MAXIMUM_PRIVATE,
    TTL_MINIMUM,
)
from session.proto.rpc.fields import (
    Params,
    ParseError,
    exactly_one,
    f_bool,
    f_int,
    f_int_ns,
    f_ns,
    f_str,
    f_str_array,
    f_stringified,
    f_ts,
    f_ts_array,
    require,
)
from session.proto.rpc.namespaces import (
    NamespaceVar,
    is_group_admin_namespace,
    is_noauth_retrieve_namespace,
    is_public_inbox_namespace,
    is_public_outbox_namespace,
    is_unrevocable_namespace,
    namespace_param,
    namespace_sig_string,
)


class AccountMethod(abc.ABC):
    """Behaviour shared by the methods that act on one account and carry its signature.

    Subclasses are frozen dataclasses with the fields ``account`` and ``auth`` (None only for
    requests that need no signature, or that a client has not signed yet).
    """

    __slots__ = ()
    METHOD: ClassVar[str]
    #: Whether the request fans out to every member of the account's swarm.
    RECURSIVE: ClassVar[bool]
    #: What a subaccount token must grant.
    REQUIRED_ACCESS: ClassVar[Access]
    #: The 401 message when the signature does not verify (Session's wording).
    SIGNATURE_FAILURE: ClassVar[str]
    account: Account
    auth: Auth | None
    #: Every subclass is a dataclass (declared so that ``dataclasses.replace`` type-checks).
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @abc.abstractmethod
    def signature_text(self) -> bytes:
        """The bytes the account owner signs."""

    @property
    def required_access(self) -> Access:
        return self.REQUIRED_ACCESS

    def needs_verification(self) -> bool:
        """Whether the signature must be verified."""
        return True

    def skip_revoke_check(self) -> bool:
        """Whether revoked subaccount tokens are accepted anyway."""
        return False

    def verification_auth(self) -> Auth | None:
        """The signature fields that are checked."""
        return self.auth

    def precheck(  # noqa: B027 (a deliberate no-op default: most methods have no checks)
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        """Time-window, TTL and hard-fork checks Session runs before the signature (raises
        :class:`RpcStatusError` 401/403/406). Most methods have none."""

    def verify(self, *, revoked: bool = False) -> None:
        """Verify the signature (after :meth:`precheck`); ``revoked``: whether the request's
        subaccount token is on the owner's revocation list. Raises RpcStatusError(401)."""
        if not self.needs_verification():
            return
        auth = self.verification_auth()
        if auth is None or not verify_auth(
            self.account,
            auth,
            self.signature_text(),
            self.required_access,
            revoked=revoked and not self.skip_revoke_check(),
        ):
            raise RpcStatusError(401, self.SIGNATURE_FAILURE)

    def with_auth(self, auth: Auth) -> Self:
        """This request carrying ``auth`` (see :func:`session.proto.rpc.sign`)."""
        return dataclasses.replace(self, auth=auth)

    def _auth_params(self) -> dict[str, Any]:
        return {} if self.auth is None else self.auth.to_params()


def _check_window(value: int, now_ms: int, tolerance: int, message: str) -> None:
    if abs(value - now_ms) > tolerance:
        raise RpcStatusError(406, message)


def _check_hashes(msgs: list[str] | None) -> tuple[str, ...]:
    msgs = require("messages", msgs)
    if not msgs:
        raise ParseError("messages does not contain any message hashes")
    for m in msgs:
        if not (len(m) == 43 and is_b64(m)):
            raise ParseError("invalid message hash: " + m)
    return tuple(msgs)


@dataclasses.dataclass(frozen=True, slots=True)
class Store(AccountMethod):
    METHOD: ClassVar[str] = "store"
    RECURSIVE: ClassVar[bool] = True
    SIGNATURE_FAILURE: ClassVar[str] = "store signature verification failed"
    account: Account
    namespace: int
    timestamp: int
    expiry: int
    data: bytes
    auth: Auth | None = None
    #: The signed timestamp (``sig_timestamp``, else ``timestamp``); None when unsigned.
    sig_timestamp: int | None = None

    @classmethod
    def parse(cls, p: Params) -> Store:
        data = f_str(p, "data")
        expiry = f_ts(p, "expiry")
        ns = f_int_ns(p, "namespace")
        pk_alt = f_str(p, "pubKey")
        pk = f_str(p, "pubkey")
        sig_ts = f_ts(p, "sig_timestamp")
        sig = f_str(p, "signature")
        timestamp = require("timestamp", f_stringified(p, "timestamp", unsigned=False))
        ttl = f_stringified(p, "ttl", unsigned=True)
        exactly_one("expiry", expiry, "ttl", ttl)
        exp = expiry if expiry is not None else timestamp + require("ttl", ttl)
        acct = Account.load(exactly_one("pubkey", pk, "pubKey", pk_alt, alias=True))
        auth = None
        if sig is not None:
            auth = Auth.load(p, acct, sig)
            sig_ts = sig_ts if sig_ts is not None else timestamp
        else:
            sig_ts = None
        data = require("data", data)
        if not is_b64(data):
            raise ParseError("Invalid 'data' value: not base64 encoded")
        if len(data) > MAX_MESSAGE_BODY // 3 * 4:
            raise ParseError(
                f"Message body exceeds maximum allowed length of {MAX_MESSAGE_BODY} bytes"
            )
        return cls(acct, ns or 0, timestamp, exp, b64decode(data), auth, sig_ts)

    @property
    def public_inbox(self) -> bool:
        return is_public_inbox_namespace(self.namespace)

    @property
    def required_access(self) -> Access:
        if is_public_outbox_namespace(self.namespace):
            return Access.WRITE | Access.DELETE
        return Access.WRITE

    def needs_verification(self) -> bool:
        return not self.public_inbox  # Session's quirk: public inboxes are never verified

    def signature_text(self) -> bytes:
        ts = self.timestamp if self.sig_timestamp is None else self.sig_timestamp
        return f"store{namespace_sig_string(self.namespace)}{ts}".encode()

    def verify(self, *, revoked: bool = False) -> None:
        """As every method, plus the groups rule: a ``03`` group's key, info, members and
        revoked-member namespaces take the group key itself (admins); a member's subaccount
        token is refused there (401) whatever its flags."""
        if (
            self.account.prefix == 3
            and self.auth is not None
            and self.auth.subaccount is not None
            and is_group_admin_namespace(self.namespace)
        ):
            raise RpcStatusError(
                401, f"store: namespace {self.namespace} of a group is for its admins only"
            )
        AccountMethod.verify(self, revoked=revoked)

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        ttl = self.expiry - self.timestamp
        max_ttl = TTL_MAXIMUM if self.public_inbox else TTL_MAXIMUM_PRIVATE
        if ttl < TTL_MINIMUM or ttl > max_ttl:
            raise RpcStatusError(403, "Provided expiry/TTL is not valid.")
        if self.timestamp > now_ms + STORE_TOLERANCE or self.expiry < now_ms - STORE_TOLERANCE:
            raise RpcStatusError(406, "Timestamp error: check your clock")
        if not self.public_inbox:
            if self.auth is None:
                raise RpcStatusError(
                    401, f"store: signature required to store to namespace {self.namespace}"
                )
            _check_window(
                self.timestamp if self.sig_timestamp is None else self.sig_timestamp,
                now_ms,
                SIGNATURE_TOLERANCE,
                "store signature timestamp too far from current time",
            )

    def with_auth(self, auth: Auth) -> Store:
        sig_ts = self.timestamp if self.sig_timestamp is None else self.sig_timestamp
        return dataclasses.replace(self, auth=auth, sig_timestamp=sig_ts)

    def to_params(self) -> dict[str, Any]:
        """``ttl`` (``expiry`` when it lies before ``timestamp``); ``sig_timestamp`` only when
        it differs from ``timestamp``."""
        ttl = self.expiry - self.timestamp
        d: dict[str, Any] = {
            "pubkey": self.account.hex,
            "namespace": self.namespace,
            "timestamp": self.timestamp,
        }
        if ttl >= 0:
            d["ttl"] = ttl
        else:
            d["expiry"] = self.expiry
        d["data"] = b64(self.data)
        if self.auth is not None:
            d.update(self.auth.to_params())
            if self.sig_timestamp is not None and self.sig_timestamp != self.timestamp:
                d["sig_timestamp"] = self.sig_timestamp
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Retrieve(AccountMethod):
    METHOD: ClassVar[str] = "retrieve"
    RECURSIVE: ClassVar[bool] = False
    REQUIRED_ACCESS: ClassVar[Access] = Access.READ
    SIGNATURE_FAILURE: ClassVar[str] = "retrieve signature verification failed"
    account: Account
    namespace: int = 0
    last_hash: str | None = None
    max_count: int | None = None
    max_size: int | None = None
    auth: Auth | None = None
    timestamp: int | None = None

    @classmethod
    def parse(cls, p: Params) -> Retrieve:
        lastHash = f_str(p, "lastHash")
        last_hash = f_str(p, "last_hash")
        max_count = f_int(p, "max_count")
        max_size = f_int(p, "max_size")
        ns = f_int_ns(p, "namespace")
        pk_alt = f_str(p, "pubKey")
        pk = f_str(p, "pubkey")
        pk_ed = f_str(p, "pubkey_ed25519")
        sig = f_str(p, "signature")
        ts = f_ts(p, "timestamp")
        acct = Account.load(exactly_one("pubkey", pk, "pubKey", pk_alt, alias=True))
        auth = None
        if (
            pk_ed is not None
            or sig is not None
            or ts is not None
            or (ns is not None and not is_noauth_retrieve_namespace(ns))
        ):
            auth = Auth.load(p, acct, sig)
            require("timestamp", ts)
        if last_hash is not None and lastHash is not None:
            raise ParseError("Cannot specify both 'last_hash' and 'lastHash'")
        lh = last_hash if last_hash is not None else lastHash
        if lh is not None:
            if lh == "":
                lh = None
            elif len(lh) == 43:
                if not is_b64(lh):
                    raise ParseError("Invalid last_hash: not base64")
            else:
                raise ParseError("Invalid last_hash: expected base64 (43 chars)")
        return cls(acct, ns or 0, lh, max_count, max_size, auth, ts if auth else None)

    def needs_verification(self) -> bool:
        return self.auth is not None

    def skip_revoke_check(self) -> bool:
        return is_unrevocable_namespace(self.namespace)

    def signature_text(self) -> bytes:
        return f"retrieve{namespace_sig_string(self.namespace)}{self.timestamp}".encode()

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        if not is_noauth_retrieve_namespace(self.namespace) and self.auth is None:
            raise RpcStatusError(401, "retrieve: request signature required")
        if self.auth is not None:
            _check_window(
                self.timestamp or 0,
                now_ms,
                SIGNATURE_TOLERANCE,
                "retrieve timestamp too far from current time",
            )

    def limits(self) -> tuple[int | None, int]:
        """(max_count, max_size) after Session's defaults: 0 = unspecified; neither → 1/5 of
        the max; negative size -k → max/k; positive size capped at the max."""
        count = self.max_count or None
        size = self.max_size or None
        if count is None and size is None:
            size = -5
        if size is not None and size < 0:
            return count, RETRIEVE_MAX_SIZE // -size
        if size is None or size > RETRIEVE_MAX_SIZE:
            return count, RETRIEVE_MAX_SIZE
        return count, size

    def to_params(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "pubkey": self.account.hex,
            "namespace": self.namespace,
            "last_hash": self.last_hash or "",
        }
        if self.max_count is not None:
            d["max_count"] = self.max_count
        if self.max_size is not None:
            d["max_size"] = self.max_size
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp
        return {**d, **self._auth_params()}


@dataclasses.dataclass(frozen=True, slots=True)
class Delete(AccountMethod):
    METHOD: ClassVar[str] = "delete"
    RECURSIVE: ClassVar[bool] = True
    REQUIRED_ACCESS: ClassVar[Access] = Access.DELETE
    SIGNATURE_FAILURE: ClassVar[str] = "delete_msgs signature verification failed"
    account: Account
    messages: tuple[str, ...]
    auth: Auth | None = None
    required: bool = False

    @classmethod
    def parse(cls, p: Params) -> Delete:
        msgs = f_str_array(p, "messages")
        pk = f_str(p, "pubkey")
        required = f_bool(p, "required")
        sig = f_str(p, "signature")
        acct = Account.load(pk)
        auth = Auth.load(p, acct, sig)
        return cls(acct, _check_hashes(msgs), auth, bool(required))

    def signature_text(self) -> bytes:
        return ("delete" + "".join(self.messages)).encode()

    def to_params(self) -> dict[str, Any]:
        d = {"pubkey": self.account.hex, "messages": list(self.messages), **self._auth_params()}
        if self.required:
            d["required"] = True
        return d


class _NamespaceAction(AccountMethod):
    """delete_all / delete_before / expire_all: an account, a namespace (or all of them) and
    one signed time, the parameter :attr:`FIELD` (:attr:`value`)."""

    __slots__ = ()
    RECURSIVE: ClassVar[bool] = True
    REQUIRED_ACCESS: ClassVar[Access] = Access.DELETE
    #: The parameter holding the signed time.
    FIELD: ClassVar[str]
    namespace: NamespaceVar

    @property
    def value(self) -> int:
        """The signed time: the field named :attr:`FIELD`."""
        v: int = getattr(self, self.FIELD)
        return v

    if TYPE_CHECKING:  # each subclass is a dataclass with these four fields, in this order

        def __init__(
            self, account: Account, namespace: NamespaceVar, value: int, auth: Auth | None = None
        ) -> None: ...

    @classmethod
    def parse(cls, p: Params) -> Self:
        return cls(*cls._load(p))

    @classmethod
    def _load(cls, p: Params) -> tuple[Account, NamespaceVar, int, Auth]:
        value = f_ts(p, cls.FIELD)
        ns = f_ns(p, "namespace", True)
        pk = f_str(p, "pubkey")
        sig = f_str(p, "signature")
        acct = Account.load(pk)
        auth = Auth.load(p, acct, sig)
        return acct, (0 if ns is None else ns), require(cls.FIELD, value), auth

    def signature_text(self) -> bytes:
        return f"{self.METHOD}{namespace_sig_string(self.namespace)}{self.value}".encode()

    def to_params(self) -> dict[str, Any]:
        d = {
            "pubkey": self.account.hex,
            "namespace": namespace_param(self.namespace),
            self.FIELD: self.value,
        }
        return {**d, **self._auth_params()}


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteAll(_NamespaceAction):
    METHOD: ClassVar[str] = "delete_all"
    FIELD: ClassVar[str] = "timestamp"
    SIGNATURE_FAILURE: ClassVar[str] = "delete_all signature verification failed"
    account: Account
    namespace: NamespaceVar
    timestamp: int
    auth: Auth | None = None

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        tol = SIGNATURE_TOLERANCE_FORWARDED if forwarded else SIGNATURE_TOLERANCE
        _check_window(self.timestamp, now_ms, tol, "delete_all timestamp too far from current time")


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteBefore(_NamespaceAction):
    METHOD: ClassVar[str] = "delete_before"
    FIELD: ClassVar[str] = "before"
    SIGNATURE_FAILURE: ClassVar[str] = "delete_before signature verification failed"
    account: Account
    namespace: NamespaceVar
    before: int
    auth: Auth | None = None

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        if self.before > now_ms + DELETE_BEFORE_FUTURE:
            raise RpcStatusError(401, "delete_before timestamp too far in the future")


@dataclasses.dataclass(frozen=True, slots=True)
class ExpireAll(_NamespaceAction):
    METHOD: ClassVar[str] = "expire_all"
    FIELD: ClassVar[str] = "expiry"
    SIGNATURE_FAILURE: ClassVar[str] = "expire_all signature verification failed"
    account: Account
    namespace: NamespaceVar
    expiry: int
    auth: Auth | None = None

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        tol = SIGNATURE_TOLERANCE_FORWARDED if forwarded else SIGNATURE_TOLERANCE
        if self.expiry < now_ms - tol:
            raise RpcStatusError(406, "expire_all timestamp should be >= current time")


@dataclasses.dataclass(frozen=True, slots=True)
class Expire(AccountMethod):
    METHOD: ClassVar[str] = "expire"
    RECURSIVE: ClassVar[bool] = True
    REQUIRED_ACCESS: ClassVar[Access] = Access.WRITE
    SIGNATURE_FAILURE: ClassVar[str] = "expire: signature verification failed"
    account: Account
    messages: tuple[str, ...]
    expiries: tuple[int, ...]  # one value, or one per message
    auth: Auth | None = None
    shorten: bool = False
    extend: bool = False

    @classmethod
    def parse(cls, p: Params) -> Expire:
        expiry = f_ts_array(p, "expiry")
        extend = f_bool(p, "extend")
        msgs = f_str_array(p, "messages")
        pk = f_str(p, "pubkey")
        shorten = f_bool(p, "shorten")
        sig = f_str(p, "signature")
        acct = Account.load(pk)
        auth = Auth.load(p, acct, sig)
        expiry = require("expiry", expiry)
        if not expiry:
            raise ParseError("'expiry' does not contain any expiration timestamps")
        if shorten and extend:
            raise ParseError("cannot specify both 'shorten' and 'extend'")
        msgs = require("messages", msgs)
        if not msgs:
            raise ParseError("messages does not contain any message hashes")
        if len(expiry) > 1 and len(expiry) != len(msgs):
            raise ParseError("'expiry' must be a single expiry, or the same length as 'messages'")
        hashes = _check_hashes(msgs)
        return cls(acct, hashes, tuple(expiry), auth, bool(shorten), bool(extend))

    @property
    def mode(self) -> str:
        return "shorten" if self.shorten else "extend" if self.extend else ""

    def signature_text(self) -> bytes:
        exps = "".join(str(e) for e in self.expiries)
        return f"expire{self.mode}{exps}{''.join(self.messages)}".encode()

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        for e in self.expiries:
            if e < now_ms - EXPIRE_PAST_TOLERANCE:
                raise RpcStatusError(401, "expire: timestamp should be >= current time")
        if len(self.expiries) > 1 and tuple(hf) < MULTI_EXPIRY_HARDFORK:
            raise RpcStatusError(
                403, "expire: multi-expiry requests are not yet active on the network"
            )

    def applied_expiries(self, now_ms: int) -> list[int]:
        """The expiries a node applies: each clamped to now + 30 days."""
        return [min(now_ms + TTL_MAXIMUM_PRIVATE, e) for e in self.expiries]

    def extend_only(self) -> bool:
        """Whether the node may only extend (a subaccount without delete access cannot shorten).
        Raises RpcStatusError(400) for ``shorten`` by such a subaccount. Call after
        verification."""
        sub = None if self.auth is None else self.auth.subaccount
        if sub is not None and not (sub[1] & Access.DELETE):
            if self.shorten:
                raise RpcStatusError(
                    400,
                    "expire: shorten parameter cannot be used with this subaccount token "
                    "(missing delete access)",
                )
            return True
        return self.extend

    def to_params(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "pubkey": self.account.hex,
            "messages": list(self.messages),
            "expiry": self.expiries[0] if len(self.expiries) == 1 else list(self.expiries),
            **self._auth_params(),
        }
        if self.shorten:
            d["shorten"] = True
        if self.extend:
            d["extend"] = True
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class GetExpiries(AccountMethod):
    METHOD: ClassVar[str] = "get_expiries"
    RECURSIVE: ClassVar[bool] = False
    REQUIRED_ACCESS: ClassVar[Access] = Access.READ
    SIGNATURE_FAILURE: ClassVar[str] = "get_expiries signature verification failed"
    account: Account
    messages: tuple[str, ...]
    timestamp: int
    auth: Auth | None = None

    @classmethod
    def parse(cls, p: Params) -> GetExpiries:
        msgs = f_str_array(p, "messages")
        pk = f_str(p, "pubkey")
        sig = f_str(p, "signature")
        ts = f_ts(p, "timestamp")
        acct = Account.load(pk)
        auth = Auth.load(p, acct, sig)
        ts = require("timestamp", ts)
        msgs = require("messages", msgs)
        if not msgs:
            raise ParseError("messages does not contain any message hashes")
        return cls(acct, tuple(msgs), ts, auth)

    def signature_text(self) -> bytes:
        return f"get_expiries{self.timestamp}{''.join(self.messages)}".encode()

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        _check_window(
            self.timestamp,
            now_ms,
            SIGNATURE_TOLERANCE,
            "get_expiries timestamp too far from current time",
        )

    def to_params(self) -> dict[str, Any]:
        return {
            "pubkey": self.account.hex,
            "messages": list(self.messages),
            "timestamp": self.timestamp,
            **self._auth_params(),
        }


class _Revocation(AccountMethod):
    """revoke_subaccount / unrevoke_subaccount: signed by the account key only."""

    __slots__ = ()
    RECURSIVE: ClassVar[bool] = True
    REQUIRED_ACCESS: ClassVar[Access] = Access.NONE
    #: The parameter holding the tokens.
    FIELD: ClassVar[str]
    tokens: tuple[bytes, ...]
    timestamp: int

    @classmethod
    def _load(cls, p: Params) -> tuple[Account, tuple[bytes, ...], int, Auth]:
        field = cls.FIELD
        pk = f_str(p, "pubkey")
        tokens = f_str_array(p, field)
        sig = f_str(p, "signature")
        ts = f_ts(p, "timestamp")
        acct = Account.load(pk)
        auth = Auth.load(p, acct, sig, with_subaccount=False)
        tokens = require(field, tokens)
        if field == "revoke" and len(tokens) > MAX_SUBACCOUNT_TOKENS:
            raise ParseError(
                f"invalid revoke: cannot revoke more than {MAX_SUBACCOUNT_TOKENS} "
                "subaccounts at once"
            )
        toks = tuple(
            decode_token(t, f"invalid {field}: expected base64 or hex-encoded subaccount tag")
            for t in tokens
        )
        return acct, toks, require("timestamp", ts), auth

    def signature_text(self) -> bytes:
        return f"{self.METHOD}{self.timestamp}".encode() + b"".join(self.tokens)

    def verification_auth(self) -> Auth | None:
        # the owner's own key only: a subaccount cannot (un)revoke
        return (
            None
            if self.auth is None
            else dataclasses.replace(self.auth, subaccount=None, subaccount_sig=None)
        )

    def precheck(
        self, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
    ) -> None:
        _check_window(
            self.timestamp,
            now_ms,
            SIGNATURE_TOLERANCE,
            f"{self.METHOD} timestamp too far from current time",
        )

    def to_params(self) -> dict[str, Any]:
        return {
            "pubkey": self.account.hex,
            self.FIELD: [b64(t) for t in self.tokens],
            "timestamp": self.timestamp,
            **self._auth_params(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class RevokeSubaccount(_Revocation):
    METHOD: ClassVar[str] = "revoke_subaccount"
    FIELD: ClassVar[str] = "revoke"
    SIGNATURE_FAILURE: ClassVar[str] = "revoke_subaccount signature verification failed"
    account: Account
    tokens: tuple[bytes, ...]
    timestamp: int
    auth: Auth | None = None

    @classmethod
    def parse(cls, p: Params) -> RevokeSubaccount:
        return cls(*cls._load(p))


@dataclasses.dataclass(frozen=True, slots=True)
class UnrevokeSubaccount(_Revocation):
    METHOD: ClassVar[str] = "unrevoke_subaccount"
    FIELD: ClassVar[str] = "unrevoke"
    SIGNATURE_FAILURE: ClassVar[str] = "unrevoke_subaccount signature verification failed"
    account: Account
    tokens: tuple[bytes, ...]
    timestamp: int
    auth: Auth | None = None

    @classmethod
    def parse(cls, p: Params) -> UnrevokeSubaccount:
        return cls(*cls._load(p))


@dataclasses.dataclass(frozen=True, slots=True)
class GetSwarm:
    """``get_swarm`` (alias ``get_snodes_for_pubkey``): the swarm of an account."""

    METHOD: ClassVar[str] = "get_swarm"
    RECURSIVE: ClassVar[bool] = False
    account: Account

    @classmethod
    def parse(cls, p: Params) -> GetSwarm:
        pk_alt = f_str(p, "pubKey")
        pk = f_str(p, "pubkey")
        return cls(Account.load(exactly_one("pubkey", pk, "pubKey", pk_alt, alias=True), True))


@dataclasses.dataclass(frozen=True, slots=True)
class Info:
    """``info``: version, hard fork and network time."""

    METHOD: ClassVar[str] = "info"
    RECURSIVE: ClassVar[bool] = False

    @classmethod
    def parse(cls, p: Params) -> Info:
        return cls()


#: The oxend endpoints a client may call through ``oxend_request``.
OXEND_ENDPOINTS = frozenset({"get_service_nodes", "ons_resolve"})


@dataclasses.dataclass(frozen=True, slots=True)
class OxendRequest:
    """``oxend_request``: one of :data:`OXEND_ENDPOINTS` with its (JSON) params."""

    METHOD: ClassVar[str] = "oxend_request"
    RECURSIVE: ClassVar[bool] = False
    endpoint: str
    params: Any = None

    @classmethod
    def parse(cls, p: Params) -> OxendRequest:
        endpoint = require("endpoint", f_str(p, "endpoint"))
        if endpoint not in OXEND_ENDPOINTS:
            raise ParseError(f"Invalid oxend endpoint '{endpoint}'")
        return cls(endpoint, p.get("params"))


#: Requests that fan out to the whole swarm.
RecursiveRequest = (
    Store
    | Delete
    | DeleteAll
    | DeleteBefore
    | ExpireAll
    | Expire
    | RevokeSubaccount
    | UnrevokeSubaccount
)
#: The classes of :data:`RecursiveRequest` (for ``isinstance``).
RECURSIVE_TYPES = (
    Store, Delete, DeleteAll, DeleteBefore, ExpireAll, Expire, RevokeSubaccount,
    UnrevokeSubaccount,
)  # fmt: skip
#: Requests that carry an account and are answered only by its swarm.
AccountRequest = RecursiveRequest | Retrieve | GetExpiries
#: Every method that may be a ``batch`` / ``sequence`` sub-request.
SubRequest = AccountRequest | GetSwarm | Info | OxendRequest

#: Method name → class, for every non-meta method (aliases included).
METHOD_CLASSES: dict[str, type[SubRequest]] = {
    cls.METHOD: cls
    for cls in (
        Store, Retrieve, Delete, DeleteAll, DeleteBefore, ExpireAll, Expire, GetExpiries,
        RevokeSubaccount, UnrevokeSubaccount, GetSwarm, Info, OxendRequest,
    )
}  # fmt: skip
METHOD_CLASSES["get_snodes_for_pubkey"] = GetSwarm


def parse_sub_request(method: str, params: Params) -> SubRequest:
    """Parse a non-meta method (``method`` must be in :data:`METHOD_CLASSES`)."""
    return METHOD_CLASSES[method].parse(params)


__all__ = [
    "METHOD_CLASSES",
    "OXEND_ENDPOINTS",
    "RECURSIVE_TYPES",
    "AccountMethod",
    "AccountRequest",
    "Delete",
    "DeleteAll",
    "DeleteBefore",
    "Expire",
    "ExpireAll",
    "GetExpiries",
    "GetSwarm",
    "Info",
    "OxendRequest",
    "RecursiveRequest",
    "Retrieve",
    "RevokeSubaccount",
    "Store",
    "SubRequest",
    "UnrevokeSubaccount",
    "parse_sub_request",
]
