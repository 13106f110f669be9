"""session.service.memory: the malloc setting that keeps freed request-sized buffers, applied
in a fresh process (it is process-wide), and left alone when the operator set glibc's own.
Its effect is measured in bench/test_bench_fileserver.py (CPU per transfer), not timed here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from session.service.memory import keep_large_buffers; print(keep_large_buffers())"


def _probe(env: dict[str, str]) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_applied_unless_the_operator_chose() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    assert _probe(env)
    assert not _probe({**env, "MALLOC_TRIM_THRESHOLD_": str(1 << 20)})
