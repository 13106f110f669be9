"""Fixtures shared by the benchmarks: one event loop per module, and devnets whose per-address
limits are out of the way (a benchmark's whole load comes from one address)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from bench.load.cli import UNLIMITED  # node settings that lift the per-address limits
from session.devnet import STEADY_HEALTH, Devnet


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for a rig's set-up, its measured calls and its tear-down."""
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def unlimited_devnet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str, int], Devnet]]:
    """``start(name, nodes)``: a started devnet without per-address rate limits, whose
    membership stays fixed (``STEADY_HEALTH``: a member killed, frozen or saturated by a
    benchmark is not decommissioned mid-measurement); every devnet started through it is
    stopped after the module."""
    nets: list[Devnet] = []

    def start(name: str, nodes: int) -> Devnet:
        net = Devnet(
            tmp_path_factory.mktemp(name),
            nodes=nodes,
            poll_interval=1.0,
            extra_env=UNLIMITED,
            health=STEADY_HEALTH,
        )
        nets.append(net)
        net.start()
        return net

    yield start
    for net in nets:
        net.stop()
