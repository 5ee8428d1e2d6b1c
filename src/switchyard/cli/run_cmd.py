"""`switchyard exec`, `switchyard log` and `switchyard providers`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
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
    parse_when,
    table,
)
from switchyard.errors import InputError, did_you_mean
from switchyard.ledger.store import AttemptRecord, from_ms, to_ms

__all__ = ["exec_", "log", "providers"]


def _prompt_arg(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--prompt {value}: cannot read: {exc.strerror}") from None


def _cost(r: AttemptRecord) -> str:
    """An attempt's cost, marked when it is not the catalog's price of the usage read."""
    text = money(r.cost_usd, 6)
    if r.cost_basis == "unknown":
        text += " unpriced"  # its worst case, charged because its usage could not be read
    elif r.cost_basis == "reported":
        text += " reported"
    if r.cost_flagged:
        text += " flagged"
    return text


def _attempt_line(r: AttemptRecord) -> str:
    tokens = f"{r.input_tokens}+{r.cache_read_tokens}r+{r.cache_write_tokens}w in / {r.output_tokens} out"
    line = f"  {r.attempt_id}  {r.model} via {r.provider}: {r.status}  {tokens}  {_cost(r)}  {r.latency_ms} ms"
    if r.reported_model and r.reported_model != r.model:
        line += f"\n      the provider reports running {r.reported_model}"
    if r.cost_flagged and r.reported_cost_usd is not None:
        line += f"\n      the provider reports {money(r.reported_cost_usd, 6)}, the catalog says {money(r.cost_usd, 6)}"
    if r.error_class:
        line += f"\n      [{r.error_class}] {(r.error_message or '').splitlines()[0][:160] if r.error_message else ''}"
    if r.usage_problem:
        line += f"\n      {r.usage_problem}"
    return line


@click.command("exec")
@click.option("--task", "task_arg", required=True, metavar="JSON|@FILE", help="The task, inline or from a file.")
@click.option("--stage", help="Workflow stage the call is for.")
@click.option("--prompt", "prompt_arg", metavar="TEXT|@FILE", help="Prompt (default: the task's title and body).")
@config_option
@json_option
def exec_(task_arg: str, stage: str | None, prompt_arg: str | None, config_path: str | None, as_json: bool) -> None:
    """Route one task, run it (with retries and failover), record every attempt, print the outcome.

    Exit status 1 when every candidate failed, or when none could be called (every candidate's
    provider disabled or down, or a blocking budget): the reason is printed.
    """
    from switchyard.prompts import render_prompt
    from switchyard.runner import Runner
    from switchyard.task import load_task_arg

    loaded = load(config_path)
    task = load_task_arg(task_arg)
    prompt = _prompt_arg(prompt_arg)
    if prompt is None:
        prompt = render_prompt(None, task, stage=stage)
    with open_ledger(loaded) as ledger:
        runner = Runner(loaded, ledger)
        try:
            result = runner.run(task, prompt=prompt, stage=stage)
        finally:
            runner.close()
    final = result.final
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "task": task.id,
                "model": final.record.model if final else None,
                "provider": final.record.provider if final else None,
                "decision": result.route.to_dict(),
                "cost_usd": result.cost_usd,
                "text": final.text if final and final.ok else None,
                "why": result.why or None,
                "blocked": result.blocked.reason if result.blocked else None,
                "attempts": [a.record.to_dict() for a in result.attempts],
            }
        )
    elif result.blocked is not None and not result.attempts:
        click.echo(f"BLOCKED: task {task.id}: nothing was called: {result.blocked.reason}", err=True)
    else:
        head = "ok" if result.ok else "BLOCKED" if result.blocked is not None else "FAILED"
        model = f"{final.record.model} via {final.record.provider}" if final else "nothing was called"
        click.echo(f"{head}: task {task.id} -> {model}; {len(result.attempts)} attempt(s), {money(result.cost_usd, 6)}")
        for a in result.attempts:
            click.echo(_attempt_line(a.record))
        if not result.ok:
            click.echo(f"  why: {result.why}")
        elif final and final.text:
            click.echo("\n" + final.text.strip()[:2000])
    if not result.ok:
        raise click.exceptions.Exit(1)


LOG_DEFAULT = 100
_LOG_COLUMNS = (
    ("started", 19),
    ("task", 24),
    ("stage", 10),
    ("model", 28),
    ("provider", 14),
    ("status", 24),
    ("tok in/out", 16),
    ("cost", 12),
    ("ms", 8),
)
_LOG_RIGHT = {"tok in/out", "cost", "ms"}


def _log_cells(r: AttemptRecord) -> list[str]:
    return [
        from_ms(r.started_ms).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        r.task_id,
        r.stage or "-",
        r.model,
        r.provider,
        r.status + (f" ({r.error_class})" if r.error_class else ""),
        f"{r.input_tokens + r.cache_read_tokens + r.cache_write_tokens}/{r.output_tokens}",
        _cost(r),
        f"{r.latency_ms}",
    ]


def _log_row(cells: list[str]) -> str:
    """One row at fixed widths, so `log --all` writes each row as it reads it."""
    out = []
    for (name, width), cell in zip(_LOG_COLUMNS, cells, strict=True):
        text = clip(cell, width)
        out.append(text.rjust(width) if name in _LOG_RIGHT else text.ljust(width))
    return "  ".join(out).rstrip()


@click.command()
@click.option("--task", "task_id", metavar="ID", help="Only this task's attempts.")
@click.option("--since", metavar="WHEN", help="ISO time, 'today', or an age such as 2h, 7d.")
@click.option("--until", metavar="WHEN", help="Same forms as --since.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help=f"The newest this many (default {LOG_DEFAULT})."
)
@click.option("--all", "show_all", is_flag=True, help="Every matching attempt, oldest first, streamed.")
@config_option
@json_option
def log(
    task_id: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    show_all: bool,
    config_path: str | None,
    as_json: bool,
) -> None:
    """List recorded attempts, oldest first: the newest 100 (--limit N), or --all of them."""
    if show_all and limit is not None:
        raise InputError("--all and --limit cannot be combined")
    loaded = load(config_path)
    since_at = parse_when(since, option="--since")
    until_at = parse_when(until, option="--until")
    since_ms = to_ms(since_at) if since_at else None
    until_ms = to_ms(until_at) if until_at else None
    with open_ledger(loaded) as ledger:
        if show_all:
            _stream_log(ledger.iter_attempts(task_id=task_id, since_ms=since_ms, until_ms=until_ms), as_json)
            return
        n = limit or LOG_DEFAULT
        rows = ledger.attempts(task_id=task_id, since_ms=since_ms, until_ms=until_ms, limit=n, newest_first=True)
        rows.reverse()
        total = (
            ledger.count_attempts(task_id=task_id, since_ms=since_ms, until_ms=until_ms)
            if len(rows) == n
            else len(rows)
        )
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no attempts recorded" + (f" for task {task_id}" if task_id else ""))
        return
    click.echo(
        table(
            [name for name, _ in _LOG_COLUMNS],
            [_log_cells(r) for r in rows],
            right={i for i, (name, _) in enumerate(_LOG_COLUMNS) if name in _LOG_RIGHT},
        )
    )
    if total > len(rows):
        click.echo(f"(the newest {len(rows):,} of {total:,} attempts; --limit N for more, --all for every one)")


def _stream_log(records: Iterator[AttemptRecord], as_json: bool) -> None:
    if as_json:
        first = True
        click.echo("[", nl=False)
        for r in records:
            click.echo(("\n" if first else ",\n") + dump_json(r.to_dict()), nl=False)
            first = False
        click.echo("\n]" if not first else "]")
        return
    click.echo(_log_row([name for name, _ in _LOG_COLUMNS]))
    click.echo(_log_row(["-" * width for _, width in _LOG_COLUMNS]))
    for r in records:
        click.echo(_log_row(_log_cells(r)))


@click.group(invoke_without_command=True)
@config_option
@json_option
@click.pass_context
def providers(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Show each provider's status (up, down, degraded, disabled) and why."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    if ctx.invoked_subcommand is not None:
        return
    from switchyard.health import Health

    loaded = load(config_path)
    with open_ledger(loaded) as ledger:
        health = Health(loaded, ledger).explain()
        breakers = ledger.breakers()
    rows: list[dict[str, Any]] = []
    for name, h in health.items():
        b = breakers.get(name)
        rows.append(
            {
                "provider": name,
                "kind": loaded.providers[name].kind,
                "status": h.status,
                "reason": h.reason,
                "breaker": b.state if b else "closed",
                "consecutive_failures": b.failures if b else 0,
            }
        )
    if as_json:
        echo_json(rows)
        return
    click.echo(
        table(
            ["provider", "kind", "status", "breaker", "why"],
            [[r["provider"], r["kind"], r["status"], r["breaker"], r["reason"]] for r in rows],
        )
    )


@providers.command("reset")
@click.argument("name")
@config_option
@click.pass_context
def reset(ctx: click.Context, name: str, config_path: str | None) -> None:
    """Close NAME's circuit breaker (and lift a 401/403 disable)."""
    from switchyard.health import Health

    loaded = load(config_path or ctx.obj.get("config_path"))
    if name not in loaded.providers:
        raise InputError(f"unknown provider '{name}'" + did_you_mean(name, loaded.providers))
    with open_ledger(loaded) as ledger:
        Health(loaded, ledger).reset(name)
    click.echo(f"{name}: breaker closed")
