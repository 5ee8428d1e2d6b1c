"""Reports over the ledger: where the money went, how well each model did, what failed over.

Figures come from the per-day rollups (`ledger/rollup.py`) plus scans of the
partial days at the edges of a window, so a ledger of millions of attempts
answers in well under a second: sums are exact (integer picodollars); `tasks`
counts tasks where they started; latency percentiles come from a 10 %-wide
log-scale histogram, so a median is within ±5 %.

`--baseline MODEL` re-prices the *recorded tokens* of every attempt as if it had
run on MODEL (with that model's tiers and off-peak windows, per attempt). It is
arithmetic on what happened, not a measured run: the other model might have
needed more or fewer tokens, or attempts. For a model with tiers or off-peak
windows the database prices every attempt with the catalog's formula
(`CatalogModel.cost_sql`, exact integers); for one with flat rates the same
formula prices the rollups' token sums.

Every result is a typed record; `jsonable` turns one into the JSON that
`switchyard report --json` prints and the dashboard serves (money as strings).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from switchyard._records import record
from switchyard.catalog import CatalogModel
from switchyard.errors import InputError, RunError
from switchyard.ledger import rollup
from switchyard.ledger.db import Database
from switchyard.ledger.rollup import BY_NAME, SCAN_SUMS_SQL, SUMS_SQL, Dimension, Sums, day_of
from switchyard.ledger.store import PICO, bucket_value, from_ms

__all__ = [
    "DIMENSIONS",
    "Arm",
    "Baseline",
    "Comparison",
    "Experiment",
    "Failovers",
    "FirstTry",
    "FlaggedAttempt",
    "Group",
    "MoneyInQuestion",
    "OutcomePath",
    "Rejection",
    "Report",
    "Saving",
    "Unpriced",
    "Verification",
    "Window",
    "baseline",
    "breakdown",
    "experiments",
    "failovers",
    "jsonable",
    "money_in_question",
    "report",
    "verification",
    "wilson",
]

DIMENSIONS = tuple(d.name for d in rollup.DIMENSIONS)  # what `--by` accepts
ZERO = Decimal(0)
Key = tuple[str, ...]
Histogram = dict[int, int]


def jsonable(value: Any) -> Any:
    """The JSON-ready form of a report record: records as objects, Decimals as strings, tuples as lists.

    A field's `metadata={"json": NAME}` renames it; `{"omit_none": True}` leaves it out when None.
    """
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is None and f.metadata.get("omit_none"):
                continue
            out[f.metadata.get("json", f.name)] = jsonable(v)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- records
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


@record
class Tokens:
    """Token counts of a group (input excludes cache reads and writes; output includes reasoning)."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int


@record
class Latency:
    """Latency of a group in ms: median and p95 from the histogram (None when grouped by two dimensions)."""

    median: float | None
    p95: float | None
    mean: float | None


@record
class Group:
    """One row of a report: the attempts of one group (`key`: dimension -> value), or of all (`key` empty).

    `tasks` counts tasks where they started (their first attempt falls in the group);
    `completed_tasks` counts the attempts that finished a task.
    """

    attempts: int
    tasks: int
    successes: int
    completed_tasks: int
    success_rate: float | None
    tokens: Tokens
    cost_usd: Decimal
    cost_per_successful_task_usd: Decimal | None
    latency_ms: Latency
    key: dict[str, str]
    share_attempts: float = 0.0
    share_cost: float = 0.0
    verified: int = 0  # attempts `[verify]` verified (they count among the successes)
    rejected: int = 0  # attempts `[verify]` rejected (failures, with the check that rejected them)
    first_try_verified_rate: float | None = None  # of the tasks started here, verified on their first attempt
    # Money in question (only when there is some): attempts whose usage could not be read, charged their
    # worst case (in cost_usd too), and attempts whose reported cost is far from the catalog's.
    unpriced: int | None = field(default=None, metadata={"omit_none": True})
    unpriced_cost_usd: Decimal | None = field(default=None, metadata={"omit_none": True})
    flagged: int | None = field(default=None, metadata={"omit_none": True})
    flagged_gap_usd: Decimal | None = field(default=None, metadata={"omit_none": True})


