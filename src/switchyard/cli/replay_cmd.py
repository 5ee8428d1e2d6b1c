"""`switchyard replay`, `switchyard tune`, `switchyard outcomes`: routing configs scored on recorded outcomes."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import click

from switchyard.cli.common import dump_json, money, table
from switchyard.errors import InputError, RunError

if TYPE_CHECKING:
    from switchyard.replay.engine import PolicyResult, Verifier
    from switchyard.replay.outcomes import OutcomeTable
    from switchyard.replay.tune import SplitResult

__all__ = ["outcomes", "replay", "tune"]


def _verifier_options(fn: Any) -> Any:
    fn = click.option(
        "--seed", type=int, default=0, show_default=True, help="Seed of the verifier's draws (and of tune's splits)."
    )(fn)
    fn = click.option(
        "--false-pass-rate",
        default="0",
        show_default=True,
        metavar="P",
        help="Chance the verifier passes an attempt that did not resolve the task (it ends believed done).",
    )(fn)
    fn = click.option(
        "--verifier-recall",
        default="1",
        show_default=True,
        metavar="R",
        help="Chance the verifier passes an attempt that resolved the task (a miss escalates).",
    )(fn)
    return fn


def _verifier(recall: str, false_pass: str, seed: int) -> Verifier:
    from switchyard.replay.engine import Verifier

    return Verifier(recall, false_pass, seed)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _parse_map(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise InputError(f"--map {item}: expected CONFIG_MODEL=TABLE_MODEL, e.g. opus='Claude 4.5 Opus'")
        out[name.strip()] = target.strip()
    return out


def _describe_table(t: OutcomeTable) -> str:
    extra = []
    if t.has_priority:
        extra.append("priorities")
    if t.has_labels:
        extra.append("labels")
    if t.stages - {""}:
        extra.append("stages " + ", ".join(sorted(t.stages - {""})))
    return f"{t.source}: {len(t.tasks)} tasks, {len(t.models)} models" + (f" ({', '.join(extra)})" if extra else "")


def _verifier_text(v: Verifier) -> str:
    if v.perfect:
        return "perfect verifier"
    return f"verifier recall {v.recall}, false-pass rate {v.false_pass_rate}, seed {v.seed}"


# ----------------------------------------------------------------------------- replay
def _policy_rows(results: Sequence[PolicyResult]) -> list[list[str]]:
    rows = []
    for r in results:
        s = r.summary
        rows.append(
            [
                r.name if r.kind != "config" else f"{r.name} (config)",
                f"{s.resolved}/{s.tasks}",
                _pct(s.share),
                money(s.cost_usd, 2),
                money(s.cost_per_task, 4),
                str(s.attempts),
                str(s.false_pass),
                str(s.missing),
            ]
        )
    return rows


def render_replay(
    tbl: OutcomeTable, verifier: Verifier, results: Sequence[PolicyResult], *, breakdown: bool = True
) -> str:
    """The human-readable replay report."""
    lines = [f"Outcomes {_describe_table(tbl)}; {_verifier_text(verifier)}", ""]
    headers = ["policy", "resolved", "share", "cost", "per task", "attempts", "false pass", "missing"]
    lines.append(table(headers, _policy_rows(results), right={1, 2, 3, 4, 5, 6, 7}))
    groups = sorted({g for r in results for g in r.groups}, key=lambda k: (not k.startswith("priority:"), k))
    if breakdown and groups:
        lines += ["", "By priority and label (resolved share, cost):"]
        rows = []
        for r in results:
            cells = [r.name]
            for g in groups:
                s = r.groups.get(g)
                cells.append("-" if s is None else f"{_pct(s.share)} {money(s.cost_usd, 2)}")
            rows.append(cells)
        lines.append(table(["policy", *groups], rows, right=set(range(1, len(groups) + 1))))
    notes = [(r.name, n) for r in results if r.kind == "config" for n in r.notes]
    if notes:
        lines += ["", "Notes:"]
        lines += [f"  {name}: {n}" for name, n in notes]
    single = [r for r in results if r.kind == "model"]
    if single:
        lines += [
            "",
            "Single models: one attempt per task, as the table recorded it (no verifier, no retry).",
            "Oracle: the cheapest model that resolved each task, known in advance; the unsolvable cost nothing.",
        ]
    return "\n".join(lines)


def replay_csv(results: Sequence[PolicyResult]) -> str:
    """One row per policy and group (`all`, `priority:N`, `label:X`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ["tasks", "resolved", "resolved_share", "false_pass", "failed", "missing", "blocked", "attempts"]
    cols += ["cost_usd", "cost_per_task_usd", "tokens", "latency_ms"]
    w.writerow(["policy", "kind", "group", *cols])
    for r in results:
        for group, s in [("all", r.summary), *r.groups.items()]:
            d = s.to_dict()
            w.writerow([r.name, r.kind, group, *(d[c] for c in cols)])
    return buf.getvalue()


def _names(paths: Sequence[str]) -> list[str]:
    base = [os.path.basename(p) for p in paths]
    return [b if base.count(b) == 1 else p for b, p in zip(base, paths, strict=True)]


@click.command()
@click.option("--outcomes", "outcomes_path", required=True, metavar="FILE", help="Outcomes table (.csv or .jsonl).")
@click.option("--config", "configs", multiple=True, metavar="FILE", help="A config to replay (repeat for several).")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="MODEL=TABLE_MODEL",
    help="Config model MODEL stands for TABLE_MODEL of the table (identical names and names that differ "
    "only in case and punctuation match without it).",
)
@_verifier_options
@click.option("--now", metavar="TIME", help="The router's clock for tasks without submitted_at (ISO 8601).")
@click.option("--no-workflows", is_flag=True, help="Route every task as one stage, ignoring [workflows].")
@click.option("--plot", "plot_path", metavar="FILE.svg", help="Write a cost/resolved-share chart (SVG).")
@click.option("--tasks", "show_tasks", is_flag=True, help="With --json: every task's path through each config.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per policy and group.")
def replay(
    outcomes_path: str,
    configs: tuple[str, ...],
    maps: tuple[str, ...],
    verifier_recall: str,
    false_pass_rate: str,
    seed: int,
    now: str | None,
    no_workflows: bool,
    plot_path: str | None,
    show_tasks: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Score routing configs on recorded per-task outcomes, beside every single model and the oracle.

    Each config's real router decides, attempt by attempt, with the coordinator's escalation
    (a failed or rejected attempt: retry_count + 1, route again, up to max_attempts); the
    table says whether the chosen model resolved the task and what it cost.
    """
    from switchyard.config import load_config
    from switchyard.replay.engine import Replayer, oracle, single_model
    from switchyard.replay.outcomes import load_outcomes

    if as_json and as_csv:
        raise InputError("--json and --csv cannot be combined")
    verifier = _verifier(verifier_recall, false_pass_rate, seed)
    when = None
    if now is not None:
        try:
            when = datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"--now {now}: expected an ISO 8601 time such as 2025-06-02T09:00:00Z") from None
        if when.tzinfo is None:
            raise InputError(f"--now {now}: give a time zone, e.g. {now}Z")
    mapping = _parse_map(maps)
    tbl = load_outcomes(outcomes_path)
    loaded = [load_config(p) for p in configs]
    config_models = {m.name for cfg in loaded for m in cfg.config.models}
    for name in mapping:
        if name not in config_models:
            raise InputError(f"--map {name}=...: no config given has a model named '{name}'")
    results: list[PolicyResult] = []
    for cfg, name in zip(loaded, _names(configs), strict=True):
        replayer = Replayer(
            cfg, tbl, name=name, model_map=mapping, verifier=verifier, now=when, workflows=not no_workflows
        )
        results.append(replayer.run())
    results.append(oracle(tbl))
    singles = [single_model(tbl, m) for m in tbl.models]
    singles.sort(key=lambda r: (-r.summary.resolved, r.summary.cost_usd, r.name))
    results += singles
    for r in results:
        if r.kind == "config" and r.summary.missing:
            click.echo(
                f"warning: {r.name}: {r.summary.missing} task(s) were routed to a model with no outcome in the "
                "table; they count as not resolved (see the notes)",
                err=True,
            )
    if plot_path:
        _write_plot(plot_path, tbl, results)
    if as_json:
        from switchyard.replay.engine import oracle_frontier

        click.echo(
            dump_json(
                {
                    "outcomes": {"file": tbl.source, "tasks": len(tbl.tasks), "models": list(tbl.models)},
                    "verifier": verifier.to_dict(),
                    "policies": [r.to_dict(with_tasks=show_tasks and r.kind == "config") for r in results],
                    "oracle_frontier": [{"cost_usd": c, "resolved": n} for c, n in oracle_frontier(tbl)],
                }
            )
        )
    elif as_csv:
        click.echo(replay_csv(results), nl=False)
    else:
        click.echo(render_replay(tbl, verifier, results))


def _write_plot(path: str, tbl: OutcomeTable, results: Sequence[PolicyResult]) -> None:
    from switchyard.replay.engine import oracle_frontier
    from switchyard.replay.plot import PlotPoint, cost_quality_svg

    n = len(tbl.tasks)
    points = [PlotPoint(r.name, r.kind, r.summary.cost_usd, r.summary.share) for r in results]
    frontier = [(c, k / n) for c, k in oracle_frontier(tbl)]
    svg = cost_quality_svg(
        points,
        frontier=frontier,
        title=f"Resolved share and cost over {n} tasks",
        note=f"Outcomes: {os.path.basename(tbl.source)}. Dashed: the oracle frontier.",
    )
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(svg)
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write: {exc.strerror}") from None


# ----------------------------------------------------------------------------- tune
def _share_arg(value: str, option: str) -> Decimal:
    text = value.strip()
    try:
        d = Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text)
    except InvalidOperation:
        raise InputError(f"{option} {value}: expected a share such as 0.75 or 75%") from None
    if not d.is_finite() or not 0 <= d <= 1:
        raise InputError(f"{option} {value}: expected a share between 0 and 1 (or 0% to 100%)")
    return d


def render_tune(results: Sequence[SplitResult], settings: Any, tbl: OutcomeTable) -> str:
    """The winner's held-out figures, its config, the frontier, and the repeats."""
    from switchyard.replay.tune import _collapse

    first = results[0]
    held = first.held.summary
    best = first.best_single.summary
    n_fit, n_held = len(first.fit_ids), len(first.held_ids)
    out = [
        f"Outcomes {_describe_table(tbl)}; {_verifier_text(settings.verifier)}",
        f"Fitted on {n_fit} tasks, reported on the other {n_held} (held out; split seed {first.seed}); "
        f"{first.candidates:,} candidate policies scored in {first.seconds:.1f} s.",
    ]
    if settings.budget_usd is not None:
        aim = f"the most resolved for at most ${settings.budget_usd} over all {n_fit + n_held} tasks (pro rata)"
    else:
        what = "the best single model's share there" if settings.target_best else f"share {settings.target}"
        if settings.margin:
            what += f" + {settings.margin}"
        aim = f"the cheapest reaching {first.target_resolved}/{n_fit} resolved on the fitting tasks ({what})"
    out.append(f"Aim: {aim}.")
    if not first.reached:
        out.append("No policy reached the aim on the fitting tasks; the closest one is shown.")
    out += [
        "",
        "Held-out result (the printed config replayed by the router):",
        f"  tuned policy: {held.resolved}/{held.tasks} resolved ({_pct(held.share)}), {money(held.cost_usd, 2)} "
        f"({money(held.cost_per_task, 4)}/task), {held.attempts} attempts"
        + (f", {held.false_pass} false passes" if held.false_pass else ""),
        f"  {first.best_single.name} (best single model on the fitting tasks): {best.resolved}/{best.tasks} "
        f"({_pct(best.share)}), {money(best.cost_usd, 2)}",
    ]
    if best.cost_usd:
        out.append(
            f"  => {held.resolved - best.resolved:+d} tasks resolved, at {_pct(float(held.cost_usd / best.cost_usd))} "
            "of its cost"
        )
    out += ["", "Policy: " + first.policy.describe(), "", first.toml.rstrip(), ""]
    out.append("Frontier (fit: what the search saw on the fitting tasks; held-out: the same policy replayed):")
    rows = []
    for p in first.frontier:
        rows.append(
            [
                f"{float(p.fit.resolved):.1f}" if isinstance(p.fit.resolved, float) else str(p.fit.resolved),
                str(p.held.resolved),
                money(p.held_cost_usd, 2),
                str(p.policy.attempts),
                "; ".join(
                    " | ".join(" → ".join(_short(m) for m in _collapse(a.ladder)) for a in arms)
                    for _g, arms in p.policy.parts
                ),
            ]
        )
    out.append(
        table([f"fit /{n_fit}", f"held-out /{n_held}", "held-out cost", "attempts", "policy"], rows, right={0, 1, 2, 3})
    )
    if len(results) > 1:
        out += ["", f"Repeated over {len(results)} splits (seeds {results[0].seed}..{results[-1].seed}), held-out:"]
        rows = []
        for r in results:
            h, b = r.held.summary, r.best_single.summary
            rows.append(
                [
                    str(r.seed),
                    f"{h.resolved}/{h.tasks}",
                    _pct(h.share),
                    _pct(b.share),
                    money(h.cost_usd, 2),
                    money(b.cost_usd, 2),
                    _pct(float(h.cost_usd / b.cost_usd)) if b.cost_usd else "-",
                    r.best_single.name,
                ]
            )
        out.append(
            table(
                ["seed", "tuned", "share", "best single", "cost", "its cost", "cost share", "best single model"],
                rows,
                right={1, 2, 3, 4, 5, 6},
            )
        )
        shares = [r.held.summary.share - r.best_single.summary.share for r in results]
        ratios = [
            float(r.held.summary.cost_usd / r.best_single.summary.cost_usd)
            for r in results
            if r.best_single.summary.cost_usd
        ]
        out.append(
            f"  share minus best single: mean {sum(shares) / len(shares) * 100:+.1f} points "
            f"(range {min(shares) * 100:+.1f} to {max(shares) * 100:+.1f})"
        )
        if ratios:
            out.append(
                f"  cost share: mean {sum(ratios) / len(ratios) * 100:.1f}% "
                f"(range {min(ratios) * 100:.1f}% to {max(ratios) * 100:.1f}%)"
            )
    return "\n".join(out)


def _short(name: str) -> str:
    return name if len(name) <= 28 else name[:27] + "…"


def tune_json(results: Sequence[SplitResult]) -> dict[str, Any]:
    """`tune --json`."""

    out = []
    for r in results:
        out.append(
            {
                "seed": r.seed,
                "fit_tasks": len(r.fit_ids),
                "held_out_tasks": len(r.held_ids),
                "reached": r.reached,
                "target_resolved_fit": r.target_resolved,
                "candidates": r.candidates,
                "seconds": round(r.seconds, 3),
                "policy": r.policy.to_dict(),
                "config_toml": r.toml,
                "held_out": r.held.summary.to_dict(),
                "best_single_model": {"name": r.best_single.name, **r.best_single.summary.to_dict()},
                "best_single_model_on_held_out": {
                    "name": r.best_single_held.name,
                    **r.best_single_held.summary.to_dict(),
                },
                "frontier": [
                    {
                        "policy": p.policy.to_dict(),
                        "fit_search": {
                            "resolved": p.fit.resolved,
                            "attempts": p.fit.attempts,
                            "cost_usd": p.fit_cost_usd,
                        },
                        "held_out": {
                            "resolved": p.held.resolved,
                            "false_pass": p.held.false_pass,
                            "attempts": p.held.attempts,
                            "cost_usd": p.held_cost_usd,
                        },
                    }
                    for p in r.frontier
                ],
            }
        )
    return {"splits": out}


@click.command()
@click.option("--outcomes", "outcomes_path", required=True, metavar="FILE", help="Outcomes table (.csv or .jsonl).")
@click.option(
    "--models",
    "model_args",
    multiple=True,
    metavar="NAME",
    help="A model to use (repeat; a unique part of its name is enough). Default: every model in the table.",
)
@click.option("--target", metavar="SHARE|best", help="Resolved share to reach (0.75, 75%), or 'best' (default).")
@click.option("--budget", metavar="USD", help="Instead of a target: the most resolved for at most USD over the table.")
@click.option("--margin", default="0", show_default=True, metavar="SHARE", help="Added to the target while fitting.")
@click.option("--max-attempts", type=int, default=3, show_default=True, help="Longest escalation ladder.")
@click.option(
    "--by",
    type=click.Choice(["none", "priority", "label"]),
    default="none",
    show_default=True,
    help="A ladder per priority or per label (the most frequent ones).",
)
@click.option("--no-splits", is_flag=True, help="Do not try bucket splits between two ladders.")
@click.option("--holdout", type=float, default=0.5, show_default=True, help="Share of tasks held out for the result.")
@click.option("--repeat", type=int, default=1, show_default=True, help="Repeat over this many splits (seed, seed+1…).")
@_verifier_options
@click.option("--out", "out_path", metavar="FILE", help="Also write the winning config to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tune(
    outcomes_path: str,
    model_args: tuple[str, ...],
    target: str | None,
    budget: str | None,
    margin: str,
    max_attempts: int,
    by: str,
    no_splits: bool,
    holdout: float,
    repeat: int,
    verifier_recall: str,
    false_pass_rate: str,
    seed: int,
    out_path: str | None,
    as_json: bool,
) -> None:
    """Find the cheapest routing policy that reaches a resolved share (or the best under a budget).

    Searches escalation ladders (retry_count rules), per-priority or per-label ladders and bucket
    splits on a random part of the tasks, then replays the printed config with the real router
    on the held-out part: the figures shown are held-out figures.
    """
    from switchyard.replay.outcomes import load_outcomes
    from switchyard.replay.tune import TuneSettings, resolve_models
    from switchyard.replay.tune import tune as run_tune

    if target is not None and budget is not None:
        raise InputError("--target and --budget cannot be combined: choose one aim")
    budget_usd: Decimal | None = None
    if budget is not None:
        try:
            budget_usd = Decimal(budget.strip().lstrip("$"))
        except InvalidOperation:
            raise InputError(f"--budget {budget}: expected dollars such as 50 or 12.5") from None
        if not budget_usd.is_finite() or budget_usd < 0:
            raise InputError(f"--budget {budget}: expected a non-negative amount of dollars")
    target_best = budget_usd is None and (target is None or target.strip().lower() == "best")
    share = None if target_best or budget_usd is not None else _share_arg(target or "", "--target")
    tbl = load_outcomes(outcomes_path)
    models = resolve_models(tbl, model_args) if model_args else list(tbl.models)
    settings = TuneSettings(
        models=tuple(models),
        max_attempts=max_attempts,
        target=share,
        target_best=target_best,
        margin=_share_arg(margin, "--margin"),
        budget_usd=budget_usd,
        by=by,
        splits=not no_splits,
        holdout=holdout,
        verifier=_verifier(verifier_recall, false_pass_rate, seed),
    )
    results = run_tune(tbl, settings, seed=seed, repeat=repeat)
    first = results[0]
    if out_path:
        try:
            with open(out_path, "w", encoding="utf-8") as fh:
                fh.write(first.toml)
        except OSError as exc:
            raise InputError(f"--out {out_path}: cannot write: {exc.strerror}") from None
    if as_json:
        click.echo(dump_json(tune_json(results)))
    else:
        click.echo(render_tune(results, settings, tbl))
    if not first.reached:
        raise RunError("no policy reached the aim on the fitting tasks (the closest one is shown)")


# ----------------------------------------------------------------------------- outcomes
@click.command()
@click.option("--config", "config_path", metavar="FILE", help="Config whose ledger to read (default: as for run).")
@click.option("--out", "out_path", metavar="FILE", help="Write here instead of stdout (.csv or .jsonl).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: from --out's name, else csv.")
@click.option(
    "--success",
    type=click.Choice(["verified", "ok"]),
    default="verified",
    show_default=True,
    help="What counts as resolved: 'verified' = an attempt [verify] verified (where nothing judged it: one "
    "that ended without an error); 'ok' = any attempt that ended without an error.",
)
@click.option("--since", metavar="WHEN", help="ISO time, 'today', or an age such as 2h, 7d.")
@click.option("--until", metavar="WHEN", help="Same forms as --since.")
def outcomes(
    config_path: str | None,
    out_path: str | None,
    fmt: str | None,
    success: str,
    since: str | None,
    until: str | None,
) -> None:
    """Export the ledger's outcomes per task and model as a table for `replay` and `tune`."""
    from switchyard.cli.common import load, open_ledger, parse_when
    from switchyard.ledger.store import to_ms
    from switchyard.replay.outcomes import outcomes_from_ledger, write_outcomes

    loaded = load(config_path)
    start = parse_when(since, option="--since")
    end = parse_when(until, option="--until")
    if fmt is None:
        fmt = "jsonl" if out_path and out_path.lower().endswith((".jsonl", ".ndjson")) else "csv"
    with open_ledger(loaded) as ledger:
        tbl = outcomes_from_ledger(
            ledger,
            success=success,
            since_ms=to_ms(start) if start else None,
            until_ms=to_ms(end) if end else None,
        )
    if out_path is None:
        buf = io.StringIO()
        write_outcomes(tbl, buf, fmt=fmt)
        click.echo(buf.getvalue(), nl=False)
        return
    try:
        with open(out_path, "w", encoding="utf-8", newline="") as fh:
            write_outcomes(tbl, fh, fmt=fmt)
    except OSError as exc:
        raise InputError(f"--out {out_path}: cannot write: {exc.strerror}") from None
    click.echo(f"wrote {len(tbl)} outcome rows for {len(tbl.tasks)} tasks to {out_path}", err=True)
