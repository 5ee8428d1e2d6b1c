"""Crash safety with real processes: kill -9 the coordinator mid-attempt, four times, restart, check the books.

The kill points come from a fixed seed (CRASH_SEED to try another): each round is
killed once a few more attempts have finished and an agent is running.

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
from collections import Counter
from decimal import Decimal
from pathlib import Path

from switchyard.ledger import Ledger
from switchyard.runner import safe_name
from test_coordinator import EXE, agents_running, config, status, tasks_file, wait_for

COST_PER_ATTEMPT = Decimal("0.0095")  # the fake agent's usage on model `cheap`


def test_kill_dash_nine_and_restart(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", "20261126"))
    rng = random.Random(seed)
    cfg = config(tmp_path, mode="sleep", sleep=0.3)
    tasks = tasks_file(tmp_path, 40)
    finished_log = tmp_path / "finished.log"

    def finished() -> int:
        return len(finished_log.read_text().split()) if finished_log.exists() else 0

    for round_ in range(4):
        proc = subprocess.Popen(
            [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once", "--workers", "3"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Kill it mid-attempt, once a few more attempts (2-6, from the seed) have finished. A round
        # finishes at most 6 + 3 (the workers) attempts before its kill, so 4 rounds leave work for each.
        target = finished() + rng.randint(2, 6)
        wait_for(
            lambda target=target: finished() >= target and bool(agents_running()),
            120,
            f"seed {seed}, round {round_}: {target} finished attempts with an agent running",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once", "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert final.returncode == 0, f"seed {seed}: {final.stderr}"

    rows = status(cfg)
    assert len(rows) == 40
    assert {r["state"] for r in rows} == {"done"}, f"seed {seed}"

    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts()
        total = ledger.total_cost()
    ids = Counter(a.attempt_id for a in attempts)
    assert max(ids.values()) == 1
    ok_per_task = Counter(a.task_id for a in attempts if a.status == "ok")
    assert set(ok_per_task.values()) == {1}, f"seed {seed}: a task succeeded twice"

    # Agents never outlive the coordinator that started them (kill -9 included).
    wait_for(lambda: agents_running() == [], 5, "no agent left running")

    done = {Path(line).parent.name for line in finished_log.read_text().split()}
    recorded = {safe_name(a.attempt_id) for a in attempts if a.status == "ok"}
    assert recorded == done, f"seed {seed}"
    assert total == COST_PER_ATTEMPT * len(done), f"seed {seed}"
