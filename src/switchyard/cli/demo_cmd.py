"""`switchyard demo`: an offline run of ~60 tasks through the coordinator, then the report."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from switchyard.cli.common import money, table

__all__ = ["demo"]


@click.command()
@click.option(
    "--dir",
    "workdir",
    default="switchyard-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to write the example workspace.",
)
@click.option(
    "--tasks", "n", default=60, show_default=True, type=click.IntRange(1, 5000), help="How many example tasks."
)
def demo(workdir: str, n: int) -> None:
    """Run ~60 example tasks through simulated providers, then show where they went and what it cost.

    No keys, no network. Writes a workspace (config, tasks, ledger) you can keep
    exploring with `switchyard report`, `status`, `budget` and `dashboard`.
    """
    from switchyard.config import load_config
    from switchyard.coordinator import Coordinator
    from switchyard.demo import demo_config_text, demo_tasks
    from switchyard.ledger.store import Ledger
    from switchyard.progress import Reporter
    from switchyard.report import Window, report

    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / ".switchyard", ignore_errors=True)  # a fresh run every time
    cfg = root / "switchyard.toml"
    cfg.write_text(demo_config_text(), encoding="utf-8")
    tasks = demo_tasks(n)
    with open(root / "tasks.jsonl", "w", encoding="utf-8") as fh:
        for t in tasks:
            fh.write(json.dumps(t.task.to_dict()) + "\n")
    loaded = load_config(cfg)
    click.echo(f"switchyard demo: {n} tasks, providers SIMULATED (offline; nothing is called, nothing is billed)")
    click.echo(f"workspace: {root}  (config: switchyard.toml, tasks: tasks.jsonl)")
    click.echo("claude-cli goes down two seconds in; watch the router fail over...\n")

    quiet = open(root / "run.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    co = Coordinator(loaded, workers=loaded.coordinator.max_workers, reporter=Reporter(quiet))
    started = time.monotonic()
    try:
        co.start()
        co.submit([t.task for t in tasks], "demo")
        import threading

        co.wait_idle(threading.Event())
    finally:
        co.close()
        quiet.close()
    took = time.monotonic() - started

    with Ledger.open(loaded.ledger_location()) as ledger:
        data = report(ledger.db, Window(), ("priority",), baseline_model=loaded.catalog[loaded.routing.default_model])
        states: dict[str, int] = {}
        for row in ledger.tasks():
            states[row.state] = states.get(row.state, 0) + 1
        from switchyard.budgets import Budgets

        budget_rows = Budgets(loaded, ledger).report()
    total = data.total
    assert total is not None  # the demo just ran tasks
    click.echo(
        f"ran {n} tasks in {took:.1f} s: "
        + ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
        + f"; {total.attempts} attempts, {money(total.cost_usd, 4)} (simulated)\n"
    )
    click.echo("Model distribution:")
    rows = [
        [
            g.key["model"],
            str(g.attempts),
            f"{g.share_attempts * 100:.0f}%",
            money(g.cost_usd, 4),
            f"{g.share_cost * 100:.0f}%",
            "#" * round(30 * g.share_attempts),
        ]
        for g in data.model_distribution
    ]
    click.echo(table(["model", "attempts", "share", "cost", "cost share", ""], rows, right={1, 2, 3, 4}))

    base = data.baseline
    assert base is not None  # asked for above
    click.echo(f"\nSaving against sending everything to the default model, {base.model}:")
    click.echo(f"  ({base.note})")
    rows = [
        [
            c.priority,
            str(c.attempts),
            money(c.actual_usd, 4),
            money(c.baseline_usd, 4),
            "-" if c.saving_pct is None else f"{c.saving_pct:.0f}%",
        ]
        for c in [*base.by_priority, base.non_critical, base.total]
    ]
    click.echo(table(["priority", "attempts", "actual", "all-default", "saving"], rows, right={1, 2, 3, 4}))

    fo = data.failover
    click.echo(f"\nFailover: {fo.failover_attempts} attempt(s) moved to another candidate")
    for f in fo.failovers[:5]:
        click.echo(f"  {f.from_provider} -> {f.to_provider}: {f.attempts}")
    for b in fo.breaker_openings:
        click.echo(f"  circuit breaker: {b.provider} {b.state} x{b.count}")
    if fo.escalations:
        click.echo("  escalated after a failure: " + ", ".join(f"{e.model} ({e.attempts})" for e in fo.escalations))

    for exp in data.experiments:
        click.echo(f"\nA/B experiment {exp.experiment}:")
        for a in exp.arms:
            ci = "-" if a.ci95 is None else f"{a.ci95[0] * 100:.0f}-{a.ci95[1] * 100:.0f}%"
            rate = "-" if a.success_rate is None else f"{a.success_rate * 100:.0f}%"
            click.echo(
                f"  {a.arm:<20} {a.tasks:>3} tasks, success {rate} (95% CI {ci}), {money(a.cost_per_success_usd, 4)} per success"
            )
        if exp.comparison:
            c = exp.comparison
            click.echo(f"  difference {c.difference * 100:+.0f} points, p = {c.p_value}")
        if exp.warning:
            click.echo(f"  {exp.warning}")

    click.echo("\nBudgets:")
    for line in budget_rows:
        click.echo(
            f"  {line.scope} per {line.period}: {money(line.spent_usd, 4)} of {money(line.limit_usd, 2)} spent, {money(line.remaining_usd, 2)} left ({line.on_exceed})"
        )

    click.echo(
        "\nThe providers above were simulated. To run real agents, edit the [providers.*] tables in "
        f"{cfg} (the file's header shows Claude Code, OpenRouter and OpenAI), then `switchyard run --tasks FILE`."
    )
    click.echo(f"Explore this run:  switchyard report --config {cfg} --by model --baseline {base.model}")
    click.echo(f"                   switchyard dashboard --config {cfg}   (then open http://127.0.0.1:8377/)")
