"""Node configuration: a frozen dataclass tree read from TOML, environment and flags.

Precedence, lowest to highest: built-in defaults < config file < environment < command-line
flags. Environment variables use the prefix ``SESSION_NODE_`` and ``__`` between a table and
its key: ``SESSION_NODE_NETWORK__HTTPS_PORT=22021``, ``SESSION_NODE_DATA_DIR=/srv/node``.
``SESSION_NODE_CONFIG`` names the config file (read by the CLI, not a setting).

Flags are passed as *overrides*: a mapping of dotted names (``"network.https_port"``) or
top-level names (``"data_dir"``) to values; ``None`` values are ignored, so a CLI can pass
every flag unconditionally.

The data directory is, in order: the ``data_dir`` setting (file/env/flag), ``$STATE_DIRECTORY``
(set by systemd's ``StateDirectory=``), then the platformdirs default (``/var/lib/session-node`` when
running as root on Linux, else ``user_data_dir``).

Deliberately light (stdlib ``tomllib`` + dataclasses): start-up time on a Raspberry Pi matters.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from session.errors import ConfigError

ENV_PREFIX = "SESSION_NODE_"
ENV_CONFIG = "SESSION_NODE_CONFIG"
APP_NAME = "session-node"

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "json", "console")


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Public listeners of the node."""

    listen_host: str = "0.0.0.0"  # address the HTTPS and ZeroMQ listeners bind to
    https_port: int = 22021  # client RPC and onion requests (Session's storage_port)
    zmq_port: int = 22020  # node-to-node ZeroMQ (Session's storage_lmq_port)
    public_ip: str = ""  # address announced to the registry; empty = listen_host if routable


@dataclasses.dataclass(frozen=True, slots=True)
class AdminConfig:
    """The loopback-only admin site: /metrics, /healthz, /readyz."""

    host: str = "127.0.0.1"
    port: int = 22029


@dataclasses.dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Where the node registers and fetches the node list."""

    url: str = "https://127.0.0.1:22030"
    stake: int = 25_000  # operator stake announced at registration
    poll_interval: float = 10.0  # seconds between node-list polls


@dataclasses.dataclass(frozen=True, slots=True)
class StorageConfig:
    """Message store limits."""

    max_bytes: int = 3_758_096_384  # 3.5 GiB, Session's storage-server cap


@dataclasses.dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    format: str = "auto"  # auto (json when not a TTY), json, console
    unsafe_logging: bool = False  # log IP addresses and Session IDs unmasked


@dataclasses.dataclass(frozen=True, slots=True)
class LimitsConfig:
    requests_per_second: float = 300.0  # per client IP (Session: 300/s)
    burst: int = 600  # per client IP (Session: 600)
    max_onion_hops: int = 15  # longest onion path relayed through this node (Session: 15)
    max_request_bytes: int = 10 * 1024 * 1024  # Session: 10 MiB


@dataclasses.dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a service node needs to start."""

    data_dir: Path = Path(".")  # always resolved by load_config (see resolve_data_dir)
    shutdown_timeout: float = 10.0  # seconds given to in-flight work on SIGTERM
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    admin: AdminConfig = dataclasses.field(default_factory=AdminConfig)
    registry: RegistryConfig = dataclasses.field(default_factory=RegistryConfig)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)

    @property
    def announce_ip(self) -> str:
        """The address given to the registry: ``public_ip``, else the listen host."""
        return self.network.public_ip or self.network.listen_host

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "db"


# ------------------------------------------------------------------------------------------
# Introspection helpers


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def field_names(cls: type = NodeConfig, prefix: str = "") -> list[str]:
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


def _coerce(value: Any, tp: Any, name: str, *, from_text: bool) -> Any:
    """Convert ``value`` to the field type ``tp``; text from the environment is parsed."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (from_text and value == ""):
            return None
        tp = args[0]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, not {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""), 10)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, not {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{name} must be a number, not {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string, not {value!r}")
    if tp is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value).expanduser()
        raise ConfigError(f"{name} must be a path, not {value!r}")
    raise ConfigError(f"{name} has an unsupported type")  # pragma: no cover - schema bug


def _merge(layer: dict[str, Any], tree: Mapping[str, Any], cls: type, where: str, prefix: str = "",
           *, from_text: bool = False) -> None:
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


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        tp = hints[f.name]
        kwargs[f.name] = _build(tp, values[f.name]) if _is_section(tp) else values[f.name]
    return cls(**kwargs)


def _env_tree(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_CONFIG:
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
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


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$STATE_DIRECTORY`` (systemd) or the platformdirs data directory."""
    env = os.environ if env is None else env
    state = env.get("STATE_DIRECTORY")
    if state:
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(state.split(":")[0])
    import platformdirs

    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if sys.platform.startswith("linux"):
            return Path("/var/lib") / APP_NAME  # what StateDirectory= would give
        return Path(platformdirs.site_data_dir(APP_NAME))
    return Path(platformdirs.user_data_dir(APP_NAME))


