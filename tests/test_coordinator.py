"""`switchyard run` as a real process: sources, escalation, idempotence, signals, worktrees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from switchyard.ledger import Ledger

FAKE = str(Path(__file__).parent / "fakes" / "fake_agent.py")
EXE = str(Path(sys.executable).parent / "switchyard")


def config(tmp_path: Path, *, mode: str = "ok", sleep: float = 0.1, extra: str = "", coordinator: str = "") -> Path:
    cfg = tmp_path / "switchyard.toml"
    template = json.dumps([sys.executable, FAKE, "--model", "{model}", "--out", "{output_file}"])
    cfg.write_text(
        f"""
[providers.agent]
command_template = {template}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
max_retries = 0
timeout_s = 60
env = {{ FAKE_MODE = "{mode}", FAKE_SLEEP = "{sleep}", FAKE_FINISHED = "{tmp_path / "finished.log"}", FAKE_RECORD = "{tmp_path / "last_call.json"}" }}

[[models]]
name = "cheap"
provider = "agent"
cost_per_million_input = 1.0
cost_per_million_output = 5.0

[[models]]
name = "strong"
provider = "agent"
cost_per_million_input = 3.0
cost_per_million_output = 15.0
cost_per_million_cached_input = 0.3
cost_per_million_cache_write = 3.75

[routing]
default_model = "cheap"

[[routing.rules]]
condition = "retry_count >= 1"
model = "strong"
reason = "escalate after a failure"

[runner]
backoff_base_s = 0.01
max_attempts = 1

[health]
consecutive_failures = 1000

[coordinator]
max_workers = 3
max_attempts = 3
poll_interval_s = 0.05
grace_s = 20
{coordinator}
{extra}
"""
    )
    return cfg


def tasks_file(tmp_path: Path, n: int, name: str = "tasks.jsonl") -> Path:
    f = tmp_path / name
    f.write_text(
        "".join(json.dumps({"id": f"T-{i:02d}", "title": f"task {i}", "priority": i % 5}) + "\n" for i in range(n))
    )
    return f


def run(
    cfg: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "run", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def status(cfg: Path) -> list[dict]:  # type: ignore[type-arg]
    proc = subprocess.run(
        [EXE, "status", "--all", "--json", "--config", str(cfg)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def agents_running(containing: str = "") -> list[int]:
    """Pids of live fake agents (whose command line contains `containing`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if FAKE in cmd and containing in cmd and state != "Z":
            pids.append(int(entry.name))
    return pids


def test_runs_every_task_and_is_idempotent(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    tasks = tasks_file(tmp_path, 8)
    proc = run(cfg, "--tasks", str(tasks), "--once")
    assert proc.returncode == 0, proc.stderr
    assert "8 task(s): 8 done; 8 attempt(s)" in proc.stdout
    rows = status(cfg)
    assert {r["state"] for r in rows} == {"done"} and len(rows) == 8
    # Each agent call: 1000 uncached + 4000 read + 2000 write in, 500 out on `cheap` (no cache rates: input rate).
    assert Decimal(rows[0]["cost_usd"]) == Decimal("0.0095")
    # Re-reading the same source queues nothing and calls nothing.
    again = run(cfg, "--tasks", str(tasks), "--once")
    assert again.returncode == 0
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        assert len(ledger.attempts()) == 8


def test_failure_escalates_then_dead(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="fail_then_ok")
    proc = run(cfg, "--tasks", str(tasks_file(tmp_path, 3)), "--once")
    assert proc.returncode == 0, proc.stderr
    rows = status(cfg)
    assert all(r["state"] == "done" and r["models"] == ["cheap", "strong"] for r in rows)
    assert all(r["retry_count"] == 1 for r in rows)
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts(task_id="T-00")
    assert [(a.model, a.status, a.task_retry) for a in attempts] == [("cheap", "failed", 0), ("strong", "ok", 1)]
    assert attempts[1].reason == "escalate after a failure"

    cfg2 = config(tmp_path / "dead", mode="error529") if (tmp_path / "dead").mkdir() is None else None
    assert cfg2 is not None
    proc = run(cfg2, "--tasks", str(tasks_file(tmp_path / "dead", 1)), "--once")
    assert proc.returncode == 1
    [row] = status(cfg2)
    assert row["state"] == "dead"
    assert row["attempts"] == 3 and row["models"] == ["cheap", "strong"]
    assert "overloaded" in row["last_error"]


def test_prompt_template_is_filled_safely(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("Task {id} ({priority}): {title}\n\n{body}\nLabels: {labels}\n")
    cfg = config(tmp_path, coordinator='prompt_template = "prompt.md"')
    tasks = tmp_path / "t.json"
    tasks.write_text(
        json.dumps(
            [{"id": "X-1", "title": "Fix {secret}", "body": "use {{id}} and {title}", "labels": ["bug"], "priority": 1}]
        )
    )
    assert run(cfg, "--tasks", str(tasks), "--once").returncode == 0
    prompt = json.loads((tmp_path / "last_call.json").read_text())["prompt"]
    assert prompt == "Task X-1 (P1): Fix {secret}\n\nuse {{id}} and {title}\nLabels: bug\n"


def test_bad_prompt_template_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("Do {titel}\n")
    cfg = config(tmp_path, coordinator='prompt_template = "prompt.md"')
    proc = run(cfg, "--tasks", str(tasks_file(tmp_path, 1)))
    assert proc.returncode == 2
    assert "unknown template field {titel} (did you mean {title}?)" in proc.stderr


def fake_tool(bin_dir: Path, name: str, stdout: str, code: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    data = bin_dir / f"{name}.out"
    data.write_text(stdout)
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(data)!r}).read())\nsys.stderr.write('boom from {name}\\n' if {code} else '')\nsys.exit({code})\n"
    )
    script.chmod(0o755)


