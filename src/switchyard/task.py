"""The unit of work: a task pulled from a file, GitHub, beads or an API."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from switchyard._records import record
from switchyard.errors import InputError, did_you_mean

__all__ = ["MAX_NESTING", "Task", "decode_utf8", "load_task_arg", "loads_json", "parse_priority"]

_PRIORITY = re.compile(r"^[Pp]([0-4])$")

# A task document is a few levels deep; one nested deeper is hostile, and would exhaust the
# recursion of json.loads (or, later, json.dumps) with a RecursionError instead of an answer.
MAX_NESTING = 64
# Numbers a task carries into the ledger (SQLite and PostgreSQL integers) and into prices: the config's bounds.
MAX_TOKENS = 1_000_000_000
MAX_RETRY_COUNT = 1000
# Where to look while finding how deep a document nests: brackets, and the quotes that start strings.
_JSON_MARK = re.compile(r'["\[\]{}]')
_JSON_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*+"')  # possessive: never backtracks into a string
_KNOWN = frozenset(
    {
        "id",
        "title",
        "body",
        "description",
        "priority",
        "labels",
        "retry_count",
        "error_tracking",
        "type",
        "issue_type",
        "source",
        "metadata",
        "estimated_tokens",
        "url",
    }
)


def _position(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of `offset`: columns count characters of text, bytes of bytes."""
    nl = "\n" if isinstance(text, str) else b"\n"
    line = text.count(nl, 0, offset) + 1  # type: ignore[arg-type]
    return line, offset - (text.rfind(nl, 0, offset) + 1) + 1  # type: ignore[arg-type]


def _at(where: str, line: int, col: int, inline: bool) -> str:
    return f"{where}: line {line}, column {col}" if inline else f"{where}:{line}:{col}"


def decode_utf8(data: bytes, where: str, *, inline: bool = False) -> str:
    """`data` as text; invalid UTF-8 is an `InputError` naming the line and column of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        raise InputError(
            f"{_at(where, line, col, inline)}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        ) from None


def _too_deep(text: str) -> int | None:
    """Offset of the first bracket nested deeper than `MAX_NESTING`, skipping strings; linear in the text."""
    depth = pos = 0
    while (m := _JSON_MARK.search(text, pos)) is not None:
        c, pos = m.group(), m.end()
        if c == '"':
            rest = _JSON_STRING_REST.match(text, pos)
            if rest is None:
                return None  # an unterminated string: json.loads says where
            pos = rest.end()
        elif c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return m.start()
        else:
            depth -= 1
    return None


class _BadNumber(Exception):
    def __init__(self, literal: str, why: str) -> None:
        self.literal = literal
        self.why = why


def _no_constant(literal: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON has not: they would be written back as invalid JSON.
    raise _BadNumber(literal, f"{literal} is not a number JSON allows")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _BadNumber(literal, f"{literal} is too large for a number")
    return value


def _bare(text: str, literal: str) -> int:
    """Offset of the first `literal` outside a string (the document parsed up to it, so its strings are closed)."""
    for m in re.finditer(r'"(?:[^"\\]|\\.)*+"|' + re.escape(literal), text):
        if not m.group().startswith('"'):
            return m.start()
    return 0


def loads_json(text: str, where: str, *, inline: bool = False, first_line: int = 1) -> Any:
    """Parse JSON; a syntax error or a document nested too deep is an `InputError` with its line and column.

    `where` is a file name (`path:line:col: ...`), or with `inline` a flag such as `--task` (`--task: line 1, ...`);
    `text` starts on line `first_line` of it (a line of a JSONL file). Nesting past `MAX_NESTING` that json.loads
    still reads is caught by `Task.from_dict`.
    """
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        at = _at(where, exc.lineno + first_line - 1, exc.colno, inline)
        raise InputError(f"{at}: not valid JSON: {exc.msg}") from None
    except _BadNumber as bad:
        line, col = _position(text, _bare(text, bad.literal))
        raise InputError(f"{_at(where, line + first_line - 1, col, inline)}: {bad.why}") from None
    except RecursionError:
        offset = _too_deep(text)
        line, col = _position(text, offset) if offset is not None else (1, 1)
        raise InputError(
            f"{_at(where, line + first_line - 1, col, inline)}: nested more than {MAX_NESTING} levels deep; "
            "a task is an object of a few levels"
        ) from None


def _check_text(value: Any, where: str) -> None:
    """Every string in `value` encodes as UTF-8 (no lone surrogate from a `\\ud800` escape), every float is finite,
    and nesting is bounded."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        v, at, depth = stack.pop()
        if depth > MAX_NESTING:
            raise InputError(f"{at}: nested more than {MAX_NESTING} levels deep")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(
                    f"{at}: not valid Unicode text (a lone surrogate at character {exc.start + 1}); "
                    "a \\uD800-\\uDFFF escape must be half of a pair"
                ) from None
        elif isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"{at}: {v} is not a number a task can hold (JSON has no NaN or infinity)")
        elif isinstance(v, Mapping):
            for k, item in v.items():
                stack.append((k, f"{at} (a key)", depth + 1))
                stack.append((item, f"{at}.{k}" if depth < 3 and isinstance(k, str) else at, depth + 1))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, f"{at}[{i}]" if depth < 3 else at, depth + 1) for i, item in enumerate(v))


