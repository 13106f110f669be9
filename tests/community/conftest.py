"""Fixtures of the community server tests: a server on 127.0.0.1 (plain HTTP, port 0) with a
room ``lobby``, and members who sign their requests as Session's apps do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from session.community.server import RunningCommunity, start
from session.testing.community import Member, community_config


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def limits() -> dict[str, Any]:
    """Overrides of [limits] for the ``server`` fixture (tests may replace this fixture)."""
    return {}


@pytest.fixture
async def server(tmp_path: Path, limits: dict[str, Any]) -> AsyncIterator[RunningCommunity]:
    running = await start(community_config(tmp_path, **limits))
    running.service.store.add_room("lobby", "Lobby", "Say hello")
    yield running
    await running.close()


@pytest.fixture
def member(server: RunningCommunity, http: aiohttp.ClientSession) -> Callable[[], Member]:
    return lambda: Member(server, http)
