"""The provider seam: `execute(call) -> Result`, and `make_provider` from the registry of kinds.

A provider knows *how to reach* a model (an argv template, an HTTP endpoint, a
simulation); the catalog knows *what it is* (prices, capabilities). Providers
never raise for a failed call: they return a `Result` whose `failure` says what
happened, classified by the table in `switchyard.failures`. They raise only for
mistakes in our own config (`ConfigError`).
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from switchyard.catalog import Usage
from switchyard.config.provider_kinds import PROVIDER_KINDS, ProviderConfig
from switchyard.failures import Failure
from switchyard.providers.processes import ChildProcesses
from switchyard.redact import Redactor
from switchyard.task import Task

__all__ = [
    "Call",
    "ChildProcesses",
    "Provider",
    "ProviderContext",
    "Result",
    "make_provider",
]


@dataclass(frozen=True)
class Call:
    """One request to one provider."""

    attempt_id: str
    task: Task
    model: str  # the catalog name
    provider_model: str  # the id the provider expects
    prompt: str
    run_dir: Path
    timeout_s: float
    stage: str | None = None
    workdir: Path | None = None
    max_output_tokens: int | None = None
    max_cost_usd: Decimal | None = None
    attempt_number: int = 0


@dataclass(frozen=True)
class Result:
    """What came back. `failure` is None on success."""

    text: str | None = None
    usage: Usage | None = None
    reported_cost_usd: Decimal | None = None
    failure: Failure | None = None
    exit_code: int | None = None
    usage_problem: str | None = None
    output_path: Path | None = None
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class ProviderContext:
    """What providers get from their host: secret redaction, environment, clock, child registry."""

    redactor: Redactor = field(default_factory=Redactor)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    children: ChildProcesses = field(default_factory=ChildProcesses)
    # Set when running calls must stop now (second Ctrl-C, grace period over): they end as interrupted.
    hard_stop: threading.Event = field(default_factory=threading.Event)


class Provider(Protocol):
    """Anything that can run a call."""

    name: str

    def execute(self, call: Call) -> Result:
        """Run `call`; never raises for a failed call."""
        ...

    def close(self) -> None:
        """Release connections and other resources."""
        ...


def make_provider(config: ProviderConfig, context: ProviderContext) -> Provider:
    """Build the provider for `config.kind` by its entry in `PROVIDER_KINDS`, importing its module now.

    Modules are imported only when a provider of their kind is built, so routing never pays for httpx.
    """
    module, _, attr = PROVIDER_KINDS[config.kind].factory.partition(":")
    factory: Any = getattr(importlib.import_module(module), attr)
    provider: Provider = factory(config, context)
    return provider
