"""The one-shot bench tools' start-up (``main``): their options reach ``measure``, and the
figures are printed as JSON and, with ``--json``, written there as the same text
(:mod:`bench.figures`). The measuring itself runs in test_bench_footprint.py and
test_bench_http_site.py (integration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import footprint, http_site


def test_footprint_main_prints_and_writes_its_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(footprint, "measure", lambda idle: {"idle": idle})
    out = tmp_path / "footprint.json"
    assert footprint.main(["--idle", "0.25", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == {"idle": 0.25}
    assert out.read_text() == printed


def test_http_site_main_prints_its_figures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def measure(rounds: int, duration: float, connections: int) -> dict[str, Any]:
        return {"rounds": rounds, "duration": duration, "connections": connections}

    monkeypatch.setattr(http_site, "measure", measure)
    assert http_site.main(["--rounds", "2", "--duration", "1.5", "--connections", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == {"rounds": 2, "duration": 1.5, "connections": 3}
