"""Delivery: a verified change leaves the machine; the task's issue hears how it ended.

After a task's change is verified, the coordinator runs these as durable steps,
each idempotent so a crash between two of them (or inside one) never repeats an
effect:

    commit ─► push ─► pull request ─► comment on the issue, labels (or close the bead)

* `commit`: everything in the worktree, with the configured message and trailers
  naming the model(s), the attempts and the cost. A HEAD that already carries the
  task's `Switchyard-Task:` trailer is that commit: it is not made twice.
* `push`: the commit to the task's branch at the configured remote (pushing the
  same commit again changes nothing).
* `pull_request`: `gh pr list --head BRANCH` first; only when there is none
  `gh pr create` (body: the task, each attempt with its model, why it was chosen,
  its cost and verdict, and the verification summary). A crash after the PR was
  made finds it on the next run: there is exactly one.
* `finish`: a comment on the source issue, once (the comment carries a marker the
  next run looks for), and the labels (`taken` when the task starts, then `done`
  or `failed`); for beads, `bd close` with the outcome, or the bead back to open
  with a comment when the task ended dead.

`Target` is fixed when the task begins (from its source's `[[sources]]` entry and
`[delivery]`), so a recovered workflow delivers where it was going to. How far
delivery goes is the source's `delivery`: `none`, `commit`, `push` or `pr`.
Tools run as argv lists with the user's environment (gh and git need their
credentials); what they print is redacted before it is kept or shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from switchyard._records import record
from switchyard.config.delivery import DeliveryConfig, DeliveryLabels
from switchyard.errors import RunError
from switchyard.ledger.store import AttemptRecord
from switchyard.money import usd
from switchyard.prompts import render_prompt
from switchyard.redact import Redactor
from switchyard.task import Task
from switchyard.worktree import Workspace, git

__all__ = ["STEPS", "Delivery", "DeliveryError", "Target", "attempts_table", "trailers"]

STEPS = ("commit", "push", "pr")  # in order; `delivery = "push"` stops after push
TOOL_TIMEOUT_S = 120
MARKER = "<!-- switchyard:{task}:{outcome} -->"


class DeliveryError(RunError):
    """A delivery step failed; the message names the step, the tool and what it said."""


@record
class Target:
    """Where a task's work goes and who hears how it ended, fixed when the task begins."""

    mode: str = "none"  # none | commit | push | pr
    kind: str = ""  # github | beads | file | "" (no source entry)
    repo: str | None = None  # github OWNER/REPO
    issue: int | None = None  # github issue number
    bead: str | None = None  # beads id
    remote: str = "origin"
    pr_base: str | None = None
    labels: DeliveryLabels = DeliveryLabels()
    comment: bool = True

    def goes_to(self, step: str) -> bool:
        """Does delivery go as far as `step` (`commit`, `push`, `pr`)?"""
        return self.mode in STEPS and STEPS.index(step) <= STEPS.index(self.mode)

    @property
    def tracks(self) -> bool:
        """Does the task's source hear about it (labels, comments, bead status)?"""
        return self.mode != "none" and (
            (self.kind == "github" and self.issue is not None) or (self.kind == "beads" and self.bead is not None)
        )


def trailers(task: Task, attempts: Sequence[AttemptRecord]) -> str:
    """The commit trailers: the task, the model(s) in the order used, the attempts and their cost."""
    models: list[str] = []
    for a in attempts:
        if a.model not in models:
            models.append(a.model)
    cost = sum((a.cost_usd for a in attempts), Decimal(0))
    return (
        f"Switchyard-Task: {task.id}\n"
        f"Switchyard-Model: {', '.join(models) or '-'}\n"
        f"Switchyard-Attempts: {len(attempts)}\n"
        f"Switchyard-Cost-USD: {cost}\n"
    )


