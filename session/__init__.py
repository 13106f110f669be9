"""Session network re-implementation: identities, onion routing, swarms, nodes and clients.

Import the public modules (``session.identity``, ``session.mnemonic``, ``session.protocol``,
``session.onion``, ``session.swarm``, ...); the compiled ``session._core`` is private.
"""

__version__ = "0.1.0"
