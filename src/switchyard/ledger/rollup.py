"""Rollups: per-day aggregates kept next to the attempts, so reports over millions of rows stay fast.

Each recorded attempt adds itself, in the same transaction, to

* `rollup_attempts`: the additive figures of `Sums` (counts, tokens, exact cost,
  latency) per UTC day, model, provider, priority, stage, workflow, experiment,
  arm and whether the task had escalated (retry_count > 0);
* `rollup_latency`: per day, one report dimension at a time (or all), a 10 %-wide
  log-scale latency histogram, so percentiles come out of a few thousand rows;
* `rollup_labels`: the same figures per day, label and model;
* `rollup_failovers`: per day, the provider failed over from and to.

Reports read these for whole days and scan `attempts` (by its `started_ms`
index) only for the partial days at the edges of a window, so every figure is
exact. `completed` (the attempt that finished its task) is added later, when the
task is marked done.

This module owns those tables: their SQL (`MIGRATIONS`), what one attempt adds
to them, and the report dimensions (`DIMENSIONS`) that group them, each defined
once for the rollups, for a scan of `attempts`, and for the histograms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from switchyard._records import record
from switchyard.catalog import Usage
from switchyard.ledger.db import Database, Migration

if TYPE_CHECKING:
    from switchyard.ledger.store import AttemptRecord

__all__ = [
    "DIMENSIONS",
    "KEYS",
    "MIGRATIONS",
    "NO_LABEL",
    "SUMS",
    "Dimension",
    "Sums",
    "add_attempts",
    "adjust",
    "day_of",
    "labels_of",
    "mark_completed",
]

# Frozen: a shipped migration's SQL never changes (see ledger/db.py). 0005 also added the
# attempts columns that feed the rollups, and `breaker_events`, read by reports.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0005_reporting",
        """
        ALTER TABLE attempts ADD COLUMN first INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE attempts ADD COLUMN completed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE attempts ADD COLUMN failover_from TEXT;
        ALTER TABLE attempts ADD COLUMN latency_bucket INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE breaker_events (
            provider TEXT NOT NULL,
            at_ms BIGINT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX breaker_events_at ON breaker_events (at_ms);
        CREATE TABLE rollup_attempts (
            day TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, priority INTEGER NOT NULL,
            stage TEXT NOT NULL, workflow TEXT NOT NULL, experiment TEXT NOT NULL, arm TEXT NOT NULL,
            escalated INTEGER NOT NULL,
            n BIGINT NOT NULL, ok BIGINT NOT NULL, first BIGINT NOT NULL, opened BIGINT NOT NULL,
            completed BIGINT NOT NULL, cost_pico BIGINT NOT NULL, input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL, latency_ms BIGINT NOT NULL,
            PRIMARY KEY (day, model, provider, priority, stage, workflow, experiment, arm, escalated)
        );
        CREATE TABLE rollup_latency (
            dim TEXT NOT NULL, value TEXT NOT NULL, day TEXT NOT NULL, bucket INTEGER NOT NULL, n BIGINT NOT NULL,
            PRIMARY KEY (dim, value, day, bucket)
        );
        CREATE TABLE rollup_labels (
            day TEXT NOT NULL, label TEXT NOT NULL, model TEXT NOT NULL,
            n BIGINT NOT NULL, ok BIGINT NOT NULL, first BIGINT NOT NULL, opened BIGINT NOT NULL,
            completed BIGINT NOT NULL, cost_pico BIGINT NOT NULL, input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL, latency_ms BIGINT NOT NULL,
            PRIMARY KEY (day, label, model)
        );
        CREATE TABLE rollup_failovers (
            day TEXT NOT NULL, from_provider TEXT NOT NULL, to_provider TEXT NOT NULL, n BIGINT NOT NULL,
            PRIMARY KEY (day, from_provider, to_provider)
        )
        """,
        sha256="bbe49d12788c05a359fc4a916506efd860a8623f1b959665c18c3870045b16d3",
    ),
    # Verified outcomes (store's 0010_verdicts): attempts `[verify]` verified or rejected, and first
    # attempts that were verified (the first-try verified rate).
    Migration(
        "0011_verdict_rollups",
        """
        ALTER TABLE rollup_attempts ADD COLUMN verified BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_attempts ADD COLUMN rejected BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_attempts ADD COLUMN first_verified BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_labels ADD COLUMN verified BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_labels ADD COLUMN rejected BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_labels ADD COLUMN first_verified BIGINT NOT NULL DEFAULT 0
        """,
        sha256="93b7d7f911a657b868707e90d6bdf726bcb3321c1c3d1f92fb7f1e90104e7551",
    ),
    # Money in question (store's 0012_cost_basis): attempts whose usage could not be read (`unpriced`,
    # charged their worst case, `unpriced_pico`) and attempts whose reported cost is far from the
    # catalog's (`flagged`, and the sum of reported minus catalog over them, `flagged_gap_pico`).
    Migration(
        "0013_cost_basis_rollups",
        """
        ALTER TABLE rollup_attempts ADD COLUMN unpriced BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_attempts ADD COLUMN unpriced_pico BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_attempts ADD COLUMN flagged BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_attempts ADD COLUMN flagged_gap_pico BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_labels ADD COLUMN unpriced BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_labels ADD COLUMN unpriced_pico BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_labels ADD COLUMN flagged BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE rollup_labels ADD COLUMN flagged_gap_pico BIGINT NOT NULL DEFAULT 0
        """,
        sha256="a4675f0d93c1f61c6db38802f502a8180aab7990c4b6fd68e6425ee2f4e1641f",
    ),
    # Attempts with no label counted under `(none)` (`report --by label` adds up to the total): those
    # recorded before, added to the label rollups once.
    Migration(
        "0031_unlabelled_rollups",
        """
        INSERT INTO rollup_labels (day, label, model, n, ok, first, opened, completed, cost_pico, input_tokens, output_tokens, cache_read_tokens,
            cache_write_tokens, reasoning_tokens, latency_ms, verified, rejected, first_verified, unpriced,
            unpriced_pico, flagged, flagged_gap_pico)
        SELECT date(started_ms / 1000, 'unixepoch'), '(none)', model, COUNT(*),
            SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), SUM(first),
            SUM(CASE WHEN candidate_index = 0 AND try_index = 0 THEN 1 ELSE 0 END), SUM(completed), SUM(cost_pico),
            SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
            SUM(reasoning_tokens), SUM(latency_ms), SUM(CASE WHEN verdict = 'verified' THEN 1 ELSE 0 END),
            SUM(CASE WHEN verdict = 'rejected' THEN 1 ELSE 0 END),
            SUM(CASE WHEN verdict = 'verified' THEN first ELSE 0 END),
            SUM(CASE WHEN cost_basis = 'unknown' THEN 1 ELSE 0 END),
            SUM(CASE WHEN cost_basis = 'unknown' THEN cost_pico ELSE 0 END), SUM(cost_flagged),
            SUM(CASE WHEN cost_flagged = 1 THEN COALESCE(reported_cost_pico, 0) - cost_pico ELSE 0 END)
        FROM attempts WHERE labels = '[]' AND NOT EXISTS (SELECT 1 FROM rollup_labels WHERE label = '(none)')
        GROUP BY 1, 3;
        INSERT INTO rollup_latency (dim, value, day, bucket, n)
        SELECT 'label', '(none)', date(started_ms / 1000, 'unixepoch'), latency_bucket, COUNT(*)
        FROM attempts WHERE labels = '[]'
            AND NOT EXISTS (SELECT 1 FROM rollup_latency WHERE dim = 'label' AND value = '(none)')
        GROUP BY 3, 4
        """,
        """
        INSERT INTO rollup_labels (day, label, model, n, ok, first, opened, completed, cost_pico, input_tokens, output_tokens, cache_read_tokens,
            cache_write_tokens, reasoning_tokens, latency_ms, verified, rejected, first_verified, unpriced,
            unpriced_pico, flagged, flagged_gap_pico)
        SELECT to_char(to_timestamp(started_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), '(none)', model, COUNT(*),
            SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), SUM(first),
            SUM(CASE WHEN candidate_index = 0 AND try_index = 0 THEN 1 ELSE 0 END), SUM(completed), SUM(cost_pico),
            SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
            SUM(reasoning_tokens), SUM(latency_ms), SUM(CASE WHEN verdict = 'verified' THEN 1 ELSE 0 END),
            SUM(CASE WHEN verdict = 'rejected' THEN 1 ELSE 0 END),
            SUM(CASE WHEN verdict = 'verified' THEN first ELSE 0 END),
            SUM(CASE WHEN cost_basis = 'unknown' THEN 1 ELSE 0 END),
            SUM(CASE WHEN cost_basis = 'unknown' THEN cost_pico ELSE 0 END), SUM(cost_flagged),
            SUM(CASE WHEN cost_flagged = 1 THEN COALESCE(reported_cost_pico, 0) - cost_pico ELSE 0 END)
        FROM attempts WHERE labels = '[]' AND NOT EXISTS (SELECT 1 FROM rollup_labels WHERE label = '(none)')
        GROUP BY 1, 3;
        INSERT INTO rollup_latency (dim, value, day, bucket, n)
        SELECT 'label', '(none)', to_char(to_timestamp(started_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), latency_bucket, COUNT(*)
        FROM attempts WHERE labels = '[]'
            AND NOT EXISTS (SELECT 1 FROM rollup_latency WHERE dim = 'label' AND value = '(none)')
        GROUP BY 3, 4
        """,
        sha256="c8005b0582a5997f62cbb1315ce386f2b8b91b92d3d2b76f5e751f56fcc58a8e",
    ),
)


def day_of(ms: int) -> str:
    """The UTC day of an epoch-milliseconds time."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- figures
@record
class Sums:
    """The additive figures of a set of attempts: one rollup row, a scan of `attempts`, or a sum of those.

    Each field is a column of `rollup_attempts` and `rollup_labels`; `_SCAN` says how
    SQL computes it from `attempts` rows, `Sums.of` how one attempt adds to it.
    """

    n: int = 0
    ok: int = 0
    first: int = 0  # the task's very first attempt: tasks are counted where they started
    opened: int = 0  # a routing decision's first attempt (first candidate, first try)
    completed: int = 0  # the attempt that finished its task
    cost_pico: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    latency_ms: int = 0
    verified: int = 0  # attempts `[verify]` verified
    rejected: int = 0  # attempts `[verify]` rejected
    first_verified: int = 0  # a task's very first attempt, verified
    unpriced: int = 0  # attempts whose usage could not be read (cost_basis "unknown")
    unpriced_pico: int = 0  # what they were charged: their worst case (in cost_pico too)
    flagged: int = 0  # attempts whose reported cost is far from the catalog's
    flagged_gap_pico: int = 0  # over those: reported cost minus catalog cost

    @classmethod
    def of(cls, rec: AttemptRecord) -> Sums:
        """What one attempt adds."""
        verified = rec.verdict == "verified"
        unpriced = rec.cost_basis == "unknown"
        gap = (rec.reported_cost_pico or 0) - rec.cost_pico if rec.cost_flagged else 0
        return cls(
            1,
            1 if rec.status == "ok" else 0,
            1 if rec.first else 0,
            1 if not rec.candidate_index and not rec.try_index else 0,
            1 if rec.completed else 0,
            rec.cost_pico,
            rec.input_tokens,
            rec.output_tokens,
            rec.cache_read_tokens,
            rec.cache_write_tokens,
            rec.reasoning_tokens,
            rec.latency_ms,
            1 if verified else 0,
            1 if rec.verdict == "rejected" else 0,
            1 if verified and rec.first else 0,
            1 if unpriced else 0,
            rec.cost_pico if unpriced else 0,
            1 if rec.cost_flagged else 0,
            gap,
        )

    @classmethod
    def from_sql(cls, values: Sequence[Any]) -> Sums:
        """From the columns of `SUMS_SQL` or `SCAN_SUMS_SQL` (NULL sums are zero)."""
        return cls(*(int(v or 0) for v in values))

    def values(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in SUMS)

    def __add__(self, other: Sums) -> Sums:
        return Sums(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    @property
    def usage(self) -> Usage:
        """The summed tokens (in the ledger's convention: input excludes cache reads and writes)."""
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )


SUMS = tuple(f.name for f in fields(Sums))
_SCAN = {
    "n": "COUNT(*)",
    "ok": "SUM(CASE WHEN a.status = 'ok' THEN 1 ELSE 0 END)",
    "first": "SUM(a.first)",
    "opened": "SUM(CASE WHEN a.candidate_index = 0 AND a.try_index = 0 THEN 1 ELSE 0 END)",
    "completed": "SUM(a.completed)",
    "verified": "SUM(CASE WHEN a.verdict = 'verified' THEN 1 ELSE 0 END)",
    "rejected": "SUM(CASE WHEN a.verdict = 'rejected' THEN 1 ELSE 0 END)",
    "first_verified": "SUM(CASE WHEN a.verdict = 'verified' THEN a.first ELSE 0 END)",
    "unpriced": "SUM(CASE WHEN a.cost_basis = 'unknown' THEN 1 ELSE 0 END)",
    "unpriced_pico": "SUM(CASE WHEN a.cost_basis = 'unknown' THEN a.cost_pico ELSE 0 END)",
    "flagged": "SUM(a.cost_flagged)",
    "flagged_gap_pico": "SUM(CASE WHEN a.cost_flagged = 1 THEN COALESCE(a.reported_cost_pico, 0) - a.cost_pico ELSE 0 END)",
}
SUMS_SQL = ", ".join(f"SUM({name})" for name in SUMS)  # over a rollup table
SCAN_SUMS_SQL = ", ".join(_SCAN.get(name, f"SUM(a.{name})") for name in SUMS)  # over `attempts a`


# --------------------------------------------------------------------------- dimensions
NO_LABEL = "(none)"  # the label an attempt with no labels is counted under, so `--by label` adds up to the total


def labels_of(rec: AttemptRecord) -> tuple[str, ...]:
    """The labels `rec` is rolled up under: its own, or `(none)`."""
    return tuple(rec.labels) or (NO_LABEL,)


def _dash(value: str) -> str:
    return value or "-"


@record
class Dimension:
    """A way to group a report (`switchyard report --by NAME`), defined once for every source.

    `rollup` is its value in `rollup_attempts` (and in `rollup_labels` when `in_labels`),
    `scan` the same value computed from an `attempts` row `a` (`scan_pg` where PostgreSQL
    needs other SQL), `values` the same as text from an attempt, for its latency histogram.
    """

    name: str
    rollup: str
    scan: str
    values: Callable[[AttemptRecord, str], tuple[str, ...]]  # (attempt, its day) -> histogram keys
    scan_pg: str | None = None
    in_labels: bool = False
    show: Callable[[str], str] = field(default=_dash)

    def scan_sql(self, dialect: str) -> str:
        return self.scan_pg if dialect == "postgres" and self.scan_pg is not None else self.scan


def _show_priority(value: str) -> str:
    return "-" if value in ("", "-1") else f"P{value}"


def _show_experiment(value: str) -> str:
    return "-" if value.strip() == "/" else value


def _priority(rec: AttemptRecord) -> int:
    return -1 if rec.priority is None else rec.priority


# The order is the order `switchyard report --by` lists them in.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("model", "model", "a.model", lambda r, day: (r.model,), in_labels=True),
    Dimension("provider", "provider", "a.provider", lambda r, day: (r.provider,)),
    Dimension("label", "label", f"COALESCE(l.value, '{NO_LABEL}')", lambda r, day: labels_of(r), in_labels=True),
    Dimension(
        "priority", "priority", "COALESCE(a.priority, -1)", lambda r, day: (str(_priority(r)),), show=_show_priority
    ),
    Dimension("stage", "stage", "COALESCE(a.stage, '')", lambda r, day: (r.stage or "",)),
    Dimension("workflow", "workflow", "COALESCE(a.workflow, '')", lambda r, day: (r.workflow or "",)),
    Dimension(
        "day",
        "day",
        "date(a.started_ms / 1000, 'unixepoch')",
        lambda r, day: (day,),
        scan_pg="to_char(to_timestamp(a.started_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        in_labels=True,
    ),
    Dimension(
        "experiment",
        "experiment || ' / ' || arm",
        "COALESCE(a.experiment, '') || ' / ' || COALESCE(a.arm, '')",
        lambda r, day: (f"{r.experiment or ''} / {r.arm or ''}",),
        show=_show_experiment,
    ),
)
BY_NAME = {d.name: d for d in DIMENSIONS}

