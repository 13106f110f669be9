"""The names tests need a native extension built from this source: with an older
``session/_core.abi3.so`` (built before the ONS functions) they are skipped with a reason that
says to rebuild it, instead of failing the whole suite on missing functions."""

from __future__ import annotations

import pytest

from session import _core

STALE = not hasattr(_core, "ons_decrypt")
REASON = "session/_core.abi3.so predates the names code: rebuild it (maturin build) to run this"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if STALE:
        for item in items:
            if "/tests/names/" in str(item.path):
                item.add_marker(pytest.mark.skip(reason=REASON))