@record
class Saving:
    """Actual cost against the baseline model's, for one priority class (or several)."""

    priority: str
    attempts: int
    actual_usd: Decimal
    baseline_usd: Decimal
    saving_usd: Decimal
    saving_pct: float | None


@record
class Baseline:
    """The recorded tokens re-priced on one model, overall and per priority class."""

    model: str
    note: str
    total: Saving
    non_critical: Saving
    by_priority: tuple[Saving, ...]


@record
class FailoverPair:
    """Attempts that went from one provider to a later candidate's."""

    from_provider: str = field(metadata={"json": "from"})
    to_provider: str = field(metadata={"json": "to"})
    attempts: int = 0


@record
class Escalation:
    """Attempts on a model after the task had failed at least once."""

    model: str
    attempts: int
    successes: int


@record
class BreakerOpening:
    """How often a provider's breaker opened (or it was disabled)."""

    provider: str
    state: str
    count: int


@record
class Failovers:
    """Failovers between providers, escalations, breaker openings."""

    failovers: tuple[FailoverPair, ...]
    failover_attempts: int
    escalations: tuple[Escalation, ...]
    breaker_openings: tuple[BreakerOpening, ...]


@record
class Arm:
    """One arm of an A/B experiment."""

    arm: str
    tasks: int
    successes: int
    success_rate: float | None
    ci95: tuple[float, float] | None
    attempts: int
    cost_usd: Decimal
    cost_per_success_usd: Decimal | None
    median_latency_ms: float | None


@record
class Comparison:
    """The two largest arms compared."""

    arms: tuple[str, str]
    difference: float
    p_value: float | None
    test: str
    significant_at_5pct: bool


@record
class Experiment:
    """An A/B experiment's arms, their comparison, and a warning while the data is thin."""

    experiment: str
    arms: tuple[Arm, ...]
    comparison: Comparison | None
    warning: str | None


@record
class Rejection:
    """Attempts one check rejected on one model, and the last thing it said."""

    model: str
    check: str
    attempts: int
    example: str


@record
class OutcomePath:
    """The verified outcomes a task went through, in order (`cheap rejected (check)`, `strong verified`)."""

    path: tuple[str, ...]
    tasks: int
    cost_usd: Decimal


@record
class FirstTry:
    """Tasks whose first attempt went to `model`, with `label`, and how many were verified at once."""

    model: str
    label: str
    tasks: int
    verified: int
    rate: float | None


@record
class Verification:
    """Verified outcomes: what `[verify]` verified and rejected, why, the paths tasks took, cost per verified task."""

    verified_attempts: int
    rejected_attempts: int
    error_attempts: int
    verified_tasks: int
    cost_per_verified_task_usd: Decimal | None
    rejections: tuple[Rejection, ...]
    paths: tuple[OutcomePath, ...]
    first_try: tuple[FirstTry, ...]


@record
class FlaggedAttempt:
    """An attempt whose provider-reported cost is far from the catalog's price of its usage."""

    attempt_id: str
    task_id: str
    at: str  # ISO 8601
    model: str
    reported_model: str | None
    cost_usd: Decimal  # the catalog's (what was charged)
    reported_cost_usd: Decimal
    gap_usd: Decimal  # reported minus catalog


@record
class Unpriced:
    """The attempts of one model whose usage could not be read, and what they were charged (their worst case)."""

    model: str
    provider: str
    attempts: int
    charged_usd: Decimal
    why: str  # the last one's usage problem


