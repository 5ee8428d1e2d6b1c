"""The unit of work: a task pulled from a file, GitHub, beads or an API."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from switchyard._records import record
from switchyard.errors import InputError, did_you_mean

__all__ = ["Task", "load_task_arg", "parse_priority"]

_PRIORITY = re.compile(r"^[Pp]([0-4])$")
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
            if retry is None:
                retry = attempt
        if retry is None:
            retry = 0
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise InputError(f"{where}.retry_count: expected a non-negative integer, got {retry!r}")

        metadata = data.get("metadata", {})
        if not isinstance(metadata, Mapping):
            raise InputError(f"{where}.metadata: expected an object, got {type(metadata).__name__}")
        est = data.get("estimated_tokens")
        if est is not None and (isinstance(est, bool) or not isinstance(est, int) or est < 0):
            raise InputError(f"{where}.estimated_tokens: expected a non-negative integer, got {est!r}")

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
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise InputError(f"--task {arg}: cannot read {path}: {exc.strerror}") from None
        where = path
    else:
        text, where = arg, "--task"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return Task.from_dict(data, "task")
