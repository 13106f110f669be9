"""Replays the kept fuzz corpus (``tests/fuzz/corpus/NAME``) through each harness, so every
input a fuzz run once found (crashes included, once fixed) is checked in every test run
without atheris. ``ci/fuzz.sh`` fuzzes from the same corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from harnesses import HARNESSES

CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_corpus_replays(name: str) -> None:
    files = sorted((CORPUS / name).iterdir())
    assert len(files) >= 3, f"the kept corpus of {name} is missing"
    for f in files:
        try:
            HARNESSES[name](f.read_bytes())
        except BaseException as e:
            raise AssertionError(f"{name} corpus input {f.name} fails: {e!r}") from e


def test_every_harness_has_a_corpus() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(HARNESSES)
