"""Sans-I/O storage RPC: parse and validate client requests, build signature texts, verify
signatures, and shape responses exactly as Session's storage server does.

Nothing here touches the network or the store. The flow a handler follows (the order matters:
it decides which status a client sees first) is::

    req = parse_request(body)                 # 400 RpcError on anything malformed
    # 503 if not ready, 421 if the account is not ours (handler)
    precheck(req, now_ms, forwarded=..., hf=...)   # 403 TTL, 406 clock, 401 expiry-in-past
    verify_request(req, revoked=...)          # 401 bad/missing signature
    ... execute, then build per-node results with the *_result_text() helpers ...

Requests arrive as JSON ``{"method": ..., "params": {...}}`` (HTTPS body or the inner payload of
an onion request). A request forwarded to swarm peers is re-encoded with :func:`forward_body`
(same JSON shape; peers parse it with :func:`parse_request` and ``forwarded=True``).

Parameter names, error messages and limits follow ``oxenss/rpc/client_rpc_endpoints.cpp`` and
``request_handler.cpp`` (session-storage-server 2.8.0).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Union

from session.errors import ErrorKind, SessionError
from session.identity import ed25519_to_x25519, verify
from session.storage.base import is_public_outbox_namespace

# ---- constants (request_handler.h / client_rpc_endpoints.h) ---------------------------------

#: Version reported by ``info`` and compared by ``ifelse`` (the reference version we follow).
STORAGE_SERVER_VERSION: tuple[int, int, int] = (2, 8, 0)
#: Hard fork reported in ``hf`` (19.4 enables multi-expiry ``expire`` requests).
DEFAULT_HARDFORK: tuple[int, int] = (19, 4)
MULTI_EXPIRY_HARDFORK: tuple[int, int] = (19, 4)

MAX_MESSAGE_BODY = 76_800  # raw bytes; 102,400 base64 characters
TTL_MINIMUM = 10_000
TTL_MAXIMUM = 14 * 24 * 3600 * 1000
TTL_MAXIMUM_PRIVATE = 30 * 24 * 3600 * 1000
STORE_TOLERANCE = 10_000
SIGNATURE_TOLERANCE = 60_000
SIGNATURE_TOLERANCE_FORWARDED = 70_000
DELETE_BEFORE_FUTURE = 60_000
EXPIRE_PAST_TOLERANCE = 60_000
RETRIEVE_MAX_SIZE = 7_800_000
BATCH_REQUEST_MAX = 20
SUBACCOUNT_TOKEN_LENGTH = 36
MAX_SUBACCOUNT_TOKENS = 50
NAMESPACE_MIN, NAMESPACE_MAX = -32768, 32767
INVALID_SWARM_ID = 2**64 - 1

_MIN_MS_TIMESTAMP = 1_000_000 * 1000  # below this, the client very likely sent seconds


class _All(enum.Enum):
    ALL = "all"

    def __repr__(self) -> str:
        return "ALL"


#: The ``"all"`` namespace value of delete_all / delete_before / expire_all.
ALL = _All.ALL
NamespaceVar = Union[int, _All]


class Access(enum.IntFlag):
    """Subaccount token flags."""

    NONE = 0
    READ = 1
    WRITE = 2
    DELETE = 4
    ANY_PREFIX = 8


class RpcError(SessionError):
    """A request failed with an HTTP status and a plain-text message (sent to the client)."""

    kind = ErrorKind.PROTOCOL

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = (
            ErrorKind.BAD_INPUT
            if status == 400
            else ErrorKind.CRYPTO
            if status == 401
            else ErrorKind.STORAGE
            if status == 507
            else ErrorKind.INTERNAL
            if status == 500
            else ErrorKind.PROTOCOL
        )

    def __repr__(self) -> str:
        return f"RpcError({self.status}, {self.message!r})"


class _ParseError(Exception):
    """Internal: becomes ``RpcError(400, "invalid request: <msg>")``."""


# ---- namespaces ------------------------------------------------------------------------------


def is_public_inbox_namespace(ns: int) -> bool:
    return ns % 10 == 0


def is_noauth_retrieve_namespace(ns: int) -> bool:
    return ns == -10 or is_public_outbox_namespace(ns)


def is_unrevocable_namespace(ns: int) -> bool:
    return ns < 0 and (-ns) % 100 == 11


def namespace_sig_string(ns: NamespaceVar) -> str:
    """Namespace as it appears in signed texts: "" for 0, "all", or the decimal value."""
    if ns is ALL:
        return "all"
    return "" if ns == 0 else str(ns)


# ---- small codecs ----------------------------------------------------------------------------

_B64_RE = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")


def _is_b64(s: str) -> bool:
    if not _B64_RE.match(s):
        return False
    body = s.rstrip("=")
    if len(body) % 4 == 1:
        return False
    return len(s) % 4 == 0 if "=" in s else True


def _b64decode(s: str) -> bytes:
    s = s.replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def b64(data: bytes) -> str:
    """Standard padded base64 (what the storage server emits)."""
    return base64.b64encode(data).decode()


_Z32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def base32z(data: bytes) -> str:
    """z-base-32 (oxenc ``to_base32z``): 5 bits per character, most significant first."""
    n = int.from_bytes(data, "big")
    bits = len(data) * 8
    out = []
    pad = -bits % 5
    n <<= pad
    bits += pad
    for shift in range(bits - 5, -1, -5):
        out.append(_Z32[(n >> shift) & 31])
    return "".join(out)


# ---- accounts and auth -----------------------------------------------------------------------


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
        if isinstance(value, str) and len(value) == 66 and _HEX_RE.match(value):
            raw = bytes.fromhex(value)
            return cls(raw[0], raw[1:])
        return None


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


# ---- request types ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Store:
    METHOD: ClassVar[str] = "store"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    namespace: int
    timestamp: int
    expiry: int
    data: bytes
    auth: Auth | None = None
    sig_timestamp: int | None = None

    @property
    def public_inbox(self) -> bool:
        return is_public_inbox_namespace(self.namespace)

    @property
    def required_access(self) -> Access:
        if is_public_outbox_namespace(self.namespace):
            return Access.WRITE | Access.DELETE
        return Access.WRITE

    def signature_text(self) -> bytes:
        return f"store{namespace_sig_string(self.namespace)}{self.sig_timestamp}".encode()

    def to_params(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "pubkey": self.account.hex,
            "timestamp": self.timestamp,
            "expiry": self.expiry,
            "data": b64(self.data),
        }
        if self.namespace != 0:
            d["namespace"] = self.namespace
        if self.auth is not None:
            d.update(self.auth.to_params())
            d["sig_timestamp"] = self.sig_timestamp
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Retrieve:
    METHOD: ClassVar[str] = "retrieve"
    RECURSIVE: ClassVar[bool] = False
    account: Account
    namespace: int = 0
    last_hash: str | None = None
    max_count: int | None = None
    max_size: int | None = None
    auth: Auth | None = None
    timestamp: int | None = None
    required_access: ClassVar[Access] = Access.READ

    def signature_text(self) -> bytes:
        return f"retrieve{namespace_sig_string(self.namespace)}{self.timestamp}".encode()


@dataclasses.dataclass(frozen=True, slots=True)
class Delete:
    METHOD: ClassVar[str] = "delete"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    messages: tuple[str, ...]
    auth: Auth
    required: bool = False
    required_access: ClassVar[Access] = Access.DELETE

    def signature_text(self) -> bytes:
        return ("delete" + "".join(self.messages)).encode()

    def to_params(self) -> dict[str, Any]:
        d = {"pubkey": self.account.hex, "messages": list(self.messages), **self.auth.to_params()}
        if self.required:
            d["required"] = True
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteAll:
    METHOD: ClassVar[str] = "delete_all"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    namespace: NamespaceVar
    timestamp: int
    auth: Auth
    required_access: ClassVar[Access] = Access.DELETE

    def signature_text(self) -> bytes:
        return f"delete_all{namespace_sig_string(self.namespace)}{self.timestamp}".encode()

    def to_params(self) -> dict[str, Any]:
        return {
            "pubkey": self.account.hex,
            "namespace": _ns_param(self.namespace),
            "timestamp": self.timestamp,
            **self.auth.to_params(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteBefore:
    METHOD: ClassVar[str] = "delete_before"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    namespace: NamespaceVar
    before: int
    auth: Auth
    required_access: ClassVar[Access] = Access.DELETE

    def signature_text(self) -> bytes:
        return f"delete_before{namespace_sig_string(self.namespace)}{self.before}".encode()

    def to_params(self) -> dict[str, Any]:
        return {
            "pubkey": self.account.hex,
            "namespace": _ns_param(self.namespace),
            "before": self.before,
            **self.auth.to_params(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ExpireAll:
    METHOD: ClassVar[str] = "expire_all"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    namespace: NamespaceVar
    expiry: int
    auth: Auth
    required_access: ClassVar[Access] = Access.DELETE

    def signature_text(self) -> bytes:
        return f"expire_all{namespace_sig_string(self.namespace)}{self.expiry}".encode()

    def to_params(self) -> dict[str, Any]:
        return {
            "pubkey": self.account.hex,
            "namespace": _ns_param(self.namespace),
            "expiry": self.expiry,
            **self.auth.to_params(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Expire:
    METHOD: ClassVar[str] = "expire"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    messages: tuple[str, ...]
    expiries: tuple[int, ...]  # one value, or one per message
    auth: Auth
    shorten: bool = False
    extend: bool = False
    required_access: ClassVar[Access] = Access.WRITE

    @property
    def mode(self) -> str:
        return "shorten" if self.shorten else "extend" if self.extend else ""

    def signature_text(self) -> bytes:
        exps = "".join(str(e) for e in self.expiries)
        return f"expire{self.mode}{exps}{''.join(self.messages)}".encode()

    def to_params(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "pubkey": self.account.hex,
            "messages": list(self.messages),
            "expiry": self.expiries[0] if len(self.expiries) == 1 else list(self.expiries),
            **self.auth.to_params(),
        }
        if self.shorten:
            d["shorten"] = True
        if self.extend:
            d["extend"] = True
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class GetExpiries:
    METHOD: ClassVar[str] = "get_expiries"
    RECURSIVE: ClassVar[bool] = False
    account: Account
    messages: tuple[str, ...]
    timestamp: int
    auth: Auth
    required_access: ClassVar[Access] = Access.READ

    def signature_text(self) -> bytes:
        return f"get_expiries{self.timestamp}{''.join(self.messages)}".encode()


@dataclasses.dataclass(frozen=True, slots=True)
class RevokeSubaccount:
    METHOD: ClassVar[str] = "revoke_subaccount"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    tokens: tuple[bytes, ...]
    timestamp: int
    auth: Auth  # never carries a subaccount
    required_access: ClassVar[Access] = Access.NONE

    def signature_text(self) -> bytes:
        return f"{self.METHOD}{self.timestamp}".encode() + b"".join(self.tokens)

    def to_params(self) -> dict[str, Any]:
        return {
            "pubkey": self.account.hex,
            "revoke": [b64(t) for t in self.tokens],
            "timestamp": self.timestamp,
            **self.auth.to_params(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class UnrevokeSubaccount:
    METHOD: ClassVar[str] = "unrevoke_subaccount"
    RECURSIVE: ClassVar[bool] = True
    account: Account
    tokens: tuple[bytes, ...]
    timestamp: int
    auth: Auth
    required_access: ClassVar[Access] = Access.NONE

    def signature_text(self) -> bytes:
        return f"{self.METHOD}{self.timestamp}".encode() + b"".join(self.tokens)

    def to_params(self) -> dict[str, Any]:
        return {
            "pubkey": self.account.hex,
            "unrevoke": [b64(t) for t in self.tokens],
            "timestamp": self.timestamp,
            **self.auth.to_params(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class GetSwarm:
    METHOD: ClassVar[str] = "get_swarm"
    RECURSIVE: ClassVar[bool] = False
    account: Account


@dataclasses.dataclass(frozen=True, slots=True)
class Info:
    METHOD: ClassVar[str] = "info"
    RECURSIVE: ClassVar[bool] = False


@dataclasses.dataclass(frozen=True, slots=True)
class OxendRequest:
    METHOD: ClassVar[str] = "oxend_request"
    RECURSIVE: ClassVar[bool] = False
    endpoint: str
    params: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """``batch`` (``sequence=False``) or ``sequence`` (stops after the first non-2xx)."""

    RECURSIVE: ClassVar[bool] = False
    requests: tuple[SubRequest, ...]
    sequence: bool = False

    @property
    def METHOD(self) -> str:  # noqa: N802 - same spelling as the other request types
        return "sequence" if self.sequence else "batch"


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """``ifelse`` condition; every given bound must hold."""

    height_at_least: int | None = None
    height_before: int | None = None
    hf_at_least: tuple[int, int] | None = None
    hf_before: tuple[int, int] | None = None
    v_at_least: tuple[int, int, int] | None = None
    v_before: tuple[int, int, int] | None = None

    def holds(self, hf: Sequence[int], version: Sequence[int], height: int) -> bool:
        hf_t, v_t = tuple(hf), tuple(version)
        ok = True
        if self.hf_at_least is not None:
            ok &= hf_t >= self.hf_at_least
        if self.hf_before is not None:
            ok &= hf_t < self.hf_before
        if self.v_at_least is not None:
            ok &= v_t >= self.v_at_least
        if self.v_before is not None:
            ok &= v_t < self.v_before
        if self.height_at_least is not None:
            ok &= height >= self.height_at_least
        if self.height_before is not None:
            ok &= height < self.height_before
        return ok


@dataclasses.dataclass(frozen=True, slots=True)
class IfElse:
    METHOD: ClassVar[str] = "ifelse"
    RECURSIVE: ClassVar[bool] = False
    condition: Condition
    then: Request | None
    otherwise: Request | None


SubRequest = Union[
    Store, Retrieve, Delete, DeleteAll, DeleteBefore, ExpireAll, Expire, GetExpiries,
    RevokeSubaccount, UnrevokeSubaccount, GetSwarm, Info, OxendRequest,
]  # fmt: skip
Request = Union[SubRequest, Batch, IfElse]
#: Requests that fan out to the whole swarm.
RecursiveRequest = Union[
    Store, Delete, DeleteAll, DeleteBefore, ExpireAll, Expire, RevokeSubaccount, UnrevokeSubaccount
]
#: Requests that carry an account and are answered only by its swarm.
AccountRequest = Union[RecursiveRequest, Retrieve, GetExpiries]


def _ns_param(ns: NamespaceVar) -> int | str:
    return "all" if ns is ALL else ns


def forward_body(req: RecursiveRequest) -> dict[str, Any]:
    """The JSON body sent to swarm peers for a recursive request (same shape as a client body;
    the peer parses it with ``parse_request(..., forwarded=True)``)."""
    return {"method": req.METHOD, "params": req.to_params()}


# ---- field parsing (parse_field semantics of client_rpc_endpoints.cpp) -----------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _get(p: Mapping[str, Any], name: str) -> Any:
    v = p.get(name)
    return v  # absent and null are both "not given"


def _bad(name: str, desc: str) -> _ParseError:
    return _ParseError(f"Invalid value given for '{name}': expected {desc}")


def _f_str(p: Mapping[str, Any], name: str) -> str | None:
    v = _get(p, name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _bad(name, "string")
    return v


def _f_bool(p: Mapping[str, Any], name: str) -> bool | None:
    v = _get(p, name)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise _bad(name, "boolean")
    return v


def _f_int(p: Mapping[str, Any], name: str) -> int | None:
    v = _get(p, name)
    if v is None:
        return None
    if not _is_int(v) or not -(2**63) <= v < 2**63:
        raise _bad(name, "integer")
    return int(v)


def _f_uint(p: Mapping[str, Any], name: str) -> int | None:
    v = _get(p, name)
    if v is None:
        return None
    if not _is_int(v) or not 0 <= v < 2**64:
        raise _bad(name, "positive integer")
    return int(v)


def _f_ts(p: Mapping[str, Any], name: str) -> int | None:
    v = _get(p, name)
    if v is None:
        return None
    if not _is_int(v) or not 0 <= v < 2**63:
        raise _bad(name, "integer timestamp (in milliseconds)")
    if v < _MIN_MS_TIMESTAMP:
        raise _ParseError(f"Invalid timestamp for '{name}': timestamp must be in milliseconds")
    return int(v)


def _f_ns(p: Mapping[str, Any], name: str, allow_all: bool) -> NamespaceVar | None:
    v = _get(p, name)
    if v is None:
        return None
    if _is_int(v):
        if not NAMESPACE_MIN <= v <= NAMESPACE_MAX:
            raise _ParseError(f"Invalid value given for '{name}': value out of range")
        return int(v)
    if allow_all and v == "all":
        return ALL
    if allow_all or isinstance(v, str):
        raise _ParseError(f"Invalid value given for '{name}': expected integer or \"all\"")
    raise _bad(name, "16-bit integer")


def _f_str_array(p: Mapping[str, Any], name: str) -> list[str] | None:
    v = _get(p, name)
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise _bad(name, "string array")


def _f_int_array(p: Mapping[str, Any], name: str) -> list[int] | None:
    v = _get(p, name)
    if v is None:
        return None
    if _is_int(v):
        return [v]
    if isinstance(v, list) and all(_is_int(x) for x in v):
        return list(v)
    raise _bad(name, "integer array")


def _f_ts_array(p: Mapping[str, Any], name: str) -> list[int] | None:
    v = _get(p, name)
    if v is None:
        return None
    if _is_int(v) and 0 <= v < 2**63:
        return [v]
    if isinstance(v, list) and all(_is_int(x) and 0 <= x < 2**63 for x in v):
        return list(v)
    raise _bad(name, "timestamp array")


def _f_stringified(p: Mapping[str, Any], name: str, unsigned: bool) -> int | None:
    """ttl / timestamp of ``store``: an integer or a decimal string."""
    v = _get(p, name)
    if isinstance(v, str):
        if re.fullmatch(r"-?[0-9]+" if not unsigned else r"[0-9]+", v):
            n = int(v)
            if (0 if unsigned else -(2**63)) <= n < (2**64 if unsigned else 2**63):
                return n
        raise _ParseError(f"Invalid value given for '{name}': {json.dumps(v)}")
    return _f_uint(p, name) if unsigned else _f_int(p, name)


def _require(name: str, v: Any) -> None:
    if v is None:
        raise _ParseError(f"Required field '{name}' missing")


def _exactly_one(first: str, a: Any, second: str, b: Any, alias: bool = False) -> None:
    if a is not None and b is not None:
        raise _ParseError(f"Cannot specify both '{first}' and '{second}'")
    if a is None and b is None:
        raise _ParseError(
            f"Required field '{first}' missing"
            if alias
            else f"Required field '{first}' or '{second}' missing"
        )


def _load_pk(pk: str | None, getswarm: bool = False) -> Account:
    _require("pubkey", pk)
    acct = Account.parse(pk)  # type: ignore[arg-type]
    if acct is None:
        raise _ParseError(
            "Pubkey must be 66 hex digits/33 bytes long"
            if getswarm
            else "Pubkey must be 66 hex digits (33 bytes) long"
        )
    return acct


def _decode_sig(sig: str, what: str) -> bytes:
    if not _is_b64(sig) or not (len(sig) == 86 or (len(sig) == 88 and sig[86:] == "==")):
        raise _ParseError(f"{what}: expected base64 encoded Ed25519 signature")
    return _b64decode(sig)


def _load_auth(
    p: Mapping[str, Any], acct: Account, sig: str | None, with_subaccount: bool = True
) -> Auth:
    """load_pk_signature + load_subaccount."""
    pk_ed = _f_str(p, "pubkey_ed25519")
    _require("signature", sig)
    ed: bytes | None = None
    if pk_ed is not None:
        if acct.prefix != 5:
            raise _ParseError("pubkey_ed25519 is only permitted for 05[...] pubkeys")
        if len(pk_ed) == 64:
            if not _HEX_RE.match(pk_ed):
                raise _ParseError("invalid pubkey_ed25519: value is not hex")
            ed = bytes.fromhex(pk_ed)
        elif len(pk_ed.encode("utf-8", "surrogatepass")) == 32:
            ed = pk_ed.encode("utf-8", "surrogatepass")
        else:
            raise _ParseError("Invalid pubkey_ed25519: expected 64 hex char or 32 byte pubkey")
    signature = _decode_sig(sig, "invalid signature")  # type: ignore[arg-type]
    sub = sub_sig = None
    if with_subaccount:
        sa = _f_str(p, "subaccount")
        sa_sig = _f_str(p, "subaccount_sig")
        if sa:
            if sa_sig is None:
                raise _ParseError(
                    "invalid subaccount: subaccount_sig is required when using subaccount"
                )
            sub = _decode_token(sa, "invalid subaccount: expected base64 or hex-encoded subaccount token")
            sub_sig = _decode_sig(sa_sig, "invalid subaccount signature")
    return Auth(signature, ed, sub, sub_sig)


def _decode_token(s: str, err: str) -> bytes:
    if _is_b64(s) and len(s) == SUBACCOUNT_TOKEN_LENGTH * 4 // 3:
        return _b64decode(s)
    if len(s) == SUBACCOUNT_TOKEN_LENGTH * 2 and _HEX_RE.match(s):
        return bytes.fromhex(s)
    raise _ParseError(err)


def _is_valid_hash(h: str) -> bool:
    return len(h) == 43 and _is_b64(h)


def _check_hashes(msgs: list[str] | None) -> tuple[str, ...]:
    _require("messages", msgs)
    assert msgs is not None
    if not msgs:
        raise _ParseError("messages does not contain any message hashes")
    for m in msgs:
        if not _is_valid_hash(m):
            raise _ParseError("invalid message hash: " + m)
    return tuple(msgs)


def _load_store(p: Mapping[str, Any]) -> Store:
    data = _f_str(p, "data")
    expiry = _f_ts(p, "expiry")
    ns = _f_ns(p, "namespace", False)
    pk_alt = _f_str(p, "pubKey")
    pk = _f_str(p, "pubkey")
    sig_ts = _f_ts(p, "sig_timestamp")
    sig = _f_str(p, "signature")
    timestamp = _f_stringified(p, "timestamp", unsigned=False)
    ttl = _f_stringified(p, "ttl", unsigned=True)
    _require("timestamp", timestamp)
    _exactly_one("expiry", expiry, "ttl", ttl)
    assert timestamp is not None
    exp = expiry if expiry is not None else timestamp + ttl  # type: ignore[operator]
    _exactly_one("pubkey", pk, "pubKey", pk_alt, alias=True)
    acct = _load_pk(pk if pk is not None else pk_alt)
    auth = None
    if sig is not None:
        auth = _load_auth(p, acct, sig)
        sig_ts = sig_ts if sig_ts is not None else timestamp
    else:
        sig_ts = None
    _require("data", data)
    assert data is not None
    if not _is_b64(data):
        raise _ParseError("Invalid 'data' value: not base64 encoded")
    if len(data) > MAX_MESSAGE_BODY // 3 * 4:
        raise _ParseError(f"Message body exceeds maximum allowed length of {MAX_MESSAGE_BODY} bytes")
    return Store(acct, int(ns or 0), timestamp, exp, _b64decode(data), auth, sig_ts)  # type: ignore[arg-type]


def _load_retrieve(p: Mapping[str, Any]) -> Retrieve:
    lastHash = _f_str(p, "lastHash")  # noqa: N806
    last_hash = _f_str(p, "last_hash")
    max_count = _f_int(p, "max_count")
    max_size = _f_int(p, "max_size")
    ns = _f_ns(p, "namespace", False)
    pk_alt = _f_str(p, "pubKey")
    pk = _f_str(p, "pubkey")
    pk_ed = _f_str(p, "pubkey_ed25519")
    sig = _f_str(p, "signature")
    ts = _f_ts(p, "timestamp")
    _exactly_one("pubkey", pk, "pubKey", pk_alt, alias=True)
    acct = _load_pk(pk if pk is not None else pk_alt)
    auth = None
    if pk_ed is not None or sig is not None or ts is not None or (
        ns is not None and not is_noauth_retrieve_namespace(ns)  # type: ignore[arg-type]
    ):
        auth = _load_auth(p, acct, sig)
        _require("timestamp", ts)
    if last_hash is not None and lastHash is not None:
        raise _ParseError("Cannot specify both 'last_hash' and 'lastHash'")
    lh = last_hash if last_hash is not None else lastHash
    if lh is not None:
        if lh == "":
            lh = None
        elif len(lh) == 43:
            if not _is_b64(lh):
                raise _ParseError("Invalid last_hash: not base64")
        else:
            raise _ParseError("Invalid last_hash: expected base64 (43 chars)")
    assert ns is not ALL
    return Retrieve(acct, ns or 0, lh, max_count, max_size, auth, ts if auth else None)


def _load_delete(p: Mapping[str, Any]) -> Delete:
    msgs = _f_str_array(p, "messages")
    pk = _f_str(p, "pubkey")
    required = _f_bool(p, "required")
    sig = _f_str(p, "signature")
    acct = _load_pk(pk)
    auth = _load_auth(p, acct, sig)
    return Delete(acct, _check_hashes(msgs), auth, bool(required))


def _load_ns_action(p: Mapping[str, Any], field: str) -> tuple[Account, NamespaceVar, int, Auth]:
    value = _f_ts(p, field)
    ns = _f_ns(p, "namespace", True)
    pk = _f_str(p, "pubkey")
    sig = _f_str(p, "signature")
    acct = _load_pk(pk)
    auth = _load_auth(p, acct, sig)
    _require(field, value)
    return acct, (0 if ns is None else ns), value, auth  # type: ignore[return-value]


def _load_delete_all(p: Mapping[str, Any]) -> DeleteAll:
    return DeleteAll(*_load_ns_action(p, "timestamp"))


def _load_delete_before(p: Mapping[str, Any]) -> DeleteBefore:
    return DeleteBefore(*_load_ns_action(p, "before"))


def _load_expire_all(p: Mapping[str, Any]) -> ExpireAll:
    return ExpireAll(*_load_ns_action(p, "expiry"))


def _load_expire(p: Mapping[str, Any]) -> Expire:
    expiry = _f_ts_array(p, "expiry")
    extend = _f_bool(p, "extend")
    msgs = _f_str_array(p, "messages")
    pk = _f_str(p, "pubkey")
    shorten = _f_bool(p, "shorten")
    sig = _f_str(p, "signature")
    acct = _load_pk(pk)
    auth = _load_auth(p, acct, sig)
    _require("expiry", expiry)
    assert expiry is not None
    if not expiry:
        raise _ParseError("'expiry' does not contain any expiration timestamps")
    if shorten and extend:
        raise _ParseError("cannot specify both 'shorten' and 'extend'")
    _require("messages", msgs)
    assert msgs is not None
    if not msgs:
        raise _ParseError("messages does not contain any message hashes")
    if len(expiry) > 1 and len(expiry) != len(msgs):
        raise _ParseError("'expiry' must be a single expiry, or the same length as 'messages'")
    hashes = _check_hashes(msgs)
    return Expire(acct, hashes, tuple(expiry), auth, bool(shorten), bool(extend))


def _load_get_expiries(p: Mapping[str, Any]) -> GetExpiries:
    msgs = _f_str_array(p, "messages")
    pk = _f_str(p, "pubkey")
    sig = _f_str(p, "signature")
    ts = _f_ts(p, "timestamp")
    acct = _load_pk(pk)
    auth = _load_auth(p, acct, sig)
    _require("timestamp", ts)
    _require("messages", msgs)
    assert msgs is not None
    if not msgs:
        raise _ParseError("messages does not contain any message hashes")
    return GetExpiries(acct, tuple(msgs), ts, auth)  # type: ignore[arg-type]


def _load_revoke(p: Mapping[str, Any], unrevoke: bool) -> RevokeSubaccount | UnrevokeSubaccount:
    field = "unrevoke" if unrevoke else "revoke"
    pk = _f_str(p, "pubkey")
    tokens = _f_str_array(p, field)
    sig = _f_str(p, "signature")
    ts = _f_ts(p, "timestamp")
    acct = _load_pk(pk)
    auth = _load_auth(p, acct, sig, with_subaccount=False)
    _require(field, tokens)
    assert tokens is not None
    if not unrevoke and len(tokens) > MAX_SUBACCOUNT_TOKENS:
        raise _ParseError(
            f"invalid revoke: cannot revoke more than {MAX_SUBACCOUNT_TOKENS} subaccounts at once"
        )
    toks = tuple(
        _decode_token(t, f"invalid {field}: expected base64 or hex-encoded subaccount tag")
        for t in tokens
    )
    _require("timestamp", ts)
    cls = UnrevokeSubaccount if unrevoke else RevokeSubaccount
    return cls(acct, toks, ts, auth)  # type: ignore[arg-type]


def _load_get_swarm(p: Mapping[str, Any]) -> GetSwarm:
    pk_alt = _f_str(p, "pubKey")
    pk = _f_str(p, "pubkey")
    _exactly_one("pubkey", pk, "pubKey", pk_alt, alias=True)
    return GetSwarm(_load_pk(pk if pk is not None else pk_alt, getswarm=True))


_OXEND_ENDPOINTS = frozenset({"get_service_nodes", "ons_resolve"})


def _load_oxend(p: Mapping[str, Any]) -> OxendRequest:
    endpoint = _f_str(p, "endpoint")
    _require("endpoint", endpoint)
    if endpoint not in _OXEND_ENDPOINTS:
        raise _ParseError(f"Invalid oxend endpoint '{endpoint}'")
    assert endpoint is not None
    return OxendRequest(endpoint, p.get("params"))


_LOADERS: dict[str, Callable[[Mapping[str, Any]], SubRequest]] = {
    "store": _load_store,
    "retrieve": _load_retrieve,
    "delete": _load_delete,
    "delete_all": _load_delete_all,
    "delete_before": _load_delete_before,
    "expire_all": _load_expire_all,
    "expire": _load_expire,
    "get_expiries": _load_get_expiries,
    "revoke_subaccount": lambda p: _load_revoke(p, False),
    "unrevoke_subaccount": lambda p: _load_revoke(p, True),
    "get_swarm": _load_get_swarm,
    "get_snodes_for_pubkey": _load_get_swarm,
    "info": lambda p: Info(),
    "oxend_request": _load_oxend,
}
_META = frozenset({"batch", "sequence", "ifelse"})

#: Every method name the node answers.
METHODS = frozenset(_LOADERS) | _META


def _load_batch(p: Mapping[str, Any], sequence: bool) -> Batch:
    reqs = p.get("requests")
    if not isinstance(reqs, list) or not reqs:
        raise _ParseError('Invalid batch request: no valid "requests" field')
    if len(reqs) > BATCH_REQUEST_MAX:
        raise _ParseError("Invalid batch request: subrequest limit exceeded")
    out = []
    for r in reqs:
        if not isinstance(r, dict):
            raise _ParseError("Invalid batch request: requests must be objects")
        m, params = r.get("method"), r.get("params")
        if not isinstance(m, str) or not isinstance(params, dict):
            raise _ParseError("Invalid batch request: subrequests must have method/params keys")
        if m in _META:
            raise _ParseError("Invalid batch subrequest: subrequests may not contain meta-requests")
        if m not in _LOADERS:
            raise _ParseError(f'Invalid batch subrequest: invalid method "{m}"')
        out.append(_LOADERS[m](params))
    return Batch(tuple(out), sequence)


def _fixed(v: list[int] | None, n: int) -> tuple[int, ...] | None:
    if not v:
        return None
    return tuple((v[i] if i < len(v) else 0) for i in range(n))


def _load_ifelse(p: Mapping[str, Any]) -> IfElse:
    cond = p.get("if")
    if not isinstance(cond, dict):
        raise _ParseError('Invalid ifelse request: no valid "if" field')
    c = Condition(
        height_at_least=_f_int(cond, "height_at_least"),
        height_before=_f_int(cond, "height_before"),
        hf_at_least=_fixed(_f_int_array(cond, "hf_at_least"), 2),  # type: ignore[arg-type]
        hf_before=_fixed(_f_int_array(cond, "hf_before"), 2),  # type: ignore[arg-type]
        v_at_least=_fixed(_f_int_array(cond, "v_at_least"), 3),  # type: ignore[arg-type]
        v_before=_fixed(_f_int_array(cond, "v_before"), 3),  # type: ignore[arg-type]
    )
    if c == Condition():
        raise _ParseError('Invalid ifelse request: must specify at least one "if" condition')

    def branch(key: str) -> Request | None:
        b = p.get(key)
        if b is None:
            return None
        if not isinstance(b, dict):
            raise _ParseError(f"Invalid ifelse request: {key} must be an object")
        m, params = b.get("method"), b.get("params")
        if not isinstance(m, str) or not isinstance(params, dict):
            raise _ParseError(f"Invalid ifelse request: {key} must have method/params keys")
        if m not in METHODS:
            raise _ParseError(f'Invalid ifelse request method "{key}"')
        return _parse_params(m, params)

    then, other = branch("then"), branch("else")
    if then is None and other is None:
        raise _ParseError('Invalid ifelse request: at least one of "then"/"else" required')
    return IfElse(c, then, other)


def _parse_params(method: str, params: Mapping[str, Any]) -> Request:
    if method in ("batch", "sequence"):
        return _load_batch(params, method == "sequence")
    if method == "ifelse":
        return _load_ifelse(params)
    return _LOADERS[method](params)


def parse_params(method: str, params: Any, *, forwarded: bool = False) -> Request:
    """Validate ``params`` of ``method``; raises :class:`RpcError` (400) when malformed."""
    if method not in METHODS:
        raise RpcError(400, f"no method {method}")
    if not isinstance(params, dict):
        raise RpcError(400, "invalid json: no `params` field")
    try:
        req = _parse_params(method, params)
    except _ParseError as e:
        raise RpcError(400, f"invalid request: {e}") from None
    except (ValueError, TypeError, binascii.Error) as e:  # defensive: decoding corner cases
        raise RpcError(400, f"invalid request: {e}") from None
    if forwarded and not req.RECURSIVE:
        raise RpcError(400, "invalid request: received invalid forwarded non-forwardable request")
    return req


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes | str) -> Any:
    """Strict JSON (no NaN/Infinity); raises RpcError(400, "invalid json")."""
    try:
        if isinstance(body, bytes | bytearray | memoryview):
            body = bytes(body).decode("utf-8")
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise RpcError(400, "invalid json") from None


def parse_request(body: bytes | str | Mapping[str, Any], *, forwarded: bool = False) -> Request:
    """Parse a ``{"method", "params"}`` body (raw JSON or already decoded)."""
    doc = body if isinstance(body, Mapping) else parse_json(body)
    if not isinstance(doc, Mapping):
        raise RpcError(400, "invalid json: no `method` field")
    method = doc.get("method")
    if not isinstance(method, str):
        raise RpcError(400, "invalid json: no `method` field")
    params = doc.get("params")
    if not isinstance(params, dict):
        raise RpcError(400, "invalid json: no `params` field")
    return parse_params(method, params, forwarded=forwarded)


# ---- checks after the swarm check ------------------------------------------------------------


def precheck(
    req: Request, now_ms: int, *, forwarded: bool = False, hf: Sequence[int] = DEFAULT_HARDFORK
) -> None:
    """Time-window, TTL and hard-fork checks that Session runs before verifying the signature.
    Raises :class:`RpcError` (403, 406, 401)."""
    if isinstance(req, Store):
        ttl = req.expiry - req.timestamp
        max_ttl = TTL_MAXIMUM if req.public_inbox else TTL_MAXIMUM_PRIVATE
        if ttl < TTL_MINIMUM or ttl > max_ttl:
            raise RpcError(403, "Provided expiry/TTL is not valid.")
        if req.timestamp > now_ms + STORE_TOLERANCE or req.expiry < now_ms - STORE_TOLERANCE:
            raise RpcError(406, "Timestamp error: check your clock")
        if not req.public_inbox:
            if req.auth is None:
                raise RpcError(
                    401, f"store: signature required to store to namespace {req.namespace}"
                )
            assert req.sig_timestamp is not None
            if abs(req.sig_timestamp - now_ms) > SIGNATURE_TOLERANCE:
                raise RpcError(406, "store signature timestamp too far from current time")
    elif isinstance(req, Retrieve):
        if not is_noauth_retrieve_namespace(req.namespace) and req.auth is None:
            raise RpcError(401, "retrieve: request signature required")
        if req.auth is not None:
            assert req.timestamp is not None
            if abs(req.timestamp - now_ms) > SIGNATURE_TOLERANCE:
                raise RpcError(406, "retrieve timestamp too far from current time")
    elif isinstance(req, DeleteAll):
        tol = SIGNATURE_TOLERANCE_FORWARDED if forwarded else SIGNATURE_TOLERANCE
        if abs(req.timestamp - now_ms) > tol:
            raise RpcError(406, "delete_all timestamp too far from current time")
    elif isinstance(req, DeleteBefore):
        if req.before > now_ms + DELETE_BEFORE_FUTURE:
            raise RpcError(401, "delete_before timestamp too far in the future")
    elif isinstance(req, ExpireAll):
        tol = SIGNATURE_TOLERANCE_FORWARDED if forwarded else SIGNATURE_TOLERANCE
        if req.expiry < now_ms - tol:
            raise RpcError(406, "expire_all timestamp should be >= current time")
    elif isinstance(req, Expire):
        for e in req.expiries:
            if e < now_ms - EXPIRE_PAST_TOLERANCE:
                raise RpcError(401, "expire: timestamp should be >= current time")
        if len(req.expiries) > 1 and tuple(hf) < MULTI_EXPIRY_HARDFORK:
            raise RpcError(403, "expire: multi-expiry requests are not yet active on the network")
    elif isinstance(req, GetExpiries):
        if abs(req.timestamp - now_ms) > SIGNATURE_TOLERANCE:
            raise RpcError(406, "get_expiries timestamp too far from current time")
    elif isinstance(req, RevokeSubaccount | UnrevokeSubaccount):
        if abs(req.timestamp - now_ms) > SIGNATURE_TOLERANCE:
            raise RpcError(406, f"{req.METHOD} timestamp too far from current time")


def applied_expiries(req: Expire, now_ms: int) -> list[int]:
    """The expiries a node applies: each clamped to now + 30 days."""
    return [min(now_ms + TTL_MAXIMUM_PRIVATE, e) for e in req.expiries]


def expire_extend_only(req: Expire) -> bool:
    """Whether ``expire`` may only extend (a subaccount without delete access cannot shorten).
    Raises RpcError(400) for ``shorten`` by such a subaccount. Call after verification."""
    sub = req.auth.subaccount
    if sub is not None and not (sub[1] & Access.DELETE):
        if req.shorten:
            raise RpcError(
                400,
                "expire: shorten parameter cannot be used with this subaccount token "
                "(missing delete access)",
            )
        return True
    return req.extend


_SIG_FAIL = {
    "store": "store signature verification failed",
    "retrieve": "retrieve signature verification failed",
    "delete": "delete_msgs signature verification failed",
    "delete_all": "delete_all signature verification failed",
    "delete_before": "delete_before signature verification failed",
    "expire_all": "expire_all signature verification failed",
    "expire": "expire: signature verification failed",
    "get_expiries": "get_expiries signature verification failed",
    "revoke_subaccount": "revoke_subaccount signature verification failed",
    "unrevoke_subaccount": "unrevoke_subaccount signature verification failed",
}


def skip_revoke_check(req: Request) -> bool:
    return isinstance(req, Retrieve) and is_unrevocable_namespace(req.namespace)


def needs_verification(req: Request) -> bool:
    """Whether ``req`` carries a signature that must be verified."""
    if isinstance(req, Store):
        return not req.public_inbox
    if isinstance(req, Retrieve):
        return req.auth is not None
    return isinstance(
        req,
        Delete | DeleteAll | DeleteBefore | ExpireAll | Expire | GetExpiries
        | RevokeSubaccount | UnrevokeSubaccount,
    )


def verify_auth(account: Account, auth: Auth, text: bytes, required: Access, *, revoked: bool) -> bool:
    """Session's ``verify_signature``: returns whether ``auth`` proves access to ``account``."""
    try:
        if account.prefix == 5 and auth.pubkey_ed25519 is not None:
            pk = auth.pubkey_ed25519
            if ed25519_to_x25519(pk) != account.key:
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