# The key columns of `rollup_attempts`, and an attempt's values for them.
KEYS = ("day", "model", "provider", "priority", "stage", "workflow", "experiment", "arm", "escalated")


def _keys(rec: AttemptRecord) -> tuple[Any, ...]:
    return (
        day_of(rec.started_ms),
        rec.model,
        rec.provider,
        _priority(rec),
        rec.stage or "",
        rec.workflow or "",
        rec.experiment or "",
        rec.arm or "",
        1 if rec.task_retry else 0,
    )


# --------------------------------------------------------------------------- writing
def _upsert(table: str, keys: Sequence[str], sums: Sequence[str]) -> str:
    cols = [*keys, *sums]
    updates = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in sums)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_ATTEMPTS = _upsert("rollup_attempts", KEYS, SUMS)
_LATENCY = _upsert("rollup_latency", ("dim", "value", "day", "bucket"), ("n",))
_LABELS = _upsert("rollup_labels", ("day", "label", "model"), SUMS)
_FAILOVERS = _upsert("rollup_failovers", ("day", "from_provider", "to_provider"), ("n",))


def add_attempts(db: Database, recs: Sequence[AttemptRecord]) -> None:
    """Add newly inserted attempts to every rollup (call inside the inserting transaction)."""
    attempts, latency, labels, failovers = [], [], [], []
    for rec in recs:
        keys = _keys(rec)
        sums = Sums.of(rec).values()
        attempts.append([*keys, *sums])
        day, bucket = keys[0], rec.latency_bucket
        latency.append(["all", "all", day, bucket, 1])
        for dim in DIMENSIONS:
            for value in dim.values(rec, day):
                latency.append([dim.name, value, day, bucket, 1])
        for label in labels_of(rec):
            labels.append([day, label, rec.model, *sums])
        if rec.failover_from:
            failovers.append([day, rec.failover_from, rec.provider, 1])
    for sql, values in ((_ATTEMPTS, attempts), (_LATENCY, latency), (_LABELS, labels), (_FAILOVERS, failovers)):
        if values:
            db.executemany(sql, values)


