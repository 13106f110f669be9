"""Configuration for every service: a frozen dataclass tree read from TOML, environment, flags.

Precedence, lowest to highest: built-in defaults < config file < environment < command-line
flags. A service names its environment prefix (``SESSION_NODE_``, ``SESSION_REGISTRY_``, …);
variables use ``__`` between a table and its key: ``SESSION_NODE_NETWORK__HTTPS_PORT=22021``.
The variable that names the config file (``SESSION_NODE_CONFIG``) is read by the CLI and is
not a setting.

Flags are passed as *overrides*: a mapping of dotted names (``"network.https_port"``) or
top-level names (``"data_dir"``) to values; ``None`` values are ignored, so a CLI can pass
every flag unconditionally.

The sections every service shares live here too: :class:`LoggingConfig` and
:class:`ConnectionLimits` (what an HTTPS site lets a stranger hold, see
:mod:`session.service.server`).

Deliberately light (stdlib ``tomllib`` + dataclasses): start-up time on a Raspberry Pi matters.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, Union

from session.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "json", "console")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Where and how a service logs (always redacted unless ``unsafe_logging``)."""

    level: str = "info"
    format: str = "auto"  # auto (json when not a TTY), json, console
    unsafe_logging: bool = False  # log IP addresses and Session IDs unmasked


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one HTTPS site lets strangers hold: time, connections and request-body memory.

    Every service site (node, registry, file and community servers) is served with these
    (:func:`session.service.server.serve`, and the node's :func:`session.http1.server.serve`).
    """

    tls_handshake_timeout: float = 10.0  # seconds from accept to a finished TLS handshake
    header_timeout: float = 10.0  # seconds from a request's first byte to its last header
    body_timeout: float = 30.0  # seconds to receive a whole request body once headers are in
    idle_timeout: float = 60.0  # seconds a connection may wait for its next request
    max_connections: int = 1024  # open connections of the site, all addresses together
    max_connections_per_address: int = 64  # open connections from one address (IPv6: a /64)
    # new connections one address (an IPv6 /64) may open: on average per second, and at once
    new_connections_per_second: float = 50.0
    new_connections_burst: int = 500
    max_inflight_body_bytes: int = 16 * 1024 * 1024  # request bodies held in memory at once


def validate_logging(lc: LoggingConfig, prefix: str = "logging.") -> None:
    """Raise :class:`ConfigError` unless the level and format are known names."""
    if lc.level.lower() not in LOG_LEVELS:
        raise ConfigError(f"{prefix}level must be one of {', '.join(LOG_LEVELS)}, not {lc.level!r}")
    if lc.format not in LOG_FORMATS:
        raise ConfigError(
            f"{prefix}format must be one of {', '.join(LOG_FORMATS)}, not {lc.format!r}"
        )


def validate_limits(cl: ConnectionLimits, max_body: int, prefix: str = "connections.") -> None:
    """Raise :class:`ConfigError` unless every limit is positive and one body of ``max_body``
    bytes fits in the in-flight budget."""
    for name in ("tls_handshake_timeout", "header_timeout", "body_timeout", "idle_timeout"):
        if getattr(cl, name) <= 0:
            raise ConfigError(f"{prefix}{name} must be positive")
    if cl.max_connections <= 0 or cl.max_connections_per_address <= 0:
        raise ConfigError(
            f"{prefix}max_connections and {prefix}max_connections_per_address must be positive"
        )
    if not cl.new_connections_per_second > 0 or cl.new_connections_burst < 1:
        raise ConfigError(
            f"{prefix}new_connections_per_second must be positive and "
            f"{prefix}new_connections_burst at least 1"
        )
    if cl.max_connections_per_address > cl.max_connections:
        raise ConfigError(
            f"{prefix}max_connections_per_address must not exceed {prefix}max_connections"
        )
    if cl.max_inflight_body_bytes < max_body:
        raise ConfigError(
            f"{prefix}max_inflight_body_bytes must be at least the largest "
            f"accepted request body ({max_body} bytes)"
        )


# ------------------------------------------------------------------------------------------
# Introspection helpers


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def field_names(cls: type, prefix: str = "") -> list[str]:
    """Every leaf setting as a dotted name (``"network.https_port"``), in declaration order."""
    out: list[str] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            out.extend(field_names(tp, f"{prefix}{f.name}."))
        else:
            out.append(prefix + f.name)
    return out


def _coerce_bool(value: Any, name: str, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _coerce_number(value: Any, tp: type, name: str) -> Any:
    what = "an integer" if tp is int else "a number"
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {what}, not {value!r}")
    if tp is int and isinstance(value, int):
        return value
    if tp is float and isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""), 10) if tp is int else float(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{name} must be {what}, not {value!r}")


def _coerce(value: Any, tp: Any, name: str, *, from_text: bool) -> Any:
    """Convert ``value`` to the field type ``tp``; text from the environment is parsed."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (from_text and value == ""):
            return None
        tp = args[0]
    if tp is bool:
        return _coerce_bool(value, name, from_text)
    if tp in (int, float):
        return _coerce_number(value, tp, name)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string, not {value!r}")
    if tp is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value).expanduser()
        raise ConfigError(f"{name} must be a path, not {value!r}")
    raise ConfigError(f"{name} has an unsupported type")  # pragma: no cover - schema bug


