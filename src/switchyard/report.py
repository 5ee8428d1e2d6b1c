"""Reports over the ledger: where the money went, how well each model did, what failed over.

Figures come from the per-day rollups (`ledger/rollup.py`) plus scans of the
partial days at the edges of a window, so a ledger of millions of attempts
answers in well under a second: sums are exact (integer picodollars); `tasks`
counts tasks where they started; latency percentiles come from a 10 %-wide
log-scale histogram, so a median is within ±5 %.

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
from switchyard.ledger.rollup import day_of
from switchyard.ledger.store import PICO, bucket_value

__all__ = ["DIMENSIONS", "Window", "baseline", "breakdown", "experiments", "failovers", "report", "wilson"]

DIMENSIONS = ("model", "provider", "label", "priority", "stage", "workflow", "day", "experiment")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Window:
    """`since_ms <= started_ms < until_ms` (either end open)."""

    since_ms: int | None = None
    until_ms: int | None = None

    def parts(self) -> tuple[tuple[str | None, str | None] | None, list[tuple[int | None, int | None]]]:
        """Whole UTC days to read from the rollups ([first, end) as YYYY-MM-DD; None: none), and edge spans to scan."""
        if self.since_ms is None and self.until_ms is None:
            return (None, None), []
        day_ms = 86_400_000
        first = None if self.since_ms is None else -(-self.since_ms // day_ms) * day_ms
        end = None if self.until_ms is None else (self.until_ms // day_ms) * day_ms
        if first is not None and end is not None and end <= first:
            return None, [(self.since_ms, self.until_ms)]  # within one day: scan it all
        edges: list[tuple[int | None, int | None]] = []
        if self.since_ms is not None and first is not None and first > self.since_ms:
            edges.append((self.since_ms, first))
        if self.until_ms is not None and end is not None and self.until_ms > end:
            edges.append((end, self.until_ms))
        return (day_of(first) if first is not None else None, day_of(end) if end is not None else None), edges


def _range_where(col: str, low: Any, high: Any, extra: str = "") -> tuple[str, list[Any]]:
    """` WHERE col >= low AND col < high [AND extra]`, leaving out open ends."""
    parts, params = [], []
    if low is not None:
        parts.append(f"{col} >= ?")
        params.append(low)
    if high is not None:
        parts.append(f"{col} < ?")
        params.append(high)
    if extra:
        parts.append(extra)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _day_where(days: tuple[str | None, str | None]) -> tuple[str, list[Any]]:
    return _range_where("day", days[0], days[1])


def _span_where(span: tuple[int | None, int | None], extra: str = "") -> tuple[str, list[Any]]:
    return _range_where("a.started_ms", span[0], span[1], extra)


# Each dimension as (column in rollup_attempts, the same value computed from an attempts row).
def _dim(dim: str, dialect: str) -> tuple[str, str]:
    day = (
        "to_char(to_timestamp(a.started_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        if dialect == "postgres"
        else "date(a.started_ms / 1000, 'unixepoch')"
    )
    dims = {
        "model": ("model", "a.model"),
        "provider": ("provider", "a.provider"),
        "priority": ("priority", "COALESCE(a.priority, -1)"),
        "stage": ("stage", "COALESCE(a.stage, '')"),
        "workflow": ("workflow", "COALESCE(a.workflow, '')"),
        "experiment": ("experiment || ' / ' || arm", "COALESCE(a.experiment, '') || ' / ' || COALESCE(a.arm, '')"),
        "day": ("day", day),
        "label": ("label", "l.value"),
    }
    if dim not in dims:
        raise InputError(f"--by {dim}: choose from {', '.join(DIMENSIONS)}")
    return dims[dim]


_SUMS = (
    "SUM(n), SUM(ok), SUM(first), SUM(opened), SUM(completed), SUM(cost_pico), SUM(input_tokens), SUM(output_tokens), "
    "SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(latency_ms)"
)
_SCAN_SUMS = (
    "COUNT(*), SUM(CASE WHEN a.status = 'ok' THEN 1 ELSE 0 END), SUM(a.first), "
    "SUM(CASE WHEN a.candidate_index = 0 AND a.try_index = 0 THEN 1 ELSE 0 END), SUM(a.completed), SUM(a.cost_pico), "
    "SUM(a.input_tokens), SUM(a.output_tokens), SUM(a.cache_read_tokens), SUM(a.cache_write_tokens), "
    "SUM(a.reasoning_tokens), SUM(a.latency_ms)"
)


def _label_join(dialect: str) -> str:
    if dialect == "postgres":
        return " JOIN LATERAL jsonb_array_elements_text(a.labels::jsonb) AS l(value) ON true"
    return " JOIN json_each(a.labels) AS l"


def _collect(
    db: Database, window: Window, by: Sequence[str]
) -> tuple[dict[tuple[str, ...], list[int]], dict[tuple[str, ...], dict[int, int]]]:
    """Sums and latency histograms per group, from the rollups plus scans of the window's partial days."""
    days, edges = window.parts()
    labels = "label" in by
    cols = [_dim(d, db.dialect) for d in by]
    n = len(cols)
    sums: dict[tuple[str, ...], list[int]] = {}
    hist: dict[tuple[str, ...], dict[int, int]] = {}

    nk = max(1, n)  # with no dimensions the query still selects one constant key column

    def add(rows: list[tuple[Any, ...]]) -> None:
        for r in rows:
            key = tuple("" if v is None else str(v) for v in r[:n])
            acc = sums.setdefault(key, [0] * 12)
            for i, v in enumerate(r[nk:]):
                acc[i] += int(v or 0)

    def add_hist(rows: list[tuple[Any, ...]]) -> None:
        for r in rows:
            key = tuple("" if v is None else str(v) for v in r[:n])
            h = hist.setdefault(key, {})
            h[int(r[nk])] = h.get(int(r[nk]), 0) + int(r[nk + 1])

    keys = ", ".join(c[0] for c in cols) if cols else "'all'"
    group = " GROUP BY " + ", ".join(str(i + 1) for i in range(nk))
    table = "rollup_labels" if labels else "rollup_attempts"
    # Latency histograms are kept one dimension at a time: a grouping by two gets means, not percentiles.
    hist_dim = by[0] if len(by) == 1 else ("all" if not by else None)
    if days is not None:
        where, params = _day_where(days)
        add(db.query(f"SELECT {keys}, {_SUMS} FROM {table}{where}{group}", params))
        if hist_dim is not None:
            hwhere = (where + " AND " if where else " WHERE ") + "dim = ?"
            rows = db.query(
                f"SELECT value, bucket, SUM(n) FROM rollup_latency{hwhere} GROUP BY 1, 2", [*params, hist_dim]
            )
            add_hist(rows)
    scan_keys = ", ".join(c[1] for c in cols) if cols else "'all'"
    join = _label_join(db.dialect) if labels else ""
    for span in edges:
        # One pass over the partial day: sums and the latency histogram together.
        where, params = _span_where(span)
        rows = db.query(
            f"SELECT {scan_keys}, a.latency_bucket, {_SCAN_SUMS} FROM attempts a{join}{where}{group}, {nk + 1}", params
        )
        add([(*r[:nk], *r[nk + 1 :]) for r in rows])
        if hist_dim is not None:
            add_hist([(*r[:nk], r[nk], r[nk + 1]) for r in rows])
    return sums, hist


