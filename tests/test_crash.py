"""Crash safety with real processes: kill -9 the coordinator at random moments, restart, check the books.

At the end every task is done, every attempt id appears once in the ledger (and
no task succeeded twice), no agent process is left running, and the recorded
cost equals the cost of the attempts that really finished (the fake agent notes
each finished attempt, by its output file, durably before it answers).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from switchyard.ledger import Ledger
from switchyard.runner import safe_name
from test_coordinator import EXE, agents_running, config, status, tasks_file

COST_PER_ATTEMPT = Decimal("0.0095")  # the fake agent's usage on model `cheap`


def test_kill_dash_nine_and_restart(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    cfg = config(tmp_path, mode="sleep", sleep=0.3)
    tasks = tasks_file(tmp_path, 30)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(
            [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once", "--workers", "3"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.5, 4.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once", "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert final.returncode == 0, f"seed {seed}: {final.stderr}"
    assert kills >= 2, f"seed {seed}: the runs finished before they could be killed"

    rows = status(cfg)
    assert len(rows) == 30
    assert {r["state"] for r in rows} == {"done"}, f"seed {seed}"

    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts()
        total = ledger.total_cost()
    ids = Counter(a.attempt_id for a in attempts)
    assert max(ids.values()) == 1
    ok_per_task = Counter(a.task_id for a in attempts if a.status == "ok")
    assert set(ok_per_task.values()) == {1}, f"seed {seed}: a task succeeded twice"

    # Agents never outlive the coordinator that started them (kill -9 included).
    deadline = time.monotonic() + 5
    while agents_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agents_running() == []

    finished = {Path(line).parent.name for line in (tmp_path / "finished.log").read_text().split()}
    recorded = {safe_name(a.attempt_id) for a in attempts if a.status == "ok"}
    assert recorded == finished, f"seed {seed}"
    assert total == COST_PER_ATTEMPT * len(finished), f"seed {seed}"