def verify_request(req: Request, *, revoked: bool = False) -> None:
    """Verify the request signature (after :func:`precheck`). ``revoked``: whether the request's
    subaccount token is on the owner's revocation list (ignored where Session ignores it).
    Raises RpcError(401)."""
    if not needs_verification(req):
        return
    auth: Auth = req.auth  # type: ignore[union-attr,assignment]
    if isinstance(req, RevokeSubaccount | UnrevokeSubaccount):
        auth = dataclasses.replace(auth, subaccount=None, subaccount_sig=None)
    ok = verify_auth(
        req.account,  # type: ignore[union-attr]
        auth,
        req.signature_text(),  # type: ignore[union-attr]
        req.required_access,  # type: ignore[union-attr]
        revoked=revoked and not skip_revoke_check(req),
    )
    if not ok:
        raise RpcError(401, _SIG_FAIL[req.METHOD])


# ---- retrieve sizing -------------------------------------------------------------------------


def retrieve_limits(req: Retrieve) -> tuple[int | None, int]:
    """(max_count, max_size) after Session's defaults: 0 = unspecified; neither → 1/5 of the
    max; negative size -k → max/k; positive size capped at the max."""
    count = req.max_count or None
    size = req.max_size or None
    if count is None and size is None:
        size = -5
    if size is not None and size < 0:
        return count, RETRIEVE_MAX_SIZE // -size
    if size is None or size > RETRIEVE_MAX_SIZE:
        return count, RETRIEVE_MAX_SIZE
    return count, size