def _percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return round(bucket_value(bucket), 1)
    return None  # pragma: no cover


def _money(pico: int | None) -> Decimal:
    return Decimal(int(pico or 0)) / PICO


def _row(v: Sequence[int], hist: dict[int, int] | None) -> dict[str, Any]:
    n, ok, first, _opened, completed, cost_pico, tin, tout, tcr, tcw, treason, latency = v
    cost = _money(cost_pico)
    return {
        "attempts": n,
        "tasks": first,
        "successes": ok,
        "completed_tasks": completed,
        "success_rate": round(ok / n, 4) if n else None,
        "tokens": {"input": tin, "output": tout, "cache_read": tcr, "cache_write": tcw, "reasoning": treason},
        "cost_usd": cost,
        "cost_per_successful_task_usd": (cost / completed) if completed else None,
        "latency_ms": {
            "median": _percentile(hist, 0.5) if hist is not None else None,
            "p95": _percentile(hist, 0.95) if hist is not None else None,
            "mean": round(latency / n, 1) if n else None,
        },
    }


def breakdown(db: Database, window: Window, by: Sequence[str]) -> list[dict[str, Any]]:
    """One row per group of `by` dimensions (none: a single total row), most expensive first.

    `tasks` counts tasks where they started (their first attempt falls in the group);
    `completed_tasks` counts the attempts that finished a task.
    """
    return _rows(by, *_collect(db, window, by))


