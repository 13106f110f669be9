"""The community server's configuration: TOML file < ``SESSION_COMMUNITY_*`` environment <
flags, read with the shared loader (:mod:`session.service.config`).

``SESSION_COMMUNITY_LIMITS__MAX_POST_BYTES=40000`` sets ``[limits] max_post_bytes``; the
variable ``SESSION_COMMUNITY_CONFIG`` names the config file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from pathlib import Path

from session.errors import ConfigError
from session.service import config as service_config
from session.service.config import ConnectionLimits, LoggingConfig

ENV_PREFIX = "SESSION_COMMUNITY_"
ENV_CONFIG = "SESSION_COMMUNITY_CONFIG"
DAY = 86_400


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Where the community server listens, and how its join URLs name it."""

    listen_host: str = "127.0.0.1"
    port: int = 22050
    tls: bool = True  # serve HTTPS with a self-signed certificate under data_dir/tls/
    #: The base URL of join URLs (``http://example.org``); empty: ``http(s)://host:port``.
    public_url: str = ""
    #: Loopback port of the admin site (``/metrics``, ``/healthz``, ``/readyz``); -1: none.
    admin_port: int = 22051


@dataclasses.dataclass(frozen=True, slots=True)
class LimitsConfig:
    """What members may do, and how long things live (pysogs's values by default)."""

    require_blind: bool = True  # refuse unblinded (00) keys, as Session's servers do
    max_post_bytes: int = 64 * 1024  # decoded ``data`` of one post (413 above)
    rate_limit_posts: int = 5  # posts one member may make in one room ...
    rate_limit_interval: float = 16.0  # ... within this many seconds (429 above)
    rate_limit_uploads: int = 20  # uploads one member may make (all rooms) ...
    rate_limit_uploads_interval: float = 60.0  # ... within this many seconds (429 above)
    rate_limit_dms: int = 10  # direct messages one member may send ...
    rate_limit_dms_interval: float = 60.0  # ... within this many seconds (429 above)
    max_file_size: int = 10_000_000  # bytes of one room upload (413 above)
    #: Room files, post data and DMs stored together (507 above): 2 GiB.
    max_storage_bytes: int = 2 * 1024**3
    file_ttl: int = 3600  # seconds an upload lives until a post references it
    posted_file_ttl: int = 15 * DAY  # seconds an upload lives once a post references it
    dm_ttl: int = 15 * DAY  # seconds a direct message waits in an inbox
    max_subrequests: int = 64  # subrequests of one /batch or /sequence (400 above)
    active_users_cutoff: int = 7 * DAY  # a member counts as active this long after a poll
    sweep_interval: float = 60.0  # seconds between sweeps of expired files, DMs and nonces


@dataclasses.dataclass(frozen=True, slots=True)
class CommunityConfig:
    """Everything ``session-community run`` needs."""

    data_dir: Path = Path("community-data")
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    connections: ConnectionLimits = dataclasses.field(default_factory=ConnectionLimits)


def max_request_body(limits: LimitsConfig) -> int:
    """Largest request body the site reads: one upload base64-encoded inside a /batch and an
    onion layer, plus room for framing."""
    return (limits.max_file_size + 2) // 3 * 4 + 64 * 1024


def validate(cfg: CommunityConfig) -> None:
    """Raise :class:`ConfigError` with one sentence on a setting that cannot work."""
    lim = cfg.limits
    if not 0 < lim.max_file_size <= 64 * 1024 * 1024:
        raise ConfigError("limits.max_file_size must be between 1 and 67108864 bytes")
    if not 0 < lim.max_post_bytes <= 1024 * 1024:
        raise ConfigError("limits.max_post_bytes must be between 1 and 1048576 bytes")
    for name in ("rate_limit_interval", "rate_limit_uploads_interval",
                 "rate_limit_dms_interval", "file_ttl", "posted_file_ttl", "dm_ttl",
                 "active_users_cutoff", "sweep_interval"):  # fmt: skip
        if not math.isfinite(getattr(lim, name)):  # NaN passes every comparison below
            raise ConfigError(f"limits.{name} must be a finite number of seconds")
    for what in ("posts", "uploads", "dms"):
        count = f"rate_limit_{what}"
        interval = "rate_limit_interval" if what == "posts" else f"{count}_interval"
        if getattr(lim, count) < 0 or getattr(lim, interval) < 0:
            raise ConfigError(f"limits.{count} and {interval} must not be negative")
    if lim.max_storage_bytes < lim.max_file_size:
        raise ConfigError("limits.max_storage_bytes must be at least limits.max_file_size")
    for name in ("file_ttl", "posted_file_ttl", "dm_ttl", "active_users_cutoff"):
        if getattr(lim, name) <= 0:
            raise ConfigError(f"limits.{name} must be a positive number of seconds")
    if not 1 <= lim.max_subrequests <= 1000:
        raise ConfigError("limits.max_subrequests must be between 1 and 1000")
    if lim.sweep_interval <= 0:
        raise ConfigError("limits.sweep_interval must be positive")
    net = cfg.network
    if not 0 <= net.port <= 65535:
        raise ConfigError("network.port must be between 0 and 65535")
    if not -1 <= net.admin_port <= 65535:
        raise ConfigError("network.admin_port must be between -1 (off) and 65535")
    if net.public_url and not net.public_url.startswith(("http://", "https://")):
        raise ConfigError("network.public_url must start with http:// or https://")
    service_config.validate_logging(cfg.logging)
    service_config.validate_limits(cfg.connections, max_request_body(lim))


def base_url(cfg: CommunityConfig, port: int | None = None) -> str:
    """The base URL of join URLs: ``network.public_url``, else where the server listens."""
    if cfg.network.public_url:
        return cfg.network.public_url.rstrip("/")
    scheme = "https" if cfg.network.tls else "http"
    return f"{scheme}://{cfg.network.listen_host}:{cfg.network.port if port is None else port}"


def join_url_warning(cfg: CommunityConfig) -> str | None:
    """Why join URLs from ``cfg`` would not work for anyone on another machine, or None.

    Without ``network.public_url`` they name where the server listens; a loopback or
    wildcard listen address is no place a member's app can reach."""
    if cfg.network.public_url:
        return None
    host = cfg.network.listen_host.strip("[]")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            return None
        reason = "loopback-only (it names localhost)"
    else:
        if addr.is_loopback:
            reason = f"loopback-only (it names {host})"
        elif addr.is_unspecified:
            reason = f"not reachable ({host} is the wildcard listen address)"
        else:
            return None
    return (
        f"network.public_url is not set, so join URLs are {reason}: set network.public_url "
        "in the config file (e.g. https://sogs.example.org) or pass --public-url"
    )


def join_url(base: str, token: str, server_pk_hex: str) -> str:
    """``<base>/<token>?public_key=<hex>``: what Session's apps join (client spec §4.1)."""
    return f"{base.rstrip('/')}/{token}?public_key={server_pk_hex}"


#: ``load_config(path, *, env=None, overrides=None)``: the configuration from ``path`` (or
#: ``SESSION_COMMUNITY_CONFIG``), the environment and ``overrides``, validated.
load_config = service_config.ServiceConfigLoader(CommunityConfig, ENV_PREFIX, ENV_CONFIG, validate)


__all__ = [
    "ENV_CONFIG",
    "ENV_PREFIX",
    "CommunityConfig",
    "LimitsConfig",
    "NetworkConfig",
    "base_url",
    "join_url",
    "load_config",
    "max_request_body",
    "validate",
]
