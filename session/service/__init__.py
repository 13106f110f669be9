"""Plumbing every network service stands on: the node, the registry, and the file and
community servers.

* :mod:`session.service.config` — frozen dataclass settings from TOML, ``SESSION_<SVC>_…``
  environment variables and flags (in that precedence), and the shared sections
  (``LoggingConfig``, ``ConnectionLimits``);
* :mod:`session.service.logs` — one root log handler: JSON or console lines, Session IDs and IP
  addresses masked in every logger's records (the libraries' too);
* :mod:`session.service.tls` — the self-signed certificate of a service's HTTPS site;
* :mod:`session.service.accept` — accepting connections with the connection caps and the TLS
  handshake deadline, and the request-body budget: shared by both HTTP servers;
* :mod:`session.service.server` — serving an aiohttp application with the connection limits
  (registry, file and community servers); the node serves its sites with
  :mod:`session.http1.server` instead (no aiohttp server in its memory);
* :mod:`session.service.admin` — the loopback admin site (``/metrics``, ``/healthz``,
  ``/readyz``), on :mod:`session.http1.server`;
* :mod:`session.service.onion` — a v4 onion destination (``/oxen/v4/lsrpc``) dispatching to
  the service's own routes;
* :mod:`session.service.tasks` — background tasks whose failures are logged when they happen,
  and stops that wait for tasks without hiding what they raised.
* :mod:`session.service.site` — a standalone server's site (its routes, directly and as a v4
  onion destination, over TLS) and running it until a signal with its data directory locked;
* :mod:`session.service.lifeline` — a child process that ends when its parent dies (the
  devnet's processes).

Import the submodules; this package itself imports nothing (keeps start-up light).
"""