def attempts_table(attempts: Sequence[AttemptRecord]) -> str:
    """Each attempt as a Markdown table row: model, why it was chosen, outcome, cost."""
    rows = ["| # | stage | model | why chosen | outcome | cost |", "|---|---|---|---|---|---|"]
    for i, a in enumerate(attempts, 1):
        outcome = a.verdict or a.status
        if a.verdict in ("rejected", "error") and a.verify_check:
            outcome += f" ({a.verify_check})"
        elif a.error_class and a.status != "ok":
            outcome += f" ({a.error_class})"
        why = (a.reason or "default model").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {i} | {a.stage or '-'} | `{a.model}` | {why} | {outcome} | {usd(a.cost_usd)} |")
    total = sum((a.cost_usd for a in attempts), Decimal(0))
    rows.append(f"\nTotal: {len(attempts)} attempt(s), {usd(total)}.")
    return "\n".join(rows)


def _verification(attempts: Sequence[AttemptRecord]) -> str:
    verified = [a for a in attempts if a.verdict == "verified"]
    rejected = [a for a in attempts if a.verdict == "rejected"]
    lines = []
    if verified:
        lines.append(f"- `{verified[-1].model}`: {verified[-1].verify_detail or 'verified'}")
    for a in rejected:
        lines.append(
            f"- `{a.model}` rejected by `{a.verify_check}`" + (f": {_gist(a.verify_detail)}" if a.verify_detail else "")
        )
    return "\n".join(lines) or "- not verified ([verify] is not configured)"


