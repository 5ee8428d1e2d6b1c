"""Git worktrees: each task's agents work in a checkout of their own, on a branch of their own."""

from __future__ import annotations

import subprocess
from pathlib import Path

from switchyard.errors import RunError

__all__ = ["add_worktree"]


def add_worktree(repo: Path, path: Path, branch: str) -> Path:
    """A worktree of `repo` at `path` on `branch` (created from HEAD if new); an existing one is reused.

    Idempotent, so a step that makes it can run again after a crash.
    """
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    stderr = ""
    for argv in (
        ["git", "-C", str(repo), "worktree", "add", "-b", branch, str(path)],
        ["git", "-C", str(repo), "worktree", "add", str(path), branch],  # the branch exists already
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return path
        stderr = proc.stderr
    raise RunError(f"git worktree add failed: {stderr.strip()[-300:]}")
