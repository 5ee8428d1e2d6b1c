"""`switchyard demo`: the same tasks, the same simulated world, two configs, two measured runs, side by side.

Both runs go through the real coordinator (DBOS queue, workers, escalation,
ledger), each in a process of its own (DBOS is one engine per process), at the
same time. What they print depends on nothing but the tasks, the configs and
their seeds: the simulated providers draw every answer from (task, stage, model,
retry count, attempt), routing reads one fixed instant (`demo.CLOCK`), and
there is no budget whose limit would stop whichever task came last. So the
output is the same on every run and every machine, whatever order the workers
take the tasks in.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from switchyard.cli.common import money, table
from switchyard.errors import RunError

if TYPE_CHECKING:
    from switchyard.config import LoadedConfig

__all__ = ["demo"]

SIDES = ("all-default", "routed")


@click.command()
@click.option(
    "--dir",
    "workdir",
    default=None,
    type=click.Path(file_okay=False),
    help="Keep both workspaces (config, tasks, ledger) here, to explore with report, status and dashboard. "
    "Default: a temporary directory, removed at the end.",
)
@click.option(
    "--tasks", "n", default=200, show_default=True, type=click.IntRange(1, 2000), help="How many example tasks."
)
def demo(workdir: str | None, n: int) -> None:
    """Run 200 example tasks twice on one simulated world: all to the default model, then routed; compare.

    No keys, no network. Each run goes through the real coordinator; every answer
    that does not resolve its task costs its tokens and escalates. Prints verified
    success and cost per priority side by side; the same figures on every run.
    """
    from switchyard.config import load_config
    from switchyard.demo import all_default_config_text, demo_config_text, demo_tasks

    with _workspace(workdir) as root:
        routed_text = demo_config_text()
        texts = {"all-default": all_default_config_text(routed_text), "routed": routed_text}
        tasks_jsonl = "".join(_json_line(t.to_dict()) for t in demo_tasks(n))
        configs: dict[str, Path] = {}
        for side in SIDES:
            home = root / side
            home.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(home / ".switchyard", ignore_errors=True)  # a fresh run every time
            (home / "switchyard.toml").write_text(texts[side], encoding="utf-8")
            (home / "tasks.jsonl").write_text(tasks_jsonl, encoding="utf-8")
            configs[side] = home / "switchyard.toml"
        loaded = {side: load_config(configs[side]) for side in SIDES}
        _intro(n, loaded)
        _run_both(configs, n)
        figures = {side: _figures(loaded[side]) for side in SIDES}
        _results(figures, loaded)
        if workdir is None:
            click.echo(
                "\nBoth runs worked in a temporary directory, now removed. To keep their configs, tasks and ledgers,"
                "\nrun `switchyard demo --dir DIR`, then `switchyard report --config DIR/routed/switchyard.toml`."
            )
        else:
            click.echo(f"\nWorkspaces: {root / 'all-default'} and {root / 'routed'}. Explore the routed run:")
            cfg = configs["routed"]
            click.echo(f"  switchyard report --config {cfg} --by model")
            click.echo(f"  switchyard status --config {cfg}")
            click.echo(f"  switchyard dashboard --config {cfg}   (then open http://127.0.0.1:8377/)")
        click.echo(
            "To run real agents, replace the [providers.*] tables of the config (its header shows Claude Code,"
            " OpenRouter, OpenAI and Gemini CLI), then `switchyard run --tasks FILE`."
        )


@contextlib.contextmanager
def _workspace(workdir: str | None) -> Iterator[Path]:
    if workdir is not None:
        root = Path(workdir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="switchyard-demo-") as tmp:
        yield Path(tmp)


def _json_line(data: object) -> str:
    import json

    return json.dumps(data, sort_keys=True) + "\n"


# ----------------------------------------------------------------------------- the two runs
def _run_both(configs: dict[str, Path], n: int) -> None:
    """Both measured runs, each in a process of its own, at the same time."""
    import multiprocessing

    click.echo(f"Running the {n} tasks under each config (two coordinators, side by side)...\n")
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: DBOS is one engine per process
    with context.Pool(len(configs), initializer=_child_ignores_sigint) as pool:
        pending = {side: pool.apply_async(_measured_run, (str(cfg), n)) for side, cfg in configs.items()}
        for side, result in pending.items():
            error = result.get()
            if error is not None:
                log = configs[side].parent / "run.log"
                raise RunError(f"the {side} run failed: {error} (its log: {log})")


def _child_ignores_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent ends the children (Pool.terminate) and says so.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _measured_run(config: str, n: int) -> str | None:
    """One run through the coordinator (in a child process); the error, if any, as text."""
    import threading

    from switchyard.config import load_config
    from switchyard.coordinator import Coordinator
    from switchyard.demo import CLOCK, demo_tasks
    from switchyard.progress import Reporter

    try:
        loaded = load_config(config)
        with open(loaded.resolve("run.log"), "w", encoding="utf-8") as log:
            co = Coordinator(loaded, reporter=Reporter(log), wall_clock=CLOCK.timestamp)
            try:
                co.start()
                co.submit(demo_tasks(n), "demo")
                co.wait_idle(threading.Event())
            finally:
                co.close()
    except Exception as exc:  # reported by the parent, with the side's name
        return f"{type(exc).__name__}: {exc}"
    return None


# ----------------------------------------------------------------------------- what they did
@dataclass
class Group:
    """Tasks of one priority class (or several) in one run."""

    tasks: int = 0
    verified: int = 0
    attempts: int = 0
    cost: Decimal = Decimal(0)

    def add(self, other: Group) -> None:
        self.tasks += other.tasks
        self.verified += other.verified
        self.attempts += other.attempts
        self.cost += other.cost


@dataclass
class ModelUse:
    attempts: int = 0
    resolved: int = 0
    wrong: int = 0
    cost: Decimal = Decimal(0)


@dataclass
class Figures:
    """One run, from its ledger."""

    by_priority: dict[int, Group] = field(default_factory=dict)
    answers: dict[int, int] = field(default_factory=dict)  # which escalation level resolved it (-1: none)
    models: dict[str, ModelUse] = field(default_factory=dict)


def _figures(loaded: LoadedConfig) -> Figures:
    import json

    from switchyard.ledger.store import Ledger

    out = Figures()
    with Ledger.open(loaded.ledger_location()) as ledger:
        rows = ledger.tasks()
        attempts = ledger.attempts()
    priority = {row.task_id: int(json.loads(row.task_json).get("priority", 2)) for row in rows}
    for row in rows:
        group = out.by_priority.setdefault(priority[row.task_id], Group())
        group.tasks += 1
        done = row.state == "done"
        group.verified += done
        level = row.retry_count if done else -1
        out.answers[level] = out.answers.get(level, 0) + 1
    for a in attempts:
        group = out.by_priority[priority[a.task_id]]
        group.attempts += 1
        group.cost += a.cost_usd
        use = out.models.setdefault(a.model, ModelUse())
        use.attempts += 1
        use.resolved += a.ok
        use.wrong += a.error_class == "unresolved"
        use.cost += a.cost_usd
    return out


# ----------------------------------------------------------------------------- what we print
def _intro(n: int, loaded: dict[str, LoadedConfig]) -> None:
    routed = loaded["routed"]
    default = routed.routing.default_model
    levels = routed.coordinator.max_attempts
    click.echo(f"switchyard demo: {n} tasks, run twice through the coordinator on one simulated world")
    click.echo("(providers SIMULATED: no keys, no network, nothing billed)\n")
    click.echo(f"  all-default  every task to {default} (routing.default_model), a wrong answer retried on it")
    click.echo("  routed       the demo config's rules, first match wins:")
    rules = routed.routing.rules
    width = max((len(r.condition) for r in rules), default=0)
    for rule in rules:
        click.echo(f"                 {rule.condition.ljust(width)}  ->  {rule.model}")
    click.echo(
        f"\nAn answer that does not resolve its task costs its tokens and escalates (retry_count + 1), up to {levels} answers."
    )
    rates = sorted(
        ((model, rate) for p in routed.providers.values() for model, rate in getattr(p, "resolve_rate", {}).items()),
        key=lambda mr: (-mr[1], mr[0]),
    )
    click.echo(
        "Each model resolves its share of all tasks on the SWE-bench bash-only leaderboard: "
        + ", ".join(f"{m} {rate * 100:.1f} %" for m, rate in rates)
        + "; each task has its own difficulty (switchyard/providers/simulated.py).\n"
    )


def _pct(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.0f}%" if whole else "-"


def _saving(base: Decimal, routed: Decimal) -> str:
    if not base:
        return "-"
    return f"{(1 - routed / base) * 100:.0f}%"


def _results(figures: dict[str, Figures], loaded: dict[str, LoadedConfig]) -> None:
    base, routed = figures["all-default"], figures["routed"]
    rows: list[list[str]] = []
    classes: list[tuple[str, Group, Group]] = []
    for p in sorted(set(base.by_priority) | set(routed.by_priority)):
        classes.append((f"P{p}", base.by_priority.get(p, Group()), routed.by_priority.get(p, Group())))
    non_critical = (Group(), Group())
    everything = (Group(), Group())
    for label, b, r in classes:
        if label != "P0":
            non_critical[0].add(b)
            non_critical[1].add(r)
        everything[0].add(b)
        everything[1].add(r)
    classes += [("P1-P4", *non_critical), ("all", *everything)]
    for label, b, r in classes:
        rows.append(
            [
                label,
                str(b.tasks),
                f"{b.verified} ({_pct(b.verified, b.tasks)})",
                money(b.cost, 2),
                f"{r.verified} ({_pct(r.verified, r.tasks)})",
                money(r.cost, 2),
                _saving(b.cost, r.cost),
            ]
        )
    headers = ["priority", "tasks", "all-default: verified", "cost", "routed: verified", "cost", "saving"]
    click.echo(table(headers, rows, right=set(range(1, 7))))
    b, r = non_critical
    more = "more" if r.verified > b.verified else "as many" if r.verified == b.verified else "fewer"
    click.echo(
        f"\nNon-critical tasks (P1-P4): the routed config spent {_saving(b.cost, r.cost)} less"
        f" ({money(r.cost, 2)} instead of {money(b.cost, 2)}) and verified {more}: {r.verified} of {r.tasks}"
        f" against {b.verified}."
    )
    click.echo("verified: the task's last answer resolved it (the simulated world is its own perfect check).")

    levels = loaded["routed"].coordinator.max_attempts
    ordinal = ["1st", "2nd", "3rd"] + [f"{i}th" for i in range(4, levels + 1)]
    click.echo("\nWhich answer resolved each task:")
    rows = [
        [side, *(str(figures[side].answers.get(i, 0)) for i in range(levels)), str(figures[side].answers.get(-1, 0))]
        for side in SIDES
    ]
    click.echo(table(["", *ordinal[:levels], "none"], rows, right=set(range(1, levels + 2))))

    click.echo("\nWhere the routed run's attempts went:")
    total = sum((u.cost for u in routed.models.values()), Decimal(0))
    rows = [
        [
            model,
            str(u.attempts),
            str(u.resolved),
            str(u.wrong),
            str(u.attempts - u.resolved - u.wrong),
            money(u.cost, 2),
            _pct_cost(u.cost, total),
        ]
        for model, u in sorted(routed.models.items(), key=lambda mu: (-mu[1].cost, mu[0]))
    ]
    click.echo(
        table(["model", "attempts", "resolved", "wrong", "call failed", "cost", "share"], rows, right=set(range(1, 7)))
    )


def _pct_cost(part: Decimal, whole: Decimal) -> str:
    return f"{part * 100 / whole:.0f}%" if whole else "-"
