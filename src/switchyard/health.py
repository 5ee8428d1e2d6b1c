"""Provider health: what the router reads as `provider_status`.

A provider is `disabled` when its config says `enabled = false` or when the
environment variable named by its `api_key_env` is unset (the message names the
variable). Otherwise it is `up`, unless its circuit breaker says `down`
(open) or `degraded` (half-open).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from switchyard._records import record
from switchyard.config import LoadedConfig
from switchyard.config.schema import CommandProvider, HealthConfig, ProviderConfig
from switchyard.failures import POLICY, Failure, FailureKind

# The failure kinds that count against a breaker, from the one table in failures.py.
_COUNTED = tuple(kind.value for kind, policy in POLICY.items() if policy.breaker)

if TYPE_CHECKING:  # `route` reads config health without touching SQLite
    from switchyard.ledger.store import BreakerRow, Ledger

__all__ = ["Health", "ProviderHealth", "config_health", "current_status"]


@record
class ProviderHealth:
    """A provider's status and the reason for it."""

    name: str
    status: str
    reason: str


def config_health(loaded: LoadedConfig, env: Mapping[str, str] | None = None) -> dict[str, ProviderHealth]:
    """Status from config and environment alone (no breaker state)."""
    env = os.environ if env is None else env
    return {name: _config_health(name, p, env) for name, p in loaded.providers.items()}


def _config_health(name: str, p: ProviderConfig, env: Mapping[str, str]) -> ProviderHealth:
    if not p.enabled:
        return ProviderHealth(name, "disabled", "enabled = false in the config")
    if p.api_key_env and not env.get(p.api_key_env):
        return ProviderHealth(name, "disabled", f"environment variable {p.api_key_env} is not set")
    return ProviderHealth(name, "up", "ok")


def _executable(name: str, path: str) -> str:
    """Where `name` resolves on `path` and which file it is there (inode, mtime), or "missing"."""
    found = shutil.which(name, path=path)
    if found is None:
        return "missing"
    try:
        st = os.stat(found)
    except OSError:
        return "missing"
    return f"{os.path.abspath(found)}\0{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}"


