"""The storage-RPC tests' helpers; they live in :mod:`session.testing.rpc` (importable from tests
and benchmarks alike). Add new helpers there."""

from session.testing.rpc import (  # noqa: F401  (re-exported)
    NOW,
    Client,
    Clock,
    FixedSwarmView,
    LocalFanout,
    LocalSwarm,
    b64,
    call,
    make_nodes,
)
