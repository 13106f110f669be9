"""``session name …``: register, renew and look up Session names (client spec §6.8).

``session name register NAME`` and ``renew NAME`` send a request signed by the identity's
Ed25519 key straight to the registry (``--registry URL``, else ``$SESSION_REGISTRY``, else the
``--network`` URL, else the ``registry`` entry of a devnet's ``nodes.json``; without a
``--network``, the node list the identity last used); the name then
points at the identity's own Session ID for a year. ``session name show NAME`` resolves a name
through onion requests to three random nodes that must agree. Wherever a command takes a
Session ID, ``@name`` works too (see :func:`session.cli.client.base.parse_id`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from session.cli.client.base import (
    CliError,
    common,
    emit,
    errors,
    identity_store,
    json_mode,
    main,
    open_session,
    opt,
    pick_identity,
    run,
    timeout,
)


async def lookup(text: str) -> str:
    """The Session ID registered under the name ``text`` (``@`` optional), resolved through
    onion requests; raises CliError for network failures, typed errors for bad names."""
    from session.names import normalize_name  # noqa: PLC0415 - the native core loads lazily

    name = normalize_name(text)
    s = await open_session()
    try:
        if not s.client.node_count:
            raise CliError(
                "no network is known yet: pass --network nodes.json|URL (or set SESSION_NETWORK)"
            )
        return await asyncio.wait_for(s.client.resolve_name(name), timeout())
    except TimeoutError:
        raise CliError(
            f"the name @{name} could not be looked up: no answer within {timeout():g} s"
        ) from None
    finally:
        await s.client.close()


def registry_url(remembered: Callable[[], str | None] = lambda: None) -> str:
    """Where names are registered (see the module docstring for the order tried;
    ``remembered()``: the network the identity's client last used, asked only when no
    registry or network is given)."""
    url = opt("registry") or os.environ.get("SESSION_REGISTRY")
    if url:
        return str(url)
    source = opt("network") or os.environ.get("SESSION_NETWORK")
    last = None if source else remembered()
    source = source or last
    if source and str(source).startswith(("http://", "https://")):
        return str(source)
    if source:
        try:
            doc = json.loads(Path(str(source)).expanduser().read_text())
        except (OSError, ValueError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("registry"), str):
            return str(doc["registry"])
    raise CliError(
        "no registry is known: pass --registry URL (or set SESSION_REGISTRY), or a --network "
        "that names one"
        + (f" (the network last used, {last}, names none or cannot be read)" if last else "")
    )


async def _remembered_network() -> str | None:
    """The node list (``nodes.json`` path or registry URL) the identity's client last used."""
    s = await open_session()
    try:
        return s.client.bootstrap_source
    finally:
        await s.client.close()


def _remember_registry(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value:
        ctx.ensure_object(dict)["registry"] = value
    return value


_registry_option = click.option(
    "--registry",
    metavar="URL",
    expose_value=False,
    callback=_remember_registry,
    help=(
        "The registry that records names (default: $SESSION_REGISTRY, else from --network, "
        "else from the network last used)."
    ),
)


@main.group("name")
@common
def name_group() -> None:
    """Session names: register one for your Session ID, or look one up."""


def _register(name: str, renew: bool) -> None:
    from session.names import normalize_name  # noqa: PLC0415
    from session.registry.client import register_name  # noqa: PLC0415

    name = normalize_name(name)
    store = identity_store()
    sid = pick_identity(store)
    ident = store.load(sid)
    url = registry_url(lambda: run(_remembered_network()))
    expiry = run(register_name(url, ident, name, renew=renew, timeout=timeout()))
    if json_mode():
        emit({"name": name, "session_id": sid, "expiry": expiry})
        return
    until = time.strftime("%Y-%m-%d", time.gmtime(expiry))
    click.echo(f"@{name} {'renewed' if renew else 'registered'} for {sid} until {until}")


@name_group.command("register")
@common
@_registry_option
@click.argument("name")
@errors
def name_register(name: str) -> None:
    """Register NAME for the current identity's Session ID (first come, first served)."""
    _register(name, renew=False)


@name_group.command("renew")
@common
@_registry_option
@click.argument("name")
@errors
def name_renew(name: str) -> None:
    """Renew your registration of NAME for another year."""
    _register(name, renew=True)


@name_group.command("show")
@common
@click.argument("name")
@errors
def name_show(name: str) -> None:
    """Look NAME up: three random nodes, each through an onion request, must agree."""
    from session.names import normalize_name  # noqa: PLC0415

    canonical = normalize_name(name)
    sid = run(lookup(canonical))
    if json_mode():
        emit({"name": canonical, "session_id": sid})
    else:
        click.echo(f"@{canonical} is {sid}")
