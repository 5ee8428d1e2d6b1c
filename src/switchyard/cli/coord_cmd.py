"""`switchyard run` and `switchyard status`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import click

from switchyard.cli.common import (
    clip,
    config_option,
    dump_json,
    echo_json,
    json_option,
    load,
    money,
    open_ledger,
    table,
)
from switchyard.errors import InputError, did_you_mean
from switchyard.ledger.store import PICO, TASK_STATES, Ledger, TaskRow, from_ms

__all__ = ["StatusView", "render_status", "run", "status", "status_view", "task_line", "task_status"]

# The states `status` lists by default (newest first, up to --limit each); queued and done are counted.
LISTED = ("running", "retrying", "blocked")
RECENT_DEAD = 10


def task_line(row: TaskRow, totals: dict[str, tuple[int, int, list[str]]]) -> dict[str, Any]:
    """One task as `status` shows it: its state and reason, attempts, the models it went through, its cost."""
    attempts, pico, models = totals.get(row.task_id, (0, 0, []))
    try:
        task = json.loads(row.task_json)
    except ValueError:
        task = {}
    return {
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
        "updated_at": from_ms(row.updated_ms).isoformat(),
    }


def _lines(ledger: Ledger, rows: list[TaskRow]) -> list[dict[str, Any]]:
    totals = ledger.totals_of([r.task_id for r in rows])
    return [task_line(r, totals) for r in rows]


def task_status(ledger: Ledger) -> list[dict[str, Any]]:
    """Every known task as `task_line` has it (all in memory: for small ledgers and tests)."""
    return [line for page in _task_pages(ledger, ()) for line in page]


def _task_pages(ledger: Ledger, states: tuple[str, ...], page: int = 1000) -> Iterator[list[dict[str, Any]]]:
    """Every task (in `states`) as lines, a page at a time: flat memory however many tasks there are."""
    rows: list[TaskRow] = []
    for row in ledger.iter_tasks(states=states, page=page):
        rows.append(row)
        if len(rows) == page:
            yield _lines(ledger, rows)
            rows = []
    if rows:
        yield _lines(ledger, rows)


@dataclass(frozen=True)
class StatusView:
    """What `status` shows by default: counts per state and totals from SQL, and the few tasks worth a look."""

    states: dict[str, int]
    attempts: int
    cost_usd: Decimal
    listed: dict[str, list[dict[str, Any]]]  # state -> its newest tasks (running, retrying, blocked, recent dead)
    limit: int
    exec_attempts: int = 0  # attempts of no task (`exec`): not in `attempts` and `cost_usd`
    exec_cost_usd: Decimal = Decimal(0)

    @property
    def tasks(self) -> int:
        return sum(self.states.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "states": self.states,
            "attempts": self.attempts,
            "cost_usd": self.cost_usd,
            "listed": self.listed,
            "limit": self.limit,
            "exec_attempts": self.exec_attempts,
            "exec_cost_usd": self.exec_cost_usd,
        }


def status_view(ledger: Ledger, *, states: tuple[str, ...] = (), limit: int = 20) -> StatusView:
    """Build the status view from a few indexed queries: nothing reads every task or every attempt."""
    counts = ledger.task_counts()
    attempts, pico = ledger.attempt_totals()
    exec_n, exec_pico = ledger.exec_totals()  # the tasks' share is the rest
    listed: dict[str, list[dict[str, Any]]] = {}
    for state in states or (*LISTED, "dead"):
        n = limit if states or state != "dead" else min(limit, RECENT_DEAD)
        if counts.get(state):
            listed[state] = _lines(ledger, ledger.latest_tasks(state, n))
    ordered = {s: counts[s] for s in (*TASK_STATES, *sorted(set(counts) - set(TASK_STATES))) if counts.get(s)}
    return StatusView(
        ordered, attempts - exec_n, Decimal(pico - exec_pico) / PICO, listed, limit, exec_n, Decimal(exec_pico) / PICO
    )


_HEADINGS = {"running": "running", "retrying": "retrying", "blocked": "blocked", "dead": "dead, most recent"}


def render_status(view: StatusView) -> str:
    """The status view as text: a summary line, then each listed state's tasks with their reasons."""
    by_exec = (
        [f"exec (no task): {view.exec_attempts:,} attempt(s); {money(view.exec_cost_usd, 4)}"]
        if view.exec_attempts
        else []
    )
    if not view.states:
        return "\n".join(["no tasks yet: queue some with `switchyard run --tasks FILE`", *by_exec])
    parts = ", ".join(f"{n:,} {s}" for s, n in view.states.items())
    out = [f"{view.tasks:,} task(s): {parts}; {view.attempts:,} attempt(s); {money(view.cost_usd, 4)}", *by_exec]
    for state, lines in view.listed.items():
        total = view.states.get(state, 0)
        more = (
            f" (the newest {len(lines)} of {total:,}; all of them: --all --state {state})" if total > len(lines) else ""
        )
        out.append(f"\n{_HEADINGS.get(state, state)}{more}:")
        out.append(
            table(
                ["task", "attempts", "models", "cost", "why"],
                [
                    [
                        clip(r["task"], 40),
                        str(r["attempts"]),
                        clip(" -> ".join(r["models"]) or "-", 50),
                        money(r["cost_usd"], 6),
                        clip(r["last_error"] or r["note"] or "", 70),
                    ]
                    for r in lines
                ],
                right={1, 3},
            )
        )
    return "\n".join(out)