# ---- response shapes -------------------------------------------------------------------------


def misc_fields(now_ms: int, hf: Sequence[int]) -> dict[str, Any]:
    return {"t": now_ms, "hf": list(hf)}


def snode_json(node: Any) -> dict[str, Any]:
    """One ``snodes`` entry of get_swarm / 421 bodies for a :class:`ServiceNode`. We have no
    legacy (Monero-style) keys: the Ed25519 key stands in for ``pubkey_legacy``/``address``."""
    ed = bytes.fromhex(node.pubkey_ed25519)
    return {
        "address": base32z(ed) + ".snode",
        "pubkey_legacy": node.pubkey_ed25519,
        "pubkey_x25519": node.pubkey_x25519,
        "pubkey_ed25519": node.pubkey_ed25519,
        "port": str(node.storage_port),
        "port_https": node.storage_port,
        "port_omq": node.storage_lmq_port,
        "port_quic": node.storage_lmq_port,
        "ip": node.public_ip,
    }


def swarm_json(swarm_id: int | None, nodes: Iterable[Any]) -> dict[str, Any]:
    """``{"snodes": [...], "swarm": "<hex id>"}`` (unknown swarm: empty list, ffff…)."""
    if swarm_id is None:
        return {"snodes": [], "swarm": format(INVALID_SWARM_ID, "x")}
    return {"snodes": [snode_json(n) for n in nodes], "swarm": format(swarm_id, "x")}


