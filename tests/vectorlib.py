"""Loader of the shared test vectors in ``tests/vectors/`` (read by cargo test too).

A failing vector means our code is wrong, never the vector. Import it as ``from vectorlib
import load_vectors`` (a unique module name: several ``conftest.py`` files exist).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "vectors"


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
