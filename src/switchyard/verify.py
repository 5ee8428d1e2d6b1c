"""Verification: the checks that decide whether an attempt's change is `verified` or `rejected`.

After an agent finishes a stage that changes the repository, `verify()` runs, in
its worktree, the built-in checks and then the `[verify]` commands, in order,
stopping at the first that fails:

* `change`: the attempt changed something (against the task's base commit);
* `paths`: every changed path matches one of `allowed_paths` (`**` any depth,
  `*` and `?` within one path segment);
* `secrets`: no added line holds a key (`Redactor.looks_secret`: the token shapes
  `switchyard.redact` masks, a key written as a literal, a secret variable's value);
  a change too large to read whole (`worktree.SCAN_FILE_BYTES` a file, `SCAN_BYTES` in
  all) cannot be vouched for and is rejected, naming the files and their sizes;
* each command: its argv, in the worktree, with a small environment (as agents
  get: PATH, HOME, locale... plus `pass_env` and `env`), within `timeout_s`; exit
  status 0 passes. Its output (stdout and stderr, read from one pipe) goes to
  `verify-N.log` in the attempt's run directory (redacted, owner only, bounded:
  the first and the last `LOG_KEEP_BYTES`, whole lines, with a marker between),
  and its tail into the verdict: a check that prints without end fills neither
  the disk nor memory. What the
  commands leave in the worktree (build output, caches) is removed after them:
  the change delivered is the change that was checked.

The result is a `Verdict`: `verified`, `rejected` (the failing check and the tail
of what it printed), or `error` when a check could not run at all (a command that
is not installed, a git failure): that is not the model's doing, and another
model would meet it too. Without a worktree (a scratch directory) only the
commands run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from switchyard._records import record
from switchyard.config.delivery import VerifyCommand, VerifyConfig
from switchyard.providers.command import BASE_ENV, Capture, collect, marker
from switchyard.providers.processes import ChildProcesses
from switchyard.redact import Redactor, private_dir, write_private
from switchyard.worktree import Change, GitError, Workspace

__all__ = ["CheckRun", "Verdict", "glob_matcher", "verify"]

TAIL_CHARS = 2000  # of a failing check's output, kept in the ledger and shown in reports
LOG_KEEP_BYTES = 256 * 1024  # of a check's output, kept from its start and from its end
KILL_GRACE_S = 5.0
Outcome = Literal["verified", "rejected", "error"]


@record
class CheckRun:
    """One check that ran: its name, whether it passed, and how long it took."""

    name: str
    passed: bool
    ms: int = 0


@record
class Verdict:
    """The outcome of verifying one attempt's change."""

    outcome: Outcome
    check: str | None = None  # the check that failed (or could not run)
    detail: str = ""  # why, with the tail of its output (redacted); for a verified change, the checks it passed
    checks: tuple[CheckRun, ...] = ()
    ms: int = 0

    @property
    def verified(self) -> bool:
        return self.outcome == "verified"

    def summary(self) -> str:
        """One line: each check and how it went."""
        marks = ", ".join(f"{c.name} {'ok' if c.passed else 'FAILED'}" for c in self.checks)
        return f"{self.outcome}: {marks or 'no checks'}"


@functools.lru_cache(maxsize=64)
def glob_matcher(pattern: str) -> re.Pattern[str]:
    """A path glob as a regex: `**` any number of segments, `*` and `?` within one, the rest literal."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _check_paths(change: Change, allowed: Sequence[str]) -> str | None:
    outside = [p for p in change.paths if not any(glob_matcher(g).match(p) for g in allowed)]
    if not outside:
        return None
    shown = ", ".join(outside[:10]) + (f" and {len(outside) - 10} more" if len(outside) > 10 else "")
    return f"changed {len(outside)} path(s) outside allowed_paths ({', '.join(allowed)}): {shown}"


def _check_secrets(change: Change, redactor: Redactor) -> str | None:
    if change.unscanned:
        shown = ", ".join(f"{p} ({n:,} bytes)" for p, n in change.unscanned[:10])
        more = f" and {len(change.unscanned) - 10} more" if len(change.unscanned) > 10 else ""
        return f"the change is too large to scan for secrets: {change.unscanned_why}: {shown}{more}"
    found = []
    for path, line in change.added:
        if redactor.looks_secret(line):
            found.append(f"{path}: {redactor.redact(line).strip()[:160]}")
    if not found:
        return None
    return f"added {len(found)} line(s) that look like a secret:\n" + "\n".join(found[:10])


def _env(cmd: VerifyCommand, env: Mapping[str, str]) -> dict[str, str]:
    out = {k: env[k] for k in BASE_ENV if k in env}
    out.update({k: env[k] for k in cmd.pass_env if k in env})
    out.update(cmd.env)
    return out


def _save_log(path: Path, capture: Capture, redactor: Redactor) -> str:
    """Save a command's output, redacted, bounded, owner only; return its tail (redacted)."""
    head, tail, omitted = capture.parts()
    if tail is None:
        text = redactor.redact(head)
        write_private(path, text.encode("utf-8"))
        return text[-TAIL_CHARS:]
    end = redactor.redact(tail)
    write_private(path, (redactor.redact(head) + marker(omitted) + end).encode("utf-8"))
    return end[-TAIL_CHARS:]


