"""Multi-stage workflows through `switchyard run`: the seed's workflows, review loops, outputs, crash resume, budgets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from switchyard.ledger import Ledger
from test_coordinator import EXE, agents_running, run, status, tasks_file, wait_for

FAKE = str(Path(__file__).parent / "fakes" / "fake_agent.py")

SEED_WORKFLOWS = """
[providers.claude-cli]
kind = "simulated"
latency_ms = 1
[providers.openrouter]
kind = "simulated"
latency_ms = 1
[providers.openai]
kind = "simulated"
latency_ms = 1

[[models]]
name = "claude-haiku-4"
provider = "claude-cli"
cost_per_million_input = 1.0
cost_per_million_output = 5.0
[[models]]
name = "claude-sonnet-4-5"
provider = "claude-cli"
cost_per_million_input = 3.0
cost_per_million_output = 15.0
[[models]]
name = "claude-opus-4"
provider = "claude-cli"
cost_per_million_input = 15.0
cost_per_million_output = 75.0
[[models]]
name = "gpt-4o-mini"
provider = "openai"
cost_per_million_input = 0.15
cost_per_million_output = 0.6
[[models]]
name = "deepseek/deepseek-chat"
provider = "openrouter"
cost_per_million_input = 0.14
cost_per_million_output = 0.28

[routing]
default_model = "claude-sonnet-4-5"
default_workflow = "standard"

[[routing.rules]]
condition = "priority >= 3"
workflow = "budget"
reason = "low priority tasks take the budget workflow"

# The seed's Phase 4, as written:
[workflows.standard]
stages = [
    { name = "plan", model = "claude-haiku-4" },
    { name = "implement", model = "claude-sonnet-4-5" },
    { name = "review", model = "claude-opus-4" }
]

[workflows.budget]
stages = [
    { name = "plan", model = "gpt-4o-mini" },
    { name = "implement", model = "deepseek/deepseek-chat" },
    { name = "review", model = "claude-haiku-4" }
]

[coordinator]
max_workers = 3
poll_interval_s = 0.05
"""


def test_seed_workflows_run_as_written(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(SEED_WORKFLOWS)
    proc = run(cfg, "--tasks", str(tasks_file(tmp_path, 5)), "--once")
    assert proc.returncode == 0, proc.stderr
    rows = {r["task"]: r for r in status(cfg)}
    assert {r["state"] for r in rows.values()} == {"done"}
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        by_task = {t: [(a.workflow, a.stage, a.model) for a in ledger.attempts(task_id=t)] for t in rows}
    # T-03 and T-04 have priority 3 and 4: the rule sends them to the budget workflow.
    assert by_task["T-00"] == [
        ("standard", "plan", "claude-haiku-4"),
        ("standard", "implement", "claude-sonnet-4-5"),
        ("standard", "review", "claude-opus-4"),
    ]
    assert by_task["T-03"] == [
        ("budget", "plan", "gpt-4o-mini"),
        ("budget", "implement", "deepseek/deepseek-chat"),
        ("budget", "review", "claude-haiku-4"),
    ]
    assert rows["T-04"]["workflow"] == "budget" and rows["T-00"]["workflow"] == "standard"


def loop_config(tmp_path: Path, *, sleep: float = 0.0, review_mode: str = "review") -> Path:
    cfg = tmp_path / "switchyard.toml"
    worker = json.dumps([sys.executable, FAKE, "--model", "{model}", "--out", "{output_file}"])
    cfg.write_text(
        f"""
[providers.worker]
command_template = {worker}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
max_retries = 0
env = {{ FAKE_MODE = "{"sleep" if sleep else "echo"}", FAKE_SLEEP = "{sleep}", FAKE_FINISHED = "{tmp_path / "finished.log"}" }}

[providers.reviewer]
command_template = {worker}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
max_retries = 0
env = {{ FAKE_MODE = "{review_mode}" }}

[[models]]
name = "junior"
provider = "worker"
cost_per_million_input = 1.0
cost_per_million_output = 1.0
[[models]]
name = "senior"
provider = "worker"
cost_per_million_input = 2.0
cost_per_million_output = 2.0
capabilities = ["code", "careful"]
[[models]]
name = "judge"
provider = "reviewer"

[routing]
default_model = "junior"
default_workflow = "reviewed"

[[routing.rules]]
condition = "stage == 'implement' and loop_count >= 1"
model = "senior"
reason = "a rejected change gets the senior model"