@record
class MoneyInQuestion:
    """Costs that are not the catalog's price of a usage read: unpriced attempts and flagged ones."""

    unpriced_attempts: int
    unpriced_charged_usd: Decimal
    flagged_attempts: int
    flagged_gap_usd: Decimal
    unpriced: tuple[Unpriced, ...]
    flagged: tuple[FlaggedAttempt, ...]  # the most recent, at most FLAGGED_SHOWN


FLAGGED_SHOWN = 20


@record
class Report:
    """The whole report (`switchyard report`; `jsonable` gives its `--json`)."""

    window: Window
    by: tuple[str, ...]
    total: Group | None
    groups: tuple[Group, ...]
    model_distribution: tuple[Group, ...]
    failover: Failovers
    experiments: tuple[Experiment, ...]
    baseline: Baseline | None = field(default=None, metadata={"omit_none": True})
    verification: Verification | None = field(default=None, metadata={"omit_none": True})
    money_in_question: MoneyInQuestion | None = field(default=None, metadata={"omit_none": True})


# --------------------------------------------------------------------------- reading the rollups
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


def _dimensions(by: Sequence[str]) -> list[Dimension]:
    dims = []
    for name in by:
        if name not in BY_NAME:
            raise InputError(f"--by {name}: choose from {', '.join(DIMENSIONS)}")
        dims.append(BY_NAME[name])
    if any(d.name == "label" for d in dims):
        others = [d.name for d in dims if not d.in_labels]
        if others:
            can = ", ".join(d.name for d in rollup.DIMENSIONS if d.in_labels and d.name != "label")
            raise InputError(
                f"--by label cannot be combined with --by {', '.join(others)}: labels are rolled up by {can} only"
            )
    return dims


def _label_join(dialect: str) -> str:
    # LEFT: an attempt with no label is grouped as `(none)` (the label dimension's scan says so).
    if dialect == "postgres":
        return " LEFT JOIN LATERAL jsonb_array_elements_text(a.labels::jsonb) AS l(value) ON true"
    return " LEFT JOIN json_each(a.labels) AS l"


def _key(row: Sequence[Any], n: int) -> Key:
    return tuple("" if v is None else str(v) for v in row[:n])


def _collect(db: Database, window: Window, by: Sequence[str]) -> tuple[dict[Key, Sums], dict[Key, Histogram]]:
    """Sums and latency histograms per group, from the rollups plus scans of the window's partial days."""
    dims = _dimensions(by)
    days, edges = window.parts()
    labels = any(d.name == "label" for d in dims)
    n = len(dims)
    nk = max(1, n)  # with no dimensions the query still selects one constant key column
    sums: dict[Key, Sums] = {}
    hist: dict[Key, Histogram] = {}

    def add(key: Key, values: Sequence[Any]) -> None:
        s = Sums.from_sql(values)
        sums[key] = sums[key] + s if key in sums else s

    def add_hist(key: Key, bucket: Any, count: Any) -> None:
        h = hist.setdefault(key, {})
        h[int(bucket)] = h.get(int(bucket), 0) + int(count)

    keys = ", ".join(d.rollup for d in dims) if dims else "'all'"
    group = " GROUP BY " + ", ".join(str(i + 1) for i in range(nk))
    table = "rollup_labels" if labels else "rollup_attempts"
    # Latency histograms are kept one dimension at a time: a grouping by two gets means, not percentiles.
    hist_dim = by[0] if len(by) == 1 else ("all" if not by else None)
    if days is not None:
        where, params = _day_where(days)
        for r in db.query(f"SELECT {keys}, {SUMS_SQL} FROM {table}{where}{group}", params):
            add(_key(r, n), r[nk:])
        if hist_dim is not None:
            hwhere = (where + " AND " if where else " WHERE ") + "dim = ?"
            for value, bucket, count in db.query(
                f"SELECT value, bucket, SUM(n) FROM rollup_latency{hwhere} GROUP BY 1, 2", [*params, hist_dim]
            ):
                add_hist((value,) if n else (), bucket, count)
    scan_keys = ", ".join(d.scan_sql(db.dialect) for d in dims) if dims else "'all'"
    join = _label_join(db.dialect) if labels else ""
    for span in edges:
        # One pass over the partial day: sums and the latency histogram together.
        where, params = _span_where(span)
        for r in db.query(
            f"SELECT {scan_keys}, a.latency_bucket, {SCAN_SUMS_SQL} FROM attempts a{join}{where}{group}, {nk + 1}",
            params,
        ):
            key = _key(r, n)
            add(key, r[nk + 1 :])
            if hist_dim is not None:
                add_hist(key, r[nk], r[nk + 1])
    return sums, hist


