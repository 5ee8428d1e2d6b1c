"""The ledger: one row per provider attempt, failed ones included.

Rows are keyed by `attempt_id`; recording the same id twice keeps the first
row, so a step replayed after a crash never leaves two rows for one attempt.
Costs are stored twice: as exact decimal text (the record) and as integer
picodollars (1e-12 USD), which SQL can sum exactly and quickly. No prompt text
and no secrets: a prompt is kept as its size and SHA-256.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from switchyard.catalog import Usage
from switchyard.ledger import leases, rollup
from switchyard.ledger.db import Database, Migration, connect, schema

__all__ = ["MIGRATIONS", "PICO", "SCHEMA", "AttemptRecord", "BreakerRow", "Ledger", "from_ms", "to_ms"]

PICO = Decimal(10) ** 12


def to_ms(at: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(at.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_pico(value: Decimal | None) -> int | None:
    """Integer picodollars (rounded half to even), or None."""
    return None if value is None else int((value * PICO).to_integral_value())


@dataclass(frozen=True)
class AttemptRecord:
    """Everything we keep about one call to one provider."""

    attempt_id: str
    task_id: str
    provider: str
    model: str
    status: str  # ok | failed | timeout | interrupted | rejected (`[verify]` rejected its change)
    started_ms: int
    ended_ms: int
    stage: str | None = None
    workflow: str | None = None
    rule: int | None = None
    reason: str | None = None
    experiment: str | None = None
    arm: str | None = None
    candidate_index: int = 0
    try_index: int = 0
    task_retry: int = 0
    priority: int | None = None
    labels: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    reported_cost_usd: Decimal | None = None
    latency_ms: int = 0
    error_class: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    exit_code: int | None = None
    usage_problem: str | None = None
    prompt_bytes: int = 0
    prompt_sha256: str | None = None
    run_id: str | None = None
    hold_id: str | None = None
    first: bool = False  # the task's very first attempt: reports count tasks by it
    completed: bool = False  # this attempt finished its task (set later by mark_completed)
    failover_from: str | None = None  # the provider tried before this one, when this is a failover
    verdict: str | None = None  # `[verify]`'s outcome: verified | rejected | error (None: nothing verified it)
    verify_check: str | None = None  # the check that rejected it (or could not run)
    verify_detail: str | None = None  # why: the tail of that check's output (redacted)
    verify_ms: int = 0  # time spent verifying (not in latency_ms)
    # How cost_usd was found: "catalog" (the usage read × the catalog's prices), "reported" (no usage,
    # the provider's own figure), "unknown" (a call that ran and whose usage could not be read: its
    # worst case, the budget hold, is charged; reports show it as unpriced).
    cost_basis: str = "catalog"
    reported_model: str | None = None  # the model the provider says ran, when it says
    cost_flagged: bool = False  # reported and catalog cost differ by more than [runner] reported_cost_gap
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def usage(self) -> Usage:
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )

    @property
    def started_at(self) -> datetime:
        return from_ms(self.started_ms)

    @property
    def cost_pico(self) -> int:
        """The cost in integer picodollars (stored next to the exact text, for exact sums in SQL)."""
        pico = to_pico(self.cost_usd)
        assert pico is not None
        return pico

    @property
    def reported_cost_pico(self) -> int | None:
        """The provider's own cost figure in integer picodollars (stored, for the gap's sums in SQL)."""
        return to_pico(self.reported_cost_usd)

    @property
    def latency_bucket(self) -> int:
        """The latency's log-scale histogram bucket (stored, for percentiles from rollups)."""
        return latency_bucket(self.latency_ms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (decimals as strings, times as ISO 8601)."""
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["cost_usd"] = str(self.cost_usd)
        d["reported_cost_usd"] = None if self.reported_cost_usd is None else str(self.reported_cost_usd)
        d["started_at"] = from_ms(self.started_ms).isoformat()
        d["ended_at"] = from_ms(self.ended_ms).isoformat()
        return d


def _column_codec(name: str, annotation: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(to the column, from the column) for a field of `AttemptRecord`, chosen by its type."""
    if annotation.startswith("Decimal"):
        return (lambda v: None if v is None else str(v)), (lambda v: None if v is None else Decimal(v))
    if annotation.startswith("tuple[str"):
        return (lambda v: json.dumps(list(v))), (lambda v: tuple(json.loads(v or "[]")))
    if annotation.startswith("dict["):
        return (lambda v: json.dumps(v, sort_keys=True, default=str)), (lambda v: json.loads(v or "{}"))
    if annotation == "bool":
        return (lambda v: 1 if v else 0), bool
    if annotation in ("str", "int", "str | None", "int | None"):
        return (lambda v: v), (lambda v: v)
    raise TypeError(f"AttemptRecord.{name}: no column type for {annotation!r} (add one to _column_codec)")


# Every field of the record is a column of the same name; `cost_pico`, `latency_bucket` and
# `reported_cost_pico` are stored too, computed from the record (its properties), for SQL sums and histograms.
_FIELDS = [(f.name, *_column_codec(f.name, str(f.type))) for f in fields(AttemptRecord)]
_DERIVED = ("cost_pico", "latency_bucket", "reported_cost_pico")
_INSERT_COLUMNS = [name for name, _, _ in _FIELDS] + list(_DERIVED)
_SELECT = "SELECT " + ", ".join(name for name, _, _ in _FIELDS) + " FROM attempts"


def _encode(rec: AttemptRecord) -> list[Any]:
    return [enc(getattr(rec, name)) for name, enc, _ in _FIELDS] + [getattr(rec, name) for name in _DERIVED]


def _decode(row: Sequence[Any]) -> AttemptRecord:
    return AttemptRecord(**{name: dec(v) for (name, _, dec), v in zip(_FIELDS, row, strict=True)})


TASK_STATES = ("queued", "running", "retrying", "blocked", "done", "dead", "cancelled")


@dataclass(frozen=True)
class TaskRow:
    """A task as the coordinator tracks it (its attempts are in `attempts`)."""

    task_id: str
    state: str
    source: str | None
    task_json: str
    enqueued_ms: int
    updated_ms: int
    retry_count: int = 0
    workflow: str | None = None
    stage: str | None = None
    last_error: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class BreakerRow:
    """Persisted circuit-breaker state of one provider."""

    provider: str
    state: str  # closed | open | half_open | disabled
    failures: int = 0
    opened_ms: int | None = None
    probe_ms: int | None = None
    reason: str = ""
    updated_ms: int = 0
    # Disabled by a configuration error: the fingerprint of the provider's config and environment
    # then (`Health.fingerprint`); once they change the provider is tried again.
    config_sha: str | None = None


# The tables this module reads and writes, as frozen migrations (see `ledger/db.py`): a shipped
# migration's SQL never changes. To add a column to `attempts`, add a field to `AttemptRecord` and
# append `Migration("NNNN_name", "ALTER TABLE attempts ADD COLUMN ...", sha256=...)` with the next
# free number across every module's list (`SCHEMA` below checks that). The budget tables are
# here because every process that opens the ledger must create them, and the ledger does not
# import `switchyard.budgets` (which owns the queries on them).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_attempts",
        """
        CREATE TABLE attempts (
            attempt_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL,
            started_ms BIGINT NOT NULL,
            ended_ms BIGINT NOT NULL,
            stage TEXT,
            workflow TEXT,
            rule INTEGER,
            reason TEXT,
            experiment TEXT,
            arm TEXT,
            candidate_index INTEGER NOT NULL DEFAULT 0,
            try_index INTEGER NOT NULL DEFAULT 0,
            task_retry INTEGER NOT NULL DEFAULT 0,
            priority INTEGER,
            labels TEXT NOT NULL DEFAULT '[]',
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_tokens BIGINT NOT NULL DEFAULT 0,
            cache_write_tokens BIGINT NOT NULL DEFAULT 0,
            reasoning_tokens BIGINT NOT NULL DEFAULT 0,
            cost_usd TEXT NOT NULL,
            cost_pico BIGINT NOT NULL,
            reported_cost_usd TEXT,
            latency_ms BIGINT NOT NULL DEFAULT 0,
            error_class TEXT,
            error_message TEXT,
            http_status INTEGER,
            exit_code INTEGER,
            usage_problem TEXT,
            prompt_bytes BIGINT NOT NULL DEFAULT 0,
            prompt_sha256 TEXT,
            run_id TEXT,
            hold_id TEXT,
            extra TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX attempts_started ON attempts (started_ms);
        CREATE INDEX attempts_task ON attempts (task_id, started_ms);
        CREATE INDEX attempts_provider ON attempts (provider, started_ms)
        """,
        sha256="4a64f12549bae69837871382886a3b406f863a4bb82284fb897b422c671f5d67",
    ),
    Migration(
        "0002_breakers",
        """
        CREATE TABLE breakers (
            provider TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            opened_ms BIGINT,
            probe_ms BIGINT,
            reason TEXT NOT NULL DEFAULT '',
            updated_ms BIGINT NOT NULL
        )
        """,
        sha256="3c39083727e15e93131778e1a25a7ebea02fa2e6ee1490eddf8707695664b006",
    ),
    Migration(
        "0003_tasks",
        """
        CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            source TEXT,
            task_json TEXT NOT NULL,
            enqueued_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL,
            retry_count INTEGER NOT NULL DEFAULT 0,
            workflow TEXT,
            stage TEXT,
            last_error TEXT,
            note TEXT
        );
        CREATE INDEX tasks_state ON tasks (state)
        """,
        sha256="894f7674916a2c17d9aed5b2253ebf2745790c55e873624060f6a14825ce06d5",
    ),
    Migration(
        "0004_budgets",
        """
        CREATE TABLE budget_counters (
            counter TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            period TEXT NOT NULL,
            period_start TEXT NOT NULL,
            limit_pico BIGINT NOT NULL,
            spent_pico BIGINT NOT NULL DEFAULT 0,
            held_pico BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE budget_holds (
            hold_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            amount_pico BIGINT NOT NULL,
            actual_pico BIGINT,
            state TEXT NOT NULL,
            counters TEXT NOT NULL,
            owner TEXT NOT NULL DEFAULT '',
            created_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL
        );
        CREATE INDEX budget_holds_state ON budget_holds (state)
        """,
        sha256="54c982975327a9288c64943c9b9e0a3b7bde4e03014990a51efea49df2f1fa90",
    ),
    Migration(
        "0010_verdicts",
        """
        ALTER TABLE attempts ADD COLUMN verdict TEXT;
        ALTER TABLE attempts ADD COLUMN verify_check TEXT;
        ALTER TABLE attempts ADD COLUMN verify_detail TEXT;
        ALTER TABLE attempts ADD COLUMN verify_ms BIGINT NOT NULL DEFAULT 0;
        CREATE INDEX attempts_verdict ON attempts (started_ms) WHERE verdict IS NOT NULL
        """,
        sha256="6d8f46c728aeaec6500b9d911df8a3315e6326208a8085742f51ab932cb1342c",
    ),
    # Money that was not counted (issue 11): how each cost was found, the model the provider says
    # ran, its own cost as picodollars, and whether that cost and the catalog's are far apart.
    Migration(
        "0012_cost_basis",
        """
        ALTER TABLE attempts ADD COLUMN cost_basis TEXT NOT NULL DEFAULT 'catalog';
        ALTER TABLE attempts ADD COLUMN reported_model TEXT;
        ALTER TABLE attempts ADD COLUMN cost_flagged INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE attempts ADD COLUMN reported_cost_pico BIGINT;
        CREATE INDEX attempts_cost_questions ON attempts (started_ms) WHERE cost_basis = 'unknown' OR cost_flagged = 1
        """,
        sha256="595df256258c3b5ecc437c3a9a72e254f10477a893ec953d9a1034c422742181",
    ),
    # A provider disabled by a configuration error (a missing executable, a rejected command line)
    # remembers the config and environment it failed under, and is tried again once they change.
    Migration(
        "0014_breaker_config",
        "ALTER TABLE breakers ADD COLUMN config_sha TEXT",
        sha256="48c156ea96dfd9eda20a1d73e55ddcbcd977be390816c57840a925423883d931",
    ),
    # The read commands at scale: `log` pages by (started_ms, attempt_id) and `status --all` by
    # (enqueued_ms, task_id), each from where the last page ended; `status` counts tasks per state and
    # lists a state's newest by (state, updated_ms, task_id). The new indexes cover the old single-column ones.
    Migration(
        "0030_read_indexes",
        """
        CREATE INDEX attempts_started_id ON attempts (started_ms, attempt_id);
        DROP INDEX attempts_started;
        CREATE INDEX tasks_state_updated ON tasks (state, updated_ms, task_id);
        DROP INDEX tasks_state;
        CREATE INDEX tasks_enqueued ON tasks (enqueued_ms, task_id)
        """,
        sha256="d3a4eedad60004cb229bef009d950d29dd770254481e4e4e23c97772605e4824",
    ),
    # `status` totals the tasks' attempts: the attempts of no task (`exec`) are counted apart, one row
    # kept with each record (an attempt whose task id has no `tasks` row), the existing ones counted once here.
    Migration(
        "0045_exec_totals",
        """
        CREATE TABLE exec_totals (one INTEGER PRIMARY KEY, n BIGINT NOT NULL, cost_pico BIGINT NOT NULL);
        INSERT INTO exec_totals (one, n, cost_pico)
            SELECT 0, COUNT(*), COALESCE(SUM(a.cost_pico), 0) FROM attempts a
            WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = a.task_id)
        """,
        sha256="6c20f2a1cd137ba25d7f94e6f18c93f8b30ae2c8d680bb2b8fa46c90643742dd",
    ),
    # A call in flight: written (with the attempt it becomes if its machine dies: `interrupted`, charged its
    # hold) just before the provider is called, removed with the attempt's record. A survivor taking a dead
    # session over records the calls it left as those attempts, so a killed call is in the ledger.
    Migration(
        "0046_calls",
        """
        CREATE TABLE calls (attempt_id TEXT PRIMARY KEY, owner TEXT NOT NULL, record TEXT NOT NULL);
        CREATE INDEX calls_owner ON calls (owner)
        """,
        sha256="87bb505c0c06c065c0eedc90593af37a9e992fbbc47badac099bf2f2d50260a7",
    ),
)

