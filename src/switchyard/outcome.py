"""A task's verified outcome, for the coordinator: where it works, what judges it, where its work goes.

The coordinator's steps call `Outcomes`; it keeps no state a crash could lose
(a recovered workflow finds its worktree again by the task's id):

* `place(task, source)` (in the step that begins a task): the task's workspace,
  a git worktree on a branch of its own (`[workspace]`), or none (a scratch run
  directory), and its delivery `Target` (from its source's `[[sources]]` entry);
* `prepare(request)` (just before an agent starts): with `on_retry = "reset"`,
  an attempt of the stage that changes the repository starts from that stage's
  start point: the first attempt keeps it, a retry resets to it;
* `verify(request, call)` (after an agent succeeded): the attempt's `Verdict`;
* `commit`, `push`, `pull_request`, `report`: the delivery steps (`switchyard.delivery`);
* `release`: a delivered task's worktree goes to the pool (`[workspace] pool`), where the
  next task takes it instead of checking out every file of the repository again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from switchyard._records import record
from switchyard.config import LoadedConfig
from switchyard.config.delivery import SourceConfig, default_delivery
from switchyard.delivery import Delivery, DeliveryError, Target
from switchyard.driver import AttemptRequest
from switchyard.errors import ConfigError
from switchyard.ledger.store import AttemptRecord, Ledger
from switchyard.prompts import check_template
from switchyard.providers.base import Call, ProviderContext
from switchyard.task import Task
from switchyard.verify import Verdict, verify
from switchyard.worktree import GitError, Workspace, path_name, ref_name, repo_root

__all__ = ["Delivered", "Outcomes", "Placed", "source_kind"]


@record
class Placed:
    """Where a task works and where its work goes, fixed when it begins (an error: it cannot start)."""

    workspace: Workspace | None = None
    target: Target = Target()
    error: str | None = None


@record
class Delivered:
    """How far delivery got: the commit, the pull request, or the step that failed and why."""

    commit: str | None = None
    pr_url: str | None = None
    error: str | None = None

    def summary(self, target: Target, branch: str) -> str:
        if self.pr_url:
            return f"pull request {self.pr_url}"
        if self.commit and target.goes_to("push"):
            return f"commit {self.commit[:12]} pushed to {target.remote} {branch}"
        if self.commit:
            return f"commit {self.commit[:12]} on branch {branch}"
        return "nothing delivered"


def source_kind(source: str | None) -> str:
    """`github`, `beads` or `file` for a source name as the ledger records it ('' when unknown)."""
    if not source:
        return ""
    if source.startswith("github:"):
        return "github"
    if source == "beads":
        return "beads"
    return "file" if source.startswith("file:") else ""


def _pr_base(ref: str) -> str | None:
    """The branch a base ref names (`main`, `origin/main`, `refs/heads/main`); None for HEAD or a commit."""
    if ref in ("HEAD", "") or "~" in ref or "^" in ref:
        return None
    for prefix in ("refs/heads/", "refs/remotes/origin/", "origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


class Outcomes:
    """Workspaces, verification and delivery for one coordinator."""

    def __init__(self, loaded: LoadedConfig, ledger: Ledger, context: ProviderContext) -> None:
        self.loaded = loaded
        self.ledger = ledger
        self.context = context
        self.config = loaded.workspace
        self.repo = loaded.resolve(self.config.repo)
        self.dir = loaded.resolve(self.config.dir)
        self.pool = self.dir / ".pool" if self.config.pool else None  # no task's directory starts with a dot
        self.sources: dict[str, SourceConfig] = {s.name: s for s in loaded.sources}
        self.delivery = Delivery(loaded.delivery, context.redactor)
        self._in_git: bool | None = None
        self._spaces: dict[str, Workspace] = {}
        self._lock = threading.Lock()

    @property
    def in_git(self) -> bool:
        if self._in_git is None:
            self._in_git = repo_root(self.repo) is not None
        return self._in_git

    def check(self) -> None:
        """Before any task starts: the delivery templates name known fields; `mode = "worktree"` has a repository."""
        for key in ("commit_message", "pr_title"):
            try:
                check_template(getattr(self.loaded.delivery, key), f"delivery.{key}")
            except ConfigError as exc:
                raise self.loaded.locate(exc) from None
        if self.config.mode == "worktree" and not self.in_git:
            raise ConfigError.single(
                f'[workspace] mode = "worktree" but {self.repo} is not in a git repository',
                key_path="workspace.repo",
                file=self.loaded.path,
                hint='point [workspace] repo at the repository, or set mode = "scratch"',
            )

    # placing a task --------------------------------------------------------------------
    def place(self, task: Task, source: str | None) -> Placed:
        """The task's workspace (made now, or found again) and its delivery target."""
        kind = source_kind(source or task.source)
        mode = self.config.mode
        worktree = mode == "worktree" or (mode == "auto" and kind in ("github", "beads") and self.in_git)
        target = self._target(task, source or task.source, kind, worktree)
        if not worktree:
            return Placed(None, target)
        try:
            ws = Workspace.open(
                self.repo,
                self.dir / path_name(task.id),
                task.id,
                self.config.branch_prefix,
                self.config.base,
                pool=self.pool,
            )
        except GitError as exc:
            return Placed(None, target, f"could not make the task's worktree: {exc}")
        with self._lock:
            self._spaces[task.id] = ws
        return Placed(ws, target)

    def _target(self, task: Task, source: str | None, kind: str, worktree: bool) -> Target:
        entry = self.sources.get(source or "")
        mode = entry.delivers if entry is not None else default_delivery(kind)
        if not worktree:
            mode = "none"  # nothing to commit outside a worktree
        cfg = self.loaded.delivery
        number = task.metadata.get("number")
        repo = task.metadata.get("repo")
        return Target(
            mode=mode,
            kind=kind,
            repo=repo if isinstance(repo, str) else (entry.repo if entry is not None else None),
            issue=number if kind == "github" and isinstance(number, int) and not isinstance(number, bool) else None,
            bead=task.id if kind == "beads" else None,
            remote=cfg.remote,
            pr_base=cfg.pr_base or _pr_base(self.config.base),
            labels=cfg.labels,
            comment=cfg.comment,
        )

    def space(self, task: Task, workdir: str | None) -> Workspace | None:
        """The task's workspace (None in a scratch directory): remembered, or found again after a restart."""
        if workdir is None:
            return None
        with self._lock:
            ws = self._spaces.get(task.id)
        if ws is None or ws.path != workdir:
            ws = Workspace.open(
                self.repo, Path(workdir), task.id, self.config.branch_prefix, self.config.base, pool=self.pool
            )
            with self._lock:
                self._spaces[task.id] = ws
        return ws

    # the runner's hooks ----------------------------------------------------------------
    def prepare(self, request: AttemptRequest) -> None:
        """Before an agent starts on a changing stage: keep its start point, or (a retry) go back to it."""
        job = request.job
        if job.start_point is None or self.config.on_retry != "reset":
            return
        ws = self.space(job.task, job.workdir)
        if ws is None:
            return
        commit, made = ws.start_point(ref_name(job.start_point), at_base=request.first)
        if not made:
            ws.reset(commit)

    def verify(self, request: AttemptRequest, call: Call) -> Verdict | None:
        """The verdict on an attempt of the changing stage (None when nothing verifies it)."""
        job = request.job
        if not job.verify or not self.loaded.verify.enabled:
            return None
        try:
            ws = self.space(job.task, job.workdir)
        except GitError as exc:
            return Verdict("error", "change", f"the task's worktree is not usable: {exc}")
        workdir = Path(job.workdir) if job.workdir else call.run_dir
        return verify(
            self.loaded.verify,
            workdir,
            ws,
            run_dir=call.run_dir,
            redactor=self.context.redactor,
            children=self.context.children,
            env=self.context.env,
        )

    # delivery steps --------------------------------------------------------------------
    def _attempts(self, task: Task) -> list[AttemptRecord]:
        return [a for a in self.ledger.attempts(task_id=task.id) if a.status != "interrupted"]

    def commit(self, task: Task, placed: Placed) -> Delivered:
        assert placed.workspace is not None
        try:
            return Delivered(self.delivery.commit(placed.target, placed.workspace, task, self._attempts(task)))
        except DeliveryError as exc:
            return Delivered(error=str(exc))

    def push(self, placed: Placed, done: Delivered) -> Delivered:
        assert placed.workspace is not None and done.commit is not None
        try:
            self.delivery.push(placed.target, placed.workspace, done.commit)
        except DeliveryError as exc:
            return Delivered(done.commit, error=str(exc))
        return done

    def pull_request(self, task: Task, placed: Placed, done: Delivered) -> Delivered:
        assert placed.workspace is not None
        try:
            url = self.delivery.pull_request(placed.target, placed.workspace, task, self._attempts(task))
        except DeliveryError as exc:
            return Delivered(done.commit, error=str(exc))
        return Delivered(done.commit, url)

    def release(self, task: Task, placed: Placed) -> str | None:
        """The task's work is committed: its worktree goes to the pool for the next task; an error message."""
        if placed.workspace is None:
            return None
        try:
            placed.workspace.release(self.pool, self.config.pool)
        except GitError as exc:
            return f"could not release the worktree: {exc}"
        with self._lock:
            self._spaces.pop(task.id, None)
        return None

    def taken(self, task: Task, placed: Placed) -> str | None:
        """Tell the source the task started; an error message (the task goes on regardless)."""
        try:
            self.delivery.taken(placed.target, task)
        except DeliveryError as exc:
            return str(exc)
        return None

    def report(self, task: Task, placed: Placed, outcome: str, message: str) -> str | None:
        """Tell the source how the task ended; an error message when it could not be told."""
        try:
            self.delivery.finish(placed.target, task, outcome, message, self._attempts(task))
        except DeliveryError as exc:
            return str(exc)
        return None


def delivery_steps(target: Target) -> Sequence[str]:
    """The delivery steps a target goes through, in order."""
    return [s for s in ("commit", "push", "pr") if target.goes_to(s)]
