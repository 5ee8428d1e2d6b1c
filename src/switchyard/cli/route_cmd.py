"""`switchyard route`: show which model a task would get, and why."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

import click

from switchyard.cli.common import config_option, echo_json, json_option, load
from switchyard.config import LoadedConfig
from switchyard.errors import InputError, did_you_mean
from switchyard.facts import PROVIDER_STATUSES
from switchyard.router import Decision, Router
from switchyard.task import load_task_arg

__all__ = ["parse_at", "parse_status_args", "route"]


def parse_at(value: str | None) -> datetime | None:
    """`--at` as an aware datetime (naive times are UTC)."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at {value}: expected an ISO 8601 time such as 2026-05-01T23:30:00Z") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    # Facts read the time in the routing zone: a day's margin keeps that conversion inside the calendar.
    if not datetime(1, 1, 2, tzinfo=UTC) <= at <= datetime(9999, 12, 30, tzinfo=UTC):
        raise InputError(f"--at {value}: too close to the ends of the calendar (years 1 and 9999)")
    return at


def parse_status_args(values: list[str] | tuple[str, ...], providers: Mapping[str, object]) -> dict[str, str]:
    """`--status NAME=down` flags into a status map; unknown names and values are `InputError`s."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--status {item}: expected PROVIDER=STATUS, e.g. claude-cli=down")
        if name not in providers:
            mean = did_you_mean(name, providers) or "; providers: " + ", ".join(sorted(providers))
            raise InputError(f"--status {item}: unknown provider '{name}'{mean}")
        if value not in PROVIDER_STATUSES:
            raise InputError(f"--status {item}: status must be one of {', '.join(sorted(PROVIDER_STATUSES))}")
        out[name] = value
    return out


def _fmt(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def render_explain(d: Decision) -> str:
    """The human-readable `--explain` report."""
    lines = [
        f"task {d.task.id} -> {d.model} (provider {d.provider})",
        f"reason: {d.reason}",
        "rule: " + (f"rules[{d.rule}]" if d.rule is not None else "none: the default model" + _passed(d)),
    ]
    if d.experiment:
        lines.append(f"experiment: {d.experiment}, arm {d.arm}")
    if d.stage or d.workflow:
        lines.append(f"stage: {d.stage or '-'}   workflow: {d.workflow or '-'}")
    lines.append("candidates: " + " -> ".join(f"{c.model} [{c.source}]" for c in d.candidates))
    for note in d.skipped:
        lines.append(f"skipped: {note}")
    lines.append("rules:")
    width = max((len(t.condition) for t in d.trace), default=0)
    passed = dict(d.passed_over)
    for t in d.trace:
        mark = "MATCH" if t.matched else "no   "
        facts = ", ".join(f"{k}={_fmt(v)}" for k, v in t.facts.items())
        chosen = (
            "  <= chosen" if t.index == d.rule else f"  <= passed over: {passed[t.index]}" if t.index in passed else ""
        )
        lines.append(f"  [{t.index}] {mark} {t.condition.ljust(width)}  -> {t.target}   ({facts}){chosen}")
    snap = d.facts.snapshot()
    lines.append("facts: " + ", ".join(f"{k}={_fmt(v)}" for k, v in snap.items() if v not in (None, {}, [])))
    return "\n".join(lines)


def _passed(d: Decision) -> str:
    if not d.passed_over:
        return ""
    names = " and ".join(f"rules[{i}]" for i, _ in d.passed_over)
    return f" ({names} {'was' if len(d.passed_over) == 1 else 'were'} passed over)"


def _provider_health(loaded: LoadedConfig) -> dict[str, tuple[str, str]]:
    """`{provider: (status, why)}` from config and environment, plus breaker state when a ledger
    already exists (route never creates one)."""
    from switchyard.health import config_health

    location = loaded.ledger_location()
    if not loaded.ledger.url and not os.path.exists(location):
        return {name: (h.status, h.reason) for name, h in config_health(loaded).items()}
    from switchyard.health import Health
    from switchyard.ledger.store import Ledger

    with Ledger.open(location) as ledger:
        return {name: (h.status, h.reason) for name, h in Health(loaded, ledger).explain().items()}


@click.command()
@click.option("--task", "task_arg", required=True, metavar="JSON|@FILE", help="The task, inline or from a file.")
@config_option
@click.option("--stage", help="Workflow stage (plan, implement, review, ...).")
@click.option("--at", "at", metavar="ISO8601", help="Pretend it is this time (default: now).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="PROVIDER=STATE",
    help="Override a provider's status: up, down, degraded or disabled. Repeatable.",
)
@click.option("--explain", is_flag=True, help="Show every rule, whether it matched, and the facts it read.")
@json_option
def route(
    task_arg: str,
    config_path: str | None,
    stage: str | None,
    at: str | None,
    statuses: tuple[str, ...],
    explain: bool,
    as_json: bool,
) -> None:
    """Decide which model TASK goes to, without running anything."""
    loaded = load(config_path)
    task = load_task_arg(task_arg)
    router = Router(loaded)
    health = _provider_health(loaded)
    given = parse_status_args(statuses, loaded.providers)
    health.update({name: (st, "set by --status") for name, st in given.items()})
    status = {name: st for name, (st, _) in health.items()}
    decision = router.decide(task, stage=stage, now=parse_at(at), provider_status=status)
    if as_json:
        echo_json(decision.to_dict())
    elif explain:
        click.echo(render_explain(decision))
        for name, (st, why) in health.items():  # why a provider the trace skips is unavailable
            if st != "up":
                click.echo(f"provider {name}: {st} ({why})")
    else:
        click.echo(f"{decision.model} ({decision.provider}): {decision.reason}")