def current_status(loaded: LoadedConfig, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`{provider: status}` for the router."""
    return {name: h.status for name, h in config_health(loaded, env).items()}


class Health:
    """Per-provider circuit breakers, persisted in the ledger database.

    closed → (N consecutive failures, or a failure rate over the window) → open:
    the router sees `down`. After `cooldown_s` it is half-open (`degraded`) and
    exactly one caller may probe: success closes it, failure reopens it. A failure whose
    policy is `disable` (a 401/403, a missing executable, a command line the CLI rejects)
    disables the provider until `switchyard providers reset NAME`, or, for a configuration
    error, until the provider's config or environment changes.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        ledger: Ledger,
        *,
        settings: HealthConfig | None = None,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.ledger = ledger
        self.settings = settings or loaded.health
        self.clock = clock
        self.env = env

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def fingerprint(self, provider: str) -> str:
        """The provider's config, its PATH and the executable found there, as a digest.

        A provider disabled by a configuration error is tried again once this changes: the
        config was fixed (another command_template, say), the PATH was, or the executable
        appeared, was replaced or was made executable in a directory already on it.
        """
        env = os.environ if self.env is None else self.env
        p = self.loaded.providers.get(provider)
        path = env.get("PATH", "")
        text = repr(p) + "\0" + path
        if isinstance(p, CommandProvider) and p.command_template:
            path = p.env.get("PATH", path)  # what the child's exec searches (`CommandRunner._env`)
            text += "\0" + _executable(p.command_template[0], path)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _lifted(self, row: BreakerRow) -> bool:
        """A provider disabled by a configuration error whose config or environment changed since."""
        return (
            row.state == "disabled" and row.config_sha is not None and row.config_sha != self.fingerprint(row.provider)
        )

    def explain(self) -> dict[str, ProviderHealth]:
        """Every provider's status and why, config and breakers combined."""
        out = config_health(self.loaded, self.env)
        now = self._now_ms()
        cooldown = int(self.settings.cooldown_s * 1000)
        for name, row in self.ledger.breakers().items():
            if name not in out or out[name].status == "disabled":
                continue
            if self._lifted(row):
                out[name] = ProviderHealth(name, "up", f"its config or environment changed since: {row.reason}")
            elif row.state == "disabled":
                out[name] = ProviderHealth(name, "disabled", row.reason)
            elif row.state == "open":
                if row.opened_ms is not None and now < row.opened_ms + cooldown:
                    left = (row.opened_ms + cooldown - now) / 1000
                    out[name] = ProviderHealth(name, "down", f"circuit open: {row.reason} (retry in {left:.0f}s)")
                else:
                    out[name] = ProviderHealth(name, "degraded", f"circuit half-open, next call probes: {row.reason}")
            elif row.failures:
                out[name] = ProviderHealth(name, "up", f"{row.failures} recent consecutive failure(s)")
        return out

    def status(self) -> dict[str, str]:
        """`{provider: up|down|degraded|disabled}` for the router."""
        return {name: h.status for name, h in self.explain().items()}

    def allow(self, provider: str) -> bool:
        """May we call `provider` now? Half-open admits one probe at a time."""
        why, allowed, _ = self.gate(provider)
        return why is None and allowed

    def gate(self, provider: str) -> tuple[str | None, bool, int | None]:
        """(why `provider` is disabled, or None; may it be called now; the probe slot this call took).

        A disabled provider is never called. Otherwise its circuit decides: closed lets the call
        through, open refuses it, half-open admits one probe at a time: this call takes the slot,
        and the third element is its claim (else None), to give back with `free_probe` if the call
        is not made after all (a budget refuses it), or the slot stays taken until probe_timeout_s.
        """
        p = self.loaded.providers.get(provider)
        if p is not None:
            h = _config_health(provider, p, os.environ if self.env is None else self.env)
            if h.status == "disabled":
                return h.reason, False, None
        row = self.ledger.breakers().get(provider)
        if row is None or row.state == "closed":
            return None, True, None
        if row.state == "disabled":  # the next call shows if it was fixed
            return (None, True, None) if self._lifted(row) else (row.reason, False, None)
        now = self._now_ms()
        if row.opened_ms is not None and now < row.opened_ms + int(self.settings.cooldown_s * 1000):
            return None, False, None
        if self.ledger.claim_probe(provider, now, int(self.settings.probe_timeout_s * 1000)):
            return None, True, now
        return None, False, None

    def free_probe(self, provider: str, claim: int | None) -> None:
        """Give back the half-open probe slot `gate` took (`claim`) for a call that was not made."""
        if claim is not None:
            self.ledger.free_probe(provider, claim, self._now_ms())

    def record(self, provider: str, failure: Failure | None) -> None:
        """Feed one call's outcome to the provider's breaker."""
        from switchyard.ledger.store import BreakerRow

        now = self._now_ms()
        if failure is None:  # the common case: a healthy provider stays healthy, no write needed
            current = self.ledger.breakers().get(provider)
            if current is None or (current.state == "closed" and not current.failures):
                return
        with self.ledger.db.transaction():
            row = self.ledger.breakers().get(provider) or BreakerRow(provider, "closed", updated_ms=now)
            if failure is None:
                if row.state != "closed" or row.failures:
                    self.ledger.put_breaker(BreakerRow(provider, "closed", 0, None, None, "", now))
                return
            if failure.policy.action == "disable":
                if failure.kind is FailureKind.AUTH:
                    reason = f"credentials rejected (HTTP {failure.http_status or '401/403'}): {failure.message[:200]}"
                    sha = None  # a key is fixed outside our sight: lifted by `providers reset`
                else:
                    reason = (
                        f"{failure.kind}: {failure.message[:300]} (fix the provider's config or environment, "
                        f"or run `switchyard providers reset {provider}`)"
                    )
                    sha = self.fingerprint(provider)
                self.ledger.put_breaker(BreakerRow(provider, "disabled", row.failures + 1, now, None, reason, now, sha))
                self.ledger.breaker_event(provider, now, "disabled", reason)
                return
            if not failure.policy.breaker:
                if row.probe_ms is not None:  # a probe that got a non-counting answer frees the slot
                    self.ledger.put_breaker(replace(row, probe_ms=None, updated_ms=now))
                return
            failures = row.failures + 1
            if row.state == "open":
                why = f"probe failed ({failure.kind})"
                self.ledger.put_breaker(BreakerRow(provider, "open", failures, now, None, why, now))
                self.ledger.breaker_event(provider, now, "open", why)
                return
            reason = ""
            s = self.settings
            if failures >= s.consecutive_failures:
                reason = f"{failures} consecutive failures, last {failure.kind}"
            else:
                calls, failed = self.ledger.provider_window(provider, now - int(s.window_s * 1000), _COUNTED)
                if calls >= s.min_calls and failed / calls >= s.failure_rate:
                    reason = f"{failed} of {calls} calls failed in the last {s.window_s:g}s"
            if reason:
                self.ledger.put_breaker(BreakerRow(provider, "open", failures, now, None, reason, now))
                self.ledger.breaker_event(provider, now, "open", reason)
            else:
                self.ledger.put_breaker(BreakerRow(provider, "closed", failures, None, None, "", now))

    def reset(self, provider: str) -> None:
        """Close `provider`'s breaker (and lift a disable)."""
        from switchyard.ledger.store import BreakerRow

        self.ledger.put_breaker(BreakerRow(provider, "closed", 0, None, None, "reset by hand", self._now_ms()))
