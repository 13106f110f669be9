"""What a node's start-up path imports (issue 12, a Pi-sized node): no prometheus_client, no
standard-library HTTP modules or email (aiohttp and prometheus_client loaded them), no
aiohttp-based service server and no ctypes, whose RSS the node's own HTTP/1.1 server and
metrics replaced (docs/performance.md, "A node's footprint"). That no aiohttp is loaded at all
is tests/http1/test_no_aiohttp.py."""

from __future__ import annotations

import json
import subprocess
import sys

#: Modules a node must not load: the aiohttp-based service server, prometheus_client, the
#: standard-library HTTP modules and email it and aiohttp bring, ctypes (only for
#: limits.keep_large_buffers, off by default), platformdirs and zipfile.
NOT_ON_A_NODE = (
    "email",
    "urllib.request",
    "session.service.server",
    "prometheus_client",
    "http.server",
    "ctypes",
    "platformdirs",  # only for a default data directory outside systemd (imported then)
    "zipfile",  # importlib.resources loads it; the recovery-phrase words are read directly
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
