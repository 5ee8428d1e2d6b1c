"""Where tasks come from: a tasks file, GitHub issues (`gh`), or beads (`bd ready`).

Every source returns validated `Task`s. A source that fails (the tool is
missing, exits non-zero, prints something that is not JSON) raises
`SourceError` with a message that names the source and the fix; the caller
reports it and goes on with the other sources. A bad entry inside an otherwise
good source is reported and skipped, never fatal for the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from switchyard.config.delivery import SourceConfig
from switchyard.config.schema import default_priority_labels
from switchyard.errors import InputError, RunError
from switchyard.redact import Redactor
from switchyard.task import Task, decode_utf8, loads_json, parse_priority

__all__ = [
    "DEFAULT_PRIORITY_LABELS",
    "Beads",
    "Fetched",
    "GitHub",
    "Source",
    "SourceError",
    "TasksFile",
    "from_config",
    "parse_source",
]

DEFAULT_PRIORITY_LABELS: dict[str, int] = default_priority_labels()
FETCH_TIMEOUT_S = 120


class SourceError(RunError):
    """A source could not be read; the run goes on with the others."""


@dataclass
class Fetched:
    """Tasks read from a source, and the entries that were skipped (with why)."""

    tasks: list[Task] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Source(Protocol):
    """Anything that can list tasks."""

    name: str

    def fetch(self) -> Fetched:
        """Read the source now."""
        ...


def _validated(entries: Sequence[Any], where: Callable[[int, Any], str], convert: Any) -> Fetched:
    """Tasks from `entries`; `where(i, entry)` names entry i in messages (`file:LINE`, an issue number)."""
    out = Fetched()
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        at = where(i, entry)
        try:
            task = convert(entry, at)
        except InputError as exc:
            out.skipped.append(str(exc))
            continue
        if task.id in seen:
            out.skipped.append(f"{at}: duplicate task id {task.id!r} (kept the first)")
            continue
        seen.add(task.id)
        out.tasks.append(task)
    return out


class TasksFile:
    """A file of tasks: TOML (`[[tasks]]`), JSON (a list, or `{"tasks": [...]}`) or JSONL (one per line).

    Messages name an entry by its 1-based line in the file (`tasks.jsonl:3: task.priority: ...`).
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or f"file:{self.path}"

    def check(self) -> None:
        """Raise `InputError` (exit 2) when the file cannot be read as a whole: `run` checks before it starts."""
        self._entries()

    def fetch(self) -> Fetched:
        try:
            entries, where = self._entries()
        except InputError as exc:
            raise SourceError(str(exc)) from None
        return _validated(entries, where, _from_dict_or_bad)

    def _entries(self) -> tuple[list[Any], Callable[[int, Any], str]]:
        """The file's entries, and how to name entry i; an unreadable file is an `InputError` with its location."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read the tasks file: {exc.strerror}") from None
        where = str(self.path)
        text = decode_utf8(raw, where)
        suffix = self.path.suffix.lower()
        if suffix == ".jsonl":
            entries: list[Any] = []
            lines: list[int] = []
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entries.append(loads_json(line, where, first_line=n))
                except InputError as exc:
                    entries.append(_Bad(str(exc)))
                lines.append(n)
            return entries, lambda i, _entry: f"{where}:{lines[i]}"
        if suffix == ".toml":
            try:
                data: Any = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise InputError(f"{where}: not valid TOML: {exc}") from None
            except RecursionError:
                raise InputError(f"{where}: nested too deeply to read; a task is a table of a few levels") from None
            found = data.get("tasks") if isinstance(data, dict) else None
            if not isinstance(found, list):
                raise InputError(f"{where}: expected [[tasks]] entries")
            return found, lambda i, _entry: f"{where}:{_toml_line(text, i)}"
        data = loads_json(text, where)
        key: str | None = None
        if isinstance(data, dict) and isinstance(data.get("tasks"), list):
            data, key = data["tasks"], "tasks"
        if not isinstance(data, list):
            raise InputError(f"{where}: expected a JSON list of tasks, or an object with a 'tasks' list")
        return data, lambda i, _entry: f"{where}:{_json_line(text, key, i)}"


def _toml_line(text: str, i: int) -> int | str:
    from switchyard.config.locate import index_toml  # only to place a message

    loc = index_toml(text).get(("tasks", i))
    return loc.line if loc is not None else "?"


def _json_line(text: str, key: str | None, i: int) -> int | str:
    """The 1-based line where entry `i` of the document's task list starts (only on the error path)."""
    decoder = json.JSONDecoder()
    ws = " \t\r\n"

    def skip(pos: int, *chars: str) -> int:
        while pos < len(text) and (text[pos] in ws or text[pos] in chars):
            pos += 1
        return pos

    try:
        pos = skip(0)
        if key is not None:  # {"tasks": [...], ...}: step over the other members to the list
            pos = skip(pos + 1)
            while True:
                name, pos = decoder.raw_decode(text, pos)
                pos = skip(pos, ":")
                if name == key:
                    break
                _, pos = decoder.raw_decode(text, pos)
                pos = skip(pos, ",")
        pos = skip(pos + 1)  # the list's "["
        for _ in range(i):
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos, ",")
    except (ValueError, RecursionError):
        return "?"
    return text.count("\n", 0, pos) + 1


