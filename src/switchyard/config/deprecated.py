"""Old names that still load: the seed system's coordinator keys, and switchyard's own earlier ones.

Each `Rename` moves one old key to where it lives now (converting its value when the
unit changed). The loader applies them to the parsed TOML before validation and
warns at the old key; `switchyard config migrate` applies the same table and writes
the new names, with a comment on each. A rename applies only where it is
unambiguous: when the new key is set too, the old one is an error naming both.

Names in rule conditions (the bare `estimated_tokens` fact) are read by the fact
schema itself (`facts.DEPRECATED_FACTS`); the loader warns where a rule uses one.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from switchyard._records import record

if TYPE_CHECKING:
    from switchyard.config.locate import PathKey

__all__ = ["RENAMES", "Moved", "Rename", "apply_renames"]


@record
class Rename:
    """`old` (a key path) now lives at `new`; `convert` turns the old value into the new one."""

    old: tuple[str, ...]
    new: tuple[str, ...]
    convert: Callable[[Any], Any] | None = None
    unit: str = ""  # how the value changed, for the message ("hours -> seconds")


def _hours_to_s(v: Any) -> Any:
    return v * 3600 if isinstance(v, (int, Decimal)) and not isinstance(v, bool) else v


def _worktree_mode(v: Any) -> Any:
    return ("worktree" if v else "scratch") if isinstance(v, bool) else v


RENAMES: tuple[Rename, ...] = (
    # the seed system's [coordinator]
    Rename(("coordinator", "max_concurrent_workers"), ("coordinator", "max_workers")),
    # how often the old coordinator looked for new issues: `run` re-reads its sources that often
    Rename(("coordinator", "poll_interval_seconds"), ("coordinator", "watch_s")),
    Rename(("coordinator", "worker_timeout_hours"), ("runner", "default_timeout_s"), _hours_to_s, "hours -> seconds"),
    # the seed system's [worktree]
    Rename(("worktree", "base_dir"), ("workspace", "dir")),
    # switchyard's own worktree keys, before [workspace]
    Rename(("coordinator", "worktree"), ("workspace", "mode"), _worktree_mode, 'true -> "worktree"'),
    Rename(("coordinator", "worktree_dir"), ("workspace", "dir")),
    Rename(("coordinator", "repo"), ("workspace", "repo")),
    Rename(("coordinator", "branch_prefix"), ("workspace", "branch_prefix")),
)

_GITHUB_KEYS = ("repo_owner", "repo_name", "issue_label")


@record
class Moved:
    """One old key the renames moved (or could not): where it was, what it became, and the message."""

    old: PathKey
    new: PathKey | None
    message: str
    error: bool = False


def apply_renames(data: dict[str, Any]) -> list[Moved]:
    """Rewrite `data` (parsed TOML) in place to the current names; returns what moved, for warnings."""
    moved: list[Moved] = []
    for rename in RENAMES:
        table = data.get(rename.old[0])
        if not isinstance(table, dict) or rename.old[1] not in table:
            continue
        old_s, new_s = ".".join(rename.old), ".".join(rename.new)
        target = data.setdefault(rename.new[0], {})
        if not isinstance(target, dict):
            continue  # the new table is not a table: its own error says so
        if rename.new[1] in target:
            moved.append(Moved(rename.old, None, f"{old_s} is the old name of {new_s}, which is set too", error=True))
            continue
        value = table.pop(rename.old[1])
        target[rename.new[1]] = rename.convert(value) if rename.convert else value
        unit = f" ({rename.unit})" if rename.unit else ""
        moved.append(Moved(rename.old, rename.new, f"{old_s} is deprecated: it is now {new_s}{unit}"))
    for name in ("worktree", "github"):  # old tables that may be left empty: drop them
        if data.get(name) == {}:
            del data[name]
    github = data.get("github")
    if isinstance(github, dict):
        moved += _github(data, github)
    return moved


def _github(data: dict[str, Any], github: dict[str, Any]) -> list[Moved]:
    """`[github] repo_owner/repo_name/issue_label` -> a `[[sources]]` entry of kind github."""
    unknown = [k for k in github if k not in _GITHUB_KEYS]
    owner, name = github.get("repo_owner"), github.get("repo_name")
    if unknown or not isinstance(owner, str) or not isinstance(name, str):
        return []  # not the old shape: [github] is then an unknown table, reported as such
    sources = data.setdefault("sources", [])
    if not isinstance(sources, list):
        return []
    source: dict[str, Any] = {"kind": "github", "repo": f"{owner}/{name}"}
    label = github.get("issue_label")
    if isinstance(label, str) and label:
        source["label"] = label
    del data["github"]
    if any(isinstance(s, dict) and s.get("kind") == "github" and s.get("repo") == source["repo"] for s in sources):
        return [Moved(("github",), ("sources",), "[github] repeats a [[sources]] entry for the same repository")]
    sources.append(source)
    return [
        Moved(
            ("github",),
            ("sources",),
            f'[github] is deprecated: it is now [[sources]] kind = "github", repo = "{source["repo"]}"'
            + (f', label = "{label}"' if "label" in source else ""),
        )
    ]
