"""Helpers for tests, benchmarks and load tools, importable without touching ``sys.path``.

* :mod:`session.testing.http`: storage-RPC request builders, a small HTTPS client (optionally
  bound to one local address), onion-reply opening, a v4 onion test server;
* :mod:`session.testing.rpc`: a client that signs storage requests like Session's, and an
  in-process swarm of ``RpcHandler``s (``LocalSwarm``);
* :mod:`session.testing.mininet`: real nodes in one event loop with a node list the caller
  controls (``MiniNet``).
* :mod:`session.testing.waits`: ``until``, waiting for a condition (bounded) instead of a time.

Nodes and clients never import this package.
"""