class _Bad:
    """An entry that failed before validation (a JSONL line that is not JSON): its message."""

    def __init__(self, message: str) -> None:
        self.message = message


def _from_dict_or_bad(entry: Any, where: str) -> Task:
    if isinstance(entry, _Bad):
        raise InputError(entry.message)
    return Task.from_dict(entry, f"{where}: task")


def _run_tool(argv: list[str], name: str, hint: str, redactor: Redactor) -> Any:
    """Run a source CLI and parse its JSON output; every failure is a SourceError naming the fix."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=FETCH_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise SourceError(f"{name}: '{argv[0]}' is not on PATH; {hint}") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"{name}: '{' '.join(argv[:3])}' did not answer within {FETCH_TIMEOUT_S}s") from None
    stdout = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        err = redactor.redact(stderr.strip() or stdout.strip())[-500:]
        raise SourceError(f"{name}: '{' '.join(argv[:3])}' exited with status {proc.returncode}: {err or 'no output'}")
    try:
        return json.loads(stdout)
    except json.JSONDecodeError as exc:
        head = redactor.redact(stdout.strip())[:120]
        raise SourceError(f"{name}: '{' '.join(argv[:3])}' printed invalid JSON ({exc.msg}): {head!r}") from None
    except RecursionError:
        raise SourceError(f"{name}: '{' '.join(argv[:3])}' printed JSON nested too deeply to read") from None


class GitHub:
    """Open issues of a repository, through the GitHub CLI."""

    def __init__(
        self,
        repo: str,
        label: str | None = None,
        *,
        priority_labels: Mapping[str, int] | None = None,
        default_priority: int = 2,
        gh: str = "gh",
        limit: int = 200,
        redactor: Redactor | None = None,
    ) -> None:
        self.repo = repo
        self.label = label
        self.priority_labels = dict(priority_labels if priority_labels is not None else DEFAULT_PRIORITY_LABELS)
        self.default_priority = default_priority
        self.gh = gh
        self.limit = limit
        self.redactor = redactor or Redactor.from_env()
        self.name = f"github:{repo}" + (f":{label}" if label else "")

    def argv(self) -> list[str]:
        argv = [self.gh, "issue", "list", "-R", self.repo]
        if self.label:
            argv += ["-l", self.label]
        return [
            *argv,
            "--state",
            "open",
            "--json",
            "number,title,body,labels,url,createdAt",
            "--limit",
            str(self.limit),
        ]

    def fetch(self) -> Fetched:
        data = _run_tool(self.argv(), self.name, "install the GitHub CLI and run 'gh auth login'", self.redactor)
        if not isinstance(data, list):
            raise SourceError(f"{self.name}: expected a JSON list of issues from gh, got {type(data).__name__}")
        return _validated(data, self._where, self._task)

    def _where(self, i: int, issue: Any) -> str:
        number = issue.get("number") if isinstance(issue, dict) else None
        if isinstance(number, int) and not isinstance(number, bool):
            return f"{self.name}: issue #{number}"
        return f"{self.name}: issue {i + 1} of the list"

    def _task(self, issue: Any, where: str) -> Task:
        if not isinstance(issue, dict):
            raise InputError(f"{where}: expected an issue object")
        number = issue.get("number")
        if isinstance(number, bool) or not isinstance(number, int):
            raise InputError(f"{where}: number: expected the issue number, got {number!r}")
        labels = [lab.get("name") if isinstance(lab, dict) else lab for lab in issue.get("labels") or []]
        labels = [lab for lab in labels if isinstance(lab, str)]
        priority = min(
            (self.priority_labels[lab] for lab in labels if lab in self.priority_labels), default=self.default_priority
        )
        return Task.from_dict(
            {
                "id": f"gh-{number}",
                "title": issue.get("title") or "",
                "body": issue.get("body") or "",
                "labels": labels,
                "priority": priority,
                "source": self.name,
                "url": issue.get("url") if isinstance(issue.get("url"), str) else None,
                "metadata": {"number": number, "repo": self.repo, "created_at": issue.get("createdAt")},
            },
            f"{where}: task",
        )


class Beads:
    """Ready work from beads (`bd ready --json`); unknown fields are ignored."""

    def __init__(self, *, bd: str = "bd", limit: int = 100, redactor: Redactor | None = None) -> None:
        self.bd = bd
        self.limit = limit
        self.redactor = redactor or Redactor.from_env()
        self.name = "beads"

    def fetch(self) -> Fetched:
        data = _run_tool(
            [self.bd, "ready", "--json", "--limit", str(self.limit)], self.name, "install beads (bd)", self.redactor
        )
        if isinstance(data, dict) and isinstance(data.get("issues"), list):
            data = data["issues"]  # the `--skip-labels` shape
        if not isinstance(data, list):
            raise SourceError(f"{self.name}: expected a JSON list of issues from bd, got {type(data).__name__}")
        return _validated(data, self._where, self._task)

    def _where(self, i: int, issue: Any) -> str:
        issue_id = issue.get("id") if isinstance(issue, dict) else None
        if isinstance(issue_id, str) and issue_id:
            return f"{self.name}: {issue_id}"
        return f"{self.name}: issue {i + 1} of the list"

    def _task(self, issue: Any, where: str) -> Task:
        if not isinstance(issue, dict):
            raise InputError(f"{where}: expected an issue object")
        issue_id = issue.get("id")
        if not isinstance(issue_id, str) or not issue_id:
            raise InputError(f"{where}: id: expected the beads issue id, got {issue_id!r}")
        raw_priority = issue.get("priority", 2)
        if isinstance(raw_priority, (int, Decimal)) and not isinstance(raw_priority, bool):
            raw_priority = max(0, min(4, int(raw_priority)))
        priority = parse_priority(raw_priority, f"{where}: priority")
        body_parts = [issue.get(k) for k in ("description", "design", "acceptance_criteria", "notes")]
        body = "\n\n".join(p for p in body_parts if isinstance(p, str) and p.strip())
        labels = [lab for lab in issue.get("labels") or [] if isinstance(lab, str)]
        metadata = {k: issue[k] for k in ("status", "assignee", "estimated_minutes", "external_ref") if k in issue}
        return Task.from_dict(
            {
                "id": issue_id,
                "title": issue.get("title") if isinstance(issue.get("title"), str) else "",
                "body": body,
                "priority": priority,
                "labels": labels,
                "type": issue.get("issue_type") if isinstance(issue.get("issue_type"), str) else None,
                "source": "beads",
                "metadata": metadata,
            },
            f"{where}: task",
        )


def from_config(
    entry: SourceConfig,
    base_dir: Path,
    *,
    priority_labels: Mapping[str, int] | None = None,
    default_priority: int = 2,
) -> Source:
    """The source a `[[sources]]` entry describes; its name is the entry's (what delivery looks up)."""
    if entry.kind == "github":
        assert entry.repo is not None
        return GitHub(
            entry.repo,
            entry.label,
            priority_labels=priority_labels,
            default_priority=default_priority,
            limit=entry.limit,
        )
    if entry.kind == "beads":
        return Beads(limit=entry.limit)
    assert entry.path is not None
    path = Path(entry.path).expanduser()
    return TasksFile(path if path.is_absolute() else base_dir / path, name=entry.name)


def parse_source(spec: str, *, priority_labels: Mapping[str, int] | None = None, default_priority: int = 2) -> Source:
    """`github:OWNER/REPO[:LABEL]` or `beads`."""
    if spec == "beads":
        return Beads()
    kind, _, rest = spec.partition(":")
    if kind == "github" and rest:
        repo, _, label = rest.partition(":")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise InputError(f"--source {spec}: expected github:OWNER/REPO[:LABEL]")
        return GitHub(repo, label or None, priority_labels=priority_labels, default_priority=default_priority)
    raise InputError(f"--source {spec}: expected github:OWNER/REPO[:LABEL] or beads (task files go in --tasks)")
