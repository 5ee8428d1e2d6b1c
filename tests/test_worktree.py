"""Task workspaces on real git: names, worktrees, start points and resets, the change, commit and push."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.runner import safe_name
from switchyard.worktree import MAX_NAME, GitError, Workspace, branch_name, path_name, ref_name

HOSTILE = ["a.lock", "a..b", "a\0b", "x/y", "x_y", "x?y", ".hidden", "-flag", "@{1}", "a b", "é", "a:b", "%41", "A"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "T")
    for name, text in (files or {"README.md": "hello\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    return path


def valid_ref(name: str) -> bool:
    return subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], check=False).returncode == 0


def test_hostile_ids_get_valid_distinct_names() -> None:
    branches = [branch_name("switchyard/", i) for i in HOSTILE]
    assert len(set(branches)) == len(HOSTILE)
    assert all(valid_ref(b) for b in branches), branches
    paths = [path_name(i) for i in HOSTILE]
    assert len(set(paths)) == len(HOSTILE)
    assert all("/" not in p and "\0" not in p and not p.startswith(".") for p in paths)
    for i in HOSTILE:  # with no prefix too, each is a name git accepts for a branch (none reads as an option)
        assert (
            subprocess.run(["git", "check-ref-format", "--branch", branch_name("", i)], capture_output=True).returncode
            == 0
        ), i
    # Ids that were already safe keep their look.
    assert branch_name("switchyard/", "gh-7") == "switchyard/gh-7"
    assert path_name("T-00:-:l0:r0:a0") == "T-00:-:l0:r0:a0"
    assert (path_name("x/y"), path_name("x_y"), path_name("x?y")) == ("x%2Fy", "x_y", "x%3Fy")
    assert safe_name is not None and safe_name("x/y") == path_name("x/y")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=300), min_size=2, max_size=6, unique=True))
def test_names_never_collide(ids: list[str]) -> None:
    for make in (path_name, ref_name):
        names = [make(i) for i in ids]
        assert len(set(names)) == len(ids)
        assert all(len(n) <= MAX_NAME for n in names)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_every_branch_name_is_a_valid_ref(task_id: str) -> None:
    assert valid_ref(branch_name("switchyard/", task_id))


def test_hostile_ids_get_worktrees_of_their_own(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    spaces = [Workspace.open(repo, tmp_path / "wt" / path_name(i), i, "sy/", "HEAD") for i in HOSTILE]
    assert len({ws.path for ws in spaces}) == len({ws.branch for ws in spaces}) == len(HOSTILE)
    for ws in spaces:
        assert git(Path(ws.path), "branch", "--show-current") == ws.branch
    # Opening again finds the same worktree and the same base, even after the base ref moved.
    (repo / "new.txt").write_text("x")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "moved")
    again = Workspace.open(repo, Path(spaces[0].path), HOSTILE[0], "sy/", "HEAD")
    assert again == spaces[0]


def test_start_point_reset_and_change(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"src/a.py": "a = 1\n", "README.md": "r\n"})
    ws = Workspace.open(repo, tmp_path / "wt" / "t1", "t1", "sy/", "main")
    wt = Path(ws.path)
    assert ws.change().empty
    first, made = ws.start_point("impl-l0", at_base=True)
    assert made and first == ws.base
    # The attempt edits, adds, deletes, ignores a build file, and even commits.
    (wt / "src/a.py").write_text("a = 2\n")
    (wt / "src/new.py").write_text("b = 'sk-ant-abcdefghijklmnop1234'\n")
    (wt / ".gitignore").write_text("build/\n")
    (wt / "build").mkdir()
    (wt / "build/out.bin").write_text("x")
    (wt / "README.md").unlink()
    git(wt, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qam", "agent's own commit")
    change = ws.change()
    assert set(change.paths) == {"src/a.py", "src/new.py", ".gitignore", "README.md"}
    assert ("src/new.py", "b = 'sk-ant-abcdefghijklmnop1234'") in change.added
    # A retry: the start point exists, so the attempt resets to it, agent commit and ignored files gone.
    again, made = ws.start_point("impl-l0")
    assert not made and again == ws.base
    ws.reset(again)
    assert ws.change().empty and ws.head() == ws.base and not (wt / "build").exists()
    assert (wt / "src/a.py").read_text() == "a = 1\n"
    # A later pass starts from a changed tree: its start point is a snapshot, and a reset comes back to it.
    (wt / "src/a.py").write_text("a = 3\n")
    (wt / "notes.md").write_text("n\n")
    snap, made = ws.start_point("impl-l1")
    assert made and snap != ws.base
    (wt / "src/a.py").write_text("a = 4\n")
    (wt / "junk.txt").write_text("j\n")
    ws.reset(snap)
    assert (wt / "src/a.py").read_text() == "a = 3\n" and (wt / "notes.md").exists()
    assert not (wt / "junk.txt").exists()
    assert set(ws.change().paths) == {"src/a.py", "notes.md"} and ws.head() == ws.base


def test_commit_once_and_push_to_a_bare_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    ws = Workspace.open(repo, tmp_path / "wt" / "x%2Fy", "x/y", "switchyard/", "HEAD")
    (Path(ws.path) / "feature.txt").write_text("f\n")
    marker = "Switchyard-Task: x/y\n"
    commit = ws.commit(f"Add feature\n\n{marker}", marker)
    assert ws.commit(f"Add feature\n\n{marker}", marker) == commit  # a second run does not commit again
    assert git(Path(ws.path), "rev-list", "--count", f"{ws.base}..HEAD") == "1"
    ws.push("origin", ws.branch, commit)
    ws.push("origin", ws.branch, commit)  # again: nothing changes
    assert git(remote, "rev-parse", f"refs/heads/{ws.branch}") == commit
    assert git(remote, "show", f"{commit}:feature.txt") == "f"
    with pytest.raises(GitError, match=r"'git push' failed .*nowhere"):
        ws.push("nowhere", ws.branch, commit)


def test_a_bad_base_ref_is_a_git_error_naming_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(GitError, match="failed"):
        Workspace.open(repo, tmp_path / "wt" / "t", "t", "sy/", "no-such-branch")


def test_a_released_worktree_is_reused_by_the_next_task(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"src/a.py": "a = 1\n", ".gitignore": "cache/\n"})
    pool = tmp_path / "wt" / ".pool"
    first = Workspace.open(repo, tmp_path / "wt" / "t1", "t1", "sy/", "main", pool=pool)
    wt1 = Path(first.path)
    (wt1 / "src/a.py").write_text("a = 2\n")
    (wt1 / "cache").mkdir()
    (wt1 / "cache/deps.bin").write_text("built once")
    done = first.commit("t1's change\n\nSwitchyard-Task: t1\n", "Switchyard-Task: t1")
    first.release(pool, keep=2)
    assert not wt1.exists() and [p.name for p in pool.iterdir()] == ["t1"]
    assert git(repo, "rev-parse", "sy/t1") == done  # the branch and its commit stay
    assert git(repo, "for-each-ref", "refs/switchyard/t1/") == ""  # its bookkeeping refs are gone

    second = Workspace.open(repo, tmp_path / "wt" / "t2", "t2", "sy/", "main", pool=pool)
    wt2 = Path(second.path)
    assert list(pool.iterdir()) == []  # taken from the pool, not checked out anew
    assert git(wt2, "branch", "--show-current") == "sy/t2" and second.head() == second.base
    assert (wt2 / "src/a.py").read_text() == "a = 1\n" and second.change().empty
    assert (wt2 / "cache/deps.bin").read_text() == "built once"  # ignored caches stay, as in CI
    second.release(pool, keep=0)  # no pool: removed
    assert not wt2.exists() and git(repo, "worktree", "list").count("\n") == 0


def test_a_pooled_worktree_moved_but_not_switched_is_finished_on_open(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    pool = tmp_path / "wt" / ".pool"
    Workspace.open(repo, tmp_path / "wt" / "t1", "t1", "sy/", "main", pool=pool).release(pool, keep=1)
    # A crash right after `git worktree move` out of the pool: the directory is there, detached.
    git(repo, "worktree", "move", str(pool / "t1"), str(tmp_path / "wt" / "t2"))
    ws = Workspace.open(repo, tmp_path / "wt" / "t2", "t2", "sy/", "main", pool=pool)
    assert git(Path(ws.path), "branch", "--show-current") == "sy/t2"