_ALL_COLUMNS = (("task", 28), ("state", 9), ("attempts", 8), ("models", 36), ("cost", 12), ("last error", 70))


def _fixed(cells: list[str]) -> str:
    """One row of `status --all`: fixed widths, so rows stream without reading them all first."""
    out = []
    for (name, width), cell in zip(_ALL_COLUMNS, cells, strict=True):
        text = clip(cell, width)
        out.append(text.rjust(width) if name in ("attempts", "cost") else text.ljust(width))
    return "  ".join(out).rstrip()


def _stream_all(ledger: Ledger, states: tuple[str, ...], as_json: bool) -> None:
    """Every task, a page at a time, written as it is read."""
    if as_json:
        first = True
        click.echo("[", nl=False)
        for lines in _task_pages(ledger, states):
            for line in lines:
                click.echo(("\n" if first else ",\n") + dump_json(line), nl=False)
                first = False
        click.echo("\n]" if not first else "]")
        return
    click.echo(_fixed([name for name, _ in _ALL_COLUMNS]))
    click.echo(_fixed(["-" * width for _, width in _ALL_COLUMNS]))
    for lines in _task_pages(ledger, states):
        click.echo(
            "\n".join(
                _fixed(
                    [
                        r["task"],
                        r["state"],
                        str(r["attempts"]),
                        " -> ".join(r["models"]) or "-",
                        money(r["cost_usd"], 6),
                        r["last_error"] or r["note"] or "",
                    ]
                )
                for r in lines
            )
        )


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
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="List the tasks in this state (queued, running, retrying, blocked, done, dead, cancelled). Repeatable.",
)
@click.option("--all", "show_all", is_flag=True, help="Every task (or every one in --state), streamed page by page.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Tasks listed per state.")
def status(config_path: str | None, as_json: bool, states: tuple[str, ...], show_all: bool, limit: int) -> None:
    """A summary of every task, then the ones worth a look: running, retrying, blocked (with why), recent dead.

    Counts and totals come from the database, so this stays quick over millions of attempts;
    --all lists every task, oldest first, streamed.
    """
    for state in states:
        if state not in TASK_STATES:
            raise InputError(
                f"--state {state}: not a task state"
                + (did_you_mean(state, TASK_STATES) or f" (one of {', '.join(TASK_STATES)})")
            )
    loaded = load(config_path)
    from switchyard.cli.machines_cmd import machines_section

    with open_ledger(loaded) as ledger:
        if show_all:
            _stream_all(ledger, states, as_json)
            return
        view = status_view(ledger, states=states, limit=limit)
        machines = machines_section(ledger)
    if as_json:
        echo_json(view.to_json())
    else:
        click.echo(render_status(view))
        if machines:
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
