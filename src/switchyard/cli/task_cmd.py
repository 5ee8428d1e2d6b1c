"""`switchyard show`, `retry` and `cancel`: look at one task, or act on some."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from switchyard.cli.common import clip, config_option, echo_json, json_option, load, money, open_ledger
from switchyard.config import LoadedConfig
from switchyard.errors import InputError, did_you_mean
from switchyard.ledger.store import AttemptRecord, Ledger, TaskRow, from_ms

__all__ = ["cancel", "retry", "show"]

TAIL_LINES = 12
TAIL_BYTES = 16_384
# What an attempt's run directory holds, the most telling first: the answer, then what the agent printed.
OUTPUT_FILES = ("result.txt", "output.txt", "stdout.txt", "stderr.txt")
CANCELLABLE = ("queued", "running", "retrying", "blocked")
RETRYABLE = ("dead", "cancelled")


def _known(ledger: Ledger, task_ids: tuple[str, ...]) -> list[TaskRow]:
    """The rows of these tasks; an unknown id is an input error naming the nearest known one."""
    rows = []
    for task_id in task_ids:
        row = ledger.task(task_id)
        if row is None:
            near = ledger.find_task_ids(task_id[: max(1, len(task_id) // 2)], 1000)
            hint = did_you_mean(task_id, near) or " (`switchyard status --all` lists every task)"
            raise InputError(f"no task '{task_id}' in the ledger{hint}")
        rows.append(row)
    return rows


def _now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------------------------------ show
def _run_dir(loaded: LoadedConfig, rec: AttemptRecord) -> Path:
    from switchyard.worktree import path_name

    return loaded.resolve(loaded.runner.runs_dir) / path_name(rec.task_id) / path_name(rec.attempt_id)


def _tail(run_dir: Path, redact: Any) -> tuple[str | None, list[str]]:
    """(the file read, its last lines, redacted): the answer if it was saved, else what the agent printed."""
    if not run_dir.is_dir():
        return None, []
    names = [n for n in OUTPUT_FILES if (run_dir / n).is_file()]
    names += sorted(
        p.name for p in run_dir.iterdir() if p.is_file() and p.name not in OUTPUT_FILES and p.name[0] != "."
    )
    for name in names:
        try:
            with open(run_dir / name, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - TAIL_BYTES))
                data = f.read()
        except OSError:
            continue
        text = redact(data.decode("utf-8", errors="replace")).rstrip()
        if text:
            return name, text.splitlines()[-TAIL_LINES:]
    return None, []


def _why_chosen(rec: AttemptRecord) -> str:
    parts = [f"rules[{rec.rule}]" if rec.rule is not None else "no rule"]
    if rec.reason:
        parts[0] += f": {rec.reason}"
    if rec.experiment:
        parts.append(f"experiment {rec.experiment}, arm {rec.arm}")
    if rec.failover_from:
        parts.append(f"failover from {rec.failover_from}")
    if rec.candidate_index:
        parts.append(f"candidate {rec.candidate_index + 1}")
    if rec.try_index:
        parts.append(f"try {rec.try_index + 1}")
    parts.append(f"retry {rec.task_retry}")
    return "; ".join(parts)


@click.command()
@click.argument("task_id", metavar="ID")
@config_option
@json_option
def show(task_id: str, config_path: str | None, as_json: bool) -> None:
    """One task: its fields, state and why, and each attempt (model, why it was chosen, outcome, tokens, cost,
    its output directory and the end of its output). An id only `switchyard exec` ran: its attempts."""
    from switchyard.redact import Redactor

    loaded = load(config_path)
    names = [p.api_key_env for p in loaded.providers.values() if p.api_key_env]
    redact = Redactor.from_env(names).redact
    with open_ledger(loaded) as ledger:
        row = ledger.task(task_id)
        attempts = ledger.attempts(task_id=task_id)
        if row is None and not attempts:
            _known(ledger, (task_id,))  # the located error, with the nearest known id
    try:
        task = json.loads(row.task_json) if row is not None else {}
    except ValueError:
        task = {}
    total = sum((a.cost_usd for a in attempts), Decimal(0))
    shown: list[tuple[AttemptRecord, Path | None, str | None, list[str]]] = []
    for rec in attempts:
        where = _run_dir(loaded, rec)
        name, tail = _tail(where, redact)
        shown.append((rec, where if where.is_dir() else None, name, tail))
    if as_json:
        echo_json(
            {
                "task": task,
                "run_by": "exec" if row is None else "run",
                "state": row and row.state,
                "why": row and (row.last_error or row.note),
                "source": row and row.source,
                "retry_count": row and row.retry_count,
                "workflow": row and row.workflow,
                "stage": row and row.stage,
                "queued_at": row and from_ms(row.enqueued_ms).isoformat(),
                "updated_at": row and from_ms(row.updated_ms).isoformat(),
                "cost_usd": total,
                "attempts": [
                    {
                        **rec.to_dict(),
                        "why_chosen": _why_chosen(rec),
                        "output_dir": str(run_dir) if run_dir else None,
                        "output_file": name,
                        "output_tail": tail,
                    }
                    for rec, run_dir, name, tail in shown
                ],
            }
        )
        return
    out = [f"{task_id}: run by `switchyard exec` (no task of that id in the ledger, only its attempts)"]
    if row is not None:
        out = _task_lines(row, task)
    out.append(f"{len(attempts)} attempt(s), {money(total, 6)} in all" + (":" if attempts else ""))
    for i, (rec, run_dir, name, tail) in enumerate(shown, 1):
        started = from_ms(rec.started_ms).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        outcome = rec.status + (f" [{rec.error_class}]" if rec.error_class else "")
        if rec.verdict:
            outcome += f", verify: {rec.verdict}" + (f" ({rec.verify_check})" if rec.verify_check else "")
        out.append(f"  {i}. {started}  {rec.model} via {rec.provider}" + (f", stage {rec.stage}" if rec.stage else ""))
        out.append(f"     why chosen: {_why_chosen(rec)}")
        out.append(f"     outcome: {outcome}, {rec.latency_ms} ms")
        if rec.error_message:
            out.append(f"     error: {clip(redact(rec.error_message), 300)}")
        if rec.usage_problem:
            out.append(f"     usage: {clip(rec.usage_problem, 300)}")
        out.append(
            f"     tokens: {rec.input_tokens:,} in, {rec.cache_read_tokens:,} cache read, {rec.cache_write_tokens:,} "
            f"cache write, {rec.output_tokens:,} out; cost {money(rec.cost_usd, 6)}"
            + (f" (the provider said {money(rec.reported_cost_usd, 6)})" if rec.reported_cost_usd is not None else "")
        )
        if run_dir is None:
            out.append("     output: none kept")
            continue
        out.append(f"     output: {run_dir}" + (f" (the end of {name}:)" if name else " (empty)"))
        out.extend(f"       | {line}" for line in tail)
    click.echo("\n".join(out))


def _task_lines(row: TaskRow, task: dict[str, Any]) -> list[str]:
    """The head of `show` for a task: its state and why, title, facts and times."""
    out = [
        f"task {row.task_id}: {row.state}"
        + (f" ({clip(row.last_error or row.note, 300)})" if row.last_error or row.note else "")
    ]
    if task.get("title"):
        out.append(f"  title: {clip(task['title'], 200)}")
    facts = [
        f"priority {task.get('priority')}" if task.get("priority") is not None else "",
        f"labels {', '.join(task.get('labels') or [])}" if task.get("labels") else "",
        f"source {row.source}" if row.source else "",
        f"workflow {row.workflow}" if row.workflow else "",
        f"stage {row.stage}" if row.stage else "",
        f"retry_count {row.retry_count}",
    ]
    out.append("  " + ", ".join(f for f in facts if f))
    queued = from_ms(row.enqueued_ms).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    updated = from_ms(row.updated_ms).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    out.append(f"  queued {queued}, last change {updated}")
    return out


# ----------------------------------------------------------------------------------- retry, cancel
@click.command()
@click.argument("task_ids", metavar="ID...", nargs=-1, required=True)
@config_option
def retry(task_ids: tuple[str, ...], config_path: str | None) -> None:
    """Put dead or cancelled tasks back on the queue: their attempts are kept and their retry count goes on,
    so the rules route them as escalations. A running `switchyard run` picks them up; else the next one."""
    from switchyard.coordinator import requeue_workflows

    loaded = load(config_path)
    with open_ledger(loaded) as ledger:
        rows = _known(ledger, task_ids)
        for row in rows:
            if row.state not in RETRYABLE:
                raise InputError(
                    f"task {row.task_id} is {row.state}: only a dead or cancelled task can be retried"
                    + (" (cancel it first)" if row.state in CANCELLABLE else "")
                )
        done = []
        already = []
        for row in dict((r.task_id, r) for r in rows).values():
            retry_count = ledger.requeue_task(row.task_id, _now_ms(), f"retried by hand (was {row.state})")
            if retry_count is not None:
                done.append((row.task_id, row.state, retry_count))
            else:
                already.append(row.task_id)
    requeue_workflows(loaded, [task_id for task_id, _, _ in done])
    for task_id, was, retry_count in done:
        click.echo(f"{task_id}: {was} -> queued (retry_count {retry_count})")
    for task_id in already:
        click.echo(f"{task_id}: already requeued (by another retry): nothing done")


@click.command()
@click.argument("task_ids", metavar="ID...", nargs=-1, required=True)
@config_option
def cancel(task_ids: tuple[str, ...], config_path: str | None) -> None:
    """Cancel queued, blocked or running tasks: none of them is called again. A running agent is killed at its
    coordinator's next lease renewal (its call recorded as interrupted); its workflow stops before the next
    step. `switchyard retry` undoes it."""
    from switchyard.coordinator import cancel_workflows

    loaded = load(config_path)
    with open_ledger(loaded) as ledger:
        rows = _known(ledger, task_ids)
        for row in rows:
            if row.state not in CANCELLABLE:
                raise InputError(
                    f"task {row.task_id} is {row.state}: only a queued, running, retrying or blocked task can be "
                    "cancelled"
                )
        done = []
        for row in dict((r.task_id, r) for r in rows).values():
            if ledger.cancel_task(row.task_id, _now_ms(), f"cancelled by hand (was {row.state})"):
                done.append((row.task_id, row.state))
    cancel_workflows(loaded, [task_id for task_id, _ in done])
    for task_id, was in done:
        click.echo(f"{task_id}: {was} -> cancelled")
