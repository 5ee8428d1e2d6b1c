"""`switchyard report`: attempts, tasks, success, tokens, cost, latency; distribution, failovers, experiments, savings."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import click

from switchyard.cli.common import config_option, echo_json, load, money, open_ledger, parse_when, table
from switchyard.errors import InputError, did_you_mean
from switchyard.ledger.store import to_ms

if TYPE_CHECKING:
    from switchyard.report import Group, MoneyInQuestion, Report, Verification

__all__ = ["render_money_in_question", "render_report", "render_verification", "report"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else (f"{x / 1000:.1f}s" if x >= 10_000 else f"{x:.0f}ms")


def _group_rows(groups: tuple[Group, ...], dims: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    headers = [
        *dims,
        "attempts",
        "tasks",
        "success",
        "rejected",
        "tokens in/out",
        "cost",
        "$/done task",
        "cost share",
        "median",
        "p95",
    ]
    rows = []
    for g in groups:
        t = g.tokens
        rows.append(
            [
                *(g.key.get(d, "-") for d in dims),
                f"{g.attempts:,}",
                f"{g.tasks:,}",
                _pct(g.success_rate),
                f"{g.rejected:,}",
                f"{t.input + t.cache_read + t.cache_write:,}/{t.output:,}",
                money(g.cost_usd, 4),
                money(g.cost_per_successful_task_usd, 4),
                _pct(g.share_cost),
                _ms(g.latency_ms.median),
                _ms(g.latency_ms.p95),
            ]
        )
    return headers, rows


def render_report(data: Report) -> str:
    """The human-readable report."""
    out: list[str] = []
    total = data.total
    if total is None:
        return "no attempts recorded in this window"
    t = total.tokens
    out.append(
        f"{total.attempts:,} attempts for {total.tasks:,} task(s) ({total.completed_tasks:,} completed), "
        f"success rate {_pct(total.success_rate)}, cost {money(total.cost_usd, 4)}, "
        f"{money(total.cost_per_successful_task_usd, 4)} per completed task"
    )
    out.append(
        f"tokens: {t.input:,} input, {t.cache_read:,} cache read, {t.cache_write:,} cache write, "
        f"{t.output:,} output; latency median {_ms(total.latency_ms.median)}, p95 {_ms(total.latency_ms.p95)}"
    )
    if data.money_in_question is not None:
        out.append("")
        out.extend(render_money_in_question(data.money_in_question))
    if data.by:
        out.append("")
        out.append("by " + ", ".join(data.by) + ":")
        headers, rows = _group_rows(data.groups, data.by)
        out.append(table(headers, rows, right=set(range(len(data.by), len(headers)))))
    out.append("")
    out.append("model distribution:")
    dist = [
        [
            g.key["model"],
            f"{g.attempts:,}",
            _pct(g.share_attempts),
            money(g.cost_usd, 4),
            _pct(g.share_cost),
            "#" * round(30 * g.share_cost),
        ]
        for g in data.model_distribution
    ]
    out.append(table(["model", "attempts", "share", "cost", "cost share", ""], dist, right={1, 2, 3, 4}))
    fo = data.failover
    out.append("")
    out.append(f"failovers: {fo.failover_attempts:,} attempt(s) went to a later candidate")
    for f in fo.failovers[:8]:
        out.append(f"  {f.from_provider} -> {f.to_provider}: {f.attempts:,}")
    if fo.escalations:
        out.append(
            "escalations (attempts after a failure, retry_count > 0): "
            + ", ".join(f"{e.model} {e.attempts:,}" for e in fo.escalations[:6])
        )
    if fo.breaker_openings:
        out.append("circuit breakers: " + ", ".join(f"{b.provider} {b.state} x{b.count}" for b in fo.breaker_openings))
    for exp in data.experiments:
        out.append("")
        out.append(f"experiment {exp.experiment}:")
        rows = [
            [
                a.arm,
                str(a.tasks),
                _pct(a.success_rate),
                "-" if a.ci95 is None else f"{a.ci95[0] * 100:.1f}-{a.ci95[1] * 100:.1f}%",
                money(a.cost_per_success_usd, 4),
                _ms(a.median_latency_ms),
            ]
            for a in exp.arms
        ]
        out.append(table(["arm", "tasks", "success", "95% CI", "$/success", "median"], rows, right={1, 2, 3, 4, 5}))
        c = exp.comparison
        if c:
            verdict = "significant" if c.significant_at_5pct else "not significant"
            out.append(
                f"  {c.arms[0]} vs {c.arms[1]}: difference {c.difference * 100:+.1f} points, p = {c.p_value} ({verdict} at 5%; {c.test})"
            )
        if exp.warning:
            out.append(f"  note: {exp.warning}")
    if data.verification is not None:
        out.append("")
        out.extend(render_verification(data.verification))
    base = data.baseline
    if base:
        out.append("")
        out.append(f"saving against running everything on {base.model} ({base.note}):")
        rows = [
            [
                c.priority,
                f"{c.attempts:,}",
                money(c.actual_usd, 4),
                money(c.baseline_usd, 4),
                money(c.saving_usd, 4),
                "-" if c.saving_pct is None else f"{c.saving_pct:.1f}%",
            ]
            for c in [*base.by_priority, base.non_critical, base.total]
        ]
        out.append(
            table(["priority", "attempts", "actual", "baseline", "saving", "saving %"], rows, right={1, 2, 3, 4, 5})
        )
    return "\n".join(out)


def render_money_in_question(m: MoneyInQuestion) -> list[str]:
    """Costs that are not the catalog's price of a usage read: unpriced attempts, flagged ones."""
    out = []
    if m.unpriced_attempts:
        out.append(
            f"unpriced: {m.unpriced_attempts:,} attempt(s) whose usage could not be read, charged their worst "
            f"case, {money(m.unpriced_charged_usd, 4)} (in the cost above)"
        )
        out += [
            f"  {u.model} via {u.provider}: {u.attempts:,}, {money(u.charged_usd, 4)}"
            + (f"  ({u.why})" if u.why else "")
            for u in m.unpriced[:10]
        ]
    if m.flagged_attempts:
        out.append(
            f"flagged: {m.flagged_attempts:,} attempt(s) whose provider-reported cost is far from the catalog's; "
            f"reported minus catalog {money(m.flagged_gap_usd, 6)}"
        )
        rows = [
            [
                f.attempt_id,
                f.model,
                f.reported_model or "-",
                money(f.cost_usd, 6),
                money(f.reported_cost_usd, 6),
                money(f.gap_usd, 6),
            ]
            for f in m.flagged
        ]
        out.append(table(["attempt", "model", "ran (reported)", "catalog", "reported", "gap"], rows, right={3, 4, 5}))
    return out


