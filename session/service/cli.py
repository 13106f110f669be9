"""Command-line pieces every service's CLI shares (``session-node``, ``session-fileserver``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

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