[workflows.reviewed]
max_loops = 2
stages = [
    {{ name = "plan", route = true, prompt = "PLAN {{title}}" }},
    {{ name = "implement", route = true, prompt = "IMPLEMENT loop={{loop_count}} after: {{previous_output}}" }},
    {{ name = "review", model = "judge", prompt = "REVIEW loop={{loop_count}} of: {{stage_output.implement}}", loop_to = "implement", reject_if = "^REJECT" }},
]

[coordinator]
max_workers = 2
poll_interval_s = 0.05
"""
    )
    return cfg


def test_review_sends_the_task_back_and_outputs_flow_between_stages(tmp_path: Path) -> None:
    cfg = loop_config(tmp_path)
    tasks = tmp_path / "t.json"
    tasks.write_text(json.dumps([{"id": "W-1", "title": "add caching"}]))
    proc = run(cfg, "--tasks", str(tasks), "--once")
    assert proc.returncode == 0, proc.stderr
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts(task_id="W-1")
    assert [(a.stage, a.model) for a in attempts] == [
        ("plan", "junior"),
        ("implement", "junior"),
        ("review", "judge"),  # REJECT (loop 0)
        ("implement", "senior"),  # the loop_count fact escalates it
        ("review", "judge"),  # APPROVE
    ]
    assert attempts[3].reason == "a rejected change gets the senior model"
    # The implement stage saw the plan's output; the second one knows it is loop 1.
    run_dir = tmp_path / ".switchyard" / "runs" / "W-1"
    texts = sorted(p.read_text() for p in run_dir.glob("*implement*/result.txt"))
    assert texts == ["IMPLEMENT loop=0 after: PLAN add caching", "IMPLEMENT loop=1 after: PLAN add caching"]
    assert [r["state"] for r in status(cfg)] == ["done"]


def test_max_loops_bounds_the_review_loop(tmp_path: Path) -> None:
    cfg = loop_config(tmp_path)
    cfg.write_text(
        cfg.read_text()
        .replace('FAKE_MODE = "review"', 'FAKE_MODE = "is_error_text"')
        .replace("reject_if", "reject_if")
        .replace("max_loops = 2", "max_loops = 1")
    )
    cfg.write_text(
        cfg.read_text()
        .replace('FAKE_MODE = "is_error_text"', 'FAKE_MODE = "ok"')
        .replace('reject_if = "^REJECT"', 'reject_if = "done"')
    )
    tasks = tmp_path / "t.json"
    tasks.write_text(json.dumps([{"id": "W-2", "title": "x"}]))
    assert run(cfg, "--tasks", str(tasks), "--once").returncode == 0
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        stages = [a.stage for a in ledger.attempts(task_id="W-2")]
    assert stages == ["plan", "implement", "review", "implement", "review"]  # one loop, then it moves on


def test_crash_mid_workflow_resumes_at_the_running_stage(tmp_path: Path) -> None:
    cfg = loop_config(tmp_path, sleep=1.0, review_mode="ok")
    tasks = tmp_path / "t.json"
    tasks.write_text(json.dumps([{"id": "W-3", "title": "x"}]))
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The plan stage is recorded and the implement stage's agent is running (its output file names the attempt).
    wait_for(lambda: bool(agents_running("W-3:implement:")), 60, "the implement stage's agent to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    final = run(cfg, "--once")
    assert final.returncode == 0, final.stderr
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts(task_id="W-3")
    assert [a.stage for a in attempts] == ["plan", "implement", "review"]
    finished = Counter(Path(line).parent.name.split(":")[1] for line in (tmp_path / "finished.log").read_text().split())
    assert finished["plan"] == 1  # the completed stage was not run (or charged) again


def one_model_config(provider: str, settings: str, budgets: str = "") -> str:
    """Provider `provider` (`settings`: its table) serving model m at $3 / $15 per million, two workers
    polling every 50 ms, budgets rechecked every 0.3 s (`budgets`: more budget settings)."""
    return f"""
[providers.{provider}]
{settings}
[[models]]
name = "m"
provider = "{provider}"
cost_per_million_input = 3.0
cost_per_million_output = 15.0

[routing]
default_model = "m"

[coordinator]
max_workers = 2
poll_interval_s = 0.05

