"""The real ``session tui`` in a tmux pane (80×24) on a devnet, read from the screen: a message
request arrives, the reply typed in the TUI accepts it and reaches the sender, Ctrl+Q quits.

Every wait polls the screen (or the other side's inbox) for a condition, bounded by a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]

SESSION = [sys.executable, "-c", "from session.cli.client import main; main()"]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from session.devnet import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=5)
    net.start()
    try:
        yield net
    finally:
        net.stop()


def cli(home: Path, *args: str) -> Any:
    out = subprocess.run(
        [*SESSION, "--home", str(home), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Pane:
    """One tmux session running a command; :meth:`wait_for` reads its screen."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.name = f"session-tui-test-{uuid.uuid4().hex[:8]}"
        env_args = [f"{k}={v}" for k, v in env.items()]
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                "80",
                "-y",
                "24",
                "env",
                *env_args,
                *command,
            ],
            check=True,
        )

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return out.stdout

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name]).returncode == 0

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, cond: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if cond(text):
                return text
            time.sleep(0.2)  # polling interval of the screen condition
        raise AssertionError(f"screen never showed {what}:\n{self.screen()}")

    def jump(self, query: str) -> None:
        """Ctrl+K, type ``query``, and Enter once the box shows it."""
        self.keys("C-k")
        self.wait_for(lambda s: "Jump to conversation" in s, "the jump box")
        self.keys("-l", query)
        self.wait_for(lambda s: f"▊  {query} " in s, f"{query!r} in the jump box")
        self.keys("Enter")
        self.wait_for(lambda s: "Jump to conversation" not in s, "the jump box closing")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_tui_on_devnet_in_tmux(tmp_path: Path, devnet: Any) -> None:
    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    a = cli(ha, "id", "new")["session_id"]
    b = cli(hb, "id", "new")["session_id"]
    cli(hb, "id", "name", "Bobby")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "TERM": "xterm-256color",
    }
    lobby = json.loads(Path(nodes).read_text())["community_servers"][0]["rooms"]["lobby"]
    cli(ha, "--network", nodes, "community", "join", lobby)
    cli(hb, "--network", nodes, "community", "join", lobby)
    cli(hb, "community", "post", "lobby", "welcome to the lobby")
    pane = Pane([*SESSION, "--home", str(ha), "--network", nodes, "tui"], env)
    try:
        pane.wait_for(lambda s: "5 nodes" in s and "outbox" in s, "the status bar")
        cli(hb, "--network", nodes, "send", a, "hello from bob")
        # the request appears in the column and opens with Accept/Decline/Block
        pane.wait_for(lambda s: "Bobby" in s and "hello from bob" in s, "the request")
        # Ctrl+K finds it (and puts the cursor back in the input box): Accept/Decline/Block
        pane.jump("bby")
        pane.wait_for(lambda s: "Accept" in s and "Decline" in s, "the request buttons")
        pane.keys("-l", "hi bob, accepted")
        pane.keys("Enter")
        pane.wait_for(lambda s: "you: hi bob, accepted" in s, "our reply")
        pane.wait_for(lambda s: "hi bob, accepted  (sent)" in s, "the reply delivered")
        # Bob sees the reply (his inbox polls the network)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            inbox = cli(hb, "inbox")
            bodies = [m["body"] for c in inbox["conversations"] for m in c["messages"]]
            if "hi bob, accepted" in bodies:
                break
        else:
            raise AssertionError(f"Bob never got the reply: {inbox}")
        # a message while Alice is half way through typing: her line stays intact
        pane.keys("-l", "half way thr")
        cli(hb, "send", a, "interrupting")
        screen = pane.wait_for(lambda s: "Bobby: interrupting" in s, "the interruption")
        assert "half way thr" in screen
        # a community room: Bob posts in the devnet's lobby, Alice reads and posts from the TUI
        pane.jump("lobby")
        pane.wait_for(lambda s: "welcome to the lobby" in s, "Bob's post in the room")
        pane.keys("-l", "hello lobby")
        pane.keys("Enter")
        pane.wait_for(lambda s: "you: hello lobby" in s, "our post")
        # back in Bob's conversation, the half-typed line is still there (drafts are kept)
        pane.jump("bby")
        pane.wait_for(lambda s: "half way thr" in s and "interrupting" in s, "the draft")
        pane.keys("C-q")
        deadline = time.monotonic() + 60
        while pane.alive() and time.monotonic() < deadline:
            time.sleep(0.2)  # polling interval of the exit condition
        assert not pane.alive(), pane.screen()
    finally:
        pane.close()
    assert b  # both identities were made