def _percentile(hist: Histogram, q: float) -> float | None:
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


def _group(s: Sums, hist: Histogram | None, key: dict[str, str]) -> Group:
    cost = _money(s.cost_pico)
    return Group(
        attempts=s.n,
        tasks=s.first,
        successes=s.ok,
        completed_tasks=s.completed,
        success_rate=round(s.ok / s.n, 4) if s.n else None,
        tokens=Tokens(s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens),
        cost_usd=cost,
        cost_per_successful_task_usd=(cost / s.completed) if s.completed else None,
        latency_ms=Latency(
            median=_percentile(hist, 0.5) if hist is not None else None,
            p95=_percentile(hist, 0.95) if hist is not None else None,
            mean=round(s.latency_ms / s.n, 1) if s.n else None,
        ),
        key=key,
        verified=s.verified,
        rejected=s.rejected,
        first_try_verified_rate=round(s.first_verified / s.first, 4)
        if s.first and (s.verified or s.rejected)
        else None,
        unpriced=s.unpriced or None,
        unpriced_cost_usd=_money(s.unpriced_pico) if s.unpriced else None,
        flagged=s.flagged or None,
        flagged_gap_usd=_money(s.flagged_gap_pico) if s.flagged else None,
    )


def breakdown(db: Database, window: Window, by: Sequence[str]) -> tuple[Group, ...]:
    """One group per value of the `by` dimensions (none: a single total group), most expensive first."""
    return _groups(by, *_collect(db, window, by))


def totals_by_model(db: Database, window: Window) -> tuple[Group | None, tuple[Group, ...]]:
    """(the total, one group per model) from a single pass."""
    sums, hist = _collect(db, window, ("model",))
    return _total(sums, hist), _groups(("model",), sums, hist)


def _total(sums: dict[Key, Sums], hist: dict[Key, Histogram]) -> Group | None:
    """The single total group, folded from any one-dimension grouping (sums and histograms add up)."""
    acc = sum(sums.values(), Sums())
    merged: Histogram = {}
    for h in hist.values():
        for bucket, n in h.items():
            merged[bucket] = merged.get(bucket, 0) + n
    return next(iter(_groups((), {(): acc}, {(): merged})), None)


def _groups(by: Sequence[str], sums: dict[Key, Sums], hist: dict[Key, Histogram]) -> tuple[Group, ...]:
    dims = [BY_NAME[d] for d in by]
    out = [
        _group(
            s, hist.get(key, {}) if len(by) <= 1 else None, {d.name: d.show(k) for d, k in zip(dims, key, strict=True)}
        )
        for key, s in sums.items()
        if s.n
    ]
    out.sort(key=lambda g: (-g.cost_usd, -g.attempts))
    total_attempts = sum(g.attempts for g in out) or 1
    total_cost = sum((g.cost_usd for g in out), ZERO)
    return tuple(
        dataclasses.replace(
            g,
            share_attempts=round(g.attempts / total_attempts, 4),
            share_cost=round(float(g.cost_usd / total_cost), 4) if total_cost else 0.0,
        )
        for g in out
    )


# --------------------------------------------------------------------------- baseline
def _usd(value: Decimal) -> Decimal:
    """An exact amount written as `_money` writes picodollars (`1.5`, not `1.50`), when it is whole picodollars."""
    pico = value * PICO
    if pico == pico.to_integral_value():
        return _money(int(pico))
    return value


