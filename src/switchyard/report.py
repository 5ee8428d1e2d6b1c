"""Reports over the ledger: where the money went, how well each model did, what failed over.

Everything is computed in SQL so a ledger of millions of attempts answers in
well under a second: sums are exact (integer picodollars), task counts are
DISTINCT counts, and latency percentiles come from a per-row log-scale bucket
(2.5 % wide), so a median is exact to within ±1.25 %.

`--baseline MODEL` re-prices the *recorded tokens* of every attempt as if it had
run on MODEL (with that model's tiers and off-peak windows, per attempt). It is
arithmetic on what happened, not a measured run: the other model might have
needed more or fewer tokens, or attempts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from switchyard.catalog import CatalogModel, Rates
from switchyard.errors import InputError
from switchyard.ledger.db import Database
from switchyard.ledger.store import PICO, bucket_value

__all__ = ["DIMENSIONS", "Window", "baseline", "breakdown", "experiments", "failovers", "report", "wilson"]

DIMENSIONS = ("model", "provider", "label", "priority", "stage", "workflow", "day", "experiment")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Window:
    """`since_ms <= started_ms < until_ms` (either end open)."""

    since_ms: int | None = None
    until_ms: int | None = None

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        col = f"{alias}started_ms"
        parts, params = [], []
        if self.since_ms is not None:
            parts.append(f"{col} >= ?")
            params.append(self.since_ms)
        if self.until_ms is not None:
            parts.append(f"{col} < ?")
            params.append(self.until_ms)
        return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _dim_sql(dim: str, dialect: str) -> tuple[str, str]:
    """(SQL expression, extra FROM clause) for a grouping dimension."""
    if dim in ("model", "provider"):
        return f"a.{dim}", ""
    if dim == "priority":
        return "COALESCE(CAST(a.priority AS TEXT), '-')", ""
    if dim in ("stage", "workflow"):
        return f"COALESCE(a.{dim}, '-')", ""
    if dim == "experiment":
        return "COALESCE(a.experiment || ' / ' || COALESCE(a.arm, '-'), '-')", ""
    if dim == "day":
        if dialect == "postgres":
            return "to_char(to_timestamp(a.started_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')", ""
        return "date(a.started_ms / 1000, 'unixepoch')", ""
    if dim == "label":
        if dialect == "postgres":
            return (
                "COALESCE(l.value, '-')",
                " LEFT JOIN LATERAL jsonb_array_elements_text(a.labels::jsonb) AS l(value) ON true",
            )
        return "COALESCE(l.value, '-')", " LEFT JOIN json_each(a.labels) AS l"
    raise InputError(f"--by {dim}: choose from {', '.join(DIMENSIONS)}")


def _percentile(hist: Sequence[tuple[int, int]], q: float) -> float | None:
    total = sum(n for _, n in hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket, n in sorted(hist):
        seen += n
        if seen >= rank:
            return round(bucket_value(bucket), 1)
    return None  # pragma: no cover


def _money(pico: int | None) -> Decimal:
    return Decimal(int(pico or 0)) / PICO


def _row(values: Sequence[Any], hist: Sequence[tuple[int, int]]) -> dict[str, Any]:
    attempts, ok, tasks, ok_tasks, tin, tout, tcr, tcw, treason, cost_pico = values
    cost = _money(cost_pico)
    return {
        "attempts": int(attempts),
        "tasks": int(tasks),
        "successes": int(ok or 0),
        "successful_tasks": int(ok_tasks or 0),
        "success_rate": round(int(ok or 0) / int(attempts), 4) if attempts else None,
        "tokens": {
            "input": int(tin or 0),
            "output": int(tout or 0),
            "cache_read": int(tcr or 0),
            "cache_write": int(tcw or 0),
            "reasoning": int(treason or 0),
        },
        "cost_usd": cost,
        "cost_per_successful_task_usd": (cost / int(ok_tasks)) if ok_tasks else None,
        "latency_ms": {"median": _percentile(hist, 0.5), "p95": _percentile(hist, 0.95)},
    }


_AGG = (
    "COUNT(*), SUM(CASE WHEN a.status = 'ok' THEN 1 ELSE 0 END), COUNT(DISTINCT a.task_id), "
    "COUNT(DISTINCT CASE WHEN a.status = 'ok' THEN a.task_id END), SUM(a.input_tokens), SUM(a.output_tokens), "
    "SUM(a.cache_read_tokens), SUM(a.cache_write_tokens), SUM(a.reasoning_tokens), SUM(a.cost_pico)"
)


def breakdown(db: Database, window: Window, by: Sequence[str]) -> list[dict[str, Any]]:
    """One row per group of `by` dimensions (none: a single total row), most expensive first."""
    exprs, joins = [], []
    for dim in by:
        expr, join = _dim_sql(dim, db.dialect)
        exprs.append(expr)
        if join and join not in joins:
            joins.append(join)
    where, params = window.where("a.")
    source = "attempts a" + "".join(joins) + where
    keys = ", ".join(exprs) if exprs else "'all'"
    n = max(1, len(exprs))
    group = " GROUP BY " + ", ".join(str(i + 1) for i in range(n))
    rows = db.query(f"SELECT {keys}, {_AGG} FROM {source}{group}", params)
    hist: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for r in db.query(f"SELECT {keys}, a.latency_bucket, COUNT(*) FROM {source}{group}, {n + 1}", params):
        hist.setdefault(tuple(r[:n]), []).append((int(r[n]), int(r[n + 1])))
    out = []
    for r in rows:
        key = tuple(r[:n])
        if not exprs and not r[n]:
            continue  # no attempts at all
        item = _row(r[n:], hist.get(key, []))
        item["key"] = dict(zip(by, (str(k) for k in key), strict=False)) if by else {}
        out.append(item)
    out.sort(key=lambda x: (-x["cost_usd"], -x["attempts"]))
    total_attempts = sum(x["attempts"] for x in out) or 1
    total_cost = sum((x["cost_usd"] for x in out), ZERO)
    for x in out:
        x["share_attempts"] = round(x["attempts"] / total_attempts, 4)
        x["share_cost"] = round(float(x["cost_usd"] / total_cost), 4) if total_cost else 0.0
    return out


def _rate_sql(rates: Rates) -> tuple[int, int, int, int, int]:
    """Per-token prices in picodollars (rates are USD per million tokens)."""
    million = Decimal(1_000_000)
    return tuple(
        int(r * million) for r in (rates.input, rates.output, rates.cache_read, rates.cache_write, rates.reasoning)
    )  # type: ignore[return-value]


def _cost_expr(model: CatalogModel, dialect: str) -> str:
    """SQL for the exact cost, in picodollars, of each row's tokens on `model` (tiers and off-peak included)."""

    def priced(rates: Rates) -> str:
        i, o, cr, cw, rz = _rate_sql(rates)
        return (
            f"(a.input_tokens * {i} + a.cache_read_tokens * {cr} + a.cache_write_tokens * {cw} "
            f"+ (a.output_tokens - a.reasoning_tokens) * {o} + a.reasoning_tokens * {rz})"
        )

    prompt = "(a.input_tokens + a.cache_read_tokens + a.cache_write_tokens)"
    expr = priced(model.rates)
    for tier in sorted(model.tiers, key=lambda t: t.above):  # highest threshold ends up outermost
        expr = f"(CASE WHEN {prompt} > {tier.above} THEN {priced(tier.rates)} ELSE {expr} END)"
    if model.off_peak:
        minute = "((a.started_ms / 60000) % 1440)"  # UTC minute of the day, the same in both dialects
        for w in model.off_peak:
            if w.start_min == w.end_min:
                cond = "1 = 1"
            elif w.start_min < w.end_min:
                cond = f"{minute} >= {w.start_min} AND {minute} < {w.end_min}"
            else:
                cond = f"({minute} >= {w.start_min} OR {minute} < {w.end_min})"
            expr = f"(CASE WHEN {cond} THEN {priced(w.rates)} ELSE {expr} END)"
    return expr


