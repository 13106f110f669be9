"""Sans-I/O storage RPC: parse and validate client requests, build signature texts, verify
signatures, and shape responses exactly as Session's storage server does.

Nothing here touches the network or the store. The flow a handler follows (the order matters:
it decides which status a client sees first) is::

    req = parse_request(body)                 # 400 RpcStatusError on anything malformed
    # 503 if not ready, 421 if the account is not ours (handler)
    precheck(req, now_ms, forwarded=..., hf=...)   # 403 TTL, 406 clock, 401 expiry-in-past
    verify_request(req, revoked=...)          # 401 bad/missing signature
    ... execute, then build per-node results with the *_result_text() helpers ...

Requests arrive as JSON ``{"method": ..., "params": {...}}`` (HTTPS body or the inner payload of
an onion request). A request forwarded to swarm peers is re-encoded with :func:`forward_body`
(same JSON shape; peers parse it with :func:`parse_request` and ``forwarded=True``). Clients
build the same request classes and turn them into signed params with :func:`sign`.

Modules: :mod:`.codec` (base64, z-base-32, strict JSON), :mod:`.fields` (parameter readers),
:mod:`.namespaces`, :mod:`.constants`, :mod:`.auth` (accounts, signatures, subaccounts),
:mod:`.requests` (one class per method), :mod:`.meta` (batch, sequence, ifelse),
:mod:`.envelope` (parsing the envelope, the checks, forwarding), :mod:`.responses`.

Parameter names, error messages and limits follow ``oxenss/rpc/client_rpc_endpoints.cpp`` and
``request_handler.cpp`` (session-storage-server 2.8.0).
"""

from __future__ import annotations

from session.errors import RpcStatusError
from session.proto.rpc.auth import (
    Access,
    Account,
    Auth,
    Signable,
    Signer,
    sign,
    signed,
    verify_auth,
)
from session.proto.rpc.codec import b64, base32z, parse_json
from session.proto.rpc.constants import (
    BATCH_REQUEST_MAX,
    DEFAULT_HARDFORK,
    DELETE_BEFORE_FUTURE,
    EXPIRE_PAST_TOLERANCE,
    MAX_IFELSE_DEPTH,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BODY,
    MAX_SUBACCOUNT_TOKENS,
    MULTI_EXPIRY_HARDFORK,
    RETRIEVE_MAX_SIZE,
    SIGNATURE_TOLERANCE,
    SIGNATURE_TOLERANCE_FORWARDED,
    STORAGE_SERVER_VERSION,
    STORE_TOLERANCE,
    SUBACCOUNT_TOKEN_LENGTH,
    TTL_MAXIMUM,
    TTL_MAXIMUM_PRIVATE,
    TTL_MINIMUM,
)
from session.proto.rpc.envelope import (
    METHODS,
    applied_expiries,
    expire_extend_only,
    forward_body,
    needs_verification,
    parse_params,
    parse_request,
    precheck,
    retrieve_limits,
    skip_revoke_check,
    verify_request,
)
from session.proto.rpc.meta import Batch, Condition, IfElse, Request
from session.proto.rpc.namespaces import (
    ALL,
    NAMESPACE_MAX,
    NAMESPACE_MIN,
    AllNamespaces,
    NamespaceVar,
    is_noauth_retrieve_namespace,
    is_public_inbox_namespace,
    is_public_outbox_namespace,
    is_unrevocable_namespace,
    namespace_or_none,
    namespace_sig_string,
)
from session.proto.rpc.requests import (
    RECURSIVE_TYPES,
    AccountMethod,
    AccountRequest,
    Delete,
    DeleteAll,
    DeleteBefore,
    Expire,
    ExpireAll,
    GetExpiries,
    GetSwarm,
    Info,
    OxendRequest,
    RecursiveRequest,
    Retrieve,
    RevokeSubaccount,
    Store,
    SubRequest,
    UnrevokeSubaccount,
)
from session.proto.rpc.responses import (
    affected_by_namespace,
    delete_result_text,
    expire_result_text,
    failed_entry,
    message_json,
    misc_fields,
    ns_action_result_text,
    revoke_result_text,
    service_nodes_result,
    snode_json,
    store_result_text,
    swarm_json,
    swarm_status,
)
from session.proto.snodes import INVALID_SWARM_ID

__all__ = [
    "ALL",
    "BATCH_REQUEST_MAX",
    "DEFAULT_HARDFORK",
    "DELETE_BEFORE_FUTURE",
    "EXPIRE_PAST_TOLERANCE",
    "INVALID_SWARM_ID",
    "MAX_IFELSE_DEPTH",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_BODY",
    "MAX_SUBACCOUNT_TOKENS",
    "METHODS",
    "MULTI_EXPIRY_HARDFORK",
    "NAMESPACE_MAX",
    "NAMESPACE_MIN",
    "RECURSIVE_TYPES",
    "RETRIEVE_MAX_SIZE",
    "SIGNATURE_TOLERANCE",
    "SIGNATURE_TOLERANCE_FORWARDED",
    "STORAGE_SERVER_VERSION",
    "STORE_TOLERANCE",
    "SUBACCOUNT_TOKEN_LENGTH",
    "TTL_MAXIMUM",
    "TTL_MAXIMUM_PRIVATE",
    "TTL_MINIMUM",
    "Access",
    "Account",
    "AccountMethod",
    "AccountRequest",
    "AllNamespaces",
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
    "NamespaceVar",
    "OxendRequest",
    "RecursiveRequest",
    "Request",
    "Retrieve",
    "RevokeSubaccount",
    "RpcStatusError",
    "Signable",
    "Signer",
    "Store",
    "SubRequest",
    "UnrevokeSubaccount",
    "affected_by_namespace",
    "applied_expiries",
    "b64",
    "base32z",
    "delete_result_text",
    "expire_extend_only",
    "expire_result_text",
    "failed_entry",
    "forward_body",
    "is_noauth_retrieve_namespace",
    "is_public_inbox_namespace",
    "is_public_outbox_namespace",
    "is_unrevocable_namespace",
    "message_json",
    "misc_fields",
    "namespace_or_none",
    "namespace_sig_string",
    "needs_verification",
    "ns_action_result_text",
    "parse_json",
    "parse_params",
    "parse_request",
    "precheck",
    "retrieve_limits",
    "revoke_result_text",
    "service_nodes_result",
    "sign",
    "signed",
    "skip_revoke_check",
    "snode_json",
    "store_result_text",
    "swarm_json",
    "swarm_status",
    "verify_auth",
    "verify_request",
]