# A ledger row's `Usage` token counts as columns of `attempts a` (the ledger keeps the Anthropic
# convention, so its input_tokens are the uncached ones).
_TOKEN_COLUMNS = {"uncached_input_tokens": "a.input_tokens"}
_MINUTE_OF_DAY = "((a.started_ms / 60000) % 1440)"  # UTC, the same in both dialects


def _token_column(name: str) -> str:
    return _TOKEN_COLUMNS.get(name, f"a.{name}")


def baseline(db: Database, window: Window, model: CatalogModel) -> Baseline:
    """Recorded tokens re-priced on `model`: actual vs. baseline cost, overall and per priority class."""
    sums, _ = _collect(db, window, ("priority",))
    priced: dict[str, Decimal] = {}
    if model.price_rules:
        # Which rates apply depends on each prompt's size or time of day: the database prices every
        # attempt with the catalog's formula, in exact integers, one sum per priority class (FILTER,
        # not GROUP BY: no sort of a million rows).
        cost, exponent = model.cost_sql(_token_column, _MINUTE_OF_DAY)
        prios = sorted(p for (p,) in sums)
        where, params = _span_where((window.since_ms, window.until_ms))
        filters = ", ".join(f"SUM({cost}) FILTER (WHERE COALESCE(a.priority, -1) = {int(p)})" for p in prios)
        row = _exact_row(db, f"SELECT {filters} FROM attempts a{where}", params, model) if prios else ()
        for prio, value in zip(prios, row, strict=True):
            priced[prio] = Decimal(int(value or 0)).scaleb(exponent)
    else:
        # One set of rates: the summed tokens are enough, and the rollups have them.
        for (prio,), s in sums.items():
            priced[prio] = model.rates.cost(s.usage)
    classes_out = []
    for (prio,), s in sorted(sums.items()):
        label = "unknown" if prio in ("-1", "") else f"P{prio}"
        classes_out.append(_saving(label, s.n, _money(s.cost_pico), _usd(priced[prio])))

    def combine(name: str, items: list[Saving]) -> Saving:
        a = sum((c.actual_usd for c in items), ZERO)
        b = sum((c.baseline_usd for c in items), ZERO)
        return _saving(name, sum(c.attempts for c in items), a, b)

    non_critical = [c for c in classes_out if c.priority not in ("P0", "unknown")]
    return Baseline(
        model=model.name,
        note=f"re-pricing of the recorded tokens on {model.name}; not a measured run",
        total=combine("all", classes_out),
        non_critical=combine("P1-P4", non_critical),
        by_priority=tuple(classes_out),
    )


def _exact_row(db: Database, sql: str, params: Sequence[Any], model: CatalogModel) -> tuple[Any, ...]:
    """One row of integer sums, or a clear error where they would not fit the database's 64-bit integers."""
    overflow = RunError(
        f"re-pricing on {model.name} does not fit 64-bit integers (a row's tokens times a rate scaled to "
        "whole units of its finest decimal); round that model's rates to fewer decimal places"
    )
    try:
        row = db.one(sql, params)
    except Exception as exc:  # SQLite: "integer overflow" in SUM; PostgreSQL: "bigint out of range"
        if "overflow" in str(exc) or "out of range" in str(exc):
            raise overflow from None
        raise
    assert row is not None
    if any(isinstance(v, float) for v in row):  # SQLite turns an overflowing product into a float
        raise overflow
    return row


def _saving(priority: str, attempts: int, actual: Decimal, base: Decimal) -> Saving:
    return Saving(priority, attempts, actual, base, base - actual, _pct(base - actual, base))


def _pct(part: Decimal, whole: Decimal) -> float | None:
    return round(float(part / whole) * 100, 1) if whole else None


