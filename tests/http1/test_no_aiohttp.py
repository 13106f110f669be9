"""Neither the client library nor a node loads aiohttp (~11 MB of RSS in every process that
imports it, docs/performance.md): their HTTP is :mod:`session.http1`'s."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules",
    ["session.client", "session.node.daemon, session.node.__main__", "session.tui.app"],
)
def test_no_aiohttp_is_loaded(modules: str) -> None:
    code = (
        f"import json, sys, {modules}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aiohttp', 'yarl', 'multidict'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == []
