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
import signal
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


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat): tells a pid apart from a recycled one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class ChildProcesses:
    """Process groups of running agent CLIs, so a shutdown can kill every one of them.

    With a `state_dir`, each group is also noted on disk, so the next start after a
    crash (`reap_stale`) kills whatever the dead coordinator left running.
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self.state_dir = state_dir
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)
        if self.state_dir is not None:
            (self.state_dir / str(pgid)).write_text(_start_time(pgid) or "", encoding="ascii")

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
        if self.state_dir is not None:
            (self.state_dir / str(pgid)).unlink(missing_ok=True)

    def reap_stale(self) -> int:
        """Kill groups a previous, crashed process left behind; returns how many were killed."""
        if self.state_dir is None:
            return 0
        killed = 0
        for entry in self.state_dir.iterdir():
            if not entry.name.isdigit() or int(entry.name) in self._groups:
                continue
            pgid = int(entry.name)
            recorded = entry.read_text(encoding="ascii").strip()
            if recorded and _start_time(pgid) == recorded:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                    killed += 1
                except (ProcessLookupError, PermissionError):
                    pass
            entry.unlink(missing_ok=True)
        return killed

    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._groups)

    def kill_all(self, sig: int = signal.SIGKILL) -> int:
        """Signal every group; returns how many were signalled."""
        n = 0
        for pgid in self.running():
            try:
                os.killpg(pgid, sig)
                n += 1
            except (ProcessLookupError, PermissionError):
                self.discard(pgid)
        return n


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
