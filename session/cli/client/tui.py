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
@click.option("--bell", is_flag=True, help="Ring the terminal bell on messages in other chats.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between polls of your swarm.",
)
@errors
def tui(bell: bool, poll_interval: float) -> None:
    """Full-screen messenger: conversations, requests, groups, files, identity (F1: keys).

    Works offline too (the status bar shows the network's state); Ctrl+Q quits once queued
    messages are delivered (at most --timeout seconds; Ctrl+Q again quits at once)."""
    while True:
        switch_to = run(_tui(bell, poll_interval))
        if switch_to is None:
            return
        ctx = click.get_current_context().ensure_object(dict)
        ctx["identity"] = switch_to
        identity_store().use(switch_to)


async def _tui(bell: bool, poll_interval: float) -> str | None:
    from session.tui.app import SessionTui  # noqa: PLC0415  (Textual only for this command)

    s = await open_session(background=True, poll_interval=poll_interval)
    app = SessionTui(s.client, quit_timeout=timeout(), bell=bell)
    try:
        result = await app.run_async()
    finally:
        await s.client.close()
    if app.queued_at_exit:
        click.echo(f"{app.queued_at_exit} item(s) still queued; they go out next time.")
    return result
