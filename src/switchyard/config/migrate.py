"""`switchyard config migrate OLD.toml`: the seed system's coordinator config in today's form.

What it converts (each change is written with a comment above it saying what it was):

* `[coordinator] max_concurrent_workers / poll_interval_seconds / worker_timeout_hours`,
  `[worktree] base_dir`, `[github] repo_owner / repo_name / issue_label`: the renames the
  loader also reads with a warning (`config.deprecated.RENAMES`); `[github]` becomes a
  `[[sources]]` entry, whose delivery (a pull request) is what the old system did.
* the bare `estimated_tokens` fact in rule conditions: `task.estimated_tokens`.
* command providers the old system ran and switchyard runs better another way:
  - Claude Code with `-p {prompt_file}` (the CLI would read the path as the prompt): the
    prompt goes on stdin; its `--output-format` picks the usage format (`stream-json` also
    needs `--verbose`), and it may edit files (`--permission-mode acceptEdits`);
  - `curl` against an HTTP API (`${VAR}` in argv, `-d @{prompt_file}`): an `openai` or
    `anthropic` provider, with the key's variable in `api_key_env`;
  - `openai api chat.completions.create`: an `openai` provider.
* a key or table switchyard does not know: left out, with a warning naming its line.

Anything it cannot convert is a warning naming the line; the output is checked by loading
it, and the warnings say if it still does not load.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from switchyard._records import record
from switchyard.config.deprecated import apply_renames
from switchyard.config.load import loads_config
from switchyard.errors import ConfigError, InputError
from switchyard.facts import DEPRECATED_FACTS
from switchyard.rules import ast
from switchyard.rules.parse import parse

if TYPE_CHECKING:
    from switchyard.config.locate import Loc, PathKey

__all__ = ["Migrated", "migrate_text", "to_toml"]

_SHELL_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


@record
class Migrated:
    """The new config's text, and what could not be converted (each naming its line)."""

    text: str
    warnings: tuple[str, ...]
    loads: bool