def render_verification(v: Verification) -> list[str]:
    """The verified-outcomes part of the report: counts, why changes were rejected, the paths tasks took."""
    out = [
        f"verification: {v.verified_attempts:,} verified, {v.rejected_attempts:,} rejected"
        + (f", {v.error_attempts:,} could not be checked" if v.error_attempts else "")
        + f"; {v.verified_tasks:,} verified task(s), {money(v.cost_per_verified_task_usd, 4)} per verified task"
    ]
    if v.rejections:
        out.append("rejected:")
        out += [
            f"  {r.model} by {r.check}: {r.attempts:,}" + (f"  ({r.example})" if r.example else "")
            for r in v.rejections[:10]
        ]
    if v.paths:
        out.append("paths (the verified outcomes of each task, in order):")
        out += [f"  {' -> '.join(p.path)}: {p.tasks:,} task(s), {money(p.cost_usd, 4)}" for p in v.paths[:10]]
    if v.first_try:
        out.append("first-try verified rate (tasks whose first attempt was verified):")
        rows = [[f.model, f.label, f"{f.tasks:,}", f"{f.verified:,}", _pct(f.rate)] for f in v.first_try]
        out.append(table(["model", "label", "tasks", "verified", "rate"], rows, right={2, 3, 4}))
    return out


def _csv(data: Report) -> str:
    groups = data.groups if data.by else data.model_distribution
    dims = data.by or ("model",)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            *dims,
            "attempts",
            "tasks",
            "successes",
            "completed_tasks",
            "success_rate",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "cost_per_completed_task_usd",
            "share_attempts",
            "share_cost",
            "median_latency_ms",
            "p95_latency_ms",
            "verified",
            "rejected",
            "first_try_verified_rate",
        ]
    )
    for g in groups:
        t = g.tokens
        w.writerow(
            [
                *(g.key.get(d, "") for d in dims),
                g.attempts,
                g.tasks,
                g.successes,
                g.completed_tasks,
                g.success_rate,
                t.input,
                t.output,
                t.cache_read,
                t.cache_write,
                t.reasoning,
                g.cost_usd,
                g.cost_per_successful_task_usd if g.cost_per_successful_task_usd is not None else "",
                g.share_attempts,
                g.share_cost,
                g.latency_ms.median or "",
                g.latency_ms.p95 or "",
                g.verified,
                g.rejected,
                "" if g.first_try_verified_rate is None else g.first_try_verified_rate,
            ]
        )
    return buf.getvalue()


@click.command()
@click.option("--since", metavar="WHEN", help="ISO time, 'today', or an age such as 2h, 7d.")
@click.option("--until", metavar="WHEN", help="Same forms as --since.")
@click.option(
    "--by",
    "dims",
    multiple=True,
    metavar="DIM",
    help="Group by model, provider, label, priority, stage, workflow, day or experiment. Repeatable.",
)
@click.option(
    "--baseline",
    "baseline_model",
    metavar="MODEL",
    help="Re-price the recorded tokens as if every attempt ran on MODEL.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the groups as CSV.")
@config_option
def report(
    since: str | None,
    until: str | None,
    dims: tuple[str, ...],
    baseline_model: str | None,
    as_json: bool,
    as_csv: bool,
    config_path: str | None,
) -> None:
    """Where the money went: attempts, tasks, success rate, tokens, cost, latency, failovers, experiments."""
    from switchyard.report import DIMENSIONS, Window, jsonable
    from switchyard.report import report as build

    if as_json and as_csv:
        raise InputError("--json and --csv cannot be combined")
    for d in dims:
        if d not in DIMENSIONS:
            raise InputError(f"--by {d}: choose from {', '.join(DIMENSIONS)}" + did_you_mean(d, DIMENSIONS))
    loaded = load(config_path)
    model = None
    if baseline_model is not None:
        if baseline_model not in loaded.catalog:
            mean = did_you_mean(baseline_model, loaded.catalog.names())
            raise InputError(f"--baseline {baseline_model}: not in the catalog{mean}")
        model = loaded.catalog[baseline_model]
    since_at = parse_when(since, option="--since")
    until_at = parse_when(until, option="--until")
    window = Window(to_ms(since_at) if since_at else None, to_ms(until_at) if until_at else None)
    with open_ledger(loaded) as ledger:
        data = build(ledger.db, window, dims, baseline_model=model)
    if as_json:
        echo_json(jsonable(data))
    elif as_csv:
        click.echo(_csv(data), nl=False)
    else:
        click.echo(render_report(data))
