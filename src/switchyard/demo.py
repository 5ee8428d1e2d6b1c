"""The bundled demo: ~60 varied example tasks and the example config."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

from switchyard.task import Task

__all__ = ["DemoTask", "demo_config_text", "demo_tasks"]

_TITLES = {
    "bug": [
        "Fix crash when config is empty",
        "Null pointer in webhook handler",
        "Race in cache eviction",
        "Off-by-one in pagination",
        "Login fails with unicode passwords",
    ],
    "feature": [
        "Add CSV export",
        "Support SSO via OIDC",
        "Dark mode for settings",
        "Bulk archive issues",
        "Rate-limit the public API",
    ],
    "documentation": [
        "Document the deploy process",
        "Fix typos in README",
        "Write API reference for /v2",
        "Add architecture diagram",
        "Explain the retry policy",
    ],
    "refactor": ["Split the 3k-line views module", "Replace hand-rolled JSON parsing", "Remove dead feature flags"],
    "test": ["Add tests for the billing module", "Make flaky upload test deterministic"],
    "security": ["Rotate leaked token handling", "Escape user input in templates"],
}


@dataclass(frozen=True)
class DemoTask:
    """A demo task and the time it arrives."""

    task: Task
    at: datetime


def demo_tasks(n: int = 60, *, seed: int = 7, start: datetime | None = None) -> list[DemoTask]:
    """`n` deterministic tasks: priorities 0-4, mixed labels, some at night, ids ending in 0 included."""
    rng = random.Random(seed)
    base = start or datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    kinds = list(_TITLES)
    out: list[DemoTask] = []
    for i in range(n):
        kind = kinds[rng.choices(range(len(kinds)), weights=[5, 4, 3, 2, 2, 1])[0]]
        title = rng.choice(_TITLES[kind])
        priority = rng.choices([0, 1, 2, 3, 4], weights=[1, 3, 4, 2, 1])[0]
        if kind == "security":
            priority = min(priority, 1)
        labels = [kind]
        if rng.random() < 0.2:
            labels.append(rng.choice(["frontend", "backend", "infra"]))
        # Tasks arrive through a day and a half: the middle third lands at night.
        at = base + timedelta(minutes=int(i * 26 + rng.randint(0, 20)))
        task = Task(
            id=f"SY-{101 + i}",
            title=title,
            body=f"{title}.\n\nAcceptance: tests pass and the change is reviewed.",
            priority=priority,
            labels=tuple(labels),
            type="bug" if kind == "bug" else "task",
            source="demo",
            metadata={"shift": "night"} if at.hour >= 22 or at.hour <= 6 else {},
        )
        out.append(DemoTask(task, at))
    return out


def demo_config_text() -> str:
    """The bundled demo config."""
    return resources.files("switchyard.examples").joinpath("demo.toml").read_text(encoding="utf-8")
