"""Where tasks come from and where their work goes: `[[sources]]`, `[workspace]`, `[verify]`, `[delivery]`.

* `[[sources]]`: the task sources `switchyard run` reads when no `--tasks` or
  `--source` is given (GitHub issues with a label, beads, tasks files), each with
  its `delivery`: `none`, `commit`, `push` or `pr`.
* `[workspace]`: each task works in a git worktree of its own (`mode = "auto"`
  does so for GitHub and beads tasks when the repository is a git repository;
  task files run in a scratch directory), on a branch made from `base`; after a
  rejected attempt `on_retry = "reset"` starts the next one where it started.
* `[verify]`: what decides that an attempt's change is good (commands run in the
  worktree, and built-in checks); its result is the attempt's outcome.
* `[delivery]`: how a verified change is committed, pushed and proposed.

`check_sections` holds the checks that need more than one field.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import TYPE_CHECKING, Literal

from switchyard._records import record
from switchyard.config.validate import SECONDS_POSITIVE, check

if TYPE_CHECKING:
    from switchyard.config.locate import PathKey

__all__ = [
    "DELIVERY_MODES",
    "DeliveryConfig",
    "DeliveryLabels",
    "SourceConfig",
    "VerifyCommand",
    "VerifyConfig",
    "WorkspaceConfig",
    "check_sections",
    "default_delivery",
]

Delivery = Literal["none", "commit", "push", "pr"]
DELIVERY_MODES: tuple[str, ...] = ("none", "commit", "push", "pr")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def _env_names(v: tuple[str, ...]) -> str | None:
    bad = [n for n in v if not _ENV_NAME.match(n)]
    return f"not an environment variable name: {', '.join(repr(b) for b in bad)}" if bad else None


def _argv(v: tuple[str, ...]) -> str | None:
    return 'argv needs at least the program, e.g. ["pytest", "-q"]' if not v or not v[0] else None


def _globs(v: tuple[str, ...]) -> str | None:
    bad = [g for g in v if not g or g.startswith("/")]
    return f"paths are relative globs such as 'src/**' (check {', '.join(repr(b) for b in bad)})" if bad else None


def _not_an_option(v: str) -> str | None:
    """Names git and gh take as arguments: one that starts with '-' would be read as an option."""
    return f"{v!r} starts with '-', which git would read as an option" if v.startswith("-") else None


def _remote(v: str) -> str | None:
    return "the remote's name is empty" if not v.strip() else _not_an_option(v)


def default_delivery(kind: str) -> str:
    """What a source delivers when it does not say: a pull request for GitHub, a commit for beads, nothing for files."""
    return {"github": "pr", "beads": "commit"}.get(kind, "none")


@record
class SourceConfig:
    """One `[[sources]]` entry: a GitHub repository (+ label), beads, or a tasks file."""

    kind: Literal["github", "beads", "file"]
    repo: str | None = None  # github: OWNER/REPO
    label: str | None = None  # github: only issues with this label
    path: str | None = None  # file: TOML, JSON or JSONL, relative to the config file
    delivery: Delivery | None = None  # default: pr for github, commit for beads, none for files
    limit: int = field(default=200, metadata=check(lambda v: None if 1 <= v <= 10_000 else "must be 1-10000"))

    @property
    def name(self) -> str:
        """The source's name, as the ledger records it with each task (what `--source` gives too)."""
        if self.kind == "github":
            return f"github:{self.repo}" + (f":{self.label}" if self.label else "")
        if self.kind == "beads":
            return "beads"
        return f"file:{self.path}"

    @property
    def delivers(self) -> str:
        return self.delivery or default_delivery(self.kind)


