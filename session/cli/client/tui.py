"""``session tui``: start the full-screen messenger (:mod:`session.tui`, Textual).

Textual is imported here only, inside the command, so no other command loads it.
"""

from __future__ import annotations

import click

from session.cli.client.base import (
    common,
    errors,
    identity_store,
    main,
    open_session,
    run,
    timeout,
)


@main.command()
@common
@click.option(
    "--bell/--no-bell",
    default=None,
    help="Ring the terminal bell on messages in other chats (default: on; saved for next "
    "time, F3 changes it too).",
)
@click.option(
    "--notify",
    type=click.Choice(["off", "sender", "preview"]),
    default=None,
    help="Desktop notifications of messages in other chats through notify-send: off "
    "(default), sender (who wrote, never the text) or preview (who and the text); saved for "
    "next time, F3 changes it too.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between polls of your swarm.",
)
@errors
def tui(bell: bool | None, notify: str | None, poll_interval: float) -> None:
    """Full-screen messenger: conversations, requests, groups, files, identity (F1: keys).

    Works offline too (the status bar shows the network's state); Ctrl+Q quits once queued
    messages are delivered (at most --timeout seconds; Ctrl+Q again quits at once)."""
    while True:
        switch_to = run(_tui(bell, notify, poll_interval))
        if switch_to is None:
            return
        ctx = click.get_current_context().ensure_object(dict)
        ctx["identity"] = switch_to
        identity_store().use(switch_to)


async def _tui(bell: bool | None, notify: str | None, poll_interval: float) -> str | None:
    from session.tui.app import SessionTui  # noqa: PLC0415  (Textual only for this command)
    from session.tui.notify import MODES  # noqa: PLC0415

    s = await open_session(background=True, poll_interval=poll_interval)
    c = s.client
    if bell is not None:
        c.set_preference("tui.bell", bell)
    if notify is not None:
        c.set_preference("tui.notifications", notify)
    saved = c.preference("tui.notifications", "off")
    app = SessionTui(
        c,
        quit_timeout=timeout(),
        bell=bool(c.preference("tui.bell", True)),
        notifications=saved if saved in MODES else "off",
    )
    try:
        result = await app.run_async()
    finally:
        await s.client.close()
    if app.queued_at_exit:
        click.echo(f"{app.queued_at_exit} item(s) still queued; they go out next time.")
    return result
