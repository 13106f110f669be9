"""Regenerate docs/tui.svg: ``session tui`` on a sample profile, exported by Textual.

    python ci/tui-screenshot.py [docs/tui.svg]

The profile is made in a temporary directory without a network: messages from two sample
peers are sealed by their identities and applied through ``Client.process_stored``.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
import time
from pathlib import Path

from session.client import Client
from session.client import messages as M
from session.identity import Identity
from session.tui.app import SessionTui


def _deliver(c: Client, who: Identity, name: str, body: str, sent_ms: int) -> None:
    data = M.seal(who, c.session_id, M.text(body, sent_ms=sent_ms, display_name=name), sent_ms)
    c.process_stored([(hashlib.sha256(data.encode()).hexdigest(), data, 0)])


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        c = Client.open(Path(tmp) / "me", background=False)
        await c.start()
        await c.set_display_name("Alice")
        bob, carol, dave = (Identity.generate() for _ in range(3))
        now = int(time.time() * 1000)
        day = 86_400_000
        _deliver(c, carol, "Carol", "Book club moved to Thursday", now - 3 * day)
        await c.accept_request(carol.session_id)
        _deliver(c, bob, "Bob", "Are we still on for the hike?", now - day - 3_600_000)
        await c.accept_request(bob.session_id)
        await c.send(bob.session_id, "Yes! 9am at the trailhead")
        _deliver(c, bob, "Bob", "Great, I'll bring coffee", now - 600_000)
        _deliver(c, bob, "Bob", "Weather looks good too", now - 300_000)
        _deliver(c, dave, "Dave", "Hi, we met at the meetup", now - 60_000)
        app = SessionTui(c)
        async with app.run_test(size=(100, 28)) as pilot:
            await app.open_conversation(bob.session_id)
            await pilot.press(*"See you there")
            await pilot.pause()
            out.write_text(app.export_screenshot(title="session tui"))
        await c.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/tui.svg")))
