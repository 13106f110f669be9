"""The command-line pieces the servers share (:mod:`session.service.cli`): output piped into a
reader that went away (``session-fileserver show-id | head -1``) ends quietly, exit code 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ["session.fileserver.cli", "show-id"],
        ["session.community.cli", "url", "lobby"],
    ],
)
def test_a_closed_stdout_is_no_error(tmp_path: Path, args: list[str]) -> None:
    module, *command = args
    cli = f"from {module} import main; main()"
    data = ["--data-dir", str(tmp_path)]
    subprocess.run([sys.executable, "-c", cli, "keygen", *data], check=True, capture_output=True)
    if "url" in command:
        subprocess.run([sys.executable, "-c", cli, "room", "add", "lobby", "Lobby", *data],
                       check=True, capture_output=True)  # fmt: skip
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: every write fails
    try:
        out = subprocess.run(
            [sys.executable, "-c", cli, *command, *data],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (0, "")