# Attempts of no task added to `exec_totals` (n, picodollars): `{where}` decides whether they are.
_ADD_EXEC = (
    "INSERT INTO exec_totals (one, n, cost_pico) SELECT 0, ?, ? WHERE {where} ON CONFLICT (one) DO UPDATE "
    "SET n = exec_totals.n + excluded.n, cost_pico = exec_totals.cost_pico + excluded.cost_pico"
)

# Every module's migrations, in order: what `Ledger` applies.
SCHEMA: tuple[Migration, ...] = schema(MIGRATIONS, rollup.MIGRATIONS, leases.MIGRATIONS)


_TASK_SELECT = (
    "SELECT task_id, state, source, task_json, enqueued_ms, updated_ms, retry_count, workflow, stage, "
    "last_error, note FROM tasks"
)


def _attempt_filters(
    task_id: str | None, since_ms: int | None, until_ms: int | None, provider: str | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for col, op, value in (
        ("task_id", "=", task_id),
        ("started_ms", ">=", since_ms),
        ("started_ms", "<", until_ms),
        ("provider", "=", provider),
    ):
        if value is not None:
            where.append(f"{col} {op} ?")
            params.append(value)
    return where, params


def latency_bucket(ms: int) -> int:
    """A log-scale bucket (10% wide) for latency percentiles computed from rollups over millions of rows."""
    return 0 if ms <= 0 else int(math.log(ms) / _LOG_STEP) + 1


def bucket_value(bucket: int) -> float:
    """The geometric middle of a latency bucket, in ms."""
    return 0.0 if bucket <= 0 else math.exp((bucket - 0.5) * _LOG_STEP)


_LOG_STEP = math.log(1.1)


class Ledger:
    """Append-only attempt records plus small state tables (breakers)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.db.migrate(SCHEMA)
        placeholders = ", ".join("?" for _ in _INSERT_COLUMNS)
        conflict = "ON CONFLICT (attempt_id) DO NOTHING"
        self._insert = f"INSERT INTO attempts ({', '.join(_INSERT_COLUMNS)}) VALUES ({placeholders}) {conflict}"

    @classmethod
    def open(cls, url_or_path: str | Path) -> Ledger:
        """Open (creating and migrating as needed) the ledger at a path or `postgresql://` URL."""
        return cls(connect(url_or_path))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # attempts ------------------------------------------------------------------
    def call_started(self, interrupted: AttemptRecord, owner: str) -> None:
        """A call is about to be made by `owner` (a session); `interrupted` is its record if that session dies first."""
        self.db.execute(
            "INSERT INTO calls (attempt_id, owner, record) VALUES (?, ?, ?) ON CONFLICT (attempt_id) DO UPDATE "
            "SET owner = excluded.owner, record = excluded.record",
            (interrupted.attempt_id, owner, json.dumps(_encode(interrupted)[: len(_FIELDS)])),
        )

    def record_interrupted(self, owners: Sequence[str]) -> list[AttemptRecord]:
        """Record the calls dead sessions `owners` left in flight as their interrupted attempts; those recorded."""
        if not owners:
            return []
        marks = ", ".join("?" for _ in owners)
        rows = self.db.query(
            f"SELECT c.record FROM calls c WHERE c.owner IN ({marks}) "
            "AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.attempt_id = c.attempt_id)",
            list(owners),
        )
        done = []
        for (text,) in rows:
            rec = _decode(json.loads(text))
            with self.db.transaction():
                self.call_done(rec.attempt_id)
                if self.record(rec):
                    done.append(rec)
        return done

    def call_done(self, attempt_id: str) -> None:
        """The call is recorded (in the caller's transaction): no longer in flight."""
        self.db.execute("DELETE FROM calls WHERE attempt_id = ?", (attempt_id,))

    def record(self, rec: AttemptRecord) -> bool:
        """Insert one attempt (and add it to the rollups); False if that attempt id was already recorded."""
        with self.db.transaction():
            if self.db.execute(self._insert, _encode(rec)) == 0:
                return False
            rollup.add_attempts(self.db, [rec])
            no_task = _ADD_EXEC.format(where="NOT EXISTS (SELECT 1 FROM tasks WHERE task_id = ?)")
            self.db.execute(no_task, (1, rec.cost_pico, rec.task_id))
        return True

    def record_many(self, recs: Iterable[AttemptRecord]) -> None:
        """Bulk insert of new attempts (benchmarks, imports), rollups included; call inside a transaction."""
        recs = list(recs)
        self.db.executemany(self._insert, [_encode(r) for r in recs])
        rollup.add_attempts(self.db, recs)
        ids = sorted({r.task_id for r in recs})
        tasks: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            tasks.update(
                str(r[0]) for r in self.db.query(f"SELECT task_id FROM tasks WHERE task_id IN ({marks})", chunk)
            )
        untasked = [r for r in recs if r.task_id not in tasks]
        if untasked:
            pico = sum(r.cost_pico for r in untasked)
            self.db.execute(_ADD_EXEC.format(where="1 = 1"), (len(untasked), pico))

    def mark_completed(self, attempt_id: str) -> bool:
        """Note that this (successful) attempt finished its task; idempotent."""
        with self.db.transaction():
            if (
                self.db.execute(
                    "UPDATE attempts SET completed = 1 WHERE attempt_id = ? AND completed = 0", (attempt_id,)
                )
                == 0
            ):
                return False
            rec = self.get(attempt_id)
            assert rec is not None
            rollup.mark_completed(self.db, rec)
        return True

    def reject(self, attempt_id: str, check: str, detail: str) -> bool:
        """A successful attempt turned out rejected after all (a final review's verdict); idempotent."""
        with self.db.transaction():
            rec = self.get(attempt_id)
            if rec is None or rec.status != "ok":
                return False
            self.db.execute(
                "UPDATE attempts SET status = 'rejected', verdict = 'rejected', verify_check = ?, verify_detail = ?, "
                "error_class = 'rejected', error_message = ? WHERE attempt_id = ?",
                (check, detail, f"{check}: {detail}"[:2000], attempt_id),
            )
            rollup.adjust(self.db, rec, {"ok": -1, "rejected": 1})
        return True

    def outcome_facts(self, task_id: str) -> tuple[str, int]:
        """(how the task's last attempt ended, how many of its attempts were rejected): the `last_outcome` and
        `rejected_count` facts. An outcome is `verified`/`rejected`/`error` where `[verify]` judged, else the status."""
        rows = self.db.query(
            "SELECT status, verdict FROM attempts WHERE task_id = ? ORDER BY started_ms, attempt_id", (task_id,)
        )
        if not rows:
            return "", 0
        status, verdict = rows[-1]
        rejected = sum(1 for r in rows if r[1] == "rejected")
        return (verdict or status), rejected

    def last_rejection(self, task_id: str) -> tuple[str, str] | None:
        """(check, output tail) of the task's latest rejected attempt, if any was rejected."""
        row = self.db.one(
            "SELECT verify_check, verify_detail FROM attempts WHERE task_id = ? AND verdict = 'rejected' "
            "ORDER BY started_ms DESC, attempt_id DESC LIMIT 1",
            (task_id,),
        )
        return None if row is None else (row[0] or "verify", row[1] or "")

    def get(self, attempt_id: str) -> AttemptRecord | None:
        row = self.db.one(_SELECT + " WHERE attempt_id = ?", (attempt_id,))
        return _decode(row) if row else None

    def attempts(
        self,
        *,
        task_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        provider: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AttemptRecord]:
        """Attempts matching the filters, oldest first unless `newest_first`."""
        where, params = _attempt_filters(task_id, since_ms, until_ms, provider)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY started_ms {order}, attempt_id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_decode(r) for r in self.db.query(sql, params)]

    def iter_attempts(
        self,
        *,
        task_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        page: int = 1000,
    ) -> Iterator[AttemptRecord]:
        """Every attempt matching the filters, oldest first, read a page at a time (keyset on
        `(started_ms, attempt_id)`): memory stays flat however many there are."""
        where, params = _attempt_filters(task_id, since_ms, until_ms, None)
        after: tuple[int, str] | None = None
        while True:
            clauses, args = list(where), list(params)
            if after is not None:
                clauses.append("(started_ms, attempt_id) > (?, ?)")
                args += list(after)
            sql = _SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "")
            rows = self.db.query(sql + f" ORDER BY started_ms, attempt_id LIMIT {int(page)}", args)
            for r in rows:
                yield _decode(r)
            if len(rows) < page:
                return
            last = _decode(rows[-1])
            after = (last.started_ms, last.attempt_id)

    def count_attempts(
        self, *, task_id: str | None = None, since_ms: int | None = None, until_ms: int | None = None
    ) -> int:
        """How many attempts match the filters (one COUNT on an index)."""
        where, params = _attempt_filters(task_id, since_ms, until_ms, None)
        row = self.db.one("SELECT COUNT(*) FROM attempts" + (" WHERE " + " AND ".join(where) if where else ""), params)
        return int(row[0]) if row else 0

    def attempt_totals(self) -> tuple[int, int]:
        """(attempts, cost in picodollars) of the whole ledger, from the daily rollups (a few thousand rows)."""
        row = self.db.one("SELECT COALESCE(SUM(n), 0), COALESCE(SUM(cost_pico), 0) FROM rollup_attempts")
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def exec_totals(self) -> tuple[int, int]:
        """(attempts, cost in picodollars) of the attempts that belong to no task (`exec`): one row."""
        row = self.db.one("SELECT n, cost_pico FROM exec_totals WHERE one = 0")
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def provider_window(self, provider: str, since_ms: int, counted: Sequence[str]) -> tuple[int, int]:
        """(calls, failures whose error class is in `counted`) for `provider` since `since_ms`."""
        marks = ", ".join("?" for _ in counted)
        row = self.db.one(
            f"SELECT COUNT(*), SUM(CASE WHEN status != 'ok' AND error_class IN ({marks}) THEN 1 ELSE 0 END) "
            "FROM attempts WHERE provider = ? AND started_ms >= ?",
            (*counted, provider, since_ms),
        )
        assert row is not None
        return int(row[0] or 0), int(row[1] or 0)

    def total_cost(self, *, since_ms: int | None = None) -> Decimal:
        """Exact total cost of recorded attempts."""
        row = self.db.one(
            "SELECT COALESCE(SUM(cost_pico), 0) FROM attempts" + (" WHERE started_ms >= ?" if since_ms else ""),
            (since_ms,) if since_ms else (),
        )
        assert row is not None
        return Decimal(int(row[0])) / PICO

    # tasks -----------------------------------------------------------------------
    def add_task(self, task_id: str, task_json: str, source: str | None, now_ms: int) -> bool:
        """Record a newly seen task as queued; False if the id is already known (nothing changes)."""
        return (
            self.db.execute(
                "INSERT INTO tasks (task_id, state, source, task_json, enqueued_ms, updated_ms) VALUES (?, 'queued', ?, ?, ?, ?) "
                "ON CONFLICT (task_id) DO NOTHING",
                (task_id, source, task_json, now_ms, now_ms),
            )
            > 0
        )

    def add_tasks(self, tasks: Sequence[tuple[str, str, str | None]], now_ms: int) -> list[str]:
        """Record newly seen tasks `(task_id, task_json, source)` as queued, in one transaction.

        Returns the ids that were new, in order; known ids (and repeats) change nothing.
        """
        new: list[str] = []
        seen: set[str] = set()
        with self.db.transaction():
            for start in range(0, len(tasks), 500):
                chunk = tasks[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                known = {
                    r[0]
                    for r in self.db.query(
                        f"SELECT task_id FROM tasks WHERE task_id IN ({marks})", [t[0] for t in chunk]
                    )
                }
                rows = []
                for task_id, task_json, source in chunk:
                    if task_id in known or task_id in seen:
                        continue
                    seen.add(task_id)
                    new.append(task_id)
                    rows.append((task_id, source, task_json, now_ms, now_ms))
                if rows:
                    self.db.executemany(
                        "INSERT INTO tasks (task_id, state, source, task_json, enqueued_ms, updated_ms) "
                        "VALUES (?, 'queued', ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
                        rows,
                    )
        return new

    def set_task(
        self,
        task_id: str,
        state: str,
        now_ms: int,
        *,
        retry_count: int | None = None,
        workflow: str | None = None,
        stage: str | None = None,
        last_error: str | None = None,
        note: str | None = None,
    ) -> None:
        """Move a task to `state`; fields left as None keep their value (except note and last_error)."""
        assert state in TASK_STATES, state
        # A cancelled task stays cancelled: a workflow still finishing its last step cannot move it (only `requeue`).
        self.db.execute(
            "UPDATE tasks SET state = ?, updated_ms = ?, retry_count = COALESCE(?, retry_count), "
            "workflow = COALESCE(?, workflow), stage = COALESCE(?, stage), last_error = ?, note = ? "
            "WHERE task_id = ? AND state != 'cancelled'",
            (state, now_ms, retry_count, workflow, stage, last_error, note, task_id),
        )

    def cancel_task(self, task_id: str, now_ms: int, note: str) -> bool:
        """Cancel a task that has not ended (queued, running, retrying, blocked); False if it had."""
        return (
            self.db.execute(
                "UPDATE tasks SET state = 'cancelled', updated_ms = ?, note = ? WHERE task_id = ? "
                "AND state IN ('queued', 'running', 'retrying', 'blocked')",
                (now_ms, note, task_id),
            )
            > 0
        )

    def requeue_task(self, task_id: str, now_ms: int, note: str) -> int | None:
        """A dead or cancelled task back to `queued`, its attempts kept and its retry count going on (one more,
        in the row and in the task the workflow reads); returns the new retry count, None if it was not dead or
        cancelled, or another `retry` requeued it first (its UPDATE, guarded by the state, then changes no row:
        on PostgreSQL two transactions can both read `dead`, and only one may fork a workflow)."""
        with self.db.transaction():
            row = self.task(task_id)
            if row is None or row.state not in ("dead", "cancelled"):
                return None
            retry = row.retry_count + 1
            task = json.loads(row.task_json)
            task["retry_count"] = max(retry, int(task.get("retry_count") or 0) + 1)
            retry = task["retry_count"]
            changed = self.db.execute(
                "UPDATE tasks SET state = 'queued', updated_ms = ?, retry_count = ?, task_json = ?, last_error = NULL, "
                "note = ? WHERE task_id = ? AND state IN ('dead', 'cancelled')",
                (now_ms, retry, json.dumps(task), note, task_id),
            )
        return int(retry) if changed else None

    def tasks(self, *, states: Sequence[str] | None = None) -> list[TaskRow]:
        """Known tasks, oldest first."""
        sql = (
            "SELECT task_id, state, source, task_json, enqueued_ms, updated_ms, retry_count, workflow, stage, "
            "last_error, note FROM tasks"
        )
        params: list[Any] = []
        if states:
            sql += " WHERE state IN (" + ", ".join("?" for _ in states) + ")"
            params.extend(states)
        sql += " ORDER BY enqueued_ms, task_id"
        return [TaskRow(*r) for r in self.db.query(sql, params)]

    def iter_tasks(self, *, states: Sequence[str] = (), page: int = 1000) -> Iterator[TaskRow]:
        """Every known task, oldest first, read a page at a time (keyset on `(enqueued_ms, task_id)`), so
        every task can be listed in flat memory. With `states`: those states in turn, each by its last change."""
        if states:
            for state in dict.fromkeys(states):
                yield from self._pages(
                    _TASK_SELECT + " WHERE state = ?",
                    [state],
                    ("updated_ms", "task_id"),
                    lambda t: (t.updated_ms, t.task_id),
                    page,
                )
            return
        yield from self._pages(_TASK_SELECT, [], ("enqueued_ms", "task_id"), lambda t: (t.enqueued_ms, t.task_id), page)

    def _pages(
        self,
        select: str,
        params: list[Any],
        key: tuple[str, str],
        key_of: Callable[[TaskRow], tuple[int, str]],
        page: int,
    ) -> Iterator[TaskRow]:
        after: tuple[int, str] | None = None
        joiner = " AND " if " WHERE " in select else " WHERE "
        while True:
            sql, args = select, list(params)
            if after is not None:
                sql += f"{joiner}({key[0]}, {key[1]}) > (?, ?)"
                args += list(after)
            sql += f" ORDER BY {key[0]}, {key[1]} LIMIT {int(page)}"
            rows = [TaskRow(*r) for r in self.db.query(sql, args)]
            yield from rows
            if len(rows) < page:
                return
            after = key_of(rows[-1])

    def latest_tasks(self, state: str, limit: int) -> list[TaskRow]:
        """The `limit` tasks in `state` that changed most recently, newest first (an index range)."""
        sql = _TASK_SELECT + f" WHERE state = ? ORDER BY updated_ms DESC, task_id DESC LIMIT {int(limit)}"
        return [TaskRow(*r) for r in self.db.query(sql, (state,))]

    def task_counts(self) -> dict[str, int]:
        """How many tasks are in each state (a scan of the state index, not of the tasks)."""
        return {str(s): int(n) for s, n in self.db.query("SELECT state, COUNT(*) FROM tasks GROUP BY state")}

    def totals_of(self, task_ids: Sequence[str]) -> dict[str, tuple[int, int, list[str]]]:
        """For these tasks: (attempts, cost in picodollars, models in the order first used), by the task index."""
        out: dict[str, tuple[int, int, list[str]]] = {}
        for start in range(0, len(task_ids), 500):
            chunk = list(task_ids[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            rows = self.db.query(
                f"SELECT task_id, model, COUNT(*), SUM(cost_pico), MIN(started_ms) FROM attempts "
                f"WHERE task_id IN ({marks}) GROUP BY task_id, model ORDER BY task_id, MIN(started_ms)",
                chunk,
            )
            for task_id, model, n, pico, _ in rows:
                attempts, cost, models = out.get(task_id, (0, 0, []))
                out[task_id] = (attempts + int(n), cost + int(pico or 0), [*models, model])
        return out

    def find_task_ids(self, prefix: str, limit: int = 200) -> list[str]:
        """Known task ids that start like `prefix` (for "did you mean")."""
        return [
            r[0]
            for r in self.db.query(
                f"SELECT task_id FROM tasks WHERE task_id >= ? AND task_id < ? ORDER BY task_id LIMIT {int(limit)}",
                (prefix, prefix + "\U0010ffff"),
            )
        ]

    def count_tasks(self, states: Sequence[str]) -> int:
        """How many tasks are in any of `states` (cheap: one COUNT on an index)."""
        row = self.db.one(
            "SELECT COUNT(*) FROM tasks WHERE state IN (" + ", ".join("?" for _ in states) + ")", list(states)
        )
        return int(row[0]) if row else 0

    def task(self, task_id: str) -> TaskRow | None:
        row = self.db.one(_TASK_SELECT + " WHERE task_id = ?", (task_id,))
        return TaskRow(*row) if row else None

    def task_totals(self) -> dict[str, tuple[int, int, list[str]]]:
        """Per task: (attempts, cost in picodollars, models in the order first used)."""
        out: dict[str, tuple[int, int, list[str]]] = {}
        rows = self.db.query(
            "SELECT task_id, model, COUNT(*), SUM(cost_pico), MIN(started_ms) FROM attempts GROUP BY task_id, model "
            "ORDER BY task_id, MIN(started_ms)"
        )
        for task_id, model, n, pico, _ in rows:
            attempts, cost, models = out.get(task_id, (0, 0, []))
            out[task_id] = (attempts + int(n), cost + int(pico or 0), [*models, model])
        return out

    # breakers --------------------------------------------------------------------
    def breakers(self) -> dict[str, BreakerRow]:
        rows = self.db.query(
            "SELECT provider, state, failures, opened_ms, probe_ms, reason, updated_ms, config_sha FROM breakers"
        )
        return {r[0]: BreakerRow(*r) for r in rows}

    def breaker_event(self, provider: str, at_ms: int, state: str, reason: str) -> None:
        """Note a breaker opening (or a disable) for reports."""
        self.db.execute(
            "INSERT INTO breaker_events (provider, at_ms, state, reason) VALUES (?, ?, ?, ?)",
            (provider, at_ms, state, reason),
        )

    def put_breaker(self, row: BreakerRow) -> None:
        self.db.execute(
            "INSERT INTO breakers (provider, state, failures, opened_ms, probe_ms, reason, updated_ms, config_sha) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider) DO UPDATE SET state = excluded.state, "
            "failures = excluded.failures, opened_ms = excluded.opened_ms, probe_ms = excluded.probe_ms, "
            "reason = excluded.reason, updated_ms = excluded.updated_ms, config_sha = excluded.config_sha",
            (
                row.provider,
                row.state,
                row.failures,
                row.opened_ms,
                row.probe_ms,
                row.reason,
                row.updated_ms,
                row.config_sha,
            ),
        )

    def claim_probe(self, provider: str, now_ms: int, stale_ms: int) -> bool:
        """Atomically take the single half-open probe slot (a stale claim older than `stale_ms` is retaken)."""
        changed = self.db.execute(
            "UPDATE breakers SET probe_ms = ?, updated_ms = ? WHERE provider = ? AND state IN ('open', 'half_open') "
            "AND (probe_ms IS NULL OR probe_ms < ?)",
            (now_ms, now_ms, provider, now_ms - stale_ms),
        )
        return changed > 0

    def free_probe(self, provider: str, claimed_ms: int, now_ms: int) -> None:
        """Give back the probe slot claimed at `claimed_ms` (`claim_probe`), if that claim still holds it."""
        self.db.execute(
            "UPDATE breakers SET probe_ms = NULL, updated_ms = ? WHERE provider = ? AND probe_ms = ?",
            (now_ms, provider, claimed_ms),
        )
