"""Desktop notifications of ``session tui`` (optional, off by default; the terminal bell is the
default alert).

A notification is the freedesktop one over D-Bus, sent by libnotify's ``notify-send`` when it
is on ``PATH`` (run without a shell, the texts as separate arguments after ``--``). Names and
message text come from other people: they pass :func:`session.text.for_terminal` (no control
characters, escapes or bidi overrides), are cut to :data:`MAX_TITLE` / :data:`MAX_BODY`
characters, and the body has ``& < >`` escaped (notification servers that read body markup
would otherwise take tags from a stranger). In ``sender`` mode no message text is ever
passed. No Textual here.
"""

from __future__ import annotations

import asyncio
import html
import logging
import shutil
import subprocess

from session.text import for_terminal

log = logging.getLogger("session.tui.notify")

#: What a notification shows: nothing (no notification), who wrote, or who and the message.
MODES = ("off", "sender", "preview")
#: Longest title and body passed (characters, after sanitising).
MAX_TITLE = 64
MAX_BODY = 200
#: Seconds ``notify-send`` may take before it is stopped (it returns at once normally).
RUN_TIMEOUT_S = 10.0
#: The command (found on PATH when a notification is sent).
COMMAND = "notify-send"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def arguments(mode: str, sender: str, text: str | None) -> list[str]:
    """The arguments after the command for one notification in ``mode`` (``sender``/``preview``)
    of a message from ``sender`` (a name as :func:`session.tui.model.name_of` gives it) saying
    ``text`` (as received)."""
    if mode not in MODES or mode == "off":
        raise ValueError(f"notification mode must be one of {', '.join(MODES[1:])}")
    title = _cut(for_terminal(sender.replace("\n", " ")) or "Someone", MAX_TITLE)
    if mode == "preview" and text:
        body = _cut(for_terminal(text.replace("\n", " ")), MAX_BODY)
    else:
        body = "New message"
    return ["--app-name=Session", "--", title, html.escape(body, quote=False)]


class DesktopNotifier:
    """Sends desktop notifications in one of :data:`MODES` (``off`` by default)."""

    def __init__(self, mode: str = "off", command: str = COMMAND) -> None:
        if mode not in MODES:
            raise ValueError(f"notification mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.command = command

    def available(self) -> bool:
        """Whether the notification command is on PATH now."""
        return shutil.which(self.command) is not None

    async def notify(self, sender: str, text: str | None) -> bool:
        """Show one notification (nothing when ``off``); False when none could be shown (no
        command on PATH, or it failed)."""
        if self.mode == "off":
            return False
        exe = shutil.which(self.command)
        if exe is None:
            return False
        try:
            proc = await asyncio.create_subprocess_exec(
                exe,
                *arguments(self.mode, sender, text),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as e:
            log.info("desktop notification not sent: %s", e.strerror or e)
            return False
        try:
            code = await asyncio.wait_for(proc.wait(), RUN_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.info("desktop notification: %s did not return; stopped", self.command)
            return False
        return code == 0
