"""The file server's configuration: TOML file < ``SESSION_FILESERVER_*`` environment < flags,
read with the shared loader (:mod:`session.service.config`).

``SESSION_FILESERVER_STORAGE__DEFAULT_TTL=86400`` sets ``[storage] default_ttl``; the variable
``SESSION_FILESERVER_CONFIG`` names the config file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from session.errors import ConfigError
from session.service import config as service_config
from session.service.config import ConnectionLimits, LoggingConfig

ENV_PREFIX = "SESSION_FILESERVER_"
ENV_CONFIG = "SESSION_FILESERVER_CONFIG"

#: Largest plaintext attachment a Session client sends (client spec §5.5).
MAX_PLAINTEXT_SIZE = 10_000_000
#: Largest blob on the wire: the padded, encrypted form of a 10,000,000-byte file.
MAX_WIRE_SIZE = 10_223_616
DAY = 86_400


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Where the file server listens."""

    listen_host: str = "127.0.0.1"
    port: int = 22040
    tls: bool = True  # serve HTTPS with a self-signed certificate under data_dir/tls/


@dataclasses.dataclass(frozen=True, slots=True)
class StorageConfig:
    """How much the file server keeps, and for how long."""

    max_file_size: int = MAX_WIRE_SIZE  # bytes of one stored blob (413 above)
    quota_bytes: int = 20 * 1024**3  # all stored blobs together (507 above)
    default_ttl: int = 14 * DAY  # seconds a file lives without X-FS-TTL
    max_ttl: int = 30 * DAY  # cap on X-FS-TTL and on extend
    sweep_interval: float = 600.0  # seconds between sweeps of expired files


@dataclasses.dataclass(frozen=True, slots=True)
class FileServerConfig:
    """Everything ``session-fileserver run`` needs."""

    data_dir: Path = Path("fileserver-data")
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    connections: ConnectionLimits = dataclasses.field(default_factory=ConnectionLimits)


def max_request_body(storage: StorageConfig) -> int:
    """Largest request body the site reads: a blob base64-encoded in the legacy JSON upload,
    wrapped in an onion layer, plus room for framing."""
    return (storage.max_file_size + 2) // 3 * 4 + 64 * 1024


def validate(cfg: FileServerConfig) -> None:
    """Raise :class:`ConfigError` with one sentence on a setting that cannot work."""
    st = cfg.storage
    if not 0 < st.max_file_size <= 64 * 1024 * 1024:
        raise ConfigError("storage.max_file_size must be between 1 and 67108864 bytes")
    if st.quota_bytes < st.max_file_size:
        raise ConfigError("storage.quota_bytes must be at least storage.max_file_size")
    if not 0 < st.default_ttl <= st.max_ttl:
        raise ConfigError("storage.default_ttl must be positive and at most storage.max_ttl")
    if st.max_ttl > 365 * DAY:
        raise ConfigError("storage.max_ttl must be at most one year (31536000 seconds)")
    if st.sweep_interval <= 0:
        raise ConfigError("storage.sweep_interval must be positive")
    if not 0 <= cfg.network.port <= 65535:
        raise ConfigError("network.port must be between 0 and 65535")
    service_config.validate_logging(cfg.logging)
    service_config.validate_limits(cfg.connections, max_request_body(st))


#: ``load_config(path, *, env=None, overrides=None)``: the configuration from ``path`` (or
#: ``SESSION_FILESERVER_CONFIG``), the environment and ``overrides``, validated.
load_config = service_config.ServiceConfigLoader(FileServerConfig, ENV_PREFIX, ENV_CONFIG, validate)


__all__ = [
    "ENV_CONFIG",
    "ENV_PREFIX",
    "MAX_PLAINTEXT_SIZE",
    "MAX_WIRE_SIZE",
    "FileServerConfig",
    "NetworkConfig",
    "StorageConfig",
    "load_config",
    "max_request_body",
    "validate",
]