class _Migration:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.notes: dict[PathKey, list[str]] = {}
        self.warnings: list[str] = []
        self._index: dict[PathKey, Loc] | None = None

    def line(self, path: PathKey) -> str:
        """`FILE:LINE` of `path` in the old file (or of the nearest table holding it)."""
        if self._index is None:
            from switchyard.config.locate import index_toml

            self._index = index_toml(self.text)
        while path:
            loc = self._index.get(path)
            if loc is not None:
                return f"{self.file}:{loc.line}"
            path = path[:-1]
        return self.file

    def note(self, path: PathKey, text: str) -> None:
        self.notes.setdefault(path, []).append(text)

    def warn(self, path: PathKey, text: str) -> None:
        self.warnings.append(f"{self.line(path)}: {text}")

    # ---------------------------------------------------------------------------------
    def run(self) -> Migrated:
        try:
            data = tomllib.loads(self.text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{self.file}: not valid TOML: {exc}") from None
        original = copy.deepcopy(data)
        for moved in apply_renames(data):
            if moved.error:
                self.warn(moved.old, moved.message + "; the old key was left out")
                _drop(data, moved.old)
            elif moved.new is not None and moved.new != ("sources",):  # [github] gets its own note below
                self.note(moved.new, _was(moved.message))
        if "workspace" in data and isinstance(original.get("worktree"), dict):
            self.note(("workspace",), "was [worktree]; each task works in a git worktree of its own")
        if isinstance(data.get("sources"), list) and "github" in original:
            self.note(
                ("sources",),
                'was [github]; delivery = "pr" (the default for GitHub): a verified change becomes a pull request',
            )
        providers = data.get("providers")
        if isinstance(providers, dict):
            for name, table in providers.items():
                if isinstance(table, dict):
                    self.provider(name, table)
        self.conditions(data)
        return self.finish(data)

    # providers ---------------------------------------------------------------------------
    def provider(self, name: str, table: dict[str, Any]) -> None:
        template = table.get("command_template")
        if table.get("kind", "command") != "command" or not isinstance(template, list) or not template:
            return
        if not all(isinstance(e, str) for e in template):
            return
        exe = os.path.basename(template[0]).lower()
        path: PathKey = ("providers", name)
        if exe == "claude":
            self.claude(path, table, template)
        elif exe == "curl":
            self.curl(path, table, template)
        elif exe == "openai" and template[1:3] == ["api", "chat.completions.create"]:
            self.openai_cli(path, table, template)
        elif any(_SHELL_VAR.search(e) for e in template):
            self.unconvertible(path, table, template, "its command_template passes ${VAR} that no shell expands")

    def claude(self, path: PathKey, table: dict[str, Any], template: list[str]) -> None:
        argv = list(template)
        changes = []
        for i in range(1, len(argv) - 1):
            if argv[i] == "-p" and "{prompt_file}" in argv[i + 1]:
                del argv[i + 1]
                table["stdin"] = "{prompt_file}"
                changes.append("the prompt goes on stdin (after -p Claude Code read the file's path as the prompt)")
                break
        fmt = None
        for i, element in enumerate(argv):
            if element == "--output-format" and i + 1 < len(argv):
                fmt = argv[i + 1]
            elif element.startswith("--output-format="):
                fmt = element.split("=", 1)[1]
        if fmt is None:
            argv += ["--output-format", "json"]
            fmt = "json"
            changes.append('"--output-format json" added: its result carries the usage and cost switchyard reads')
        if fmt == "stream-json" and "--verbose" not in argv:
            argv.append("--verbose")
            changes.append('"--verbose" added: Claude Code prints stream-json in -p mode only with it')
        usage = {"json": "claude-json", "stream-json": "claude-stream-json"}.get(fmt)
        if usage is not None and "usage_format" not in table:
            table["usage_format"] = usage
            changes.append(f'usage_format = "{usage}" reads the tokens and cost of its --output-format {fmt}')
        if not any(
            a in ("--permission-mode", "--dangerously-skip-permissions") or a.startswith("--permission-mode=")
            for a in argv
        ):
            argv += ["--permission-mode", "acceptEdits"]
            changes.append(
                '"--permission-mode acceptEdits" added: with nobody to approve, Claude Code may not edit files without it'
            )
        if changes:
            table["command_template"] = argv
            for change in changes:
                self.note(path, change)

    def curl(self, path: PathKey, table: dict[str, Any], template: list[str]) -> None:
        url = next((e for e in template if e.startswith(("http://", "https://"))), None)
        headers: list[str] = []
        for i, element in enumerate(template[:-1]):
            if element in ("-H", "--header"):
                headers.append(template[i + 1])
        parts = urlsplit(url) if url else None
        if parts is None or not parts.netloc or "..." in (url or ""):
            self.unconvertible(path, table, template, "its curl template names no complete URL to call")
            return
        key_var = None
        anthropic = "anthropic" in parts.netloc or parts.path.rstrip("/").endswith("/messages")
        for header in headers:
            name, _, value = header.partition(":")
            found = _SHELL_VAR.search(value)
            if found and name.strip().lower() in ("authorization", "x-api-key", "api-key"):
                key_var = found.group(1)
        if key_var is None:
            key_var = table.get("api_key_env")
        base = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        for suffix in ("/v1/messages", "/messages", "/chat/completions", "/completions"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        kind = "anthropic" if anthropic else "openai"
        keep = {
            k: v
            for k, v in table.items()
            if k in ("enabled", "timeout_s", "max_retries", "max_cost_usd", "description")
        }
        table.clear()
        table.update({"kind": kind, "base_url": base, **keep})
        if key_var:
            table["api_key_env"] = key_var
        dropped = [
            h for h in headers if not h.lower().startswith(("authorization", "x-api-key", "api-key", "content-type"))
        ]
        self.note(
            path,
            f"was a curl command_template: an {kind} provider sends the request itself, reads its usage and prices it"
            + (f"; the key comes from ${key_var} (api_key_env)" if key_var else ""),
        )
        if dropped:
            self.warn(
                (*path, "command_template"),
                f"curl header(s) not carried over: {', '.join(dropped)}; add them as headers = {{ ... }}",
            )

    def openai_cli(self, path: PathKey, table: dict[str, Any], template: list[str]) -> None:
        keep = {
            k: v
            for k, v in table.items()
            if k in ("enabled", "timeout_s", "max_retries", "max_cost_usd", "description")
        }
        key = table.get("api_key_env") or "OPENAI_API_KEY"
        table.clear()
        table.update({"kind": "openai", **keep, "api_key_env": key})
        self.note(path, "was `openai api chat.completions.create`: an openai provider calls the same API itself")

    def unconvertible(self, path: PathKey, table: dict[str, Any], template: list[str], why: str) -> None:
        kept = [e for e in template if not _SHELL_VAR.search(e)]
        lost = [e for e in template if _SHELL_VAR.search(e)]
        table["command_template"] = kept or ["true"]
        table["enabled"] = False
        self.note(path, f"disabled: {why}" + (f"; left out: {', '.join(lost)}" if lost else ""))
        self.warn(
            (*path, "command_template"),
            f"cannot convert provider '{path[1]}': {why}; it is written disabled, finish it by hand",
        )

    # conditions --------------------------------------------------------------------------
    def conditions(self, data: dict[str, Any]) -> None:
        rules = data.get("routing", {}).get("rules") if isinstance(data.get("routing"), dict) else None
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict) or not isinstance(rule.get("condition"), str):
                continue
            source = rule["condition"]
            try:
                tree = parse(source)
            except ConfigError:
                continue  # the check of the output reports it
            spans = sorted(
                (node.span, DEPRECATED_FACTS[node.name]) for node in _names(tree) if node.name in DEPRECATED_FACTS
            )
            if not spans:
                continue
            for (start, end), new in reversed(spans):
                source = source[:start] + new + source[end:]
            self.note(("routing", "rules", i), f"condition was: {rule['condition']}")
            rule["condition"] = source

    # output --------------------------------------------------------------------------------
    def finish(self, data: dict[str, Any]) -> Migrated:
        for _ in range(50):  # each round leaves out the keys the loader does not know
            text = to_toml(data, self.notes, header=f"# migrated from {self.file} by `switchyard config migrate`\n")
            try:
                loads_config(text, "<migrated>")
            except ConfigError as exc:
                unknown = [p for p in exc.problems if p.message.startswith("unknown key") and p.key_path]
                if not unknown:
                    for p in exc.problems:
                        self.warnings.append(f"the migrated config does not load yet: {p.key_path}: {p.message}")
                    return Migrated(text, tuple(self.warnings), False)
                from switchyard.config.validate import parse_path

                for p in unknown:
                    assert p.key_path is not None
                    where = parse_path(p.key_path)
                    self.warn(where, f"{p.key_path}: switchyard has no such setting; left out ({p.message})")
                    _drop(data, where)
                continue
            return Migrated(text, tuple(self.warnings), True)
        raise AssertionError("migration did not settle")  # pragma: no cover


def _names(node: ast.Node) -> list[ast.Name]:
    """The bare names in a condition (not the fields after a dot)."""
    if isinstance(node, ast.Name):
        return [node]
    out: list[ast.Name] = []
    for child in (getattr(node, f, None) for f in ("obj", "operand", "left", "right")):
        if isinstance(child, ast.Name | ast.Attr | ast.Index | ast.Not | ast.BoolOp | ast.Compare):
            out += _names(child)
    for child in getattr(node, "operands", ()):
        out += _names(child)
    return out


def _was(message: str) -> str:
    """'a.b is deprecated: it is now c.d (hours -> seconds)' -> 'was a.b (hours -> seconds)'."""
    old, _, rest = message.partition(" is deprecated: it is now ")
    unit = rest[rest.index("(") :] if "(" in rest else ""
    return f"was {old}" + (f" {unit}" if unit else "")


def _drop(data: Any, path: PathKey) -> None:
    for part in path[:-1]:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(data, dict):
        data.pop(path[-1], None)
    elif isinstance(data, list) and isinstance(path[-1], int) and path[-1] < len(data):
        del data[path[-1]]


# ------------------------------------------------------------------------------- TOML writing
def _key(k: str) -> str:
    return k if _BARE.match(k) else _string(k)


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, Decimal)):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    return _string(str(v))  # dates and times: written as text


