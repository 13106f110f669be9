"""Command-line pieces every service's CLI shares (``session-node``, ``session-fileserver``,
``session-community``)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from session.errors import SessionError

F = TypeVar("F", bound=Callable[..., Any])


def config_options(env_config: str, data_dir_help: str) -> Callable[[F], F]:
    """``--config`` (also from the environment variable ``env_config``) and ``--data-dir``."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "--data-dir", type=click.Path(file_okay=False, path_type=Path), help=data_dir_help
        )(fn)
        fn = click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=env_config,
            help="TOML config file.",
        )(fn)
        return fn

    return decorate


def exit_on_errors(fn: F) -> F:
    """Turn our errors (and OS errors) into one sentence on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SessionError, ValueError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            click.echo(f"error: {e.strerror or e}{where}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]  # functools.wraps loses the signature