def resolve_data_dir(explicit: str | os.PathLike[str] | None,
                     env: Mapping[str, str] | None = None) -> Path:
    """The data directory: ``explicit`` (flag/file/env setting), else :func:`default_data_dir`."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    return default_data_dir(env).absolute()


def _check_port(name: str, port: int, *, allow_zero: bool = True) -> None:
    low = 0 if allow_zero else 1
    if not (low <= port <= 65535):
        raise ConfigError(f"{name} must be between {low} and 65535, not {port}")


def validate(cfg: NodeConfig) -> NodeConfig:
    """Check cross-field rules; returns ``cfg`` unchanged or raises :class:`ConfigError`."""
    _check_port("network.https_port", cfg.network.https_port)
    _check_port("network.zmq_port", cfg.network.zmq_port)
    _check_port("admin.port", cfg.admin.port)
    for name, host in (("network.listen_host", cfg.network.listen_host),
                       ("admin.host", cfg.admin.host)):
        if not host:
            raise ConfigError(f"{name} must not be empty")
    if cfg.network.public_ip:
        try:
            ipaddress.ip_address(cfg.network.public_ip)
        except ValueError:
            raise ConfigError(
                f"network.public_ip must be an IPv4 or IPv6 address, not {cfg.network.public_ip!r}"
            ) from None
    try:
        admin_ip = ipaddress.ip_address(cfg.admin.host)
    except ValueError:
        admin_ip = None
    if cfg.admin.host != "localhost" and (admin_ip is None or not admin_ip.is_loopback):
        raise ConfigError(
            f"admin.host must be a loopback address (metrics and health stay private), "
            f"not {cfg.admin.host!r}"
        )
    if not cfg.registry.url.startswith(("https://", "http://")):
        raise ConfigError(f"registry.url must be an http(s) URL, not {cfg.registry.url!r}")
    if cfg.registry.stake < 0:
        raise ConfigError("registry.stake must not be negative")
    if cfg.registry.poll_interval <= 0:
        raise ConfigError("registry.poll_interval must be positive")
    if cfg.storage.max_bytes <= 0:
        raise ConfigError("storage.max_bytes must be positive")
    if cfg.logging.level.lower() not in LOG_LEVELS:
        raise ConfigError(f"logging.level must be one of {', '.join(LOG_LEVELS)}, "
                          f"not {cfg.logging.level!r}")
    if cfg.logging.format not in LOG_FORMATS:
        raise ConfigError(f"logging.format must be one of {', '.join(LOG_FORMATS)}, "
                          f"not {cfg.logging.format!r}")
    if cfg.limits.requests_per_second <= 0 or cfg.limits.burst <= 0:
        raise ConfigError("limits.requests_per_second and limits.burst must be positive")
    if not (1 <= cfg.limits.max_onion_hops <= 15):
        raise ConfigError("limits.max_onion_hops must be between 1 and 15 (the protocol maximum)")
    if cfg.limits.max_request_bytes <= 0:
        raise ConfigError("limits.max_request_bytes must be positive")
    if cfg.shutdown_timeout < 0:
        raise ConfigError("shutdown_timeout must not be negative")
    return cfg


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


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """Build the :class:`NodeConfig`: defaults < ``path`` < ``env`` < ``overrides``.

    ``env`` defaults to ``os.environ``; ``overrides`` maps dotted setting names to values
    (``None`` values are skipped). The data directory is resolved to an absolute path.
    """
    env = os.environ if env is None else env
    layer: dict[str, Any] = {}
    if path is not None:
        _merge(layer, read_toml(path), NodeConfig, f"config file {path}")
    _merge(layer, _env_tree(env), NodeConfig, "the environment", from_text=True)
    if overrides:
        _merge(layer, _overrides_tree(overrides), NodeConfig, "the command line", from_text=True)
    layer["data_dir"] = resolve_data_dir(layer.get("data_dir"), env)
    if "logging" in layer and "level" in layer["logging"]:
        layer["logging"]["level"] = layer["logging"]["level"].lower()
    return validate(_build(NodeConfig, layer))


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
    "AdminConfig",
    "LimitsConfig",
    "LoggingConfig",
    "NetworkConfig",
    "NodeConfig",
    "RegistryConfig",
    "StorageConfig",
    "as_dict",
    "default_data_dir",
    "field_names",
    "load_config",
    "read_toml",
    "resolve_data_dir",
    "validate",
]
