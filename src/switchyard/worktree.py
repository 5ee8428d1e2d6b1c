"""Git workspaces: each task's agents work in a worktree of their own, on a branch of their own.

Names. A task id can be any text (`a.lock`, `a..b`, `x/y`, a NUL); it becomes a
branch name and a directory name by an injective escape (`path_name`,
`branch_name`): characters outside a small safe set are written `%XX` (their
UTF-8 bytes, `%` itself included), so two ids never share a name (`x/y` is
`x%2Fy`, `x_y` stays `x_y`, `x?y` is `x%3Fy`) and every branch name is a valid
git ref. Names longer than `MAX_NAME` keep their start and end with a hash of
the whole id (`%%` and 16 hex digits: text no escape produces).

A `Workspace` is one task's worktree, created from a configured base ref (the
commit is resolved once and kept, so every diff and reset compares with the
same base). It can

* keep a `start_point(name)`: the working tree as a commit under
  `refs/switchyard/<key>/` (made once), and `reset(commit)` the working tree to
  one (HEAD back on the base, untracked and ignored files removed): a retry after
  a rejected attempt starts where the rejected one started;
* `change()`: what the working tree changed against the base, committed or not,
  tracked or new (`Change`: paths and the added lines, read bounded: a file over
  `SCAN_FILE_BYTES`, or over `SCAN_BYTES` in all, is named with its size instead
  and its lines are not read); it stages the whole tree,
  and `restore()` comes back to that after the checks ran (what they built or
  cached is not part of the change);
* `commit(message, marker)`: everything, once (a commit whose message carries
  `marker` is not made again), and `push(remote, branch)`.

Every operation is idempotent, so a durable step that runs one can run again
after a crash. Git runs as argv lists, never through a shell.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from switchyard._records import record
from switchyard.errors import RunError

__all__ = [
    "MAX_NAME",
    "SCAN_BYTES",
    "SCAN_FILE_BYTES",
    "Change",
    "GitError",
    "Workspace",
    "add_worktree",
    "branch_name",
    "git",
    "path_name",
    "ref_name",
    "repo_root",
]

MAX_NAME = 120  # characters of an escaped name before it is shortened (file names stop at 255 bytes)
GIT_TIMEOUT_S = 600  # a push over a slow link; nothing local comes near it
# The added lines of a change are read (for the secret scan) when each changed file is at most
# SCAN_FILE_BYTES and all of them SCAN_BYTES; a larger change is judged by its paths and sizes.
SCAN_FILE_BYTES = 8 * 1024 * 1024
SCAN_BYTES = 64 * 1024 * 1024
_ZERO_SHA = frozenset({"0" * 40, "0" * 64})

_REF_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_PATH_SAFE = _REF_SAFE | frozenset(".:")


class GitError(RunError):
    """A git command failed; the message names the command and ends with git's own words."""


def _escape(text: str, safe: frozenset[str]) -> str:
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in safe and not (i == 0 and ch in ".-"):  # a leading dot hides a file (or is `..`), a dash is an option
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    name = "".join(out) or "%"  # the empty id, written so that no other id gives it
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = name[: MAX_NAME - 18] + "%%" + digest
    return name


def path_name(text: str) -> str:
    """`text` as one directory or file name: injective (two texts never share one), readable when it can be."""
    return _escape(text, _PATH_SAFE)


def ref_name(text: str) -> str:
    """`text` as one component of a git ref name: always valid, injective."""
    return _escape(text, _REF_SAFE)


def branch_name(prefix: str, task_id: str) -> str:
    """The task's branch: `prefix` and the escaped id, always a valid git ref, one per id."""
    return prefix + ref_name(task_id)


