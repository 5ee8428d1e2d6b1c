"""Coordinator wall time per task against the DBOS floor, measured side by side in one run.

    .venv/bin/python bench/bench_coordinator.py [--sizes 100 10000] [--workers 2] [--rounds 3]

For each queue size N, each round runs, alternating (the order rotates every round):

* `floor`: bare DBOS, one no-op step per workflow: the least any durable queue of
  workflows on this engine can cost;
* `command`: `switchyard run`'s coordinator with a command provider whose agent
  is `/bin/echo` printing a Claude-style result (a process spawn per attempt);
* `simulated`: the coordinator with the `simulated` provider at zero latency (no
  process: the coordinator's own cost without the agent's spawn).

Every run is a fresh child process with a fresh state directory, the same worker
count, the same queue polling interval and the same kind of system database
(SQLite in the state directory, WAL). Each run submits N tasks and is timed from
the start of the submit to the moment the last task is done; reported: wall ms
per task (wall / N), the submit time, and the ratio of each kind's wall to the
floor's (median over rounds). The tenths show whether dequeuing slows down while
the queue is long (flat is good).

Targets: coordinator wall per task <= 1.5x the floor at 100 and 10,000 queued, with
2 workers; submitting 10,000 tasks <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

RESULT = json.dumps(
    {"type": "result", "is_error": False, "result": "ok", "usage": {"input_tokens": 100, "output_tokens": 20}}
)
KINDS = ("floor", "command", "simulated")
POLL_S = 0.01


# ---------------------------------------------------------------- child: one measured run
class Finish:
    """Notes when tasks are done; `all_done` is set when the N-th one is."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.all_done = threading.Event()

    def note(self) -> None:
        now = time.perf_counter()
        with self.lock:
            self.times.append(now)
            if len(self.times) >= self.n:
                self.all_done.set()


def _summary(n: int, t0: float, submitted: float, finish: Finish) -> dict[str, Any]:
    done = sorted(finish.times)
    wall = done[-1] - t0
    step = max(1, n // 10)
    tenths, prev = [], t0
    for k in range(step - 1, n, step):
        tenths.append((done[k] - prev) * 1000 / step)
        prev = done[k]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "n": n,
        "cpu_ms_per_task": (usage.ru_utime + usage.ru_stime) * 1000 / n,
        "wall_s": wall,
        "wall_ms_per_task": wall * 1000 / n,
        "submit_s": submitted - t0,
        "tenths_ms_per_task": tenths,
    }


