"""`switchyard show`, `retry` and `cancel` on ledgers made by real `switchyard run` processes (a fake agent CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path

from switchyard.ledger import Ledger
from test_coordinator import EXE, config, run, status, tasks_file


def cli(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def states(cfg: Path) -> dict[str, tuple[str, int, int]]:
    return {r["task"]: (r["state"], r["attempts"], r["retry_count"]) for r in status(cfg)}


def test_a_dead_task_is_retried_with_its_attempts_kept_and_its_retry_count_going_on(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="error529")
    assert run(cfg, "--tasks", str(tasks_file(tmp_path, 2)), "--once").returncode == 1
    assert states(cfg) == {"T-00": ("dead", 3, 2), "T-01": ("dead", 3, 2)}

    # Unknown ids, and a task in the wrong state, change nothing and exit 2.
    proc = cli(cfg, "retry", "T-00", "T-1")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert "error: no task 'T-1' in the ledger (did you mean 'T-01'?)" in proc.stderr
    assert states(cfg)["T-00"] == ("dead", 3, 2)

    cfg.write_text(cfg.read_text().replace('FAKE_MODE = "error529"', 'FAKE_MODE = "ok"'))
    proc = cli(cfg, "retry", "T-00")
    assert (proc.returncode, proc.stdout) == (0, "T-00: dead -> queued (retry_count 3)\n"), proc.stderr
    assert states(cfg)["T-00"] == ("queued", 3, 3)
    proc = cli(cfg, "retry", "T-00")
    assert proc.returncode == 2 and "task T-00 is queued: only a dead or cancelled task can be retried" in proc.stderr

    # No ids is no filter to the durable queue: it must cancel (or fork) nothing, not everything.
    from switchyard.config import load_config
    from switchyard.coordinator import cancel_workflows, requeue_workflows

    assert cancel_workflows(load_config(cfg), []) == 0 and requeue_workflows(load_config(cfg), []) == 0
    proc = run(cfg, "--once")  # no sources: only the retried task's fresh workflow runs
    assert proc.returncode == 0, proc.stderr  # this run's task is done (T-01 died in an earlier run: not this one's)
    assert states(cfg) == {"T-00": ("done", 4, 3), "T-01": ("dead", 3, 2)}
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts(task_id="T-00")
    assert [(a.model, a.status, a.task_retry) for a in attempts] == [
        ("cheap", "failed", 0),
        ("strong", "failed", 1),
        ("strong", "failed", 2),
        ("strong", "ok", 3),  # routed as the escalation it is (retry_count >= 1)
    ]
    proc = cli(cfg, "retry", "T-00")
    assert proc.returncode == 2 and "task T-00 is done" in proc.stderr


def test_show_tells_the_whole_story_of_a_task(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="fail_then_ok")
    assert run(cfg, "--tasks", str(tasks_file(tmp_path, 1)), "--once").returncode == 0
    # Something secret-looking that ended up in a saved output is masked when shown.
    run_dirs = sorted((tmp_path / ".switchyard" / "runs" / "T-00").iterdir())
    assert len(run_dirs) == 2
    (run_dirs[1] / "result.txt").write_text("line 1\nthe key is sk-test-0123456789abcdef\n")
    env = {"AGENT_API_KEY": "sk-test-0123456789abcdef"}
    proc = cli(cfg, "show", "T-00", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("task T-00: done\n  title: task 0\n  priority 0, source ")
    assert "2 attempt(s), $0.0" in out
    assert "1. " in out and "cheap via agent" in out and "outcome: failed [overloaded]" in out
    assert "2. " in out and "strong via agent" in out and "why chosen: rules[0]: escalate after a failure" in out
    assert "tokens: 1,000 in, 4,000 cache read, 2,000 cache write, 500 out; cost $" in out
    assert f"output: {run_dirs[1]} (the end of result.txt:)" in out
    assert "       | the key is [REDACTED]" in out and "sk-test-0123456789abcdef" not in out
    data = json.loads(cli(cfg, "show", "T-00", "--json", env=env).stdout)
    assert data["state"] == "done" and data["task"]["id"] == "T-00"
    assert [a["model"] for a in data["attempts"]] == ["cheap", "strong"]
    assert data["attempts"][1]["output_tail"] == ["line 1", "the key is [REDACTED]"]
    assert str(sum(float(a["cost_usd"]) for a in data["attempts"]))[:6] == str(float(data["cost_usd"]))[:6]

    proc = cli(cfg, "show", "T-0")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert "no task 'T-0' in the ledger (did you mean 'T-00'?)" in proc.stderr
    proc = cli(cfg, "show", "zzz")
    assert (
        proc.returncode == 2
        and "no task 'zzz' in the ledger (`switchyard status --all` lists every task)" in proc.stderr
    )


def test_cancel_stops_queued_and_running_tasks(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="slow_fail", sleep=3.0)
    tasks = tasks_file(tmp_path, 3)
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        running: list[str] = []
        while not running and time.monotonic() < deadline:
            time.sleep(0.1)
            if (tmp_path / ".switchyard" / "ledger.db").exists():
                with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
                    running = [t.task_id for t in ledger.tasks(states=["running"])]
        assert running, "no task started"
        queued = sorted({"T-00", "T-01", "T-02"} - set(running))
        done = cli(cfg, "cancel", *running, *queued)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "".join(
            [f"{t}: running -> cancelled\n" for t in running] + [f"{t}: queued -> cancelled\n" for t in queued]
        )
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    rows = states(cfg)
    # The running one's call was ended (its agent killed at a lease renewal) and recorded; nothing was called
    # after it, nor for the queued ones.
    assert rows[running[0]] == ("cancelled", 1, 0)
    assert all(rows[t] == ("cancelled", 0, 0) for t in queued)
    proc2 = cli(cfg, "cancel", running[0])
    assert proc2.returncode == 2 and f"task {running[0]} is cancelled: only a queued" in proc2.stderr

    # A cancelled task can be retried: it runs from where its retry count stands.
    cfg.write_text(cfg.read_text().replace('FAKE_MODE = "slow_fail"', 'FAKE_MODE = "ok"'))
    assert cli(cfg, "retry", queued[0]).stdout == f"{queued[0]}: cancelled -> queued (retry_count 1)\n"
    assert run(cfg, "--once").returncode == 0
    assert states(cfg)[queued[0]] == ("done", 1, 1)
    assert states(cfg)[queued[1]] == ("cancelled", 0, 0)


def test_two_concurrent_retries_of_one_dead_task_requeue_it_once(pg_url: str) -> None:
    """On PostgreSQL both retries can read `dead` before either updates; only the one whose guarded UPDATE
    changed the row may say it requeued the task (the other would fork a second workflow)."""
    import threading

    import psycopg

    with Ledger.open(pg_url) as ledger:
        ledger.add_task("T-race", json.dumps({"id": "T-race", "title": "t"}), None, 1000)
        ledger.set_task("T-race", "dead", 2000, retry_count=1, last_error="boom")
    # A third session holds the row: both retries read `dead`, then wait on their UPDATE.
    with psycopg.connect(pg_url) as locker:
        locker.execute("UPDATE tasks SET note = 'held' WHERE task_id = 'T-race'")
        results: list[int | None] = []

        def retry() -> None:
            with Ledger.open(pg_url) as mine:
                results.append(mine.requeue_task("T-race", 3000, "retried by hand"))

        threads = [threading.Thread(target=retry) for _ in range(2)]
        for t in threads:
            t.start()
        with psycopg.connect(pg_url, autocommit=True) as watch:
            for _ in range(6000):  # until both wait on the held row (not a timing assertion: a bound)
                row = watch.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()
                if row is not None and row[0] == 2:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the two retries never both waited on the row")
        locker.commit()
    for t in threads:
        t.join(60)
    assert sorted(results, key=lambda r: r is None) == [2, None]
    with Ledger.open(pg_url) as ledger:
        row = ledger.task("T-race")
    assert row is not None and (row.state, row.retry_count) == ("queued", 2)


def test_interrupted_is_not_a_task_state(tmp_path: Path) -> None:
    """Nothing ever puts a task in `interrupted` (an interrupted call's workflow resumes): `status` refuses it."""
    cfg = config(tmp_path, mode="ok")
    proc = cli(cfg, "status", "--state", "interrupted")
    assert proc.returncode == 2 and "--state interrupted: not a task state" in proc.stderr, proc.stderr


def test_status_totals_only_the_tasks_attempts_and_show_finds_an_exec_id(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="ok")
    assert run(cfg, "--tasks", str(tasks_file(tmp_path, 2)), "--once").returncode == 0
    before = json.loads(cli(cfg, "status", "--json").stdout)
    assert (before["attempts"], before["exec_attempts"]) == (2, 0)
    plain = cli(cfg, "status").stdout
    assert "exec" not in plain

    proc = cli(cfg, "exec", "--task", json.dumps({"id": "x1", "title": "one-off"}))
    assert proc.returncode == 0, proc.stderr
    after = json.loads(cli(cfg, "status", "--json").stdout)
    assert (after["tasks"], after["attempts"], after["cost_usd"]) == (2, 2, before["cost_usd"])
    assert after["exec_attempts"] == 1 and float(after["exec_cost_usd"]) > 0
    lines = cli(cfg, "status").stdout.splitlines()
    assert lines[0].startswith("2 task(s): 2 done; 2 attempt(s); $")
    assert lines[1].startswith("exec (no task): 1 attempt(s); $")

    shown = cli(cfg, "show", "x1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(
        "x1: run by `switchyard exec` (no task of that id in the ledger, only its attempts)\n"
    )
    assert "1 attempt(s), $" in shown.stdout and "why chosen:" in shown.stdout
    as_json = json.loads(cli(cfg, "show", "x1", "--json").stdout)
    assert (as_json["run_by"], as_json["state"], len(as_json["attempts"])) == ("exec", None, 1)
    assert json.loads(cli(cfg, "show", "T-00", "--json").stdout)["run_by"] == "run"
    unknown = cli(cfg, "show", "x2")
    assert unknown.returncode == 2 and "no task 'x2' in the ledger" in unknown.stderr


def test_exec_totals_of_an_older_ledger_are_counted_by_the_migration(ledger_url: str) -> None:
    """Attempts recorded before `exec_totals` existed: the migration counts those of no task once."""
    from switchyard.ledger.store import AttemptRecord

    with Ledger.open(ledger_url) as ledger:
        ledger.add_task("T", "{}", None, 1)
        ledger.record_many(
            [
                AttemptRecord(f"a{i}", "T" if i % 2 else "X", "p", "m", "ok", 10, 20, cost_usd=Decimal("0.5"))
                for i in range(4)
            ]
        )
        assert ledger.exec_totals() == (2, 10**12)
        ledger.db.execute("DROP TABLE exec_totals")
        ledger.db.execute("DELETE FROM _migrations WHERE name = '0045_exec_totals'")
    with Ledger.open(ledger_url) as ledger:
        assert ledger.exec_totals() == (2, 10**12)
        ledger.record(AttemptRecord("b", "Y", "p", "m", "ok", 10, 20, cost_usd=Decimal("0.25")))
        ledger.record(AttemptRecord("c", "T", "p", "m", "ok", 10, 20, cost_usd=Decimal("0.25")))
        assert ledger.exec_totals() == (3, 125 * 10**10)


def run_until_the_agent_starts(cfg: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """`run --once` on one task, returned once its agent has written its record (argv, prompt, pid)."""
    record = tmp_path / "last_call.json"
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks_file(tmp_path, 1)), "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not record.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not record.exists():
        proc.kill()
        proc.communicate()
        raise AssertionError("the agent never started")
    return proc, record


def test_cancel_kills_a_running_agent_at_the_next_lease_renewal(tmp_path: Path) -> None:
    """The machine calling for a cancelled task kills that call's agent (within a renewal or so, not at its
    timeout): the attempt is recorded as interrupted, charged its worst case (it may have spent), its hold
    settled; the task stays cancelled and nothing runs after it; `run --once` exits."""
    cfg = config(
        tmp_path,
        mode="sleep",
        sleep=600.0,
        extra="[budgets]\ndaily_usd = 10\n",
        coordinator="lease_s = 2\nrenew_s = 0.5",
    )
    proc, record = run_until_the_agent_starts(cfg, tmp_path)
    try:
        time.sleep(0.2)  # the record is written whole before the agent sleeps
        pid = json.loads(record.read_text())["pid"]
        assert Path(f"/proc/{pid}").exists()
        done = cli(cfg, "cancel", "T-00")
        assert (done.returncode, done.stdout) == (0, "T-00: running -> cancelled\n"), done.stderr
        deadline = time.monotonic() + 30  # a bound far below the agent's 600 s, not a speed assertion
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), "the cancelled task's agent still runs"
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "killed 1 agent(s) of cancelled task(s) T-00" in err
    assert states(cfg) == {"T-00": ("cancelled", 1, 0)}
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        (attempt,) = ledger.attempts(task_id="T-00")
        assert (attempt.status, attempt.error_class) == ("interrupted", "interrupted")
        assert attempt.error_message == "its task was cancelled; agent and its processes killed"
        assert attempt.cost_usd > 0  # it ran and may have spent: charged its worst case, not $0
        held = ledger.db.one("SELECT COUNT(*) FROM budget_holds WHERE state = 'held'")
        spent = ledger.db.one("SELECT spent_pico, held_pico FROM budget_counters")
    assert held == (0,)
    assert spent == (int(attempt.cost_usd * 10**12), 0)
    # `retry` brings it back.
    cfg.write_text(cfg.read_text().replace('FAKE_MODE = "sleep"', 'FAKE_MODE = "ok"'))
    assert cli(cfg, "retry", "T-00").returncode == 0
    again = run(cfg, "--once")
    assert again.returncode == 0, again.stderr
    assert states(cfg)["T-00"] == ("done", 2, 1), (again.stdout, again.stderr)


def test_nothing_is_called_after_a_killed_call_even_before_the_workflow_is_cancelled(tmp_path: Path) -> None:
    """`cancel` marks the ledger, then cancels the workflow: a renewal in between kills the agent, and the
    workflow, not yet cancelled, goes on. It must call nothing more for the task (here its workflow is never
    cancelled at all: only the ledger says so)."""
    cfg = config(tmp_path, mode="sleep", sleep=600.0, coordinator="lease_s = 2\nrenew_s = 0.5")
    proc, _ = run_until_the_agent_starts(cfg, tmp_path)
    try:
        with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
            assert ledger.cancel_task("T-00", 1, "cancelled by the test")
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "killed 1 agent(s) of cancelled task(s) T-00" in err
    assert states(cfg)["T-00"][:2] == ("cancelled", 1)
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        assert [a.status for a in ledger.attempts(task_id="T-00")] == ["interrupted"]
