"""Execution benchmark: command-provider overhead over a bare subprocess.run, and ledger inserts per second.

    .venv/bin/python bench/bench_exec.py [--calls 300] [--rows 20000]

The agent is `/bin/echo` printing a Claude-style result, so the figure is our
own cost: prompt file, run directory, minimal environment, process group,
timeout timer, output capture, usage parsing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from switchyard.config import loads_config  # noqa: E402
from switchyard.ledger import AttemptRecord, Ledger  # noqa: E402
from switchyard.providers.base import Call, ProviderContext  # noqa: E402
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


def bench_command(calls: int, workdir: Path) -> dict[str, float]:
    argv = ["/bin/echo", RESULT]
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
    bare, ours = [], []
    for i in range(calls + 10):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        t1 = time.perf_counter()
        result = provider.execute(Call(f"a{i}", task, "m", "m", "prompt text", workdir / f"r{i}", 30.0))
        t2 = time.perf_counter()
        assert result.ok and result.usage is not None
        if i >= 10:
            bare.append((t1 - t0) * 1000)
            ours.append((t2 - t1) * 1000)
    b, o = statistics.median(bare), statistics.median(ours)
    return {"bare_ms": b, "provider_ms": o, "overhead_ms": o - b, "ratio": o / b}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"command": bench_command(args.calls, Path(tmp)), "ledger": bench_ledger(args.rows, Path(tmp))}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    c, ledger = results["command"], results["ledger"]
    print(f"command provider vs bare subprocess.run (/bin/echo, median of {args.calls}):")
    print(
        f"  bare {c['bare_ms']:.2f} ms   provider {c['provider_ms']:.2f} ms   overhead {c['overhead_ms']:.2f} ms   ratio {c['ratio']:.2f}x"
    )
    print("ledger (SQLite, WAL, synchronous=FULL):")
    print(f"  one transaction per attempt: {ledger['single_inserts_per_s']:,.0f} inserts/s")
    print(f"  batched in one transaction:  {ledger['batched_inserts_per_s']:,.0f} inserts/s")
    print(f"(cpu count {os.cpu_count()}, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