def test_github_and_beads_sources(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    bin_dir = tmp_path / "bin"
    gh_issues = [
        {
            "number": 7,
            "title": "Crash on start",
            "body": "stack trace",
            "labels": [{"name": "bug"}, {"name": "priority:P0"}],
            "url": "https://github.com/o/r/issues/7",
            "createdAt": "2026-11-01T00:00:00Z",
        },
        {
            "number": 8,
            "title": "Docs",
            "body": "",
            "labels": [{"name": "documentation"}],
            "url": "https://github.com/o/r/issues/8",
            "createdAt": "2026-11-02T00:00:00Z",
        },
        {"number": "nine", "title": "bad entry"},
    ]
    fake_tool(bin_dir, "gh", json.dumps(gh_issues))
    beads = [
        {
            "id": "bd-a1",
            "title": "Refactor",
            "description": "split module",
            "priority": 1,
            "issue_type": "chore",
            "labels": ["refactor"],
            "status": "open",
            "dependency_count": 0,
            "new_field": {"x": 1},
        }
    ]
    fake_tool(bin_dir, "bd", json.dumps(beads))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = run(cfg, "--source", "github:o/r:agent", "--source", "beads", "--once", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "github:o/r:agent: issue 3 of the list: number: expected the issue number" in proc.stderr
    rows = {r["task"]: r for r in status(cfg)}
    assert set(rows) == {"gh-7", "gh-8", "bd-a1"}
    assert rows["gh-7"]["priority"] == 0 and rows["gh-8"]["priority"] == 2 and rows["bd-a1"]["priority"] == 1
    assert rows["gh-7"]["source"] == "github:o/r:agent"
    # Re-reading both sources enqueues nothing new.
    proc = run(cfg, "--source", "github:o/r:agent", "--source", "beads", "--once", env=env)
    assert "queued" not in proc.stderr.replace("0 queued", "")
    assert len(status(cfg)) == 3


@pytest.mark.parametrize(
    ("stdout", "code", "message"),
    [("[{not json", 0, "printed invalid JSON"), ("", 1, "exited with status 1: boom from gh")],
)
def test_broken_source_is_reported_and_others_run(tmp_path: Path, stdout: str, code: int, message: str) -> None:
    cfg = config(tmp_path)
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "gh", stdout, code)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = run(cfg, "--source", "github:o/r", "--tasks", str(tasks_file(tmp_path, 2)), "--once", env=env)
    assert proc.returncode == 0
    assert "error: github:o/r:" in proc.stderr and message in proc.stderr
    assert len(status(cfg)) == 2


def test_missing_tool_and_bad_spec(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    proc = run(cfg, "--source", "beads", "--once", env={"PATH": "/nonexistent"})
    assert "beads: 'bd' is not on PATH; install beads (bd)" in proc.stderr
    proc = run(cfg, "--source", "gitlab:x/y", "--once")
    assert proc.returncode == 2 and "expected github:OWNER/REPO[:LABEL] or beads" in proc.stderr


def test_bad_task_entry_is_skipped_with_its_location(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    f = tmp_path / "tasks.jsonl"
    f.write_text('{"id": "A"}\n{"id": "B", "priority": "urgent"}\n{oops\n{"id": "C"}\n')
    proc = run(cfg, "--tasks", str(f), "--once")
    assert proc.returncode == 0
    assert f"{f}:2: task.priority: expected an integer 0-4" in proc.stderr  # lines counted from 1, one way
    assert f"{f}:3:2: not valid JSON" in proc.stderr
    assert {r["task"] for r in status(cfg)} == {"A", "C"}


def test_worktree_per_task(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "README").write_text("x")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    cfg = config(tmp_path, coordinator='worktree = true\nrepo = "repo"')
    assert run(cfg, "--tasks", str(tasks_file(tmp_path, 1)), "--once").returncode == 0
    cwd = json.loads((tmp_path / "last_call.json").read_text())["cwd"]
    assert cwd == str(tmp_path / ".switchyard" / "worktrees" / "T-00")
    branch = subprocess.run(
        ["git", "-C", cwd, "branch", "--show-current"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert branch == "switchyard/T-00"


def test_sigint_stops_taking_tasks_and_resumes_later(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="sleep", sleep=1.5, coordinator="")
    tasks = tasks_file(tmp_path, 9)
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--workers", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(agents_running()) >= 1, 30, "an agent to start")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopping: no new tasks" in err
    rows = status(cfg)
    done = [r for r in rows if r["state"] == "done"]
    assert 1 <= len(done) <= 4  # the running ones finished; nothing new started
    assert not [r for r in rows if r["state"] == "running" and r["attempts"]]
    assert agents_running() == []
    proc2 = run(cfg, "--once")
    assert proc2.returncode == 0, proc2.stderr
    assert {r["state"] for r in status(cfg)} == {"done"}


def test_second_sigint_kills_running_agents(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="sleep", sleep=30)
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks_file(tmp_path, 4)), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = StderrWatch(proc)
    wait_for(lambda: len(agents_running()) >= 2, 30, "two agents to start")
    proc.send_signal(signal.SIGINT)
    # Two signals sent back to back can merge into one: send the second once the first was handled.
    stderr.wait_for("stopping: no new tasks", 30)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    wait_for(lambda: agents_running() == [], 5, "the killed agents to be gone")
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        statuses = [a.status for a in ledger.attempts()]
    assert statuses.count("interrupted") == 2


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `pred` until it holds; fail the test, saying what did not happen, after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


class StderrWatch:
    """Reads a process's stderr on a thread, so a test can wait for a line without a guessed sleep."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._stream = proc.stderr
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        with self._seen:
            if not self._seen.wait_for(lambda: any(text in line for line in self.lines), timeout):
                raise AssertionError(f"timed out after {timeout:g}s waiting for {text!r} on stderr: {self.lines}")