def parse_priority(value: object, where: str = "task.priority") -> int:
    """0–4 as an integer, or `P0`–`P4`; anything else is an `InputError` naming `where`."""
    if isinstance(value, bool):
        raise InputError(f"{where}: expected an integer 0-4 or 'P0'-'P4', got {value!r}")
    if isinstance(value, int):
        if 0 <= value <= 4:
            return value
        raise InputError(f"{where}: priority must be between 0 (critical) and 4, got {value}")
    if isinstance(value, str):
        m = _PRIORITY.match(value.strip())
        if m:
            return int(m.group(1))
        if value.strip().isdigit():
            return parse_priority(int(value.strip()), where)
    raise InputError(f"{where}: expected an integer 0-4 or 'P0'-'P4', got {value!r}")


@record
class Task:
    """A task to route and run. `priority` 0 is critical, 4 is lowest."""

    id: str
    title: str = ""
    body: str = ""
    priority: int = 2
    labels: tuple[str, ...] = ()
    retry_count: int = 0
    type: str | None = None
    source: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    estimated_tokens: int | None = None
    url: str | None = None

    @property
    def tokens_estimate(self) -> int:
        """`estimated_tokens` if given, else a rough count from the text (4 characters a token)."""
        if self.estimated_tokens is not None:
            return self.estimated_tokens
        return (len(self.title) + len(self.body)) // 4 + 1

    def with_retry(self, retry_count: int) -> Task:
        """A copy with a new retry count (the coordinator escalates with it)."""
        return Task(
            self.id,
            self.title,
            self.body,
            self.priority,
            self.labels,
            retry_count,
            self.type,
            self.source,
            self.metadata,
            self.estimated_tokens,
            self.url,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "priority": self.priority,
            "labels": list(self.labels),
            "retry_count": self.retry_count,
            "type": self.type,
            "source": self.source,
            "metadata": dict(self.metadata),
            "estimated_tokens": self.estimated_tokens,
            "url": self.url,
        }

    @classmethod
    def from_dict(cls, data: object, where: str = "task") -> Task:
        """Validate a task document; every error names the offending field."""
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a JSON object, got {type(data).__name__}")
        _check_text(data, where)
        unknown = sorted(set(data) - _KNOWN)
        if unknown:
            extra = did_you_mean(unknown[0], _KNOWN) or "; put free-form fields under 'metadata'"
            raise InputError(f"{where}.{unknown[0]}: unknown field{extra}")

        def text(key: str, default: str | None = "") -> Any:
            v = data.get(key, default)
            if v is None or isinstance(v, str):
                return v
            raise InputError(f"{where}.{key}: expected a string, got {type(v).__name__} {v!r}")

        raw_id = data.get("id")
        if raw_id is None:
            raise InputError(f"{where}.id: missing; every task needs an id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise InputError(f"{where}.id: expected a string or integer, got {type(raw_id).__name__}")
        task_id = str(raw_id)
        if not task_id.strip():
            raise InputError(f"{where}.id: must not be empty")

        labels_raw = data.get("labels", [])
        if not isinstance(labels_raw, list):
            raise InputError(f"{where}.labels: expected a list of strings, got {type(labels_raw).__name__}")
        labels: list[str] = []
        for i, label in enumerate(labels_raw):
            if isinstance(label, Mapping) and isinstance(label.get("name"), str):
                label = label["name"]  # GitHub's {"name": ...} objects
            if not isinstance(label, str):
                raise InputError(f"{where}.labels[{i}]: expected a string, got {type(label).__name__}")
            labels.append(label)

        retry = data.get("retry_count")
        tracking = data.get("error_tracking")
        if tracking is not None:
            if not isinstance(tracking, Mapping):
                raise InputError(f"{where}.error_tracking: expected an object with attempt_count")
            attempt = tracking.get("attempt_count", 0)
            if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
                raise InputError(f"{where}.error_tracking.attempt_count: expected a non-negative integer")
            if attempt > MAX_RETRY_COUNT:
                raise InputError(f"{where}.error_tracking.attempt_count: at most {MAX_RETRY_COUNT:,}, got {attempt}")
            if retry is None:
                retry = attempt
        if retry is None:
            retry = 0
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise InputError(f"{where}.retry_count: expected a non-negative integer, got {retry!r}")
        if retry > MAX_RETRY_COUNT:
            raise InputError(f"{where}.retry_count: at most {MAX_RETRY_COUNT:,} (escalations of one task), got {retry}")

        metadata = data.get("metadata", {})
        if not isinstance(metadata, Mapping):
            raise InputError(f"{where}.metadata: expected an object, got {type(metadata).__name__}")
        est = data.get("estimated_tokens")
        if est is not None and (isinstance(est, bool) or not isinstance(est, int) or est < 0):
            raise InputError(f"{where}.estimated_tokens: expected a non-negative integer, got {est!r}")
        if est is not None and est > MAX_TOKENS:
            raise InputError(f"{where}.estimated_tokens: at most {MAX_TOKENS:,} (more than any model reads), got {est}")

        body = text("body", None)
        if body is None:
            body = text("description", "") or ""
        return cls(
            id=task_id,
            title=text("title") or "",
            body=body,
            priority=parse_priority(data["priority"], f"{where}.priority") if "priority" in data else 2,
            labels=tuple(labels),
            retry_count=retry,
            type=text("type", None) or text("issue_type", None),
            source=text("source", None),
            metadata=dict(metadata),
            estimated_tokens=est,
            url=text("url", None),
        )


def load_task_arg(arg: str) -> Task:
    """Read `--task`: inline JSON, or `@path` to a JSON file."""
    if arg.startswith("@"):
        path = arg[1:]
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise InputError(f"--task {arg}: cannot read {path}: {exc.strerror}") from None
        return Task.from_dict(loads_json(decode_utf8(data, path), path), f"{path}: task")
    return Task.from_dict(loads_json(arg, "--task", inline=True), "--task: task")