# --------------------------------------------------------------------------- failovers
def failovers(db: Database, window: Window) -> Failovers:
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
    since = window.since_ms if window.since_ms is not None else 0
    until = window.until_ms if window.until_ms is not None else 2**62
    breakers = db.query(
        "SELECT provider, state, COUNT(*) FROM breaker_events WHERE at_ms >= ? AND at_ms < ? GROUP BY 1, 2 ORDER BY 3 DESC",
        (since, until),
    )
    ordered = sorted(pairs.items(), key=lambda kv: -kv[1])
    return Failovers(
        failovers=tuple(FailoverPair(f, t, n) for (f, t), n in ordered),
        failover_attempts=sum(pairs.values()),
        escalations=_escalations(db, window),
        breaker_openings=tuple(BreakerOpening(p, s, int(n)) for p, s, n in breakers),
    )


def _escalations(db: Database, window: Window) -> tuple[Escalation, ...]:
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
    return tuple(Escalation(m, n, ok) for m, (n, ok) in sorted(per.items(), key=lambda kv: -kv[1][0]))


@record
class BreakerEvent:
    """A breaker opening (or a disable), as the dashboard lists them."""

    provider: str
    at: str  # ISO 8601
    state: str
    reason: str


def breaker_events(db: Database, since_ms: int, limit: int) -> tuple[BreakerEvent, ...]:
    """The latest breaker events since `since_ms`, newest first."""
    rows = db.query(
        "SELECT provider, at_ms, state, reason FROM breaker_events WHERE at_ms >= ? ORDER BY at_ms DESC "
        f"LIMIT {int(limit)}",
        (since_ms,),
    )
    return tuple(BreakerEvent(p, from_ms(at).isoformat(), s, r) for p, at, s, r in rows)


# --------------------------------------------------------------------------- spend per day
@record
class SpendSeries:
    """One model's (or provider's) cost per day, aligned with `Spend.days`."""

    key: str
    cost_usd: tuple[Decimal, ...]


@record
class Spend:
    """Cost per whole UTC day, by model or provider."""

    by: str
    days: tuple[str, ...]
    series: tuple[SpendSeries, ...]


def spend_by_day(db: Database, since_ms: int, by: str) -> Spend:
    """Cost per day since the day of `since_ms`, per model or provider, from the rollups."""
    if by not in ("model", "provider"):
        raise InputError(f"spend by {by}: choose model or provider")
    rows = db.query(
        f"SELECT day, {by}, SUM(cost_pico) FROM rollup_attempts WHERE day >= ? GROUP BY 1, 2 ORDER BY 1, 2",
        (day_of(since_ms),),
    )
    days = sorted({r[0] for r in rows})
    keys = sorted({r[1] for r in rows})
    series = {k: dict.fromkeys(days, ZERO) for k in keys}
    for day, key, pico in rows:
        series[key][day] = _money(pico)
    return Spend(by, tuple(days), tuple(SpendSeries(k, tuple(series[k][d] for d in days)) for k in keys))


# --------------------------------------------------------------------------- experiments
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