[budgets]
recheck_s = 0.3
{budgets}"""


def test_budget_blocks_then_resumes_when_the_limit_is_raised(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    sim = 'kind = "simulated"\nlatency_ms = 1\ninput_tokens = [1000, 1000]\noutput_tokens = [100, 100]\n'
    cfg.write_text(one_model_config("sim", sim, "daily_usd = 0.01\n"))  # room for two $0.0045 calls
    tasks = tasks_file(tmp_path, 4)
    proc = run(cfg, "--tasks", str(tasks), "--once")
    assert proc.returncode == 0, proc.stderr
    rows = status(cfg)
    assert sorted(r["state"] for r in rows) == ["blocked", "blocked", "done", "done"]
    blocked = [r for r in rows if r["state"] == "blocked"]
    assert "budget global per day ($0.01) would be exceeded" in blocked[0]["note"]
    assert "2 waiting (e.g. T-0" in proc.stdout and "this run: 4 task(s): 2 blocked, 2 done" in proc.stdout
    budget = json.loads(
        subprocess.run(
            [EXE, "budget", "--json", "--config", str(cfg)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert budget[0]["spent_usd"] == "0.009" and budget[0]["held_usd"] == "0"
    cfg.write_text(one_model_config("sim", sim, "daily_usd = 1.00\n"))  # the limit is raised: the blocked tasks go on
    proc = run(cfg, "--once")
    assert proc.returncode == 0, proc.stderr
    assert {r["state"] for r in status(cfg)} == {"done"}


def test_coordinator_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """Ledger, budgets and the durable queue all in one PostgreSQL database."""
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(SEED_WORKFLOWS + f'\n[ledger]\nurl = "{pg_url}"\n\n[budgets]\ndaily_usd = 5\n')
    proc = run(cfg, "--tasks", str(tasks_file(tmp_path, 4)), "--once")
    assert proc.returncode == 0, proc.stderr
    assert {r["state"] for r in status(cfg)} == {"done"}
    with Ledger.open(pg_url) as ledger:
        assert len(ledger.attempts()) == 12
        assert ledger.db.one("SELECT COUNT(*) FROM dbos.workflow_status")[0] == 4  # type: ignore[index]
        spent = ledger.db.one("SELECT spent_pico FROM budget_counters")[0]  # type: ignore[index]
    assert spent == int(ledger_total(pg_url) * 10**12)


def ledger_total(url: str) -> Decimal:
    with Ledger.open(url) as ledger:
        return ledger.total_cost()


def test_every_candidate_unavailable_blocks_then_resumes_when_the_environment_is_fixed(tmp_path: Path) -> None:
    # seen: with every candidate disabled, `run` called them anyway; every task went dead after 16 attempts
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        one_model_config("sim", 'kind = "simulated"\nlatency_ms = 1\napi_key_env = "SWITCHYARD_TEST_SIM_KEY"\n')
    )
    tasks = tasks_file(tmp_path, 2)
    env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_TEST_SIM_KEY"}
    proc = subprocess.run(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 waiting (e.g. T-00: every candidate is unavailable: m via sim is disabled" in proc.stdout  # by id
    assert "see `switchyard providers`" in proc.stdout
    rows = status(cfg)
    assert [r["state"] for r in rows] == ["blocked"] * 2
    assert rows[0]["note"] == (
        "every candidate is unavailable: m via sim is disabled (environment variable SWITCHYARD_TEST_SIM_KEY is not set)"
    )
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        assert ledger.attempts() == []  # nothing called, no attempt spent
    proc = run(cfg, "--once", env={"SWITCHYARD_TEST_SIM_KEY": "k"})  # the environment is fixed: they go on
    assert proc.returncode == 0, proc.stderr
    assert {r["state"] for r in status(cfg)} == {"done"}


def test_a_missing_executable_blocks_its_tasks_until_the_config_is_fixed(tmp_path: Path) -> None:
    # seen: `executable 'claude' not found` retried on every task; every task went dead after 16 attempts
    cfg = tmp_path / "switchyard.toml"

    def config(template: str) -> str:
        agent = (
            f'command_template = {template}\nstdin = "{{prompt_file}}"\nusage_format = "claude-json"\nmax_retries = 3\n'
        )
        return one_model_config("agent", agent)

    cfg.write_text(config('["switchyard-test-no-such-agent", "-p"]'))
    proc = run(cfg, "--tasks", str(tasks_file(tmp_path, 2)), "--once")
    assert proc.returncode == 0, proc.stderr
    rows = status(cfg)
    assert [r["state"] for r in rows] == ["blocked"] * 2
    assert "every candidate is unavailable: m via agent is disabled (config_error: executable" in rows[0]["note"]
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        tried = ledger.attempts()
    assert 1 <= len(tried) <= 2 and {a.error_class for a in tried} == {"config_error"}  # no retries
    cfg.write_text(config(json.dumps([sys.executable, FAKE])))  # the config is fixed
    proc = run(cfg, "--once")
    assert proc.returncode == 0, proc.stderr
    assert {r["state"] for r in status(cfg)} == {"done"}
