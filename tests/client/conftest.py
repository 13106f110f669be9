"""Fixtures shared by the client library's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from session.client import transport as transport_mod


class _PlainKey:
    def decrypt(self, data: bytes) -> bytes:
        return data


@pytest.fixture
def plain_onion(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The onion's layers are the payload itself (the crypto has its own tests)."""
    monkeypatch.setattr(
        transport_mod.onion, "build", lambda hops, dest, payload, enc: (payload, _PlainKey())
    )
    yield