def experiments(db: Database, window: Window) -> tuple[Experiment, ...]:
    """Per experiment and arm: tasks, success rate with a 95 % Wilson interval, cost per success, median latency.

    The unit is a routing decision that landed in the arm (a task, or a task's stage, whose
    first attempt went to the arm's model; arms are sticky per task id); it succeeds when an
    attempt on it succeeded. Where `[verify]` judges, that means verified: a rejected attempt
    is recorded `rejected`, not `ok`.
    """
    sums, hist = _collect(db, window, ("experiment",))
    grouped: dict[str, list[Arm]] = {}
    for (key,), s in sums.items():
        exp, _, arm = key.partition(" / ")
        if not exp:
            continue
        cost = _money(s.cost_pico)
        tasks, completed = s.opened, min(s.ok, s.opened)
        grouped.setdefault(exp, []).append(
            Arm(
                arm=arm,
                tasks=tasks,
                successes=completed,
                success_rate=round(completed / tasks, 4) if tasks else None,
                ci95=wilson(completed, tasks),
                attempts=s.n,
                cost_usd=cost,
                cost_per_success_usd=cost / completed if completed else None,
                median_latency_ms=_percentile(hist.get((key,), {}), 0.5),
            )
        )
    out = []
    for exp in sorted(grouped):
        arms = tuple(sorted(grouped[exp], key=lambda x: x.arm))
        comparison = None
        small = [a.arm for a in arms if a.tasks < 30 or a.successes < 5 or a.tasks - a.successes < 5]
        if len(arms) >= 2:
            a, b = sorted(arms, key=lambda x: -x.tasks)[:2]
            p_value = _two_proportion(a.successes, a.tasks, b.successes, b.tasks)
            comparison = Comparison(
                arms=(a.arm, b.arm),
                difference=round((a.success_rate or 0) - (b.success_rate or 0), 4),
                p_value=p_value,
                test="two-proportion z-test (pooled), two-sided",
                significant_at_5pct=p_value is not None and p_value < 0.05,
            )
        warning = None
        if small or len(arms) < 2:
            warning = "too few tasks to say anything yet: " + (
                f"arm(s) {', '.join(small)} need at least 30 tasks, 5 successes and 5 failures"
                if small
                else "only one arm has data"
            )
        out.append(Experiment(exp, arms, comparison, warning))
    return tuple(out)


# --------------------------------------------------------------------------- verified outcomes
def _step(model: str, verdict: str, check: str | None) -> str:
    return f"{model} {verdict}" + (f" ({check})" if verdict != "verified" and check else "")


def verification(db: Database, window: Window, total_cost: Decimal) -> Verification | None:
    """What `[verify]` decided in the window (None when it judged nothing): counts, reasons, paths, first tries.

    Reads only the attempts `[verify]` judged (a partial index keeps them), grouped by task; a
    task's path is the sequence of its judged attempts. The first-try rate per model and label
    comes from the rollups.
    """
    where, params = _span_where((window.since_ms, window.until_ms), "a.verdict IS NOT NULL")
    rows = db.query(
        "SELECT a.task_id, a.model, a.verdict, a.verify_check, a.verify_detail, a.cost_pico FROM attempts a"
        f"{where} ORDER BY a.task_id, a.started_ms, a.attempt_id",
        params,
    )
    if not rows:
        return None
    counts = {"verified": 0, "rejected": 0, "error": 0}
    reasons: dict[tuple[str, str], list[Any]] = {}
    per_task: dict[str, tuple[list[str], int]] = {}
    for task_id, model, verdict, check, detail, pico in rows:
        counts[verdict] = counts.get(verdict, 0) + 1
        if verdict != "verified":
            entry = reasons.setdefault((model, check or "-"), [0, ""])
            entry[0] += 1
            entry[1] = _last_line(detail)
        steps, cost = per_task.get(task_id, ([], 0))
        steps.append(_step(model, verdict, check))
        per_task[task_id] = (steps, cost + int(pico or 0))
    paths: dict[tuple[str, ...], list[int]] = {}
    for steps, pico in per_task.values():
        acc = paths.setdefault(tuple(steps), [0, 0])
        acc[0] += 1
        acc[1] += pico
    verified_tasks = sum(n for path, (n, _) in paths.items() if path[-1].endswith(" verified"))
    by_model, _ = _collect(db, window, ("model",))
    by_label, _ = _collect(db, window, ("label", "model"))
    cells = [((m,), "(all)", s) for (m,), s in by_model.items()] + [((m,), lab, s) for (lab, m), s in by_label.items()]
    first_try = [
        FirstTry(m, label, s.first, s.first_verified, round(s.first_verified / s.first, 4))
        for (m,), label, s in cells
        if s.first and (s.verified or s.rejected)
    ]
    return Verification(
        verified_attempts=counts["verified"],
        rejected_attempts=counts["rejected"],
        error_attempts=counts["error"],
        verified_tasks=verified_tasks,
        cost_per_verified_task_usd=total_cost / verified_tasks if verified_tasks else None,
        rejections=tuple(
            Rejection(m, c, n, ex) for (m, c), (n, ex) in sorted(reasons.items(), key=lambda kv: (-kv[1][0], kv[0]))
        ),
        paths=tuple(
            OutcomePath(path, n, _money(pico)) for path, (n, pico) in sorted(paths.items(), key=lambda kv: -kv[1][0])
        ),
        first_try=tuple(sorted(first_try, key=lambda f: (f.model, f.label))),
    )


