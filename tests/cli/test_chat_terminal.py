"""``session chat`` on a terminal: prompt-toolkit reads the line (arrow keys edit, the line is
never broken by what is printed), typing sends typing indicators, and the peer's typing shows
in the bottom line. Driven with prompt-toolkit's pipe input on an offline client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from session.cli.client import chat as chat_mod
from session.cli.client.chat import _Chat, read_input, terminal_lines
from session.client import Client, Typing

pytestmark = pytest.mark.asyncio

PEER = "05" + "ab" * 32


async def test_terminal_line_editing_and_typing(tmp_path: Path) -> None:
    c = Client.open(tmp_path, background=False)
    await c.start()
    try:
        c.db.upsert_contact(PEER, name="Bob", approved=1)
        chat = _Chat(c, PEER)
        chat.interactive = True
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        with create_pipe_input() as inp:
            reader = asyncio.ensure_future(
                terminal_lines(lines, chat, input=inp, output=DummyOutput())
            )
            inp.send_text("hel")
            for _ in range(500):  # until the typing indicator is in the outbox
                if c.queued():
                    break
                await asyncio.sleep(0.01)
            assert c.queued() == 1  # one indicator for the whole line, not one per key
            inp.send_text("\x1b[D")  # left arrow: edits instead of sending an escape code
            inp.send_text("X\r")
            assert await asyncio.wait_for(lines.get(), 10) == "heXl"
            # the peer's typing shows in the bottom line, and goes away when they stop
            await chat.event(Typing(PEER, True))
            assert chat.typing_line() == "Bob is typing…"
            await chat.event(Typing(PEER, False))
            assert chat.typing_line() == ""
            inp.send_text("\x04")  # Ctrl-D: end of input
            assert await asyncio.wait_for(lines.get(), 10) is None
            await asyncio.wait_for(reader, 10)
    finally:
        await c.close()


async def test_community_chat_reads_the_terminal_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`community chat` starts its reader with the same :func:`read_input` as 1:1 and group
    chats: on a terminal a prompt-toolkit line (arrow keys edit, posts print above it), with
    no typing indicators (a room has none)."""
    from session.cli.client import community

    assert community.read_input is read_input
    monkeypatch.setattr(chat_mod, "interactive", lambda: True)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        reader = read_input(lines, "test-community-stdin")
        assert reader is not None  # a prompt-toolkit reader, not a thread on sys.stdin
        inp.send_text("pos\x1b[DX\r")
        assert await asyncio.wait_for(lines.get(), 10) == "poXs"
        inp.send_text("\x04")
        assert await asyncio.wait_for(lines.get(), 10) is None
        await asyncio.wait_for(reader, 10)