def baseline(db: Database, window: Window, model: CatalogModel) -> dict[str, Any]:
    """Recorded tokens re-priced on `model`: actual vs. baseline cost, overall and per priority class."""
    where, params = window.where("a.")
    expr = _cost_expr(model, db.dialect)
    rows = db.query(
        f"SELECT COALESCE(CAST(a.priority AS TEXT), '-'), SUM(a.cost_pico), SUM({expr}), COUNT(*) "
        f"FROM attempts a{where} GROUP BY 1 ORDER BY 1",
        params,
    )
    classes = []
    for prio, actual, base, n in rows:
        a, b = _money(actual), _money(base)
        label = f"P{prio}" if prio != "-" else "unknown"
        classes.append(
            {
                "priority": label,
                "attempts": int(n),
                "actual_usd": a,
                "baseline_usd": b,
                "saving_usd": b - a,
                "saving_pct": _pct(b - a, b),
            }
        )

    def combine(name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        a = sum((c["actual_usd"] for c in items), ZERO)
        b = sum((c["baseline_usd"] for c in items), ZERO)
        return {
            "priority": name,
            "attempts": sum(c["attempts"] for c in items),
            "actual_usd": a,
            "baseline_usd": b,
            "saving_usd": b - a,
            "saving_pct": _pct(b - a, b),
        }

    non_critical = [c for c in classes if c["priority"] not in ("P0", "unknown")]
    return {
        "model": model.name,
        "note": f"re-pricing of the recorded tokens on {model.name}; not a measured run",
        "total": combine("all", classes),
        "non_critical": combine("P1-P4", non_critical),
        "by_priority": classes,
    }


def _pct(part: Decimal, whole: Decimal) -> float | None:
    return round(float(part / whole) * 100, 1) if whole else None


def failovers(db: Database, window: Window) -> dict[str, Any]:
    """Attempts that went to a later candidate (from which provider to which), escalations, breaker openings."""
    where, params = window.where("a.")
    cond = (where + " AND " if where else " WHERE ") + "a.candidate_index > 0"
    rows = db.query(
        "SELECT (SELECT b.provider FROM attempts b WHERE b.task_id = a.task_id AND b.started_ms <= a.started_ms "
        "AND b.attempt_id <> a.attempt_id AND b.candidate_index < a.candidate_index "
        "ORDER BY b.started_ms DESC LIMIT 1), a.provider, COUNT(*) "
        f"FROM attempts a{cond} GROUP BY 1, 2 ORDER BY 3 DESC",
        params,
    )
    esc_cond = (where + " AND " if where else " WHERE ") + "a.task_retry > 0"
    esc = db.query(
        f"SELECT a.model, COUNT(*), COUNT(DISTINCT a.task_id) FROM attempts a{esc_cond} GROUP BY 1 ORDER BY 2 DESC",
        params,
    )
    bwhere, bparams = window.where("e.")
    bwhere = bwhere.replace("e.started_ms", "e.at_ms")
    breakers = db.query(
        f"SELECT e.provider, e.state, COUNT(*) FROM breaker_events e{bwhere} GROUP BY 1, 2 ORDER BY 3 DESC", bparams
    )
    return {
        "failovers": [{"from": f or "?", "to": t, "attempts": int(n)} for f, t, n in rows],
        "failover_attempts": sum(int(n) for _, _, n in rows),
        "escalations": [{"model": m, "attempts": int(n), "tasks": int(t)} for m, n, t in esc],
        "breaker_openings": [{"provider": p, "state": s, "count": int(n)} for p, s, n in breakers],
    }


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """95 % Wilson score interval for a success rate."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def _two_proportion(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """Two-sided p-value of a two-proportion z-test (pooled)."""
    if not n1 or not n2:
        return None
    p = (s1 + s2) / (n1 + n2)
    if p in (0, 1):
        return 1.0
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (s1 / n1 - s2 / n2) / se
    return round(math.erfc(abs(z) / math.sqrt(2)), 4)


def experiments(db: Database, window: Window) -> list[dict[str, Any]]:
    """Per experiment and arm: tasks, success rate with a Wilson interval, cost per success, median latency."""
    where, params = window.where("a.")
    cond = (where + " AND " if where else " WHERE ") + "a.experiment IS NOT NULL"
    # The unit is the task: a task counts as a success when any of its attempts in the arm succeeded.
    rows = db.query(
        "SELECT a.experiment, a.arm, COUNT(DISTINCT a.task_id), COUNT(DISTINCT CASE WHEN a.status = 'ok' THEN a.task_id END), "
        f"SUM(a.cost_pico), COUNT(*) FROM attempts a{cond} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    hist: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for exp, arm, bucket, n in db.query(
        f"SELECT a.experiment, a.arm, a.latency_bucket, COUNT(*) FROM attempts a{cond} GROUP BY 1, 2, 3", params
    ):
        hist.setdefault((exp, arm), []).append((int(bucket), int(n)))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for exp, arm, tasks, ok, pico, attempts in rows:
        cost = _money(pico)
        grouped.setdefault(exp, []).append(
            {
                "arm": arm,
                "tasks": int(tasks),
                "successes": int(ok or 0),
                "success_rate": round(int(ok or 0) / int(tasks), 4) if tasks else None,
                "ci95": wilson(int(ok or 0), int(tasks)),
                "attempts": int(attempts),
                "cost_usd": cost,
                "cost_per_success_usd": cost / int(ok) if ok else None,
                "median_latency_ms": _percentile(hist.get((exp, arm), []), 0.5),
            }
        )
    out = []
    for exp, arms in grouped.items():
        result: dict[str, Any] = {"experiment": exp, "arms": arms, "comparison": None, "warning": None}
        small = [a["arm"] for a in arms if a["tasks"] < 30 or a["successes"] < 5 or a["tasks"] - a["successes"] < 5]
        if len(arms) >= 2:
            a, b = sorted(arms, key=lambda x: -x["tasks"])[:2]
            p_value = _two_proportion(a["successes"], a["tasks"], b["successes"], b["tasks"])
            diff = (a["success_rate"] or 0) - (b["success_rate"] or 0)
            result["comparison"] = {
                "arms": [a["arm"], b["arm"]],
                "difference": round(diff, 4),
                "p_value": p_value,
                "test": "two-proportion z-test (pooled), two-sided",
                "significant_at_5pct": p_value is not None and p_value < 0.05,
            }
        if small or len(arms) < 2:
            result["warning"] = "too few tasks to say anything yet: " + (
                f"arm(s) {', '.join(small)} need at least 30 tasks and 5 successes and 5 failures"
                if small
                else "only one arm has data"
            )
        out.append(result)
    return out


def report(
    db: Database,
    window: Window,
    by: Sequence[str] = (),
    *,
    baseline_model: CatalogModel | None = None,
) -> dict[str, Any]:
    """The whole report as one JSON-ready object."""
    data: dict[str, Any] = {
        "window": {"since_ms": window.since_ms, "until_ms": window.until_ms},
        "by": list(by),
        "total": next(iter(breakdown(db, window, ())), None),
        "groups": breakdown(db, window, by) if by else [],
        "model_distribution": breakdown(db, window, ("model",)),
        "failover": failovers(db, window),
        "experiments": experiments(db, window),
    }
    if baseline_model is not None:
        data["baseline"] = baseline(db, window, baseline_model)
    return data
