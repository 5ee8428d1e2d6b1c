"""The bundled demo: varied example tasks (200 by default), the routed config and its all-default twin, a fixed clock."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from importlib import resources

from switchyard.task import Task

__all__ = ["CLOCK", "all_default_config_text", "demo_config_text", "demo_tasks"]

# Both measured runs read this one instant (routing's `hour` and `weekday`, prices, budget periods):
# a Monday morning, so no rule about the time of day changes with the machine's clock.
CLOCK = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

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


def demo_tasks(n: int = 200, *, seed: int = 7) -> list[Task]:
    """`n` deterministic tasks: priorities 0-4, mixed labels, a third of them filed at night."""
    rng = random.Random(seed)
    base = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    kinds = list(_TITLES)
    out: list[Task] = []
    for i in range(n):
        kind = kinds[rng.choices(range(len(kinds)), weights=[5, 4, 3, 2, 2, 1])[0]]
        title = rng.choice(_TITLES[kind])
        priority = rng.choices([0, 1, 2, 3, 4], weights=[1, 3, 4, 2, 1])[0]
        if kind == "security":
            priority = min(priority, 1)
        labels = [kind]
        if rng.random() < 0.2:
            labels.append(rng.choice(["frontend", "backend", "infra"]))
        # Filed through a day and a half: the middle third at night.
        filed = base + timedelta(minutes=int(i * 26 + rng.randint(0, 20)))
        out.append(
            Task(
                id=f"SY-{101 + i}",
                title=title,
                body=f"{title}.\n\nAcceptance: tests pass and the change is reviewed.",
                priority=priority,
                labels=tuple(labels),
                type="bug" if kind == "bug" else "task",
                source="demo",
                metadata={"shift": "night"} if filed.hour >= 22 or filed.hour <= 6 else {},
            )
        )
    return out


def demo_config_text() -> str:
    """The bundled demo config: the routed side."""
    return resources.files("switchyard.examples").joinpath("demo.toml").read_text(encoding="utf-8")


# A `[[routing.rules]]` table: its header, then every line up to the next table header (or the end).
_RULE = re.compile(r"^\[\[routing\.rules\]\][^\n]*\n(?:(?!\[)[^\n]*\n?)*", re.MULTILINE)


def all_default_config_text(routed: str | None = None) -> str:
    """The routed config with every `[[routing.rules]]` table taken out: each task goes to the default model."""
    text = _RULE.sub("", routed if routed is not None else demo_config_text())
    header = (
        "# The demo's all-default side: the routed config (switchyard.toml of the routed workspace)\n"
        "# with its [[routing.rules]] taken out, so every task, and every retry, goes to routing.default_model.\n\n"
    )
    return header + text