def _gist(detail: str | None) -> str:
    """A check's failure in one line: how it ended, and the last thing it printed."""
    lines = [ln.strip() for ln in (detail or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    return (lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}")[:300]


class Delivery:
    """The delivery steps for one config; tools (`git`, `gh`, `bd`) are found on PATH."""

    def __init__(
        self,
        config: DeliveryConfig,
        redactor: Redactor,
        *,
        gh: str = "gh",
        bd: str = "bd",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.redactor = redactor
        self.gh = gh
        self.bd = bd
        self.env = env

    # tools -------------------------------------------------------------------------
    def _tool(self, step: str, argv: list[str], *, body: str | None = None) -> str:
        """Run a tool; its stdout, or a `DeliveryError` naming the step. `body` goes in a private temp file
        named where the argv says `{body_file}`."""
        path = None
        try:
            if body is not None:
                fd, path = tempfile.mkstemp(prefix="switchyard-", suffix=".md")
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(body)
                argv = [a.replace("{body_file}", path) for a in argv]
            try:
                proc = subprocess.run(
                    argv,
                    capture_output=True,
                    timeout=TOOL_TIMEOUT_S,
                    check=False,
                    env=None if self.env is None else dict(self.env),
                    stdin=subprocess.DEVNULL,
                )
            except FileNotFoundError:
                raise DeliveryError(f"{step}: '{argv[0]}' is not on PATH") from None
            except subprocess.TimeoutExpired:
                raise DeliveryError(f"{step}: '{' '.join(argv[:3])}' did not finish in {TOOL_TIMEOUT_S}s") from None
        finally:
            if path is not None:
                os.unlink(path)
        out = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            said = self.redactor.redact((proc.stderr.decode("utf-8", "replace") or out).strip())[-500:]
            raise DeliveryError(f"{step}: '{' '.join(argv[:3])}' exited {proc.returncode}: {said or 'no output'}")
        return out

    def _gh(self, step: str, target: Target, *args: str, body: str | None = None) -> str:
        assert target.repo is not None
        return self._tool(step, [self.gh, *args, f"--repo={target.repo}"], body=body)

    # the steps -----------------------------------------------------------------------
    def commit(self, target: Target, ws: Workspace, task: Task, attempts: Sequence[AttemptRecord]) -> str:
        """Commit the task's change on its branch (once); returns the commit."""
        message = render_prompt(self.config.commit_message, task).strip() or task.title or task.id
        text = f"{message}\n\n{trailers(task, attempts)}"
        author = None
        if self.config.author_name or self.config.author_email:
            author = (self.config.author_name or "switchyard", self.config.author_email or "switchyard@localhost")
        try:
            return ws.commit(text, f"Switchyard-Task: {task.id}\n", author=author)
        except RunError as exc:
            raise DeliveryError(f"commit: {exc}") from None

    def push(self, target: Target, ws: Workspace, commit: str) -> None:
        try:
            ws.push(target.remote, ws.branch, commit)
        except RunError as exc:
            raise DeliveryError(f"push to {target.remote}: {self.redactor.redact(str(exc))}") from None

    def pull_request(self, target: Target, ws: Workspace, task: Task, attempts: Sequence[AttemptRecord]) -> str:
        """The branch's pull request: the one that exists, else a new one; returns its URL."""
        if target.repo is None:
            raise DeliveryError(f"pr: task {task.id} has no GitHub repository to open a pull request in")
        found = self._gh(
            "pr", target, "pr", "list", f"--head={ws.branch}", "--state=all", "--json=number,url", "--limit=5"
        )
        try:
            prs: Any = json.loads(found or "[]")
        except ValueError:
            raise DeliveryError(f"pr: 'gh pr list' printed something that is not JSON: {found[:200]!r}") from None
        if isinstance(prs, list) and prs and isinstance(prs[0], dict) and isinstance(prs[0].get("url"), str):
            return str(prs[0]["url"])
        base = target.pr_base or _branch_of(ws)
        title = render_prompt(self.config.pr_title, task).strip() or task.id
        args = ["pr", "create", f"--head={ws.branch}", f"--base={base}", f"--title={title}", "--body-file={body_file}"]
        if self.config.draft:
            args.append("--draft")
        out = self._gh("pr", target, *args, body=self.pr_body(task, attempts))
        lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def pr_body(self, task: Task, attempts: Sequence[AttemptRecord]) -> str:
        issue = f"Closes #{task.metadata['number']}\n\n" if isinstance(task.metadata.get("number"), int) else ""
        return (
            f"{issue}## Task {task.id}: {task.title}\n\n{task.body}\n\n"
            f"## Attempts\n\n{attempts_table(attempts)}\n\n"
            f"## Verification\n\n{_verification(attempts)}\n\n"
            "_Routed, run and verified by switchyard._\n"
        )

    def taken(self, target: Target, task: Task) -> None:
        """The task started: label its issue `taken`, or mark its bead in progress."""
        if target.kind == "github" and target.issue is not None and target.labels.taken:
            self._gh("label", target, "issue", "edit", str(target.issue), f"--add-label={target.labels.taken}")
        elif target.kind == "beads" and target.bead is not None:
            self._tool("bead", [self.bd, "update", "--status=in_progress", "--", target.bead])

    def finish(self, target: Target, task: Task, outcome: str, message: str, attempts: Sequence[AttemptRecord]) -> None:
        """Tell the source how the task ended (`done` or `dead`): comment once, set labels, close or reopen the bead."""
        if target.kind == "github" and target.issue is not None:
            if target.comment:
                self._comment(target, task, outcome, message, attempts)
            labels = target.labels
            add = labels.done if outcome == "done" else labels.failed
            args = ["issue", "edit", str(target.issue)]
            if add:
                args.append(f"--add-label={add}")
            if labels.taken:
                args.append(f"--remove-label={labels.taken}")
            if len(args) > 3:
                self._gh("label", target, *args)
        elif target.kind == "beads" and target.bead is not None:
            if outcome == "done":
                self._tool("bead", [self.bd, "close", f"--reason={message}", "--", target.bead])
            else:
                self._tool("bead", [self.bd, "update", "--status=open", "--", target.bead])
                self._tool("bead", [self.bd, "comments", "add", "--", target.bead, message])

    def _comment(
        self, target: Target, task: Task, outcome: str, message: str, attempts: Sequence[AttemptRecord]
    ) -> None:
        marker = MARKER.format(task=task.id, outcome=outcome)
        seen = self._gh("comment", target, "issue", "view", str(target.issue), "--json=comments")
        if marker in seen:
            return  # made before a crash: once is enough
        body = f"{marker}\n{message}\n\n{attempts_table(attempts)}\n"
        self._gh("comment", target, "issue", "comment", str(target.issue), "--body-file={body_file}", body=body)


def _branch_of(ws: Workspace) -> str:
    """The branch the base commit came from, for a pull request's base: the repository's current branch."""
    proc = git(Path(ws.repo), "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    name = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not name:
        raise DeliveryError('pr: the repository is on a detached HEAD; set [delivery] pr_base = "main"')
    return name
