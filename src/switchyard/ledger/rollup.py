"""Rollups: per-day aggregates kept next to the attempts, so reports over millions of rows stay fast.

Each recorded attempt adds itself, in the same transaction, to

* `rollup_attempts`: counts, tokens, exact cost and latency sums per UTC day,
  model, provider, priority, stage, workflow, experiment, arm and whether the
  task had escalated (retry_count > 0);
* `rollup_latency`: per day, one dimension at a time (model, provider,
  priority, stage, workflow, experiment arm, label, or all), a 10 %-wide
  log-scale latency histogram, so percentiles come out of a few thousand rows;
* `rollup_labels`: per day, label and model;
* `rollup_failovers`: per day, the provider failed over from and to.

Reports read these for whole days and scan `attempts` (by its `started_ms`
index) only for the partial days at the edges of a window, so every figure is
exact. `completed` (the attempt that finished its task) is added later, when the
task is marked done.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from switchyard.ledger.db import Database

__all__ = ["DIMS", "ROLLUP_SCHEMA", "add_attempt", "day_of", "mark_completed"]

DIMS = ("day", "model", "provider", "priority", "stage", "workflow", "experiment", "arm", "escalated")
SUMS = (
    "n",
    "ok",
    "first",
    "opened",
    "completed",
    "cost_pico",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
)

ROLLUP_SCHEMA = """;
CREATE TABLE rollup_attempts (
    day TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, priority INTEGER NOT NULL,
    stage TEXT NOT NULL, workflow TEXT NOT NULL, experiment TEXT NOT NULL, arm TEXT NOT NULL, escalated INTEGER NOT NULL,
    n BIGINT NOT NULL, ok BIGINT NOT NULL, first BIGINT NOT NULL, opened BIGINT NOT NULL, completed BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    PRIMARY KEY (day, model, provider, priority, stage, workflow, experiment, arm, escalated)
);
CREATE TABLE rollup_latency (
    dim TEXT NOT NULL, value TEXT NOT NULL, day TEXT NOT NULL, bucket INTEGER NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (dim, value, day, bucket)
);
CREATE TABLE rollup_labels (
    day TEXT NOT NULL, label TEXT NOT NULL, model TEXT NOT NULL,
    n BIGINT NOT NULL, ok BIGINT NOT NULL, first BIGINT NOT NULL, opened BIGINT NOT NULL, completed BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    PRIMARY KEY (day, label, model)
);
CREATE TABLE rollup_failovers (
    day TEXT NOT NULL, from_provider TEXT NOT NULL, to_provider TEXT NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (day, from_provider, to_provider)
)
"""


def day_of(ms: int) -> str:
    """The UTC day of an epoch-milliseconds time."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _upsert(table: str, keys: Sequence[str], sums: Sequence[str]) -> str:
    cols = [*keys, *sums]
    updates = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in sums)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_ATTEMPTS = _upsert("rollup_attempts", DIMS, SUMS)
_LATENCY = _upsert("rollup_latency", ("dim", "value", "day", "bucket"), ("n",))
LATENCY_DIMS = ("model", "provider", "priority", "stage", "workflow", "experiment")
_LABELS = _upsert("rollup_labels", ("day", "label", "model"), SUMS)
_FAILOVERS = _upsert("rollup_failovers", ("day", "from_provider", "to_provider"), ("n",))


def _keys(row: dict[str, Any]) -> list[Any]:
    return [
        day_of(row["started_ms"]),
        row["model"],
        row["provider"],
        -1 if row["priority"] is None else row["priority"],
        row["stage"] or "",
        row["workflow"] or "",
        row["experiment"] or "",
        row["arm"] or "",
        1 if row["task_retry"] else 0,
    ]


def _sums(row: dict[str, Any]) -> list[Any]:
    return [
        1,
        1 if row["status"] == "ok" else 0,
        1 if row["first"] else 0,
        1 if not row["candidate_index"] and not row["try_index"] else 0,  # a routing decision's first attempt
        1 if row["completed"] else 0,
        row["cost_pico"],
        row["input_tokens"],
        row["output_tokens"],
        row["cache_read_tokens"],
        row["cache_write_tokens"],
        row["reasoning_tokens"],
        row["latency_ms"],
    ]


def add_attempt(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    """Add newly inserted attempts to every rollup (call inside the inserting transaction)."""
    attempts, latency, labels, failovers = [], [], [], []
    for row in rows:
        keys = _keys(row)
        sums = _sums(row)
        attempts.append([*keys, *sums])
        day, bucket = keys[0], row["latency_bucket"]
        latency.append(["all", "all", day, bucket, 1])
        latency.append(["day", day, day, bucket, 1])
        for dim, value in zip(
            LATENCY_DIMS, (keys[1], keys[2], str(keys[3]), keys[4], keys[5], f"{keys[6]} / {keys[7]}"), strict=True
        ):
            latency.append([dim, value, day, bucket, 1])
        for label in row["labels"]:
            labels.append([day, label, row["model"], *sums])
            latency.append(["label", label, day, bucket, 1])
        if row["failover_from"]:
            failovers.append([keys[0], row["failover_from"], row["provider"], 1])
    for sql, values in ((_ATTEMPTS, attempts), (_LATENCY, latency), (_LABELS, labels), (_FAILOVERS, failovers)):
        if values:
            db.executemany(sql, values)


def mark_completed(db: Database, row: dict[str, Any]) -> None:
    """Count `row` (an attempt already in the rollups) as the one that completed its task."""
    keys = _keys(row)
    where = " AND ".join(f"{d} = ?" for d in DIMS)
    db.execute(f"UPDATE rollup_attempts SET completed = completed + 1 WHERE {where}", keys)
    for label in row["labels"]:
        db.execute(
            "UPDATE rollup_labels SET completed = completed + 1 WHERE day = ? AND label = ? AND model = ?",
            (keys[0], label, row["model"]),
        )