def git(
    cwd: Path | str,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout_s: float = GIT_TIMEOUT_S,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git -C cwd args...`; a failure (with `check`) is a `GitError` ending with git's stderr."""
    argv = ["git", "-C", str(cwd), *args]
    sub = next((a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "-c")), "")
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(argv, capture_output=True, input=input, env=full_env, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise GitError("git is not on PATH; install git to run tasks in worktrees") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"'git {sub}' did not finish within {timeout_s:g}s") from None
    if check and proc.returncode != 0:
        said = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
        raise GitError(f"'git {sub}' failed (status {proc.returncode}): {said[-400:]}")
    return proc


def _out(cwd: Path | str, *args: str, env: Mapping[str, str] | None = None) -> str:
    return git(cwd, *args, env=env).stdout.decode("utf-8", "replace").strip()


def repo_root(path: Path) -> Path | None:
    """The top of the git working tree `path` is in, or None when it is in none (or git is missing)."""
    try:
        proc = git(path, "rev-parse", "--show-toplevel", check=False)
    except GitError:
        return None
    if proc.returncode != 0:
        return None
    return Path(proc.stdout.decode("utf-8", "replace").strip())


def add_worktree(repo: Path, path: Path, branch: str, base: str = "HEAD") -> Path:
    """A worktree of `repo` at `path` on `branch` (created from `base` if new); an existing one is reused.

    Idempotent, so a step that makes it can run again after a crash.
    """
    if (path / ".git").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not any(path.iterdir()):
        path.rmdir()  # left empty by a crash inside `git worktree add`
    exists = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
    if exists:
        git(repo, "worktree", "prune")  # a worktree whose directory is gone still claims its branch
        git(repo, "worktree", "add", "--quiet", str(path), branch)
    else:
        git(repo, "worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), base)
    return path


def _keep_ref(cwd: Path | str, ref: str, commit: str) -> tuple[str, bool]:
    """Point `ref` at `commit` unless it exists already: (what it points at, whether it was made now).

    One git call when the ref is new (the common case)."""
    if git(cwd, "update-ref", ref, commit, _NO_COMMIT, check=False).returncode == 0:
        return commit, True
    return _out(cwd, "rev-parse", "--verify", f"{ref}^{{commit}}"), False


_NO_COMMIT = "0" * 40  # as update-ref's old value: "only if the ref does not exist yet"


def _switch(path: Path, branch: str, base: str) -> None:
    """A pooled worktree onto a new `branch` at `base`: files that differ are rewritten, the rest left alone.

    A pooled worktree is clean (its task's work was committed); what its `.gitignore` ignores
    (dependencies, build caches) stays, as a CI cache would. A retry resets to the start point,
    ignored files included.
    """
    if git(path, "checkout", "--quiet", "--force", "--no-track", "-b", branch, base, check=False).returncode != 0:
        git(path, "checkout", "--quiet", "--force", branch)  # the branch exists (a crash after it was made): keep it


def _from_pool(repo: Path, pool: Path, path: Path, branch: str, base: str) -> bool:
    """Take a worktree from `pool` for `branch` (a new one: an existing branch keeps its own checkout)."""
    if not pool.is_dir() or (Path(repo) / ".git" / "refs" / "heads" / branch).exists():
        return False  # (a packed branch is found by `_switch`, which then checks it out as it is)
    path.parent.mkdir(parents=True, exist_ok=True)
    for slot in sorted(pool.iterdir()):
        moved = git(repo, "worktree", "move", str(slot), str(path), check=False)
        if moved.returncode != 0:
            continue  # another worker took it first (or it is not a worktree): the next one
        _switch(path, branch, base)
        return True
    return False


@record
class Change:
    """What a working tree changed against its base: the paths (added, modified, deleted, renamed) and added lines."""

    paths: tuple[str, ...] = ()
    # (path, its added lines, each ending in a newline) for each text file with added lines: one string a
    # file, not one a line (a file of short lines would take many times its size as Python objects)
    added_text: tuple[tuple[str, str], ...] = ()
    # When the change was too large to read: (path, bytes) of its largest files, and why (then `added` is empty).
    unscanned: tuple[tuple[str, int], ...] = ()
    unscanned_why: str = ""

    @property
    def empty(self) -> bool:
        return not self.paths

    @property
    def added(self) -> Iterator[tuple[str, str]]:
        """(path, line) for each added line of a text file, one at a time."""
        for path, text in self.added_text:
            start = 0
            while (end := text.find("\n", start)) >= 0:  # not split(): a list of every line at once
                yield path, text[start:end]
                start = end + 1


@record
class Workspace:
    """One task's worktree: where it is, its branch, and the base commit it started from."""

    path: str
    branch: str
    base: str  # the base commit (a full SHA), resolved when the worktree was made
    repo: str
    key: str  # the task's escaped id: its refs live under refs/switchyard/<key>/

    @classmethod
    def open(
        cls, repo: Path, path: Path, task_id: str, prefix: str, base_ref: str, *, pool: Path | None = None
    ) -> Workspace:
        """Make (or find) the task's worktree on its branch and resolve its base; idempotent.

        With a `pool`, a worktree a finished task left there is taken and switched to the new
        branch (only the files that differ are written) instead of checking out every file anew.
        """
        key = ref_name(task_id)
        branch = prefix + key
        base = cls._base(repo, key, base_ref)
        if (path / ".git").exists():
            if git(path, "symbolic-ref", "--quiet", "HEAD", check=False).returncode != 0:
                _switch(path, branch, base)  # taken from the pool, but a crash came before the switch
        elif pool is None or not _from_pool(repo, pool, path, branch, base):
            add_worktree(repo, path, branch, base)
        return cls(str(path), branch, base, str(repo), key)

    def release(self, pool: Path | None, keep: int) -> None:
        """The task is over and its work committed: put the worktree in the pool (or remove it); idempotent."""
        path = Path(self.path)
        if not (path / ".git").exists():
            return
        refs = _out(self.repo, "for-each-ref", "--format=delete %(refname)", f"refs/switchyard/{self.key}/")
        if refs:
            git(self.repo, "update-ref", "--stdin", input=(refs + "\n").encode())
        if pool is not None and keep > 0:
            pool.mkdir(parents=True, exist_ok=True)
            if sum(1 for _ in pool.iterdir()) < keep:
                # Detach HEAD (files and index untouched): the branch stays, free for others to check out.
                git(path, "update-ref", "--no-deref", "HEAD", "HEAD")
                git(self.repo, "worktree", "move", str(path), str(pool / self.key))
                return
        git(self.repo, "worktree", "remove", "--force", str(path))

    @staticmethod
    def _base(repo: Path, key: str, base_ref: str) -> str:
        """The base commit, kept as a ref once known: a later run (after a crash) resolves the same one."""
        base = _out(repo, "rev-parse", "--verify", "--end-of-options", f"{base_ref}^{{commit}}")
        return _keep_ref(repo, f"refs/switchyard/{key}/base", base)[0]

    # reading ---------------------------------------------------------------------------
    def _private_index(self) -> dict[str, str]:
        """An index of our own holding the whole working tree, staged: the worktree's own index stays as it is."""
        gitdir = Path(_out(self.path, "rev-parse", "--absolute-git-dir"))
        index = gitdir / "switchyard-index"
        own = gitdir / "index"
        if own.exists():  # start from the real index: its stat data spares hashing unchanged files
            index.write_bytes(own.read_bytes())
        env = {"GIT_INDEX_FILE": str(index)}
        git(self.path, "add", "--all", "--", ".", env=env)
        return env

    def change(self) -> Change:
        """Every path changed against the base (committed or not, tracked or new), and the lines added.

        The whole working tree is staged first (the agent is done with it): what `restore` comes back to.
        """
        git(self.path, "add", "--all", "--", ".")
        raw = git(self.path, "diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", self.base).stdout
        fields = raw.split(b"\0")
        # `:old_mode new_mode old_sha new_sha status` then the path, for each changed path
        entries = [
            (fields[i].split(), fields[i + 1].decode("utf-8", "surrogateescape")) for i in range(0, len(fields) - 1, 2)
        ]
        paths = tuple(path for _, path in entries)
        if not paths:
            return Change()
        blobs = [
            (path, meta[3].decode())
            for meta, path in entries
            if meta[3].decode() not in _ZERO_SHA and meta[1] != b"160000"
        ]
        sizes = self._sizes(blobs)
        large = sorted(((p, n) for p, n in sizes if n > SCAN_FILE_BYTES), key=lambda pn: -pn[1])
        total = sum(n for _, n in sizes)
        if large:
            return Change(paths, (), tuple(large), f"{len(large)} file(s) over {SCAN_FILE_BYTES:,} bytes")
        if total > SCAN_BYTES:
            biggest = tuple(sorted(sizes, key=lambda pn: -pn[1]))
            return Change(paths, (), biggest, f"{total:,} bytes changed, over {SCAN_BYTES:,}")
        return Change(paths, tuple(self._added()))

    def _sizes(self, blobs: Sequence[tuple[str, str]]) -> list[tuple[str, int]]:
        """(path, size) of each changed file's new content (a blob in the object store: `add` put it there)."""
        if not blobs:
            return []
        out = git(
            self.path, "cat-file", "--batch-check=%(objectsize)", input="".join(f"{sha}\n" for _, sha in blobs).encode()
        )
        sizes = out.stdout.decode().split("\n")
        return [(path, int(n)) for (path, _), n in zip(blobs, sizes, strict=False) if n.isdigit()]

    def _added(self) -> list[tuple[str, str]]:
        """The added lines of the staged change, read from git as it writes them: removed lines are not kept."""
        argv = ["git", "-C", self.path, "diff", "--cached", "--unified=0", "--no-color", "--no-renames", "--no-ext-diff",
                "--no-textconv", self.base]  # fmt: skip
        added: dict[str, bytearray] = {}
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
            assert proc.stdout is not None
            path, whole, header = "", True, False
            into: bytearray | None = None
            with proc.stdout:
                # Each read is at most one line, and no longer than a file we read (a removed line can be any length).
                while chunk := proc.stdout.readline(SCAN_FILE_BYTES + 4096):
                    starts, whole = whole, chunk.endswith(b"\n")
                    if not starts:
                        continue  # the rest of an over-long (removed) line
                    if chunk.startswith((b"diff --git ", b"@@ ")):
                        header = chunk.startswith(b"diff")  # a file's header lines, until its first hunk
                    elif header and chunk.startswith(b"+++ "):
                        m = _HUNK_FILE.match(chunk.rstrip(b"\n").decode("utf-8", "replace"))
                        path = m.group(1) if m else ""
                        into = None if path == "/dev/null" else added.setdefault(path, bytearray())
                    elif chunk.startswith(b"+") and into is not None:
                        into += chunk[1:] if whole else chunk[1:] + b"\n"
            status = proc.wait()
            if status != 0:
                err.seek(0)
                said = err.read(4000).decode("utf-8", "replace").strip()
                raise GitError(f"'git diff' failed (status {status}): {said[-400:]}")
        return [(path, text.decode("utf-8", "replace")) for path, text in added.items() if text]

    def restore(self) -> None:
        """Back to what `change` staged: files a check made or changed (build output, caches) are gone."""
        git(self.path, "checkout", "--quiet", "--", ".")
        git(self.path, "clean", "-fdq")

    def head(self) -> str:
        return _out(self.path, "rev-parse", "HEAD")

    # changing --------------------------------------------------------------------------
    def start_point(self, name: str, *, at_base: bool = False) -> tuple[str, bool]:
        """The commit `refs/switchyard/<key>/<name>` holds, made now from the working tree if it is not there.

        Returns (commit, made): a start point is made once, by the first attempt that starts
        there; every later one (a retry, or the first after a crash) resets to it. `at_base`
        says the working tree is known to be the base (a worktree just made): no need to read it.
        """
        ref = f"refs/switchyard/{self.key}/{name}"
        if at_base:  # one call in the common case: make it, unless it is there
            return _keep_ref(self.path, ref, self.base)
        found = git(self.path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if found.returncode == 0:
            return found.stdout.decode().strip(), False
        commit = self.snapshot()
        git(self.path, "update-ref", ref, commit)
        return commit, True

    def snapshot(self) -> str:
        """The working tree as a commit on the base (the base itself when nothing changed)."""
        env = self._private_index()
        tree = _out(self.path, "write-tree", env=env)
        if tree == _out(self.path, "rev-parse", f"{self.base}^{{tree}}"):
            return self.base
        return _out(
            self.path,
            "-c", "user.name=switchyard", "-c", "user.email=switchyard@localhost",
            "commit-tree", tree, "-p", self.base, "-m", "switchyard: the working tree an attempt started from",
        )  # fmt: skip

    def reset(self, commit: str) -> None:
        """Make the working tree `commit`'s content again, on the base: what an attempt did is gone."""
        git(self.path, "reset", "--quiet", "--hard", self.base)
        if commit != self.base:
            git(self.path, "read-tree", "-u", "--reset", commit)
        git(self.path, "clean", "-ffdxq")
        if commit != self.base:
            git(self.path, "reset", "--quiet", self.base)  # the index back on the base; the files stay

    def commit(
        self, message: str, marker: str, *, author: tuple[str, str] | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        """Commit everything on the branch (once: a HEAD whose message has the line `marker` is kept).

        Plumbing (`write-tree`, `commit-tree`, `update-ref`): no hooks, and no second scan of the tree.
        """
        head, _, last = _out(self.path, "log", "-1", "--format=%H%n%B", "HEAD").partition("\n")
        if marker.strip() in (line.strip() for line in last.splitlines()) and head != self.base:
            return head
        git(self.path, "add", "--all", "--", ".")
        tree = _out(self.path, "write-tree")
        who: list[str] = []
        if author is not None:
            who = ["-c", f"user.name={author[0]}", "-c", f"user.email={author[1]}"]
        commit = git(self.path, *who, "commit-tree", tree, "-p", head, "-F", "-", env=env, input=message.encode())
        new = commit.stdout.decode().strip()
        git(self.path, "update-ref", "-m", "switchyard: commit the task's change", "HEAD", new, head)
        return new

    def push(self, remote: str, branch: str, commit: str) -> None:
        """Put `commit` on `branch` at `remote` (pushing it again changes nothing)."""
        git(self.path, "push", "--quiet", "--no-verify", remote, f"{commit}:refs/heads/{branch}")

    def remove(self) -> None:
        """Remove the worktree's directory (the branch and its commits stay)."""
        git(self.repo, "worktree", "remove", "--force", self.path, check=False)


_HUNK_FILE = re.compile(r"^\+\+\+ (?:b/)?(.*)$")
