"""``python -m bench.footprint`` runs (once, in the normal test run) and measures what it says:
a node that notified READY=1, its idle RSS against the same run's bare interpreter, and the
marginal RSS of each import. Figures are in docs/performance.md; no figure is asserted."""

from __future__ import annotations

import pytest

from bench import footprint

pytestmark = pytest.mark.integration


def test_footprint_measures_a_ready_node() -> None:
    doc = footprint.measure(idle=0.5)
    node = doc["node"]
    assert node["start_s"] > 0
    # a node is a Python process with more imported than a bare interpreter
    assert node["rss_kb"] > doc["bare_interpreter_rss_kb"] > 0
    assert node["private_kb"] > 0 and node["shared_kb"] > 0
    assert list(doc["import_rss_kb"]) == list(footprint.MODULES)
    assert "session" in doc["import_ms_by_package"]