def message_json(m: Any) -> dict[str, Any]:
    """A retrieve item (note the key ``expiration``)."""
    return {"hash": m.hash, "timestamp": m.timestamp_ms, "expiration": m.expiry_ms, "data": b64(m.data)}


def service_nodes_result(nodes: Iterable[Any], params: Any, *, height: int = 0) -> dict[str, Any]:
    """An oxend ``get_service_nodes`` result built from our node list (for ``oxend_request``).
    Honours ``fields`` (dict of name → bool, or list of names) and ``active_only``."""
    fields = None
    active_only = False
    if isinstance(params, dict):
        f = params.get("fields")
        if isinstance(f, dict):
            fields = {k for k, v in f.items() if v}
        elif isinstance(f, list):
            fields = {k for k in f if isinstance(k, str)}
        active_only = bool(params.get("active_only", False))
    version = list(STORAGE_SERVER_VERSION)
    states = []
    for n in nodes:
        if active_only and not n.active:
            continue
        entry = {
            "service_node_pubkey": n.pubkey_ed25519,
            "pubkey_ed25519": n.pubkey_ed25519,
            "pubkey_x25519": n.pubkey_x25519,
            "public_ip": n.public_ip,
            "storage_port": n.storage_port,
            "storage_lmq_port": n.storage_lmq_port,
            "swarm_id": n.swarm_id,
            "storage_server_version": version,
            "active": n.active,
            "funded": True,
        }
        if fields is not None:
            entry = {k: v for k, v in entry.items() if k in fields}
        states.append(entry)
    return {"service_node_states": states, "height": height, "status": "OK"}


