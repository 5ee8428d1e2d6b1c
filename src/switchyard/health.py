"""Provider health: what the router reads as `provider_status`.

A provider is `disabled` when its config says `enabled = false` or when the
environment variable named by its `api_key_env` is unset (the message names the
variable). Otherwise it is `up`, unless its circuit breaker says `down`
(open) or `degraded` (half-open).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from switchyard.config import LoadedConfig

__all__ = ["ProviderHealth", "config_health", "current_status"]


@dataclass(frozen=True)
class ProviderHealth:
    """A provider's status and the reason for it."""

    name: str
    status: str
    reason: str


def config_health(loaded: LoadedConfig, env: Mapping[str, str] | None = None) -> dict[str, ProviderHealth]:
    """Status from config and environment alone (no breaker state)."""
    env = os.environ if env is None else env
    out: dict[str, ProviderHealth] = {}
    for name, p in loaded.providers.items():
        if not p.enabled:
            out[name] = ProviderHealth(name, "disabled", "enabled = false in the config")
        elif p.api_key_env and not env.get(p.api_key_env):
            out[name] = ProviderHealth(name, "disabled", f"environment variable {p.api_key_env} is not set")
        else:
            out[name] = ProviderHealth(name, "up", "ok")
    return out


def current_status(loaded: LoadedConfig, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`{provider: status}` for the router."""
    return {name: h.status for name, h in config_health(loaded, env).items()}