def adjust(db: Database, rec: AttemptRecord, deltas: dict[str, int]) -> None:
    """Change the figures `rec` (an attempt already in the rollups) added: `{"ok": -1, "rejected": 1}`."""
    assert set(deltas) <= set(SUMS), deltas
    keys = _keys(rec)
    sets = ", ".join(f"{k} = {k} + ?" for k in deltas)
    where = " AND ".join(f"{k} = ?" for k in KEYS)
    db.execute(f"UPDATE rollup_attempts SET {sets} WHERE {where}", (*deltas.values(), *keys))
    for label in labels_of(rec):
        db.execute(
            f"UPDATE rollup_labels SET {sets} WHERE day = ? AND label = ? AND model = ?",
            (*deltas.values(), keys[0], label, rec.model),
        )


def mark_completed(db: Database, rec: AttemptRecord) -> None:
    """Count `rec` (an attempt already in the rollups) as the one that completed its task."""
    keys = _keys(rec)
    where = " AND ".join(f"{k} = ?" for k in KEYS)
    db.execute(f"UPDATE rollup_attempts SET completed = completed + 1 WHERE {where}", keys)
    for label in labels_of(rec):
        db.execute(
            "UPDATE rollup_labels SET completed = completed + 1 WHERE day = ? AND label = ? AND model = ?",
            (keys[0], label, rec.model),
        )