def _last_line(detail: str | None) -> str:
    lines = [ln.strip() for ln in (detail or "").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


# --------------------------------------------------------------------------- money in question
def money_in_question(db: Database, window: Window, total: Group | None) -> MoneyInQuestion | None:
    """Unpriced and flagged attempts in the window (None when there are none).

    The counts and sums come from the rollups (`total`); the lists read only the attempts in
    question (a partial index keeps them).
    """
    if total is None or not (total.unpriced or total.flagged):
        return None
    unpriced: list[Unpriced] = []
    if total.unpriced:
        where, params = _span_where((window.since_ms, window.until_ms), "a.cost_basis = 'unknown'")
        rows = db.query(
            "SELECT a.model, a.provider, a.cost_pico, a.usage_problem FROM attempts a"
            f"{where} ORDER BY a.started_ms, a.attempt_id",
            params,
        )
        acc: dict[tuple[str, str], list[Any]] = {}
        for model, provider, pico, problem in rows:
            entry = acc.setdefault((model, provider), [0, 0, ""])
            entry[0] += 1
            entry[1] += int(pico or 0)
            entry[2] = problem or ""
        unpriced = [
            Unpriced(m, p, n, _money(pico), why)
            for (m, p), (n, pico, why) in sorted(acc.items(), key=lambda kv: (-kv[1][1], kv[0]))
        ]
    flagged: list[FlaggedAttempt] = []
    if total.flagged:
        where, params = _span_where((window.since_ms, window.until_ms), "a.cost_flagged = 1")
        rows = db.query(
            "SELECT a.attempt_id, a.task_id, a.started_ms, a.model, a.reported_model, a.cost_usd, a.reported_cost_usd"
            f" FROM attempts a{where} ORDER BY a.started_ms DESC, a.attempt_id DESC LIMIT {FLAGGED_SHOWN}",
            params,
        )
        for attempt_id, task_id, ms, model, reported_model, cost, reported in rows:
            catalog, own = Decimal(cost), Decimal(reported or 0)
            at = from_ms(int(ms)).isoformat()
            flagged.append(FlaggedAttempt(attempt_id, task_id, at, model, reported_model, catalog, own, own - catalog))
    return MoneyInQuestion(
        unpriced_attempts=total.unpriced or 0,
        unpriced_charged_usd=total.unpriced_cost_usd or ZERO,
        flagged_attempts=total.flagged or 0,
        flagged_gap_usd=total.flagged_gap_usd or ZERO,
        unpriced=tuple(unpriced),
        flagged=tuple(flagged),
    )


# --------------------------------------------------------------------------- the whole report
def report(
    db: Database,
    window: Window,
    by: Sequence[str] = (),
    *,
    baseline_model: CatalogModel | None = None,
) -> Report:
    """The whole report."""
    _dimensions(by)  # a bad grouping fails before any query
    total, models = totals_by_model(db, window)
    return Report(
        window=window,
        by=tuple(by),
        total=total,
        groups=(models if tuple(by) == ("model",) else breakdown(db, window, by)) if by else (),
        model_distribution=models,
        failover=failovers(db, window),
        experiments=experiments(db, window),
        baseline=baseline(db, window, baseline_model) if baseline_model is not None else None,
        verification=verification(db, window, total.cost_usd if total is not None else ZERO),
        money_in_question=money_in_question(db, window, total),
    )
