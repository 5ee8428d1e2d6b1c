"""Coordinator overhead per task with a no-op agent, for a short and a long queue.

    .venv/bin/python bench/bench_coordinator.py [--sizes 100 10000] [--workers 2]

The agent is `/bin/echo` printing a Claude-style result. For each queue size N
the tasks are submitted (each becomes a durable DBOS workflow) and the run is
timed until the last one is done. Reported per task:

* overhead per task: from the moment a worker takes the task (its first step)
  to the moment it is recorded done, minus the agent's own runtime as the
  ledger measured it; median and p90;
* wall ms per task (wall / N) with W workers, and the worker-slot time per task
  beyond a bare `subprocess.run` of the same agent;
* wall ms per task for each tenth of the run: flat means dequeuing does not get
  slower while the queue is long.

Target: at most 20 ms of overhead per task.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from switchyard.config import load_config  # noqa: E402
from switchyard.progress import Reporter  # noqa: E402
from switchyard.task import Task  # noqa: E402

RESULT = json.dumps(
    {"type": "result", "is_error": False, "result": "ok", "usage": {"input_tokens": 100, "output_tokens": 20}}
)


def bare_agent_ms(n: int = 50) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["/bin/echo", RESULT], capture_output=True, check=True)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


class Stopwatch(Reporter):
    """Notes when each task begins (dequeued and prepared) and when it is done."""

    def __init__(self) -> None:
        super().__init__(open(os.devnull, "w"))  # noqa: SIM115
        self.begin: dict[str, float] = {}
        self.done: dict[str, float] = {}

    def event(self, kind: str, task_id: str, **info: object) -> None:
        if kind == "begin":
            self.begin.setdefault(task_id, time.perf_counter())
        elif kind == "done":
            self.done[task_id] = time.perf_counter()


def run_size(n: int, workers: int, workdir: Path) -> dict[str, object]:
    import threading

    from switchyard.coordinator import Coordinator

    cfg = workdir / "switchyard.toml"
    cfg.write_text(
        f"""
[providers.noop]
command_template = {json.dumps(["/bin/echo", RESULT])}
usage_format = "claude-json"

[[models]]
name = "m"
provider = "noop"
cost_per_million_input = 1.0
cost_per_million_output = 1.0

[routing]
default_model = "m"

[coordinator]
max_workers = {workers}
poll_interval_s = 0.01
"""
    )
    loaded = load_config(cfg)
    watch = Stopwatch()
    co = Coordinator(loaded, workers=workers, reporter=watch)
    co.start()
    tasks = [Task(f"t-{i:05d}", title="noop") for i in range(n)]
    t0 = time.perf_counter()
    co.submit(tasks, "bench")
    submitted = time.perf_counter()
    done_at: list[float] = []
    seen = 0
    stop = threading.Event()
    while True:
        finished = co.ledger.count_tasks(["done"])
        now = time.perf_counter()
        done_at.extend([now] * (finished - seen))
        seen = finished
        if finished >= n:
            break
        stop.wait(0.05)
    wall = time.perf_counter() - t0
    agent_ms = {a.task_id: a.latency_ms for a in co.ledger.attempts()}
    co.close()
    per_task = sorted(
        (watch.done[t] - watch.begin[t]) * 1000 - agent_ms.get(t, 0) for t in watch.done if t in watch.begin
    )
    tenths = []
    step = max(1, n // 10)
    prev = t0
    for k in range(step - 1, n, step):
        tenths.append((done_at[k] - prev) * 1000 / step)
        prev = done_at[k]
    return {
        "n": n,
        "workers": workers,
        "wall_s": wall,
        "submit_ms_per_task": (submitted - t0) * 1000 / n,
        "wall_ms_per_task": wall * 1000 / n,
        "task_overhead_ms_median": statistics.median(per_task),
        "task_overhead_ms_p90": per_task[int(len(per_task) * 0.9)],
        "tenths_wall_ms_per_task": tenths,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    bare = bare_agent_ms()
    results = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            r = run_size(n, args.workers, Path(tmp))
        r["slot_ms_per_task"] = float(r["wall_ms_per_task"]) * args.workers - bare  # type: ignore[arg-type]
        results.append(r)
    if args.json:
        print(json.dumps({"bare_agent_ms": bare, "runs": results}, indent=2))
        return
    print(f"bare agent (/bin/echo via subprocess.run): median {bare:.2f} ms")
    for r in results:
        tenths = r["tenths_wall_ms_per_task"]
        assert isinstance(tenths, list)
        print(
            f"N={r['n']:>6}  workers={r['workers']}  per-task overhead over the agent: median {r['task_overhead_ms_median']:.1f} ms"
            f" (p90 {r['task_overhead_ms_p90']:.1f})  [target <= 20]"
        )
        print(
            f"          wall {r['wall_s']:.1f} s = {r['wall_ms_per_task']:.1f} ms/task ({r['slot_ms_per_task']:.1f} ms of worker slot"
            f" per task beyond the agent); submit {r['submit_ms_per_task']:.1f} ms/task"
        )
        print("          wall ms/task by tenth of the run: " + " ".join(f"{t:.1f}" for t in tenths))


if __name__ == "__main__":
    main()
