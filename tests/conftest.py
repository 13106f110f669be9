"""Shared test helpers: the vector loader and hypothesis profiles.

Vectors live in ``tests/vectors/`` (copied from Session's own test suites; the same files are
read by ``cargo test``). A failing vector means our code is wrong, never the vector.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

VECTORS = Path(__file__).parent / "vectors"

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("fast", max_examples=5, deadline=None)
settings.register_profile(
    "slow", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def load_vectors(name: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Cases of ``tests/vectors/<name>.json``, optionally only those of one ``kind``."""
    data = json.loads((VECTORS / f"{name}.json").read_text())
    cases: list[dict[str, Any]] = data["cases"]
    if kind is not None:
        cases = [c for c in cases if c.get("kind") == kind]
        assert cases, f"no {kind!r} cases in {name}.json"
    return cases


def case_ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]