def _comments(notes: dict[PathKey, list[str]], path: PathKey) -> str:
    return "".join(f"# {line}\n" for line in notes.get(path, ()))


def _table(
    lines: list[str], header: str, path: PathKey, table: dict[str, Any], notes: dict[PathKey, list[str]]
) -> None:
    """`[header]` with its plain keys; tables of tables and arrays of tables follow as tables of their own."""
    lines.append("")
    lines.append(_comments(notes, path) + header)
    base = header.strip("[]")
    subtables = []
    for k, v in table.items():
        tables = isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values())
        array = isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and path[0] != "workflows"
        if tables or array:
            subtables.append((k, v))
            continue
        lines.append(_comments(notes, (*path, k)) + f"{_key(k)} = {_value(v)}")
    for k, v in subtables:
        if isinstance(v, dict):
            for name, sub in v.items():
                _table(lines, f"[{base}.{_key(k)}.{_key(name)}]", (*path, k, name), sub, notes)
        else:
            for i, item in enumerate(v):
                _table(lines, f"[[{base}.{_key(k)}]]", (*path, k, i), item, notes)


def to_toml(data: dict[str, Any], notes: dict[PathKey, list[str]] | None = None, *, header: str = "") -> str:
    """`data` (a config as parsed) as TOML text, with `notes` as comments above the keys and tables they name."""
    notes = notes or {}
    lines: list[str] = [header.rstrip("\n")] if header else []
    for k, v in data.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and not all(isinstance(x, dict) for x in v)):
            lines.append(_comments(notes, (k,)) + f"{_key(k)} = {_value(v)}")
    for k, v in data.items():
        if k in ("providers", "workflows") and isinstance(v, dict) and v:
            first: PathKey = (k, next(iter(v)))
            notes = {**notes, first: [*notes.get((k,), []), *notes.get(first, [])]}  # above the first table
            for name, table in v.items():
                _table(lines, f"[{k}.{_key(name)}]", (k, name), table, notes)
        elif isinstance(v, dict):
            _table(lines, f"[{_key(k)}]", (k,), v, notes)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            notes = {**notes, (k, 0): [*notes.get((k,), []), *notes.get((k, 0), [])]}
            for i, item in enumerate(v):
                _table(lines, f"[[{_key(k)}]]", (k, i), item, notes)
    return "\n".join(line for line in lines) + "\n"


def migrate_text(text: str, file: str = "<old>") -> Migrated:
    """Convert an old config's text; see the module docstring for what changes."""
    return _Migration(text, file).run()