# Per-node result signature texts (what each swarm member signs; clients verify these).


def store_result_text(hash: str) -> bytes:
    return hash.encode()


def delete_result_text(pubkey_hex: str, requested: Sequence[str], deleted: Sequence[str]) -> bytes:
    return (pubkey_hex + "".join(requested) + "".join(deleted)).encode()


def ns_action_result_text(pubkey_hex: str, value: int, sorted_hashes: Sequence[str]) -> bytes:
    """delete_all (value = timestamp), delete_before (before), expire_all (expiry)."""
    return (pubkey_hex + str(value) + "".join(sorted_hashes)).encode()


def expire_result_text(
    pubkey_hex: str,
    expiries: Sequence[int],
    requested: Sequence[str],
    updated: Sequence[str],
    unchanged: Mapping[str, int],
) -> bytes:
    return (
        pubkey_hex
        + "".join(str(e) for e in expiries)
        + "".join(requested)
        + "".join(updated)
        + "".join(f"{h}{e}" for h, e in sorted(unchanged.items()))
    ).encode()


def revoke_result_text(pubkey_hex: str, timestamp: int, tokens: Sequence[bytes]) -> bytes:
    return (pubkey_hex + str(timestamp)).encode() + b"".join(tokens)


def affected_by_namespace(affected: Iterable[tuple[int, str]], all_ns: bool) -> tuple[list[str], Any]:
    """Sorted hashes (for the signature) and the JSON value: a sorted list (one namespace) or
    ``{"ns": [sorted hashes]}`` (all namespaces)."""
    items = sorted(affected, key=lambda a: a[1])
    hashes = [h for _, h in items]
    if not all_ns:
        return hashes, hashes
    by_ns: dict[str, list[str]] = {}
    for ns, h in items:
        by_ns.setdefault(str(ns), []).append(h)
    return hashes, by_ns


