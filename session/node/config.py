"""Node configuration: a frozen dataclass tree read from TOML, environment and flags.

Loading is the shared service loader (:mod:`session.service.config`). Precedence, lowest to
highest: built-in defaults < config file < environment < command-line flags. Environment
variables use the prefix ``SESSION_NODE_`` and ``__`` between a table and its key:
``SESSION_NODE_NETWORK__HTTPS_PORT=22021``, ``SESSION_NODE_DATA_DIR=/srv/node``.
``SESSION_NODE_CONFIG`` names the config file (read by the CLI, not a setting).

Flags are passed as *overrides*: a mapping of dotted names (``"network.https_port"``) or
top-level names (``"data_dir"``) to values; ``None`` values are ignored, so a CLI can pass
every flag unconditionally.

The data directory is, in order: the ``data_dir`` setting (file/env/flag), ``$STATE_DIRECTORY``
(set by systemd's ``StateDirectory=``), then the platformdirs default (``/var/lib/session-node``
when running as root on Linux, else ``user_data_dir``).

Deliberately light (stdlib ``tomllib`` + dataclasses): start-up time on a Raspberry Pi matters.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from session.errors import ConfigError
from session.node.egress import parse_allowlist
from session.service import config as service_config
from session.service.config import (
    ConnectionLimits,
    LoggingConfig,
    as_dict,
    read_toml,
    validate_limits,
    validate_logging,
)

ENV_PREFIX = "SESSION_NODE_"
ENV_CONFIG = "SESSION_NODE_CONFIG"
APP_NAME = "session-node"


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Public listeners of the node."""

    listen_host: str = "0.0.0.0"  # address the HTTPS and node-link listeners bind to
    https_port: int = 22021  # client RPC and onion requests (Session's storage_port)
    zmq_port: int = 22020  # node-to-node links (TCP; Session's storage_lmq_port)
    public_ip: str = ""  # address announced to the registry; empty = listen_host if routable
    proxy_public: bool = True  # onion requests may be proxied to public unicast addresses
    proxy_allow: str = ""  # "host:port, …" proxied to whatever their address (a devnet's servers)


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
    #: a chain node's JSON-RPC URL and the staking contract: check every list against them
    chain_rpc: str = ""
    chain_contract: str = ""
    chain_start_block: int = 0  # the block the contract was deployed at


@dataclasses.dataclass(frozen=True, slots=True)
class StorageConfig:
    """Message store limits."""

    max_bytes: int = 3_758_096_384  # 3.5 GiB, Session's storage-server cap


@dataclasses.dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Per-request limits of the client site (connection limits are in ``connections``)."""

    requests_per_second: float = 300.0  # per client address, an IPv6 /64 (Session: 300/s)
    burst: int = 600  # per client address (Session: 600)
    max_onion_hops: int = 15  # longest onion path relayed through this node (Session: 15)
    max_request_bytes: int = 10 * 1024 * 1024  # Session: 10 MiB
    keep_large_buffers: bool = False  # keep ~64 MiB of freed buffers (session.service.memory)


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicationConfig:
    """How swarm members copy writes to each other and catch up (docs/design.md)."""

    forward_deadline: float = 1.0  # seconds a client's write waits for the other members
    sync_interval: float = 60.0  # seconds between reconciliations with the next member
    catch_up_timeout: float = 30.0  # after a restart, reads wait this long for any member
    #: seconds writes to a member may wait while its previous link message of writes is
    #: unanswered, to go together (Nagle's rule; 0: never held, the default: measured to cost
    #: throughput near saturation on the 12-node devnet, docs/performance.md)
    forward_hold: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class HealthConfig:
    """Uptime proofs and reachability tests (:mod:`session.node.health`; docs/design.md)."""

    proof_interval: float = 300.0  # seconds between signed uptime proofs to the registry
    test_interval: float = 10.0  # mean seconds between reachability tests of a random peer
    test_timeout: float = 5.0  # seconds each part of a test (HTTPS ping, node link) may take


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
    connections: ConnectionLimits = dataclasses.field(default_factory=ConnectionLimits)
    replication: ReplicationConfig = dataclasses.field(default_factory=ReplicationConfig)
    health: HealthConfig = dataclasses.field(default_factory=HealthConfig)

    @property
    def announce_ip(self) -> str:
        """The address given to the registry: ``public_ip``, else the listen host."""
        return self.network.public_ip or self.network.listen_host

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "db"


def field_names(cls: type = NodeConfig, prefix: str = "") -> list[str]:
    """Every leaf setting as a dotted name (``"network.https_port"``), in declaration order."""
    return service_config.field_names(cls, prefix)


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$STATE_DIRECTORY`` (systemd) or the platformdirs data directory."""
    return service_config.default_data_dir(APP_NAME, env)