def _run(
    cmd: VerifyCommand,
    cwd: Path,
    log: Path,
    children: ChildProcesses,
    env: Mapping[str, str],
    redactor: Redactor,
) -> tuple[Outcome | None, str]:
    """Run one command; (None, "") when it passed, else its outcome and why."""
    out_r, out_w = os.pipe()
    stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            agent = children.spawn(cmd.argv, env=_env(cmd, env), cwd=cwd, stdin=stdin, stdout=out_w, stderr=out_w)
        except FileNotFoundError:
            return "error", f"{cmd.argv[0]!r} not found on PATH (or the worktree is gone)"
        except PermissionError:
            return "error", f"{cmd.argv[0]!r} is not executable"
        finally:
            os.close(out_w)
            os.close(stdin)
        output = Capture(LOG_KEEP_BYTES)
        exited = False
        try:
            timed_out = collect(agent, {out_r: output}, cmd.timeout_s, KILL_GRACE_S)
            exited = not timed_out
        finally:
            status = agent.release(exited=exited)  # kills whatever it left behind, reaps it
    finally:
        os.close(out_r)
    tail = _save_log(log, output, redactor)
    if timed_out:
        return "rejected", f"timed out after {cmd.timeout_s:g}s (killed)\n{tail}"
    if status != 0:
        return "rejected", f"exited with status {status}\n{tail}"
    return None, ""


def verify(
    config: VerifyConfig,
    workdir: Path,
    workspace: Workspace | None,
    *,
    run_dir: Path,
    redactor: Redactor,
    children: ChildProcesses,
    env: Mapping[str, str] | None = None,
) -> Verdict:
    """Run every check on the change in `workdir`; the first that fails decides."""
    t0 = time.perf_counter()
    runs: list[CheckRun] = []
    env = os.environ if env is None else env

    def done(outcome: Outcome, check: str | None = None, detail: str = "") -> Verdict:
        return Verdict(outcome, check, redactor.redact(detail)[-TAIL_CHARS * 2 :], tuple(runs), _ms(t0))

    if workspace is not None:
        c0 = time.perf_counter()
        try:
            change = workspace.change()
        except GitError as exc:
            return done("error", "change", f"could not read the change: {exc}")
        builtins: list[tuple[str, str | None]] = []
        if config.require_change:
            builtins.append(("change", "the attempt changed nothing" if change.empty else None))
        if tuple(config.allowed_paths) != ("**",):
            builtins.append(("paths", _check_paths(change, config.allowed_paths)))
        if config.secrets:
            builtins.append(("secrets", _check_secrets(change, redactor)))
        spent = _ms(c0)
        for name, problem in builtins:
            runs.append(CheckRun(name, problem is None, spent))
            spent = 0
            if problem is not None:
                return done("rejected", name, problem)
    if config.commands:
        private_dir(run_dir)
    try:
        for i, cmd in enumerate(config.commands):
            c0 = time.perf_counter()
            outcome, why = _run(cmd, workdir, run_dir / f"verify-{i + 1}.log", children, env, redactor)
            runs.append(CheckRun(cmd.label, outcome is None, _ms(c0)))
            if outcome is not None:
                return done(outcome, cmd.label, why)
    finally:
        if workspace is not None and config.commands:
            # What the commands built is not part of the change that is delivered. If git fails here, the
            # next attempt's reset (or delivery's commit) meets the same error and reports it.
            with contextlib.suppress(GitError):
                workspace.restore()
    return done("verified", None, Verdict("verified", checks=tuple(runs)).summary())


def _ms(t0: float) -> int:
    return int((time.perf_counter() - t0) * 1000)
