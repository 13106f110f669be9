"""Registry settings beyond its command-line flags: how it logs, what its HTTPS site lets
strangers hold (the shared ``[logging]`` and ``[connections]`` sections of every service) and
the network-health rules (``[health]``: :class:`session.registry.health.HealthRules`).

Loaded with the shared service loader (:mod:`session.service.config`): built-in defaults < the
TOML file named by ``SESSION_REGISTRY_CONFIG`` < ``SESSION_REGISTRY_<TABLE>__<KEY>`` variables
(``SESSION_REGISTRY_CONNECTIONS__MAX_CONNECTIONS=256``,
``SESSION_REGISTRY_HEALTH__PROOF_TIMEOUT=20``). The listening address, data
directory, stake requirement, seed and log level are flags (``--host``, ``--port``, …,
``--log-level``); ``logging.level`` here is replaced by ``--log-level``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from session.errors import ConfigError, InvalidInput
from session.registry.health import HealthRules, validate_rules
from session.service import config as service_config
from session.service.config import ConnectionLimits, LoggingConfig

ENV_PREFIX = "SESSION_REGISTRY_"
ENV_CONFIG = "SESSION_REGISTRY_CONFIG"


@dataclasses.dataclass(frozen=True, slots=True)
class RegistrySettings:
    """The registry's ``[logging]``, ``[connections]`` and ``[health]``."""

    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    connections: ConnectionLimits = dataclasses.field(default_factory=ConnectionLimits)
    health: HealthRules = dataclasses.field(default_factory=HealthRules)


def load_settings(
    env: Mapping[str, str] | None = None, *, log_level: str | None = None, max_body: int
) -> RegistrySettings:
    """The settings from ``SESSION_REGISTRY_CONFIG`` and the environment (``env`` defaults to
    ``os.environ``); ``log_level`` (the flag) wins over the file and environment. Raises
    :class:`ConfigError` with one sentence."""
    env = os.environ if env is None else env
    path = env.get(ENV_CONFIG) or None
    settings = service_config.load(
        RegistrySettings,
        path,
        env=env,
        env_prefix=ENV_PREFIX,
        env_skip=(ENV_CONFIG,),
        overrides={"logging.level": log_level},
    )
    service_config.validate_logging(settings.logging)
    service_config.validate_limits(settings.connections, max_body)
    try:
        validate_rules(settings.health)
    except InvalidInput as e:
        raise ConfigError(str(e)) from None
    return settings


__all__ = ["ENV_CONFIG", "ENV_PREFIX", "ConfigError", "RegistrySettings", "load_settings"]