def swarm_status(swarm: Mapping[str, Mapping[str, Any]]) -> int:
    """200 if any member succeeded, else 500."""
    return 200 if any("failed" not in r for r in swarm.values()) else 500


def failed_entry(*, timeout: bool = False, code: int | None = None, reason: str | None = None) -> dict[str, Any]:
    """A per-member failure entry of a recursive response."""
    d: dict[str, Any] = {"failed": True}
    if timeout:
        d["timeout"] = True
    elif code is not None:
        d["code"] = code
        d["reason"] = reason or ""
    elif reason is not None:
        d["reason"] = reason
    else:
        d["bad_peer_response"] = True
    return d


__all__ = [
    "ALL",
    "Access",
    "Account",
    "Auth",
    "Batch",
    "Condition",
    "Delete",
    "DeleteAll",
    "DeleteBefore",
    "Expire",
    "ExpireAll",
    "GetExpiries",
    "GetSwarm",
    "IfElse",
    "Info",
    "METHODS",
    "OxendRequest",
    "Request",
    "Retrieve",
    "RevokeSubaccount",
    "RpcError",
    "Store",
    "UnrevokeSubaccount",
    "applied_expiries",
    "forward_body",
    "parse_json",
    "parse_params",
    "parse_request",
    "precheck",
    "retrieve_limits",
    "swarm_json",
    "verify_request",
]
