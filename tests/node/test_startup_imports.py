"""What a node's start-up path imports (issue 12, a Pi-sized node): neither aiohttp's server
nor prometheus_client (with the http.server, urllib.request and email modules it loads), whose
RSS the node's own HTTP/1.1 server and metrics replaced, nor ctypes (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys

#: Modules a node must not load: aiohttp's server side, the aiohttp-based service server,
#: prometheus_client and the standard-library HTTP server it brings, and ctypes (only for
#: limits.keep_large_buffers, off by default).
NOT_ON_A_NODE = (
    "aiohttp.web",
    "session.service.server",
    "prometheus_client",
    "http.server",
    "ctypes",
)


def test_a_nodes_start_up_path_loads_none_of_the_heavy_modules_it_does_not_need() -> None:
    code = (
        "import json, sys, session.node.daemon, session.node.__main__\n"
        f"print(json.dumps([m for m in {NOT_ON_A_NODE!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == []
