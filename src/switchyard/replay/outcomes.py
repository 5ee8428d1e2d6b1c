"""The outcomes table: for each task and model (and optionally stage), did it work and what did it cost.

One row per (task, model[, stage]), as CSV with a header or as JSON Lines:

    column         required  meaning
    task_id        yes       the task's id
    model          yes       the model's name in this table (replay maps config models to it)
    resolved       yes       1/0, true/false, yes/no: did the attempt solve the task
                             (`verified` is accepted instead, for tables exported from verified runs)
    cost_usd       yes       what the attempt cost, exact decimal
    stage          no        a workflow stage; empty means the whole task
    input_tokens, output_tokens, tokens (total), latency_ms, api_calls      no
    priority       no        0-4 or P0-P4 (task-level: the same on every row of a task)
    labels         no        CSV: `a;b;c`, JSONL: a list (task-level)
    title, type    no        task-level
    submitted_at   no        ISO 8601: when the task arrived (the router's clock; budget periods)
    metadata       no        a JSON object (task-level); CSV columns `meta.KEY` add keys too

Every problem is an `InputError` naming the file, line and column. The table is
benchmark or team data: it is read, never shipped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from switchyard.errors import InputError, did_you_mean
from switchyard.task import Task, parse_priority

if TYPE_CHECKING:
    from switchyard.ledger.store import AttemptRecord, Ledger

__all__ = [
    "COLUMNS",
    "SUCCESS",
    "Outcome",
    "OutcomeTable",
    "load_outcomes",
    "outcomes_from_ledger",
    "parse_outcomes",
    "write_outcomes",
]

_ROW_COLUMNS = (
    "task_id",
    "model",
    "stage",
    "resolved",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "tokens",
    "latency_ms",
    "api_calls",
)
_TASK_COLUMNS = ("priority", "labels", "title", "type", "submitted_at", "metadata")
COLUMNS = (*_ROW_COLUMNS, *_TASK_COLUMNS)
_REQUIRED = ("task_id", "model", "resolved", "cost_usd")
_INTS = ("input_tokens", "output_tokens", "tokens", "latency_ms", "api_calls")
_META = "meta."
_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f"})


class Outcome(NamedTuple):
    """One attempt of one model on one task (or stage): the result and what it cost.

    A named tuple, not a record: a table has tens of thousands of them.
    """

    task_id: str
    model: str
    resolved: bool
    cost_usd: Decimal
    stage: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens: int | None = None
    latency_ms: int | None = None
    api_calls: int | None = None
    where: str = ""  # file:line it came from, for messages

    @property
    def total_tokens(self) -> int:
        """`tokens` if given, else input + output (0 when the table has no token counts)."""
        if self.tokens is not None:
            return self.tokens
        return (self.input_tokens or 0) + (self.output_tokens or 0)


class OutcomeTable:
    """Outcomes keyed by (task, stage, model), and the tasks as the router sees them."""

    def __init__(
        self,
        tasks: Iterable[Task],
        outcomes: Iterable[Outcome],
        *,
        source: str = "<outcomes>",
        submitted: Mapping[str, datetime] | None = None,
        has_priority: bool = False,
        has_labels: bool = False,
    ) -> None:
        self.source = source
        self.tasks: tuple[Task, ...] = tuple(tasks)
        self.submitted: dict[str, datetime] = dict(submitted or {})
        self.has_priority = has_priority
        self.has_labels = has_labels
        self._by: dict[tuple[str, str, str], Outcome] = {}
        models: dict[str, None] = {}
        stages: dict[str, None] = {}
        for o in outcomes:
            self._by[o.task_id, o.stage, o.model] = o
            models.setdefault(o.model)
            stages.setdefault(o.stage)
        self.models: tuple[str, ...] = tuple(models)
        self.stages: frozenset[str] = frozenset(stages)
        self.task_ids: tuple[str, ...] = tuple(t.id for t in self.tasks)

    def __len__(self) -> int:
        return len(self._by)

    def get(self, task_id: str, model: str, stage: str = "") -> Outcome | None:
        """The outcome of `model` on `task_id` (at `stage`), or None when the table has none."""
        return self._by.get((task_id, stage, model))

    def __iter__(self) -> Iterator[Outcome]:
        return iter(self._by.values())

    def restrict(self, task_ids: Iterable[str]) -> OutcomeTable:
        """The same table with only these tasks (in this table's order)."""
        keep = set(task_ids)
        return OutcomeTable(
            [t for t in self.tasks if t.id in keep],
            [o for o in self._by.values() if o.task_id in keep],
            source=self.source,
            submitted={k: v for k, v in self.submitted.items() if k in keep},
            has_priority=self.has_priority,
            has_labels=self.has_labels,
        )


# ----------------------------------------------------------------------------- parsing values
def _text(value: Any, where: str, col: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and col == "task_id":
        return str(value)
    raise InputError(f"{where}: {col}: expected a string, got {type(value).__name__} {value!r}")


def _bool(value: Any, where: str, col: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise InputError(f"{where}: {col}: expected 1/0, true/false or yes/no, got {value!r}")


def _decimal(value: Any, where: str, col: str) -> Decimal:
    if isinstance(value, bool):
        raise InputError(f"{where}: {col}: expected a number of dollars, got {value!r}")
    try:
        d = value if isinstance(value, Decimal) else Decimal(value if isinstance(value, int) else str(value).strip())
    except (InvalidOperation, ValueError):
        raise InputError(f"{where}: {col}: expected a number of dollars such as 0.125, got {value!r}") from None
    if not d.is_finite():
        raise InputError(f"{where}: {col}: expected a finite number, got {value!r}")
    if d < 0:
        raise InputError(f"{where}: {col}: must not be negative, got {value!r}")
    return d


def _int(value: Any, where: str, col: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.strip().isdigit():
        n = int(value.strip())
    elif isinstance(value, Decimal) and value == value.to_integral_value():
        n = int(value)
    else:
        raise InputError(f"{where}: {col}: expected a non-negative integer, got {value!r}")
    if n < 0:
        raise InputError(f"{where}: {col}: expected a non-negative integer, got {value!r}")
    return n


def _labels(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(x.strip() for x in value.split(";") if x.strip())
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise InputError(f"{where}: labels[{i}]: expected a string, got {type(item).__name__}")
            out.append(item)
        return tuple(out)
    raise InputError(f"{where}: labels: expected a list of strings (in CSV: 'a;b;c'), got {value!r}")


def _when(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InputError(f"{where}: submitted_at: expected an ISO 8601 time, got {value!r}")
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{where}: submitted_at: expected an ISO 8601 time such as 2025-06-01T09:30:00Z, got {value!r}"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # a time without a zone is UTC


def _metadata(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: metadata: not a JSON object: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: metadata: expected a JSON object, got {type(value).__name__}")
    return value


def _check_columns(names: Iterable[str], where: str) -> None:
    names = list(names)
    for name in names:
        if name in COLUMNS or name == "verified" or (name.startswith(_META) and len(name) > len(_META)):
            continue
        raise InputError(
            f"{where}: unknown column '{name}'"
            + did_you_mean(name, [*COLUMNS, "verified"])
            + f"; columns: {', '.join(COLUMNS)}; keep other fields as meta.NAME"
        )
    if "resolved" in names and "verified" in names:
        raise InputError(f"{where}: both 'resolved' and 'verified' are given; keep one of them")
    missing = [c for c in _REQUIRED if c not in names and not (c == "resolved" and "verified" in names)]
    if missing:
        raise InputError(f"{where}: missing column(s) {', '.join(missing)}; required: {', '.join(_REQUIRED)}")


# ----------------------------------------------------------------------------- building a table
class _Builder:
    """Collects validated rows; checks duplicates and task-level agreement."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.outcomes: dict[tuple[str, str, str], Outcome] = {}
        self.order: dict[str, None] = {}
        self.task_fields: dict[str, dict[str, tuple[Any, str]]] = {}
        self.has_priority = False
        self.has_labels = False

    def add(self, row: Mapping[str, Any], where: str) -> None:
        """One row: `row` maps column names to values (CSV strings, or JSON values); empty/None = absent."""
        present = {k: v for k, v in row.items() if v is not None and v != ""}
        for col in _REQUIRED:
            if col == "resolved" and "verified" in present:
                continue
            if col not in present:
                raise InputError(f"{where}: {col}: missing; every row needs {', '.join(_REQUIRED)}")
        task_id = _text(present["task_id"], where, "task_id").strip()
        if not task_id:
            raise InputError(f"{where}: task_id: must not be empty")
        model = _text(present["model"], where, "model").strip()
        if not model:
            raise InputError(f"{where}: model: must not be empty")
        stage = _text(present.get("stage", ""), where, "stage").strip()
        resolved_col = "verified" if "verified" in present else "resolved"
        ints = {c: _int(present[c], where, c) for c in _INTS if c in present}
        outcome = Outcome(
            task_id=task_id,
            model=model,
            resolved=_bool(present[resolved_col], where, resolved_col),
            cost_usd=_decimal(present["cost_usd"], where, "cost_usd"),
            stage=stage,
            where=where,
            **ints,
        )
        key = (task_id, stage, model)
        first = self.outcomes.get(key)
        if first is not None:
            at = f" at stage '{stage}'" if stage else ""
            raise InputError(
                f"{where}: a second row for task '{task_id}' and model '{model}'{at} (the first is at {first.where}); "
                "keep one row per task, model and stage"
            )
        self.outcomes[key] = outcome
        self.order.setdefault(task_id)

        fields: dict[str, Any] = {}
        if "priority" in present:
            fields["priority"] = parse_priority(present["priority"], f"{where}: priority")
            self.has_priority = True
        if "labels" in present:
            fields["labels"] = _labels(present["labels"], where)
            self.has_labels = True
        for col in ("title", "type"):
            if col in present:
                fields[col] = _text(present[col], where, col)
        if "submitted_at" in present:
            fields["submitted_at"] = _when(present["submitted_at"], where)
        meta: dict[str, Any] = {}
        if "metadata" in present:
            meta.update(_metadata(present["metadata"], where))
        for k, v in present.items():
            if k.startswith(_META):
                meta[k[len(_META) :]] = v
        if meta:
            fields["metadata"] = meta
        known = self.task_fields.setdefault(task_id, {})
        for col, value in fields.items():
            seen = known.get(col)
            if seen is None:
                known[col] = (value, where)
            elif seen[0] != value:
                raise InputError(
                    f"{where}: {col}: {value!r} disagrees with {seen[0]!r} at {seen[1]} for task '{task_id}'; "
                    "task-level columns (priority, labels, title, type, submitted_at, metadata) must agree on "
                    "every row of a task"
                )

    def build(self) -> OutcomeTable:
        if not self.outcomes:
            raise InputError(f"{self.source}: no outcome rows; expected a header and at least one row")
        tasks = []
        submitted: dict[str, datetime] = {}
        for task_id in self.order:
            f = {k: v for k, (v, _) in self.task_fields.get(task_id, {}).items()}
            tasks.append(
                Task(
                    id=task_id,
                    title=f.get("title", ""),
                    priority=f.get("priority", 2),
                    labels=f.get("labels", ()),
                    type=f.get("type"),
                    source="outcomes",
                    metadata=f.get("metadata", {}),
                )
            )
            if "submitted_at" in f:
                submitted[task_id] = f["submitted_at"]
        return OutcomeTable(
            tasks,
            self.outcomes.values(),
            source=self.source,
            submitted=submitted,
            has_priority=self.has_priority,
            has_labels=self.has_labels,
        )


def _parse_csv(text: str, source: str, builder: _Builder) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{source}: empty file; expected a header line naming the columns") from None
    except csv.Error as exc:
        raise InputError(f"{source}:1: not valid CSV: {exc}") from None
    header = [h.strip() for h in header]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    _check_columns(header, f"{source}:1")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"{source}:1: column '{dupes[0]}' appears twice")
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"{source}:{start}: not valid CSV: {exc}") from None
        if not values or all(not v.strip() for v in values):
            continue
        where = f"{source}:{start}"
        if len(values) != len(header):
            raise InputError(f"{where}: {len(values)} fields, but the header has {len(header)}")
        builder.add(dict(zip(header, values, strict=True)), where)


def _parse_jsonl(text: str, source: str, builder: _Builder) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}:{n}"
        try:
            obj = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}:{exc.colno}: not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object per line, got {type(obj).__name__}")
        _check_columns(obj.keys(), where)
        builder.add(obj, where)


def parse_outcomes(text: str, *, fmt: str, source: str = "<outcomes>") -> OutcomeTable:
    """An outcomes table from CSV (`fmt="csv"`) or JSON Lines (`fmt="jsonl"`) text."""
    builder = _Builder(source)
    if fmt == "csv":
        _parse_csv(text, source, builder)
    elif fmt == "jsonl":
        _parse_jsonl(text, source, builder)
    else:
        raise InputError(f"{source}: unknown outcomes format '{fmt}'; use csv or jsonl")
    return builder.build()


def _format_of(path: str) -> str:
    low = path.lower()
    if low.endswith(".csv"):
        return "csv"
    if low.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise InputError(f"{path}: cannot tell the format from the name; use a .csv or .jsonl file")


def load_outcomes(path: str | Path) -> OutcomeTable:
    """Read an outcomes table; the format follows the extension (.csv, .jsonl)."""
    p = str(path)
    fmt = _format_of(p)
    try:
        with open(p, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise InputError(f"{p}: outcomes file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_outcomes(text, fmt=fmt, source=p)


# ----------------------------------------------------------------------------- writing
def _rows(table: OutcomeTable) -> Iterator[dict[str, Any]]:
    tasks = {t.id: t for t in table.tasks}
    for o in table:
        t = tasks[o.task_id]
        row: dict[str, Any] = {
            "task_id": o.task_id,
            "model": o.model,
            "stage": o.stage or None,
            "resolved": o.resolved,
            "cost_usd": o.cost_usd,
        }
        for c in _INTS:
            row[c] = getattr(o, c)
        row["priority"] = t.priority if table.has_priority else None
        row["labels"] = list(t.labels) if table.has_labels else None
        row["title"] = t.title or None
        row["type"] = t.type
        at = table.submitted.get(o.task_id)
        row["submitted_at"] = at.isoformat() if at else None
        row["metadata"] = dict(t.metadata) or None
        yield row


def write_outcomes(table: OutcomeTable, out: TextIO, *, fmt: str = "csv") -> None:
    """Write `table` as CSV or JSON Lines, with only the optional columns that have values."""
    rows = list(_rows(table))
    cols = [c for c in COLUMNS if c in _REQUIRED or any(r[c] is not None for r in rows)]
    if fmt == "jsonl":
        for r in rows:
            obj = {c: r[c] for c in cols if r[c] is not None}
            out.write(json.dumps(obj, default=str, ensure_ascii=False, sort_keys=False) + "\n")
        return
    if fmt != "csv":
        raise InputError(f"unknown outcomes format '{fmt}'; use csv or jsonl")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            if v is None:
                cells.append("")
            elif c == "resolved":
                cells.append("1" if v else "0")
            elif c == "labels":
                cells.append(";".join(v))
            elif c == "metadata":
                cells.append(json.dumps(v, default=str, ensure_ascii=False, sort_keys=True))
            else:
                cells.append(str(v))
        writer.writerow(cells)


# ----------------------------------------------------------------------------- from the ledger
def _attempt_ok(rec: AttemptRecord) -> bool:
    return rec.status == "ok"


def _attempt_verified(rec: AttemptRecord) -> bool:
    return rec.verdict == "verified" if rec.verdict is not None else rec.status == "ok"


# What counts as a resolved attempt when importing from the ledger: `verified` (the default) is an
# attempt `[verify]` verified, or, where nothing judged it (no [verify], a stage that changes
# nothing), one that ended "ok"; `ok` is any attempt whose agent finished without an error.
SUCCESS: dict[str, Callable[[AttemptRecord], bool]] = {"verified": _attempt_verified, "ok": _attempt_ok}


def outcomes_from_ledger(
    ledger: Ledger,
    *,
    success: str = "verified",
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> OutcomeTable:
    """The ledger's attempts as an outcomes table: one row per task × stage × model.

    A row is resolved when any attempt of that model on that task (and stage) counts
    as a success by `SUCCESS[success]`; its cost, tokens, latency and calls are the sum
    over those attempts. Interrupted attempts (a stop or a crash cut them short) are
    not outcomes and are left out.
    """
    judge = SUCCESS.get(success)
    if judge is None:
        raise InputError(f"--success {success}: unknown; choose one of {', '.join(sorted(SUCCESS))}")
    rows = {row.task_id: row for row in ledger.tasks()}
    builder = _Builder("ledger")
    groups: dict[tuple[str, str, str], list[AttemptRecord]] = {}
    first_ms: dict[str, int] = {}
    for rec in ledger.attempts(since_ms=since_ms, until_ms=until_ms):
        if rec.status == "interrupted":
            continue
        groups.setdefault((rec.task_id, rec.stage or "", rec.model), []).append(rec)
        first_ms.setdefault(rec.task_id, rec.started_ms)  # attempts come oldest first
    for (task_id, stage, model), recs in groups.items():
        first = recs[0]
        row: dict[str, Any] = {
            "task_id": task_id,
            "model": model,
            "stage": stage,
            "resolved": any(judge(r) for r in recs),
            "cost_usd": sum((r.cost_usd for r in recs), Decimal(0)),
            "input_tokens": sum(r.input_tokens + r.cache_read_tokens + r.cache_write_tokens for r in recs),
            "output_tokens": sum(r.output_tokens for r in recs),
            "latency_ms": sum(r.latency_ms for r in recs),
            "api_calls": len(recs),
        }
        task_row = rows.get(task_id)
        task: Task | None = None
        if task_row is not None:
            try:
                task = Task.from_dict(json.loads(task_row.task_json), f"ledger task {task_id}")
            except (InputError, ValueError):
                task = None
        if task is not None:
            row.update(priority=task.priority, labels=list(task.labels), title=task.title or None, type=task.type)
            if task.metadata:
                row["metadata"] = dict(task.metadata)
        else:
            row.update(priority=first.priority, labels=list(first.labels))
        enqueued = task_row.enqueued_ms if task_row is not None else first_ms[task_id]
        row["submitted_at"] = datetime.fromtimestamp(enqueued / 1000, UTC).isoformat()
        builder.add(row, f"ledger attempt {first.attempt_id}")
    if not builder.outcomes:
        raise InputError("ledger: no attempts recorded (in that time range); nothing to export")
    return builder.build()