def _merge(
    layer: dict[str, Any],
    tree: Mapping[str, Any],
    cls: type,
    where: str,
    prefix: str = "",
    *,
    from_text: bool = False,
) -> None:
    """Validate ``tree`` against ``cls`` and merge it into ``layer`` (a nested dict)."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in tree.items():
        dotted = prefix + key
        if key not in names:
            raise ConfigError(f"unknown setting {dotted!r} in {where}")
        tp = hints[key]
        if _is_section(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted!r} in {where} must be a table")
            sub = layer.setdefault(key, {})
            _merge(sub, value, tp, where, dotted + ".", from_text=from_text)
        else:
            if isinstance(value, Mapping):
                raise ConfigError(f"{dotted!r} in {where} must be a value, not a table")
            layer[key] = _coerce(value, tp, f"{dotted} (from {where})", from_text=from_text)


def _build(cls: type[T], values: Mapping[str, Any]) -> T:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass type
        if f.name not in values:
            continue
        tp = hints[f.name]
        kwargs[f.name] = _build(tp, values[f.name]) if _is_section(tp) else values[f.name]
    return cls(**kwargs)


def env_tree(env: Mapping[str, str], prefix: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The settings in ``env`` under ``prefix`` as a nested dict (``skip``: non-settings)."""
    tree: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(prefix) or key in skip:
            continue
        parts = [p.lower() for p in key[len(prefix) :].split("__")]
        if not all(parts):
            raise ConfigError(f"environment variable {key} is not a valid setting name")
        node = tree
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"environment variable {key} conflicts with another setting")
            node = nxt
        node[parts[-1]] = value
    return tree


def _overrides_tree(overrides: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split(".")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return tree


def default_data_dir(app_name: str, env: Mapping[str, str] | None = None) -> Path:
    """``$STATE_DIRECTORY`` (systemd) or the platformdirs data directory of ``app_name``."""
    env = os.environ if env is None else env
    state = env.get("STATE_DIRECTORY")
    if state:
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(state.split(":")[0])
    if hasattr(os, "geteuid") and os.geteuid() == 0 and sys.platform.startswith("linux"):
        return Path("/var/lib") / app_name  # what StateDirectory= would give
    # imported here: platformdirs loads tempfile, shutil, bz2 and lzma, 1.7 MB of RSS that a
    # node given its data directory (or run by systemd) never needs (docs/performance.md)
    import platformdirs  # noqa: PLC0415 - measured, see above

    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path(platformdirs.site_data_dir(app_name))
    return Path(platformdirs.user_data_dir(app_name))


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax problems into :class:`ConfigError`."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except OSError as e:
        raise ConfigError(f"config file {p} cannot be read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None


def load(
    cls: type[T],
    path: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str],
    env_prefix: str,
    env_skip: tuple[str, ...] = (),
    overrides: Mapping[str, Any] | None = None,
    finish: Callable[[dict[str, Any]], None] | None = None,
) -> T:
    """Build a ``cls`` (a frozen dataclass tree): defaults < ``path`` < ``env`` < ``overrides``.

    ``finish`` may adjust the merged values (a nested dict) before the dataclasses are built,
    e.g. to resolve a data directory. Validation of cross-field rules is the caller's.
    """
    layer: dict[str, Any] = {}
    if path is not None:
        _merge(layer, read_toml(path), cls, f"config file {path}")
    _merge(layer, env_tree(env, env_prefix, env_skip), cls, "the environment", from_text=True)
    if overrides:
        _merge(layer, _overrides_tree(overrides), cls, "the command line", from_text=True)
    if "logging" in layer and "level" in layer["logging"]:
        layer["logging"]["level"] = layer["logging"]["level"].lower()
    if finish is not None:
        finish(layer)
    return _build(cls, layer)


def load_service(
    cls: type[T],
    path: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str] | None,
    env_prefix: str,
    env_config: str,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """:func:`load` for a service whose config file may also be named by the environment
    variable ``env_config`` (``SESSION_FILESERVER_CONFIG``); ``env`` None: ``os.environ``."""
    env = os.environ if env is None else env
    if path is None and env.get(env_config):
        path = env[env_config]
    return load(
        cls, path, env=env, env_prefix=env_prefix, env_skip=(env_config,), overrides=overrides
    )


@dataclasses.dataclass(frozen=True)
class ServiceConfigLoader(Generic[T]):
    """A standalone server's ``load_config(path, *, env=None, overrides=None)``: its config
    from ``path`` (or the file the environment variable ``env_config`` names), the environment
    (``env_prefix`` variables; ``env`` None: ``os.environ``) and ``overrides`` (dotted names →
    values, ``None`` ignored), then ``validate``-d (which raises :class:`ConfigError`)."""

    cls: type[T]
    env_prefix: str
    env_config: str
    validate: Callable[[T], None]

    def __call__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> T:
        cfg = load_service(
            self.cls,
            path,
            env=env,
            env_prefix=self.env_prefix,
            env_config=self.env_config,
            overrides=overrides,
        )
        self.validate(cfg)
        return cfg


def as_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain TOML-compatible data (paths as strings)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = as_dict(v)
        elif isinstance(v, Path):
            out[f.name] = str(v)
        else:
            out[f.name] = v
    return out


__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "ConnectionLimits",
    "LoggingConfig",
    "as_dict",
    "default_data_dir",
    "env_tree",
    "field_names",
    "load",
    "load_service",
    "read_toml",
    "validate_limits",
    "validate_logging",
]
