"""Execution benchmark: agent spawn cost, command-provider overhead over a bare subprocess.run, ledger inserts.

    .venv/bin/python bench/bench_exec.py [--calls 300] [--ballast-mib 120] [--rows 20000]

`--ballast-mib` makes this process as big as a running coordinator (it touches that much
memory first): spawning by fork copies the parent's page tables, by vfork it does not.

spawn: `/bin/true` started and waited for, four ways, alternated call by call:
  fork+preexec   Popen with a preexec_fn setting PR_SET_PDEATHSIG (what switchyard did)
  vfork          Popen in a new session, no preexec_fn (the floor)
  setpriv        vfork of `setpriv --pdeathsig KILL /bin/true` (an exec wrapper instead)
  switchyard     ChildProcesses.spawn + Agent.release (vfork, then the sweep for leftovers)

command provider: the same `/bin/echo` printing a Claude-style result, run alternately by a
bare `subprocess.run(capture_output=True)` and by the provider (prompt on stdin, minimal
environment, own session, deadline, output capture, usage parsing, redacted stdout.txt), so
the difference is our own cost.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from switchyard.config import loads_config  # noqa: E402
from switchyard.ledger import AttemptRecord, Ledger  # noqa: E402
from switchyard.providers.base import Call, ChildProcesses, ProviderContext  # noqa: E402
from switchyard.providers.command import CommandRunner  # noqa: E402
from switchyard.task import Task  # noqa: E402

RESULT = json.dumps(
    {
        "type": "result",
        "is_error": False,
        "result": "ok",
        "total_cost_usd": 0.01,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
)
TRUE = shutil.which("true") or "/bin/true"
ECHO = shutil.which("echo") or "/bin/echo"


def alternate(
    ways: dict[str, Callable[[], object]], calls: int, warmup: int = 10, cpu: dict[str, float] | None = None
) -> dict[str, float]:
    """Median wall ms of each way, called in turn (rotating which goes first) `calls` times after `warmup`
    rounds. With `cpu`, also fills in each way's median CPU ms in this process (not the child's): the
    steadier figure on a busy machine, where waiting for a core inflates every wall time."""
    samples: dict[str, list[float]] = {name: [] for name in ways}
    cpu_samples: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    for i in range(calls + warmup):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            c0, t0 = time.process_time(), time.perf_counter()
            ways[name]()
            elapsed, used = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
            if i >= warmup:
                samples[name].append(elapsed)
                cpu_samples[name].append(used)
    if cpu is not None:
        cpu.update({name: statistics.median(s) for name, s in cpu_samples.items()})
    return {name: statistics.median(s) for name, s in samples.items()}


def bench_spawn(calls: int) -> dict[str, float]:
    libc = ctypes.CDLL(None, use_errno=True)

    def pdeathsig() -> None:
        libc.prctl(1, signal.SIGKILL)

    children = ChildProcesses()
    null = os.open(os.devnull, os.O_RDWR)

    def ours() -> None:
        children.spawn([TRUE], env={}, cwd="/", stdin=null, stdout=null, stderr=null).release()

    ways: dict[str, Callable[[], object]] = {
        "fork+preexec": lambda: subprocess.Popen([TRUE], start_new_session=True, preexec_fn=pdeathsig).wait(),
        "vfork": lambda: subprocess.Popen([TRUE], start_new_session=True).wait(),
        "switchyard": ours,
    }
    setpriv = shutil.which("setpriv")
    if setpriv:
        ways["setpriv"] = lambda: subprocess.Popen(
            [setpriv, "--pdeathsig", "KILL", TRUE], start_new_session=True
        ).wait()
    return alternate(ways, calls)


def bench_command(calls: int, workdir: Path) -> dict[str, float]:
    argv = [ECHO, RESULT]
    config = f"""
[providers.echo]
command_template = {json.dumps(argv)}
stdin = "{{prompt_file}}"
usage_format = "claude-json"

[[models]]
name = "m"
provider = "echo"

