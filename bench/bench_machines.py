"""Many machines on one PostgreSQL: chaos figures and throughput with 1, 2 and 3 machines.

    .venv/bin/python bench/bench_machines.py [--seeds 1 2 3] [--tasks 200] [--kills 16]
                                             [--throughput-tasks 120] [--sleep 0.05]

Chaos (tests/cluster.py `run_chaos`, the same rig as tests/test_machines_chaos.py):
3 `switchyard run` machines on one fresh PostgreSQL database, `--tasks` tasks on
the recording agent (1 s each), a global cap admitting about 85% of the calls and
a docs cap about half of the docs tasks', `--kills` random kill -9 of random
machines (60% restarted after 0.5-3 s; the last one never). Reported per seed:
calls started twice (the first run's machine died mid-call), calls that finished
but were not recorded (their machine died in the instant between), overspend
(really spent beyond each cap), time from a kill to a survivor claiming the dead
session (median, max; takeover_s = 7 s in the rig), and whether every promise held.

Throughput: N tasks on the same agent (`--sleep` seconds each), 2 workers per
machine, 1, 2 and 3 machines on one PostgreSQL database, timed from the first
machine's start to the last task done (tasks/s).

Needs PostgreSQL at $SWITCHYARD_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from cluster import Cluster, config_text, run_chaos, tasks_jsonl, wait_for  # noqa: E402
from pg import ADMIN_URL  # noqa: E402


def fresh_db() -> tuple[str, str]:
    import psycopg

    name = f"switchyard_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def throughput(machines: int, tasks: int, sleep: float) -> float:
    from switchyard.ledger import Ledger

    name, url = fresh_db()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            c = Cluster(
                root,
                machines,
                lambda log: config_text(url, log, sleep=sleep, workers=2),
                tasks_jsonl(root / "t.jsonl", tasks),
            )
            t0 = time.monotonic()
            for i in range(machines):
                c.start(i, "--watch", "3600")

            def done() -> bool:
                with Ledger.open(url) as ledger:
                    return ledger.count_tasks(["done"]) == tasks

            wait_for(done, 600, "every task done", 0.05)
            wall = time.monotonic() - t0
            c.stop_all()
            return tasks / wall
    finally:
        drop_db(name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--kills", type=int, default=16)
    ap.add_argument("--throughput-tasks", type=int, default=120)
    ap.add_argument("--sleep", type=float, default=0.05)
    args = ap.parse_args()

    takeovers: list[float] = []
    print(f"chaos: {args.tasks} tasks, 3 machines, {args.kills} kill -9 per seed")
    for seed in args.seeds:
        name, url = fresh_db()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_chaos(
                    Path(tmp), url, seed=seed, tasks=args.tasks, kills=args.kills, interval=(1.0, 3.0), timeout=900
                )
        finally:
            drop_db(name)
        takeovers += r.takeovers_s
        med = statistics.median(r.takeovers_s) if r.takeovers_s else float("nan")
        mx = max(r.takeovers_s) if r.takeovers_s else float("nan")
        print(
            f"  seed {seed}: {r.seconds:.0f}s, {r.kills} kills ({r.restarts} restarts), states {r.states}, "
            f"started twice {r.started_twice}, finished unrecorded {r.finished_unrecorded}, "
            f"overspend ${r.overspend_usd}, takeover median {med:.1f}s max {mx:.1f}s (n={len(r.takeovers_s)}), "
            f"problems: {len(r.problems)}"
        )
        for p in r.problems:
            print("    " + p[:300])
    if takeovers:
        print(
            f"  all seeds: takeover after a kill: median {statistics.median(takeovers):.1f}s, "
            f"max {max(takeovers):.1f}s (n={len(takeovers)})"
        )
    print(f"throughput: {args.throughput_tasks} tasks, agent {args.sleep}s, 2 workers per machine")
    for n in (1, 2, 3):
        print(f"  {n} machine(s): {throughput(n, args.throughput_tasks, args.sleep):.1f} tasks/s")


if __name__ == "__main__":
    main()
