"""`switchyard run` and `switchyard status`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from decimal import Decimal
from typing import Any

import click

from switchyard.cli.common import config_option, echo_json, json_option, load, money, open_ledger, table
from switchyard.errors import InputError
from switchyard.ledger.store import PICO, Ledger

__all__ = ["run", "status", "task_status"]


def task_status(ledger: Ledger) -> list[dict[str, Any]]:
    """Every known task with its state, attempts, the models it went through, and its cost."""
    totals = ledger.task_totals()
    out = []
    for row in ledger.tasks():
        attempts, pico, models = totals.get(row.task_id, (0, 0, []))
        task = json.loads(row.task_json)
        out.append(
            {
                "task": row.task_id,
                "state": row.state,
                "title": task.get("title", ""),
                "priority": task.get("priority"),
                "source": row.source,
                "retry_count": row.retry_count,
                "attempts": attempts,
                "models": models,
                "cost_usd": Decimal(pico) / PICO,
                "last_error": row.last_error,
                "note": row.note,
                "workflow": row.workflow,
                "stage": row.stage,
            }
        )
    return out


def _summary(rows: list[dict[str, Any]]) -> str:
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    cost = sum((r["cost_usd"] for r in rows), Decimal(0))
    attempts = sum(r["attempts"] for r in rows)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"{len(rows)} task(s): {parts or 'none'}; {attempts} attempt(s); {money(cost, 4)}"


@click.command()
@config_option
@json_option
@click.option(
    "--state", "states", multiple=True, help="Only tasks in this state (queued, running, retrying, done, dead...)."
)
def status(config_path: str | None, as_json: bool, states: tuple[str, ...]) -> None:
    """Each task's state, attempts, model(s) and cost."""
    loaded = load(config_path)
    from switchyard.cli.machines_cmd import machines_section

    with open_ledger(loaded) as ledger:
        rows = task_status(ledger)
        machines = machines_section(ledger)
    if states:
        rows = [r for r in rows if r["state"] in states]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no tasks yet: queue some with `switchyard run --tasks FILE`")
        return
    out = [
        [
            r["task"],
            r["state"],
            str(r["attempts"]),
            " -> ".join(r["models"]) or "-",
            money(r["cost_usd"], 6),
            (r["last_error"] or r["note"] or "")[:70],
        ]
        for r in rows
    ]
    click.echo(table(["task", "state", "attempts", "models", "cost", "last error"], out, right={2, 4}))
    click.echo(_summary(rows))
    click.echo(machines)


@click.command()
@click.option(
    "--tasks",
    "task_files",
    multiple=True,
    metavar="FILE",
    help="A TOML, JSON or JSONL file of tasks. Repeatable. With --source: instead of the config's [[sources]].",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="SPEC",
    help="github:OWNER/REPO[:LABEL] or beads. Repeatable. Default: the config's [[sources]].",
)
@click.option("--workers", type=click.IntRange(1, 256), help="Tasks run at once (default [coordinator] max_workers).")
@click.option(
    "--once", is_flag=True, help="Drain what is there, then exit (the default, unless [coordinator] watch_s is set)."
)
@click.option(
    "--watch", type=click.FloatRange(min=1), metavar="SECONDS", help="Keep polling the sources every SECONDS."
)
@config_option
def run(
    task_files: tuple[str, ...],
    sources: tuple[str, ...],
    workers: int | None,
    once: bool,
    watch: float | None,
    config_path: str | None,
) -> None:
    """Pull tasks, route and run each one with retries and escalation; survives crashes and restarts.

    Ctrl-C (or SIGTERM) stops taking new tasks and lets running ones finish within
    [coordinator] grace_s; a second Ctrl-C stops at once. Unfinished tasks resume
    on the next run. Exit status 1 if any task ended dead.
    """
    if once and watch:
        raise InputError("--once and --watch cannot be combined")
    loaded = load(config_path)
    from switchyard.coordinator import Coordinator
    from switchyard.progress import make_reporter
    from switchyard.sources import Source, TasksFile, from_config, parse_source

    cfg = loaded.coordinator
    if watch is None and not once:
        watch = cfg.watch_s  # [coordinator] watch_s: keep polling the sources, as the old coordinator did
    files = [TasksFile(f) for f in task_files]
    srcs: list[Source] = [*files]
    srcs += [
        parse_source(s, priority_labels=cfg.priority_labels, default_priority=cfg.default_priority) for s in sources
    ]
    if not srcs:  # no flags: the config's [[sources]]
        srcs = [
            from_config(
                e, loaded.base_dir(), priority_labels=cfg.priority_labels, default_priority=cfg.default_priority
            )
            for e in loaded.sources
        ]
        files = [s for s in srcs if isinstance(s, TasksFile)]
    for tasks_file in files:
        tasks_file.check()  # an unreadable tasks file is a usage error: exit 2 before the engine starts
    reporter = make_reporter()
    co = Coordinator(loaded, workers=workers, reporter=reporter)
    stop = threading.Event()
    hard = threading.Event()
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(signum)
        if len(signals) == 1:
            co.begin_drain()
        else:
            hard.set()
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        co.start()
        co.pull(srcs)
        if watch:
            while not stop.wait(watch):
                co.pull(srcs)
        else:
            co.wait_idle(stop)
        if signals:
            _shut_down(co, hard, cfg.grace_s)
            co.leave()
            click.echo(_run_summary(co.summary()) + " (stopped; unfinished tasks resume on the next run)")
            reporter.close()
            sys.stdout.flush()
            sys.stderr.flush()
            # Workflows that were held stay pending in the durable queue; their threads are parked,
            # so leave without waiting for them.
            os._exit(130 if signals[0] == signal.SIGINT else 143)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    done = co.summary()
    co.close()
    reporter.close()
    click.echo(_run_summary(done))
    unavailable = [w for w in done.waiting if w[1].startswith("every candidate is unavailable")]
    budget = [w for w in done.waiting if w not in unavailable]
    for waiting, see in ((unavailable, "`switchyard providers`"), (budget, "`switchyard budget`")):
        if waiting:
            task_id, why = waiting[0]
            click.echo(
                f"{len(waiting)} waiting (e.g. {task_id}: {why}); they resume when the budgets, the config or the "
                f"providers change (a machine running `switchyard run` re-checks them), or on a later run: see {see}"
            )
    if done.dead:
        raise click.exceptions.Exit(1)


def _run_summary(done: Any) -> str:
    """This run's own work, not the ledger's totals (`switchyard status` has those)."""
    parts = ", ".join(f"{n} {s}" for s, n in sorted(done.states.items()))
    total = sum(done.states.values())
    return f"this run: {total} task(s): {parts or 'none'}; {done.attempts} attempt(s); {money(done.cost_usd, 4)}"


def _shut_down(co: Any, hard: threading.Event, grace_s: float) -> None:
    """Let running attempts finish within the grace period, then kill what is left."""
    deadline = time.monotonic() + grace_s
    while co.inflight() and not hard.is_set() and time.monotonic() < deadline:
        hard.wait(0.1)
    if co.inflight():
        n = co.kill_running()
        co.reporter.note(f"killed {n} running agent(s); their attempts are recorded as interrupted")
        end = time.monotonic() + 5
        while co.inflight() and time.monotonic() < end:
            time.sleep(0.05)