[routing]
default_model = "m"
"""
    loaded = loads_config(config)
    provider = CommandRunner(loaded.providers["echo"], ProviderContext())  # type: ignore[arg-type]
    task = Task("bench-1", title="t")
    n = iter(range(10**9))

    def bare() -> None:
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=True)

    def ours() -> None:
        i = next(n)
        result = provider.execute(Call(f"a{i}", task, "m", "m", "prompt text", workdir / f"r{i}", 30.0))
        assert result.ok and result.usage is not None, result

    cpu: dict[str, float] = {}
    medians = alternate({"bare": bare, "provider": ours}, calls, cpu=cpu)
    b, o = medians["bare"], medians["provider"]
    return {
        "bare_ms": b,
        "provider_ms": o,
        "overhead_ms": o - b,
        "ratio": o / b,
        "bare_cpu_ms": cpu["bare"],
        "provider_cpu_ms": cpu["provider"],
        "overhead_cpu_ms": cpu["provider"] - cpu["bare"],
    }


def bench_ledger(rows: int, workdir: Path) -> dict[str, float]:
    def rec(i: int) -> AttemptRecord:
        return AttemptRecord(
            f"att-{i}",
            f"task-{i % 500}",
            "p",
            "m",
            "ok",
            1_800_000_000_000 + i,
            1_800_000_000_100 + i,
            input_tokens=1000,
            output_tokens=200,
            cost_usd=Decimal("0.0123"),
            labels=("bug",),
        )

    with Ledger.open(workdir / "single.db") as ledger:
        n = min(rows, 2000)
        t0 = time.perf_counter()
        for i in range(n):
            ledger.record(rec(i))
        single = n / (time.perf_counter() - t0)
    with Ledger.open(workdir / "batch.db") as ledger:
        batch = [rec(i) for i in range(rows)]
        t0 = time.perf_counter()
        with ledger.db.transaction():
            ledger.record_many(batch)
        many = rows / (time.perf_counter() - t0)
    return {"single_inserts_per_s": single, "batched_inserts_per_s": many}


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--ballast-mib", type=int, default=120, help="touch this much memory first (0: none)")
    ap.add_argument("--rows", type=int, default=20_000, help="ledger rows (0: skip the ledger)")
    ap.add_argument(
        "--dir",
        type=Path,
        default=ROOT / ".bench-data",
        help="where the run directories go (default: under the checkout, as .switchyard/runs is)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ballast = bytearray(args.ballast_mib * 1024 * 1024)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    results: dict[str, object] = {"rss_mib": _rss_mib()}
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results["spawn_ms"] = bench_spawn(args.calls)
        results["command"] = bench_command(args.calls, Path(tmp))
        if args.rows:
            results["ledger"] = bench_ledger(args.rows, Path(tmp))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    spawn, c = results["spawn_ms"], results["command"]
    assert isinstance(spawn, dict) and isinstance(c, dict)
    print(f"parent RSS {results['rss_mib']:.0f} MiB; medians of {args.calls} calls, ways alternated call by call")
    print("spawn and wait for /bin/true:")
    for name, ms in spawn.items():
        print(f"  {name:<13} {ms:6.2f} ms")
    print("command provider vs bare subprocess.run (/bin/echo):")
    print(
        f"  bare {c['bare_ms']:.2f} ms   provider {c['provider_ms']:.2f} ms   overhead {c['overhead_ms']:.2f} ms"
        f"   ratio {c['ratio']:.2f}x   (target: overhead <= 1.5 ms)"
    )
    print(
        f"  CPU in this process: bare {c['bare_cpu_ms']:.2f} ms   provider {c['provider_cpu_ms']:.2f} ms"
        f"   overhead {c['overhead_cpu_ms']:.2f} ms"
    )
    ledger = results.get("ledger")
    if isinstance(ledger, dict):
        print("ledger (SQLite, WAL, synchronous=FULL):")
        print(f"  one transaction per attempt: {ledger['single_inserts_per_s']:,.0f} inserts/s")
        print(f"  batched in one transaction:  {ledger['batched_inserts_per_s']:,.0f} inserts/s")
    print(f"(cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]})")
    del ballast


if __name__ == "__main__":
    main()