def totals_by_model(db: Database, window: Window) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the total row, one row per model) from a single pass."""
    sums, hist = _collect(db, window, ("model",))
    return _total(sums, hist), _rows(("model",), sums, hist)


def _total(
    sums: dict[tuple[str, ...], list[int]], hist: dict[tuple[str, ...], dict[int, int]]
) -> dict[str, Any] | None:
    """The single total row, folded from any one-dimension grouping (sums and histograms add up)."""
    acc = [0] * 12
    merged: dict[int, int] = {}
    for v in sums.values():
        acc = [a + b for a, b in zip(acc, v, strict=True)]
    for h in hist.values():
        for bucket, n in h.items():
            merged[bucket] = merged.get(bucket, 0) + n
    return next(iter(_rows((), {(): acc}, {(): merged})), None)


def _rows(
    by: Sequence[str], sums: dict[tuple[str, ...], list[int]], hist: dict[tuple[str, ...], dict[int, int]]
) -> list[dict[str, Any]]:
    out = []
    for key, v in sums.items():
        if not v[0]:
            continue
        item = _row(v, hist.get(key, {}) if len(by) <= 1 else None)
        item["key"] = {d: _show(d, k) for d, k in zip(by, key, strict=True)}
        out.append(item)
    out.sort(key=lambda x: (-x["cost_usd"], -x["attempts"]))
    total_attempts = sum(x["attempts"] for x in out) or 1
    total_cost = sum((x["cost_usd"] for x in out), ZERO)
    for x in out:
        x["share_attempts"] = round(x["attempts"] / total_attempts, 4)
        x["share_cost"] = round(float(x["cost_usd"] / total_cost), 4) if total_cost else 0.0
    return out


def _show(dim: str, value: str) -> str:
    if dim == "priority":
        return "-" if value in ("", "-1") else f"P{value}"
    if dim == "experiment":
        return "-" if value.strip() == "/" else value
    return value or "-"


def _rate_sql(rates: Rates) -> tuple[int, int, int, int, int]:
    """Per-token prices in picodollars (rates are USD per million tokens)."""
    million = Decimal(1_000_000)
    i, o, cr, cw, rz = (
        int(r * million) for r in (rates.input, rates.output, rates.cache_read, rates.cache_write, rates.reasoning)
    )
    return i, o, cr, cw, rz


def _cost_expr(model: CatalogModel) -> str:
    """SQL for the exact cost, in picodollars, of each attempt's tokens on `model` (tiers and off-peak included)."""

    def priced(rates: Rates) -> str:
        i, o, cr, cw, rz = _rate_sql(rates)
        return (
            f"(a.input_tokens * {i} + a.cache_read_tokens * {cr} + a.cache_write_tokens * {cw} "
            f"+ (a.output_tokens - a.reasoning_tokens) * {o} + a.reasoning_tokens * {rz})"
        )

    prompt = "(a.input_tokens + a.cache_read_tokens + a.cache_write_tokens)"
    expr = priced(model.rates)
    for tier in sorted(model.tiers, key=lambda t: t.above):  # the highest threshold ends up outermost
        expr = f"(CASE WHEN {prompt} > {tier.above} THEN {priced(tier.rates)} ELSE {expr} END)"
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
    per_prio: dict[str, list[Any]] = {}
    if model.tiers or model.off_peak:
        # Per-attempt pricing depends on each prompt's size or time of day: price every row.
        where, params = _span_where((window.since_ms, window.until_ms))
        rows = db.query(
            f"SELECT COALESCE(a.priority, -1), SUM(a.cost_pico), SUM({_cost_expr(model)}), COUNT(*) FROM attempts a{where} GROUP BY 1",
            params,
        )
        for prio, actual, base, n in rows:
            per_prio[str(prio)] = [int(actual or 0), int(base or 0), int(n)]
    else:
        # Linear prices: the token sums are enough, and the rollups have them.
        sums, _ = _collect(db, window, ("priority",))
        i, o, cr, cw, rz = _rate_sql(model.rates)
        for (prio,), v in sums.items():
            n, _ok, _f, _o, _c, cost, tin, tout, tcr, tcw, treason, _lat = v
            base = tin * i + tcr * cr + tcw * cw + (tout - treason) * o + treason * rz
            acc = per_prio.setdefault(prio, [0, 0, 0])
            acc[0] += cost
            acc[1] += base
            acc[2] += n
    classes = []
    for prio in sorted(per_prio):
        actual, base, n = per_prio[prio]
        a, b = _money(actual), _money(base)
        label = "unknown" if prio in ("-1", "") else f"P{prio}"
        classes.append(
            {
                "priority": label,
                "attempts": n,
                "actual_usd": a,
                "baseline_usd": b,
                "saving_usd": b - a,
                "saving_pct": _pct(b - a, b),
            }
        )

    def combine(name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        a = sum((c["actual_usd"] for c in items), ZERO)
        b = sum((c["baseline_usd"] for c in items), ZERO)
        n = sum(c["attempts"] for c in items)
        return {
            "priority": name,
            "attempts": n,
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
    days, edges = window.parts()
    pairs: dict[tuple[str, str], int] = {}
    if days is not None:
        where, params = _day_where(days)
        for f, t, n in db.query(
            f"SELECT from_provider, to_provider, SUM(n) FROM rollup_failovers{where} GROUP BY 1, 2", params
        ):
            pairs[(f, t)] = pairs.get((f, t), 0) + int(n)
    for span in edges:
        where, params = _span_where(span, "a.failover_from IS NOT NULL")
        for f, t, n in db.query(
            f"SELECT a.failover_from, a.provider, COUNT(*) FROM attempts a{where} GROUP BY 1, 2", params
        ):
            pairs[(f, t)] = pairs.get((f, t), 0) + int(n)
    esc_sums = _escalations(db, window)
    since = window.since_ms if window.since_ms is not None else 0
    until = window.until_ms if window.until_ms is not None else 2**62
    breakers = db.query(
        "SELECT provider, state, COUNT(*) FROM breaker_events WHERE at_ms >= ? AND at_ms < ? GROUP BY 1, 2 ORDER BY 3 DESC",
        (since, until),
    )
    ordered = sorted(pairs.items(), key=lambda kv: -kv[1])
    return {
        "failovers": [{"from": f, "to": t, "attempts": n} for (f, t), n in ordered],
        "failover_attempts": sum(pairs.values()),
        "escalations": esc_sums,
        "breaker_openings": [{"provider": p, "state": s, "count": int(n)} for p, s, n in breakers],
    }


def _escalations(db: Database, window: Window) -> list[dict[str, Any]]:
    """Attempts made after a task had failed at least once (retry_count > 0), by model."""
    days, edges = window.parts()
    per: dict[str, list[int]] = {}
    if days is not None:
        where, params = _day_where(days)
        cond = (where + " AND " if where else " WHERE ") + "escalated = 1"
        for m, n, ok in db.query(f"SELECT model, SUM(n), SUM(ok) FROM rollup_attempts{cond} GROUP BY 1", params):
            acc = per.setdefault(m, [0, 0])
            acc[0] += int(n)
            acc[1] += int(ok)
    for span in edges:
        where, params = _span_where(span, "a.task_retry > 0")
        for m, n, ok in db.query(
            f"SELECT a.model, COUNT(*), SUM(CASE WHEN a.status = 'ok' THEN 1 ELSE 0 END) FROM attempts a{where} GROUP BY 1",
            params,
        ):
            acc = per.setdefault(m, [0, 0])
            acc[0] += int(n)
            acc[1] += int(ok or 0)
    return [
        {"model": m, "attempts": n, "successes": ok} for m, (n, ok) in sorted(per.items(), key=lambda kv: -kv[1][0])
    ]


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
    """Per experiment and arm: tasks, success rate with a 95 % Wilson interval, cost per success, median latency.

    The unit is a routing decision that landed in the arm (a task, or a task's stage, whose
    first attempt went to the arm's model; arms are sticky per task id); it succeeds when an
    attempt on it succeeded.
    """
    sums, hist = _collect(db, window, ("experiment",))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for (key,), v in sums.items():
        exp, _, arm = key.partition(" / ")
        if not exp:
            continue
        n, ok, _first, opened, _completed, cost_pico, *_ = v
        cost = _money(cost_pico)
        tasks, completed = opened, min(ok, opened)
        grouped.setdefault(exp, []).append(
            {
                "arm": arm,
                "tasks": tasks,
                "successes": completed,
                "success_rate": round(completed / tasks, 4) if tasks else None,
                "ci95": wilson(completed, tasks),
                "attempts": n,
                "cost_usd": cost,
                "cost_per_success_usd": cost / completed if completed else None,
                "median_latency_ms": _percentile(hist.get((key,), {}), 0.5),
            }
        )
    out = []
    for exp in sorted(grouped):
        arms = sorted(grouped[exp], key=lambda x: x["arm"])
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
                f"arm(s) {', '.join(small)} need at least 30 tasks, 5 successes and 5 failures"
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
    total, models = totals_by_model(db, window)
    data: dict[str, Any] = {
        "window": {"since_ms": window.since_ms, "until_ms": window.until_ms},
        "by": list(by),
        "total": total,
        "groups": (models if tuple(by) == ("model",) else breakdown(db, window, by)) if by else [],
        "model_distribution": models,
        "failover": failovers(db, window),
        "experiments": experiments(db, window),
    }
    if baseline_model is not None:
        data["baseline"] = baseline(db, window, baseline_model)
    return data
