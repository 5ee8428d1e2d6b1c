"""Delivery benchmark: switchyard's own cost per task for worktree + checks + commit + push, and disk per worktree.

    .venv/bin/python bench/bench_delivery.py [--files 10000] [--tasks 20] [--file-kib 4] [--pool 4]

A repository of `--files` files (in directories of 100, `--file-kib` each, one commit)
with a bare remote on the same disk. Per task, the steps switchyard runs, timed one by
one with the agent's own work (two files edited, one added) outside the clock:

    worktree   Workspace.open: a worktree from the pool switched to the task's new branch (only files
               that differ are written), or, the pool empty, `git worktree add` (every file checked out)
    start      the attempt's start point (on_retry = "reset"): a ref to the base for a fresh worktree
    checks     verify() with the built-in checks (the change is not empty, allowed paths, added
               secrets); no [verify] command: their runtime is the project's own, not ours
    commit     Delivery.commit: message, trailers, `git add --all`, write-tree, commit-tree, update-ref
    push       Delivery.push: the branch to the bare remote
    release    Workspace.release: the worktree back to the pool (`[workspace] pool`)

The first task makes its worktree (the pool is empty); the rest reuse one. Prints wall time
(median, p90, max) and CPU time (switchyard and git together: on a shared machine wall time
includes waiting for the CPU) per step, the first task's full checkout apart, and the disk one
worktree takes (`du` of its directory; its git metadata is in the main repository's .git).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from switchyard.config.delivery import DeliveryConfig, VerifyConfig  # noqa: E402
from switchyard.delivery import Delivery, Target  # noqa: E402
from switchyard.providers.processes import ChildProcesses  # noqa: E402
from switchyard.redact import Redactor  # noqa: E402
from switchyard.task import Task  # noqa: E402
from switchyard.verify import verify  # noqa: E402
from switchyard.worktree import Workspace, path_name  # noqa: E402

STEPS = ("worktree", "start", "checks", "commit", "push", "release")


def cpu_s() -> float:
    """CPU seconds of this process and the git processes it waited for."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def make_repo(root: Path, files: int, kib: int) -> tuple[Path, Path]:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "bench")
    line = "x = 'a line of source code to make a file of realistic size'\n"
    body = line * max(1, kib * 1024 // len(line))
    for i in range(files):
        d = repo / f"pkg{i // 100:03d}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i % 100:03d}.py").write_text(f"# module {i}\n{body}")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a repository of many files")
    remote = root / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    return repo, remote


def du_kib(path: Path) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--file-kib", type=int, default=4)
    ap.add_argument("--pool", type=int, default=4, help="[workspace] pool (0: every task checks out a new worktree)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sy-bench-delivery-"))
    try:
        t0 = time.perf_counter()
        repo, _remote = make_repo(root, args.files, args.file_kib)
        print(
            f"repository: {args.files:,} files of {args.file_kib} KiB ({du_kib(repo) // 1024} MiB checked out), "
            f"made in {time.perf_counter() - t0:.1f} s; git {subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.split()[-1]}"
        )
        redactor = Redactor()
        children = ChildProcesses()
        delivery = Delivery(DeliveryConfig(author_name="bench", author_email="bench@example.com"), redactor)
        target = Target(mode="push", kind="file", remote="origin")
        check = VerifyConfig(enabled=True)
        pool = root / "worktrees" / ".pool"
        wall: dict[str, list[float]] = {s: [] for s in (*STEPS, "total")}
        cpu: dict[str, list[float]] = {s: [] for s in (*STEPS, "total")}
        first: dict[str, float] = {}
        disk: list[int] = []
        for n in range(args.tasks):
            task = Task(id=f"gh-{n}", title=f"Task {n}", body="make a change", url=f"https://github.com/o/r/issues/{n}")
            lap: dict[str, tuple[float, float]] = {}

            def timed(name: str, fn, *a, lap=lap, **kw):  # type: ignore[no-untyped-def]
                t, c = time.perf_counter(), cpu_s()
                out = fn(*a, **kw)
                lap[name] = (time.perf_counter() - t, cpu_s() - c)
                return out

            path = root / "worktrees" / path_name(task.id)
            ws = timed("worktree", Workspace.open, repo, path, task.id, "switchyard/", "HEAD", pool=pool)
            timed("start", ws.start_point, "--l0", at_base=True)
            wt = Path(ws.path)
            (wt / "pkg000" / "mod001.py").write_text(f"x = {n}\n")  # the agent's work: not timed
            (wt / "pkg042" / "mod042.py").write_text(f"y = {n}\n")
            (wt / "pkg099" / "new_module.py").write_text("def f():\n    return 2\n")
            verdict = timed(
                "checks", verify, check, wt, ws, run_dir=root / "runs" / str(n), redactor=redactor, children=children
            )
            assert verdict.verified, verdict
            commit = timed("commit", delivery.commit, target, ws, task, [])
            timed("push", delivery.push, target, ws, commit)
            disk.append(du_kib(wt))
            timed("release", ws.release, pool, args.pool)
            total = (sum(lap[s][0] for s in STEPS), sum(lap[s][1] for s in STEPS))
            if n == 0:
                first = {"worktree": lap["worktree"][0] * 1000, "total": total[0] * 1000}
                continue
            for name in STEPS:
                wall[name].append(lap[name][0] * 1000)
                cpu[name].append(lap[name][1] * 1000)
            wall["total"].append(total[0] * 1000)
            cpu["total"].append(total[1] * 1000)
        print(
            f"first task (empty pool): worktree {first['worktree']:.0f} ms (a checkout of every file), "
            f"total {first['total']:.0f} ms"
        )
        print(f"per task over the other {args.tasks - 1} (ms):   wall median      p90      max    cpu median")
        for name in (*STEPS, "total"):
            v = wall[name]
            print(
                f"  {name:<10}                    {statistics.median(v):8.1f} {pct(v, 0.9):8.1f} {max(v):8.1f}"
                f"      {statistics.median(cpu[name]):8.1f}"
            )
        print(
            f"disk per worktree: {statistics.median(disk) / 1024:.1f} MiB (its checkout); "
            f"the main repository's .git: {du_kib(repo / '.git') / 1024:.1f} MiB"
        )
        target_ms = 300
        verdict_line = "within" if statistics.median(wall["total"]) <= target_ms else "OVER"
        print(f"target: median total <= {target_ms} ms (wall): {verdict_line}; load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