@record
class WorkspaceConfig:
    """`[workspace]`: where a task's agents work, and what a retry starts from."""

    mode: Literal["auto", "worktree", "scratch"] = "auto"
    repo: str = "."
    dir: str = ".switchyard/worktrees"
    base: str = field(default="HEAD", metadata=check(_not_an_option))
    branch_prefix: str = field(default="switchyard/", metadata=check(_not_an_option))
    on_retry: Literal["reset", "continue"] = "reset"
    # worktrees kept once their task's work is committed, for the next tasks to reuse: a new worktree of a
    # large repository is a checkout of every file, a reused one rewrites only the files that differ
    pool: int = field(default=4, metadata=check(lambda v: None if 0 <= v <= 1000 else "must be 0-1000"))


@record
class VerifyCommand:
    """One `[[verify.commands]]` entry: a program run in the worktree; exit status 0 passes."""

    argv: tuple[str, ...] = field(metadata=check(_argv))
    name: str | None = None
    timeout_s: float = field(default=600.0, metadata=check(SECONDS_POSITIVE))
    env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = field(default=(), metadata=check(_env_names))

    @property
    def label(self) -> str:
        return self.name or " ".join(self.argv)[:60]


@record
class VerifyConfig:
    """`[verify]`: the checks that decide whether an attempt's change is `verified` or `rejected`."""

    commands: tuple[VerifyCommand, ...] = ()
    require_change: bool = True  # an attempt that changed nothing is rejected
    allowed_paths: tuple[str, ...] = field(default=("**",), metadata=check(_globs))
    secrets: bool = True  # an added line that looks like a key (or holds a secret's value) is rejected
    review: bool = False  # a workflow whose review still rejects after its loops is rejected
    enabled: bool = field(default=False, metadata={"internal": True})  # the table is in the file


@record
class DeliveryLabels:
    """`[delivery.labels]`: the issue labels set as a task moves (an empty name sets none)."""

    taken: str = "in-progress"
    done: str = "done"
    failed: str = "failed"


@record
class DeliveryConfig:
    """`[delivery]`: how a verified change leaves the machine."""

    remote: str = field(default="origin", metadata=check(_remote))
    commit_message: str = "{title}\n\n{url}"
    pr_title: str = "{title}"
    pr_base: str | None = field(
        default=None, metadata=check(lambda v: v and _not_an_option(v))
    )  # default: the branch `[workspace] base` names (or the repository's current one)
    draft: bool = False
    comment: bool = True  # comment on the source issue when the task ends
    author_name: str | None = None  # default: the repository's user.name
    author_email: str | None = None
    labels: DeliveryLabels = field(default_factory=DeliveryLabels)


def check_sections(sections: dict[str, object]) -> list[tuple[PathKey, str, str | None]]:
    """Problems across fields: what each source kind needs, sources named twice."""
    out: list[tuple[PathKey, str, str | None]] = []
    sources = sections.get("sources")
    seen: dict[str, int] = {}
    for i, src in enumerate(sources if isinstance(sources, tuple) else ()):
        assert isinstance(src, SourceConfig)
        path: PathKey = ("sources", i)
        if src.kind == "github":
            if src.repo is None or not _REPO.match(src.repo):
                out.append(((*path, "repo"), 'a github source needs repo = "OWNER/REPO"', None))
        elif src.repo is not None or src.label is not None:
            out.append((path, f"repo and label are for github sources, not {src.kind}", None))
        if src.kind == "file":
            if not src.path:
                out.append(((*path, "path"), 'a file source needs path = "tasks.jsonl"', None))
        elif src.path is not None:
            out.append(((*path, "path"), f"path is for file sources, not {src.kind}", None))
        if src.name in seen:
            out.append((path, f"source {src.name!r} is listed twice (first at sources[{seen[src.name]}])", None))
        seen.setdefault(src.name, i)
    verify = sections.get("verify")
    if isinstance(verify, VerifyConfig):
        names: dict[str, int] = {}
        for i, cmd in enumerate(verify.commands):
            if cmd.label in names:
                out.append(
                    (("verify", "commands", i, "name"), f"two verify commands are called {cmd.label!r}", "name each")
                )
            names.setdefault(cmd.label, i)
    return out
