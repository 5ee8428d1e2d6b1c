"""`switchyard demo`: route the bundled example tasks and show where they went."""

from __future__ import annotations

from collections import Counter

import click

from switchyard.cli.common import table
from switchyard.config import loads_config
from switchyard.demo import demo_config_text, demo_tasks
from switchyard.router import Router

__all__ = ["demo"]


@click.command()
@click.option("--tasks", "n", default=60, show_default=True, help="How many example tasks.")
def demo(n: int) -> None:
    """Route ~60 example tasks through the example config: decisions and model distribution.

    Offline: no keys, no network. The Claude CLI provider is marked down for a
    stretch of tasks to show failover.
    """
    loaded = loads_config(demo_config_text(), "switchyard/examples/demo.toml")
    router = Router(loaded)
    tasks = demo_tasks(n)
    outage = range(n * 3 // 5, n * 3 // 5 + max(1, n // 6))
    rows = []
    counts: Counter[str] = Counter()
    for i, dt in enumerate(tasks):
        status = {"claude-cli": "down"} if i in outage else {}
        d = router.decide(dt.task, now=dt.at, provider_status=status)
        counts[d.model] += 1
        note = d.reason
        if d.arm:
            note = f"[{d.experiment}: {d.arm}] " + note
        rows.append(
            [
                dt.task.id,
                f"P{dt.task.priority}",
                ",".join(dt.task.labels),
                dt.at.strftime("%H:%M"),
                "down" if status else "up",
                d.model,
                "-" if d.rule is None else str(d.rule),
                note[:90],
            ]
        )
    click.echo(f"Routing {n} example tasks with the bundled config (providers simulated: nothing is called).\n")
    click.echo(table(["task", "prio", "labels", "UTC", "claude-cli", "model", "rule", "why"], rows))
    click.echo("\nModel distribution:")
    dist = [[m, str(c), f"{100 * c / n:.0f}%", "#" * round(40 * c / n)] for m, c in counts.most_common()]
    click.echo(table(["model", "tasks", "share", ""], dist, right={1, 2}))
    click.echo(
        '\nTry one yourself:  switchyard route --config <file> --task \'{"id": "T-1", "priority": 0}\' --explain'
    )
