"""The integration tests' helpers; they live in :mod:`session.testing.http` (importable from
tests, benchmarks and load tools alike). Add new helpers there."""

from session.testing.http import (  # noqa: F401  (re-exported)
    Client,
    b64,
    check_swarm_signatures,
    jbytes,
    now_ms,
    open_onion_reply,
    retrieve_request,
    store_request,
    v4_server,
)
