from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory):
    """A registry and 5 node processes on 127.0.0.1 for the whole session."""
    from session.devnet import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=5, poll_interval=0.5, ready_timeout=60)
    net.start()
    yield net
    net.stop()
    codes = net.exit_codes()
    # every node the tests did not kill on purpose exits cleanly on SIGTERM
    bad = {k: v for k, v in codes.items() if v not in (0, -9)}
    assert not bad, f"nodes exited uncleanly: {bad}"