def resolve_data_dir(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Path:
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
    _check_network(cfg.network)
    _check_admin(cfg.admin)
    if not cfg.registry.url.startswith(("https://", "http://")):
        raise ConfigError(f"registry.url must be an http(s) URL, not {cfg.registry.url!r}")
    if cfg.registry.stake < 0:
        raise ConfigError("registry.stake must not be negative")
    if cfg.registry.poll_interval <= 0:
        raise ConfigError("registry.poll_interval must be positive")
    if bool(cfg.registry.chain_rpc) != bool(cfg.registry.chain_contract):
        raise ConfigError("registry.chain_rpc and registry.chain_contract go together")
    if cfg.registry.chain_rpc and not cfg.registry.chain_rpc.startswith(("https://", "http://")):
        raise ConfigError("registry.chain_rpc must be an http(s) URL of a chain's JSON-RPC")
    if cfg.registry.chain_start_block < 0:
        raise ConfigError("registry.chain_start_block must not be negative")
    if cfg.storage.max_bytes <= 0:
        raise ConfigError("storage.max_bytes must be positive")
    validate_logging(cfg.logging)
    _check_limits(cfg.limits)
    validate_limits(cfg.connections, cfg.limits.max_request_bytes)
    if cfg.shutdown_timeout < 0:
        raise ConfigError("shutdown_timeout must not be negative")
    rep = cfg.replication
    if min(rep.forward_deadline, rep.sync_interval, rep.catch_up_timeout) <= 0:
        raise ConfigError(
            "replication.forward_deadline, replication.sync_interval and "
            "replication.catch_up_timeout must be positive"
        )
    if not 0 <= rep.forward_hold < rep.forward_deadline:
        raise ConfigError(
            "replication.forward_hold must be at least 0 and less than replication.forward_deadline"
        )
    h = cfg.health
    if min(h.proof_interval, h.test_interval, h.test_timeout) <= 0:
        raise ConfigError(
            "health.proof_interval, health.test_interval and health.test_timeout must be positive"
        )
    return cfg


def check_runnable(cfg: NodeConfig) -> NodeConfig:
    """What ``run`` needs beyond a well-formed file: an address the registry can announce.

    ``network.public_ip`` may be left empty only when ``network.listen_host`` is itself a
    unicast address (a devnet's 127.0.0.1); the default listen host 0.0.0.0 is not one. Raises
    :class:`ConfigError` with one sentence; ``check-config`` and ``run`` both call it.
    """
    ip = cfg.announce_ip
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        addr = None
    if addr is None or addr.is_unspecified or addr.is_multicast:
        raise ConfigError(
            "network.public_ip is required: set it (or --public-ip) to the public IPv4 or IPv6 "
            f"address other nodes and clients reach this node at ({ip!r} cannot be announced)"
        )
    return cfg


def _check_network(net: NetworkConfig) -> None:
    _check_port("network.https_port", net.https_port)
    _check_port("network.zmq_port", net.zmq_port)
    if not net.listen_host:
        raise ConfigError("network.listen_host must not be empty")
    if net.public_ip:
        try:
            ipaddress.ip_address(net.public_ip)
        except ValueError:
            raise ConfigError(
                f"network.public_ip must be an IPv4 or IPv6 address, not {net.public_ip!r}"
            ) from None
    parse_allowlist(net.proxy_allow)  # raises ConfigError naming a bad entry


def _check_admin(admin: AdminConfig) -> None:
    """The admin site listens on loopback only (metrics and health stay private)."""
    _check_port("admin.port", admin.port)
    if not admin.host:
        raise ConfigError("admin.host must not be empty")
    try:
        admin_ip = ipaddress.ip_address(admin.host)
    except ValueError:
        admin_ip = None
    if admin.host != "localhost" and (admin_ip is None or not admin_ip.is_loopback):
        raise ConfigError(
            f"admin.host must be a loopback address (metrics and health stay private), "
            f"not {admin.host!r}"
        )


def _check_limits(limits: LimitsConfig) -> None:
    if limits.requests_per_second <= 0 or limits.burst <= 0:
        raise ConfigError("limits.requests_per_second and limits.burst must be positive")
    if not (1 <= limits.max_onion_hops <= 15):
        raise ConfigError("limits.max_onion_hops must be between 1 and 15 (the protocol maximum)")
    if limits.max_request_bytes <= 0:
        raise ConfigError("limits.max_request_bytes must be positive")


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

    def finish(layer: dict[str, Any]) -> None:
        layer["data_dir"] = resolve_data_dir(layer.get("data_dir"), env)

    cfg = service_config.load(
        NodeConfig,
        path,
        env=env,
        env_prefix=ENV_PREFIX,
        env_skip=(ENV_CONFIG,),
        overrides=overrides,
        finish=finish,
    )
    return validate(cfg)


__all__ = [
    "AdminConfig",
    "ConnectionLimits",
    "HealthConfig",
    "LimitsConfig",
    "LoggingConfig",
    "NetworkConfig",
    "NodeConfig",
    "RegistryConfig",
    "StorageConfig",
    "as_dict",
    "check_runnable",
    "default_data_dir",
    "field_names",
    "load_config",
    "read_toml",
    "resolve_data_dir",
    "validate",
]
