"""The messenger's pure parts (model) and the client API it pages history with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from session.client import Client
from session.tui import model


def test_fuzzy_score_ranks_subsequences() -> None:
    assert model.fuzzy_score("bo", "Bob") is not None
    assert model.fuzzy_score("xz", "Bob") is None
    assert model.fuzzy_score("", "anything") == 0
    titles = ["Rob Olsen", "Bob", "Alice"]
    ranked = sorted(
        (t for t in titles if model.fuzzy_score("bo", t) is not None),
        key=lambda t: model.fuzzy_score("bo", t) or 0,
    )
    assert ranked == ["Bob", "Rob Olsen"]


def test_pasted_text_finds_the_id() -> None:
    sid = "05" + "ab" * 32
    found = model.ID_IN_TEXT.search(f"my session id: {sid.upper()} (scan me)")
    assert found is not None and found.group(1).lower() == sid


def test_clock_and_durations() -> None:
    now = 1_800_000_000_000
    assert ":" in model.clock(now, now_ms=now)
    assert ":" not in model.clock(now - 40 * 86400 * 1000, now_ms=now)
    assert model.duration(3600) == "1 hour" and model.duration(600) == "10 minutes"
    assert model.duration(0) == "off"


def test_one_line_sanitises() -> None:
    assert model.one_line("a\nb\x1b[2J") == "a b␛[2J"
    assert len(model.one_line("x" * 500, 20)) == 20


def test_history_pages(tmp_path: Path) -> None:
    c = Client.open(tmp_path / "p", background=False)
    peer = "05" + "cd" * 32
    with c.db.tx():
        for i in range(25):
            c.db.add_message(
                conversation=peer,
                author=peer if i % 2 else c.session_id,
                sent_ms=1000 + i // 2,  # equal timestamps (ours and theirs): the id breaks ties
                outgoing=not i % 2,
                body=f"m{i}",
                status="received",
            )
    assert c.message_count(peer) == 25
    newest = c.messages(peer, 10)
    assert [m.body for m in newest] == [f"m{i}" for i in range(15, 25)]
    older = c.messages(peer, 10, before=newest[0])
    assert [m.body for m in older] == [f"m{i}" for i in range(5, 15)]
    oldest = c.messages(peer, 10, before=older[0])
    assert [m.body for m in oldest] == [f"m{i}" for i in range(5)]
    assert c.messages(peer, 10, before=oldest[0]) == []
    c.db.close()


def test_nickname(tmp_path: Path) -> None:
    c = Client.open(tmp_path / "p", background=False)
    peer = "05" + "cd" * 32
    assert c.nickname(peer) is None
    c.set_nickname(peer, "  Bobby ")
    assert c.nickname(peer) == "Bobby"
    c.set_nickname(peer, None)
    assert c.nickname(peer) is None
    with pytest.raises(ValueError):
        c.set_nickname("nope", "x")
    c.db.close()


@pytest.mark.parametrize(
    "module", ["session.cli.client", "session.cli.node", "session.client", "session.service"]
)
def test_textual_stays_off_other_programs(module: str) -> None:
    code = f"import sys, {module}\nassert 'textual' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
