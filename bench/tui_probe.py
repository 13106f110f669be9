"""One measurement of ``session tui`` at idle, in its own process (a clean RSS):

    python bench/tui_probe.py PROFILE_DIR ui|client IDLE_SECONDS

Prints one JSON object: ``rss_mb`` (resident set after the idle window), ``cpu_pct`` (process
CPU time over the idle window / wall time; the UI's window starts once the input box's cursor
has stopped blinking, 10 s after the last key, as at any real idle), and with ``ui`` also
``open_big_ms`` / ``open_small_ms`` (opening the conversation of 10,000 messages and one of
200, each measured as the wall time of ``open_conversation`` until the history is mounted).
``client`` is the baseline: the same client opened, no UI. The client runs without background
loops and without a network, so only the UI's own idle cost is in the difference.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def main(profile: Path, mode: str, idle_s: float) -> dict[str, float]:
    from session.client import Client

    c = Client.open(profile, background=False, create=False)
    await c.start()
    out: dict[str, float] = {}
    try:
        if mode == "client":
            t0, c0 = time.monotonic(), time.process_time()
            await asyncio.sleep(idle_s)  # the measured idle window
            out["cpu_pct"] = 100 * (time.process_time() - c0) / (time.monotonic() - t0)
        else:
            from session.tui.app import SessionTui  # only the UI side loads Textual

            big = max(c.conversations(), key=lambda s: s.count).conversation
            small = min(c.conversations(), key=lambda s: s.count).conversation
            app = SessionTui(c)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                for key, conv in (("open_big_ms", big), ("open_small_ms", small)):
                    t = time.perf_counter()
                    await app.open_conversation(conv)
                    await pilot.pause()
                    out[key] = 1000 * (time.perf_counter() - t)
                await app.open_conversation(big)
                await pilot.pause()
                # idle as a person leaves it: no key for a while, so the cursor rests
                deadline = time.monotonic() + 120
                while app.compose_box.cursor_blink and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                t0, c0 = time.monotonic(), time.process_time()
                await asyncio.sleep(idle_s)  # the measured idle window
                out["cpu_pct"] = 100 * (time.process_time() - c0) / (time.monotonic() - t0)
                out["loaded"] = float(app.history.loaded)
        out["rss_mb"] = rss_mb()
    finally:
        await c.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))))
