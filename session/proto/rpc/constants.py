"""Limits and time windows of the storage RPC (``request_handler.h`` /
``client_rpc_endpoints.h`` of Session's storage server 2.8.0)."""

from __future__ import annotations

from session.version import STORAGE_SERVER_VERSION

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

#: How deep ``ifelse`` requests may nest (an ``ifelse`` whose branch is an ``ifelse``…). Session's
#: storage server sets no bound; real clients nest one or two levels. Deeper requests get a 400
#: that names this limit.
MAX_IFELSE_DEPTH = 8

#: Deepest JSON nesting (objects and arrays) a request body may have. The deepest request the
#: protocol allows (``ifelse`` at :data:`MAX_IFELSE_DEPTH` around a ``batch``) needs about 25.
MAX_JSON_DEPTH = 64

#: Timestamps below this are very likely seconds rather than milliseconds.
MIN_MS_TIMESTAMP = 1_000_000 * 1000

__all__ = [
    "BATCH_REQUEST_MAX",
    "DEFAULT_HARDFORK",
    "DELETE_BEFORE_FUTURE",
    "EXPIRE_PAST_TOLERANCE",
    "MAX_IFELSE_DEPTH",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_BODY",
    "MAX_SUBACCOUNT_TOKENS",
    "MIN_MS_TIMESTAMP",
    "MULTI_EXPIRY_HARDFORK",
    "RETRIEVE_MAX_SIZE",
    "SIGNATURE_TOLERANCE",
    "SIGNATURE_TOLERANCE_FORWARDED",
    "STORAGE_SERVER_VERSION",
    "STORE_TOLERANCE",
    "SUBACCOUNT_TOKEN_LENGTH",
    "TTL_MAXIMUM",
    "TTL_MAXIMUM_PRIVATE",
    "TTL_MINIMUM",
]