def child_floor(n: int, workers: int, state: Path) -> dict[str, Any]:
    """Bare DBOS: N workflows of one no-op step each, enqueued in batches like the coordinator's."""
    import logging

    import sqlalchemy as sa
    from dbos import DBOS, DBOSClient, DBOSConfiguredInstance

    finish = Finish(n)
    logging.getLogger("dbos").addHandler(logging.FileHandler(state / "dbos.log"))

    @DBOS.dbos_class()
    class Floor(DBOSConfiguredInstance):
        def __init__(self) -> None:
            super().__init__("floor")

        @DBOS.step()
        def noop(self, task_id: str) -> str:
            return task_id

        @DBOS.workflow()
        def run(self, task_id: str) -> str:
            out = self.noop(task_id)
            finish.note()
            return out

    url = f"sqlite:///{state / 'dbos.sqlite'}"
    DBOS.migrate(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    client = DBOSClient(system_database_url=url, application_name="floor")
    client.register_queue("q", worker_concurrency=workers, polling_interval_sec=POLL_S)
    client.destroy()
    flow = Floor()
    DBOS(config={"name": "floor", "system_database_url": url, "application_version": "floor-1", "log_level": "WARNING"})
    DBOS.launch()
    batcher = DBOSClient(system_database_engine=engine, application_name="floor")
    options: Any = {
        "workflow_name": Floor.run.dbos_function_name,  # type: ignore[attr-defined]
        "queue_name": "q",
        "class_name": Floor.__qualname__,
        "instance_name": flow.config_name,
        "app_version": "floor-1",
    }
    ids = [f"t-{i:05d}" for i in range(n)]
    t0 = time.perf_counter()

    def feed() -> None:
        for start in range(0, n, 500):
            with engine.begin() as conn:
                for task_id in ids[start : start + 500]:
                    batcher.enqueue_in_transaction(conn, {**options, "workflow_id": task_id}, task_id)

    feeder = threading.Thread(target=feed)
    feeder.start()
    feeder.join()
    submitted = time.perf_counter()
    if not finish.all_done.wait(120 + n):
        raise SystemExit(f"floor: tasks did not finish; see {state / 'dbos.log'}")
    out = _summary(n, t0, submitted, finish)
    DBOS.destroy(workflow_completion_timeout_sec=0)
    return out


def child_coordinator(kind: str, n: int, workers: int, state: Path) -> dict[str, Any]:
    """The coordinator on N no-op tasks, with a command agent (/bin/echo) or a simulated provider."""
    from switchyard.config import load_config
    from switchyard.coordinator import Coordinator
    from switchyard.progress import Reporter
    from switchyard.task import Task

    finish = Finish(n)

    class Stopwatch(Reporter):
        def __init__(self) -> None:
            super().__init__(open(os.devnull, "w"))  # noqa: SIM115

        def event(self, kind: str, task_id: str, **info: object) -> None:
            if kind == "done":
                finish.note()

    if kind == "command":
        provider = f'command_template = {json.dumps(["/bin/echo", RESULT])}\nusage_format = "claude-json"'
    else:
        provider = 'kind = "simulated"\nlatency_ms = 0\ninput_tokens = [100, 100]\noutput_tokens = [20, 20]'
    cfg = state / "switchyard.toml"
    cfg.write_text(
        f"""
[providers.noop]
{provider}

[[models]]
name = "m"
provider = "noop"
cost_per_million_input = 1.0
cost_per_million_output = 1.0

[routing]
default_model = "m"

[coordinator]
max_workers = {workers}
poll_interval_s = {POLL_S}
"""
    )
    co = Coordinator(load_config(cfg), workers=workers, reporter=Stopwatch())
    co.start()
    tasks = [Task(f"t-{i:05d}", title="noop") for i in range(n)]
    t0 = time.perf_counter()
    co.submit(tasks, "bench")
    submitted = time.perf_counter()
    if not finish.all_done.wait(120 + n):
        raise SystemExit(f"{kind}: tasks did not finish; see {state / '.switchyard' / 'dbos.log'}")
    out = _summary(n, t0, submitted, finish)
    co.close()
    return out


# ---------------------------------------------------------------- parent: alternate, compare
def run_child(kind: str, n: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--n", str(n), "--workers", str(workers), "--dir", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} n={n} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternations per size (the median is reported)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        state = Path(args.dir)
        if args.child == "floor":
            out = child_floor(args.n, args.workers, state)
        else:
            out = child_coordinator(args.child, args.n, args.workers, state)
        print(json.dumps(out))
        sys.stdout.flush()
        os._exit(0)  # DBOS's daemon threads need not be joined

    kinds = ["floor", *[k for k in args.kinds if k != "floor"]]
    report: dict[str, Any] = {"workers": args.workers, "poll_interval_s": POLL_S, "sizes": {}}
    for n in args.sizes:
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
            for kind in order:
                runs[kind].append(run_child(kind, n, args.workers))
                if not args.json:
                    last = runs[kind][-1]
                    print(
                        f"  n={n} round {r + 1} {kind:<9} wall {last['wall_ms_per_task']:6.2f} ms/task"
                        f"  submit {last['submit_s']:6.2f} s  cpu {last['cpu_ms_per_task']:6.2f} ms/task",
                        flush=True,
                    )
        floor = statistics.median(x["wall_ms_per_task"] for x in runs["floor"])
        summary: dict[str, Any] = {}
        for kind in kinds:
            walls = [x["wall_ms_per_task"] for x in runs[kind]]
            ratios = [
                x["wall_ms_per_task"] / f["wall_ms_per_task"] for x, f in zip(runs[kind], runs["floor"], strict=True)
            ]
            summary[kind] = {
                "wall_ms_per_task_median": statistics.median(walls),
                "ratio_to_floor_median": statistics.median(ratios),
                "ratio_to_floor_per_round": ratios,
                "submit_s_median": statistics.median(x["submit_s"] for x in runs[kind]),
                "tenths_ms_per_task": runs[kind][len(runs[kind]) // 2]["tenths_ms_per_task"],
            }
        report["sizes"][str(n)] = summary
        if args.json:
            continue
        print(f"N={n}, {args.workers} workers, {args.rounds} round(s), medians; floor {floor:.2f} ms/task:")
        for kind in kinds:
            s = summary[kind]
            target = "" if kind == "floor" else "  [target <= 1.5x]"
            print(
                f"  {kind:<9} wall {s['wall_ms_per_task_median']:7.2f} ms/task = {s['ratio_to_floor_median']:.2f}x floor"
                f"{target}; submit {s['submit_s_median']:.2f} s"
                + ("  [target <= 2 s]" if n >= 10_000 and kind != "floor" else "")
            )
            print("            by tenth of the run (ms/task): " + " ".join(f"{t:.1f}" for t in s["tenths_ms_per_task"]))
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
