"""Runner, failover, circuit breaker and ledger, driven by the simulated provider."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from switchyard.cli import cli
from switchyard.config import loads_config
from switchyard.driver import AllCandidatesFailed
from switchyard.failures import FailureKind
from switchyard.health import Health
from switchyard.ledger import AttemptRecord, Ledger
from switchyard.runner import Runner
from switchyard.task import Task

BASE = """
[providers.primary]
kind = "simulated"
latency_ms = 0
{primary}

[providers.backup]
kind = "simulated"
latency_ms = 0
{backup}

[[models]]
name = "big"
provider = "primary"
cost_per_million_input = 3.0
cost_per_million_output = 15.0

[[models]]
name = "small"
provider = "backup"
cost_per_million_input = 1.0
cost_per_million_output = 5.0

[routing]
default_model = "small"

[[routing.rules]]
condition = "true"
model = "big"
fallbacks = ["small"]

[runner]
backoff_base_s = 0.5

[health]
consecutive_failures = 3
cooldown_s = 30
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def make(tmp_path: Path, primary: str = "", backup: str = "", **kw: object) -> tuple[Runner, Ledger, Clock]:
    loaded = loads_config(BASE.format(primary=primary, backup=backup), str(tmp_path / "switchyard.toml"))
    ledger = Ledger.open(tmp_path / "ledger.db")
    clock = Clock()
    health = Health(loaded, ledger, clock=clock, env={})
    runner = Runner(loaded, ledger, health=health, sleep=clock.sleep, wall_clock=clock, runs_dir=tmp_path / "runs")
    return runner, ledger, clock


def test_success_is_recorded_with_exact_cost(tmp_path: Path) -> None:
    runner, ledger, _ = make(tmp_path)
    result = runner.run(Task("T-1", title="x"), prompt="do it", run_id="r1")
    assert result.ok
    [rec] = ledger.attempts()
    assert (rec.model, rec.provider, rec.status, rec.rule) == ("big", "primary", "ok", 0)
    expected = (Decimal(rec.input_tokens) * 3 + Decimal(rec.output_tokens) * 15) / 1_000_000
    assert rec.cost_usd == expected and rec.cost_usd > 0
    assert rec.prompt_bytes == 5 and rec.prompt_sha256 is not None
    assert ledger.total_cost() == expected


def test_retries_then_fails_over(tmp_path: Path) -> None:
    runner, ledger, clock = make(tmp_path, primary='failure_rate = 1.0\nerror_kind = "500"\nmax_retries = 2')
    result = runner.run(Task("T-1"), prompt="p", run_id="r1")
    assert result.ok
    rows = ledger.attempts()
    assert [(r.provider, r.status, r.error_class) for r in rows] == [
        ("primary", "failed", "server_error"),
        ("primary", "failed", "server_error"),
        ("primary", "failed", "server_error"),
        ("backup", "ok", None),
    ]
    assert len(clock.slept) == 2 and 0.4 <= clock.slept[0] <= 0.6 and 0.8 <= clock.slept[1] <= 1.2


def test_retry_after_is_honoured_up_to_the_cap(tmp_path: Path) -> None:
    runner, _, clock = make(
        tmp_path,
        primary='failure_rate = 1.0\nerror_kind = "429"\nretry_after_s = 90\nmax_retries = 1\nretry_after_cap_s = 20',
    )
    runner.run(Task("T-1"), prompt="p", run_id="r1")
    assert clock.slept == [20]


def test_out_of_credits_fails_over_without_retrying(tmp_path: Path) -> None:
    runner, ledger, clock = make(tmp_path, primary='failure_rate = 1.0\nerror_kind = "402"')
    assert runner.run(Task("T-1"), prompt="p", run_id="r1").ok
    assert [r.error_class for r in ledger.attempts()] == ["out_of_credits", None]
    assert clock.slept == []


def test_bad_request_is_fatal_for_the_task(tmp_path: Path) -> None:
    runner, ledger, _ = make(tmp_path, primary='failure_rate = 1.0\nerror_kind = "400"')
    result = runner.run(Task("T-1"), prompt="p", run_id="r1")
    assert not result.ok
    assert len(ledger.attempts()) == 1
    with pytest.raises(AllCandidatesFailed, match="bad_request"):
        result.raise_for_failure()


def test_auth_failure_disables_the_provider(tmp_path: Path) -> None:
    runner, ledger, _ = make(tmp_path, primary='failure_rate = 1.0\nerror_kind = "401"')
    assert runner.run(Task("T-1"), prompt="p", run_id="r1").ok
    status = runner.health.explain()["primary"]
    assert status.status == "disabled" and "credentials rejected" in status.reason
    # The next task skips it without calling.
    runner.run(Task("T-2"), prompt="p", run_id="r2")
    assert [r.provider for r in ledger.attempts(task_id="T-2")] == ["backup"]
    runner.health.reset("primary")
    assert runner.health.status()["primary"] == "up"


def test_all_fail_lists_every_attempt(tmp_path: Path) -> None:
    runner, ledger, _ = make(
        tmp_path,
        primary='failure_rate = 1.0\nerror_kind = "529"\nmax_retries = 1',
        backup='failure_rate = 1.0\nerror_kind = "timeout"\nmax_retries = 0',
    )
    result = runner.run(Task("T-9"), prompt="p", run_id="r1")
    assert not result.ok
    with pytest.raises(AllCandidatesFailed) as info:
        result.raise_for_failure()
    text = str(info.value)
    assert "3 attempt(s)" in text
    assert text.count("big via primary: failed [overloaded]") == 2
    assert "small via backup: timeout [timeout]" in text
    assert [r.status for r in ledger.attempts()] == ["failed", "failed", "timeout"]


def test_attempts_are_bounded(tmp_path: Path) -> None:
    text = BASE.format(primary="failure_rate = 1.0\nmax_retries = 50", backup="").replace(
        "backoff_base_s = 0.5", "backoff_base_s = 0\nmax_attempts = 4"
    )
    loaded = loads_config(text.replace("consecutive_failures = 3", "consecutive_failures = 100"))
    ledger = Ledger.open(tmp_path / "l.db")
    runner = Runner(loaded, ledger, health=Health(loaded, ledger, env={}), sleep=lambda s: None, runs_dir=tmp_path)
    result = runner.run(Task("T-1"), prompt="p", run_id="r1")
    assert not result.ok and "max_attempts" in result.why
    assert len(ledger.attempts()) == 4


def test_breaker_opens_half_opens_and_closes(tmp_path: Path) -> None:
    runner, ledger, clock = make(tmp_path, primary='failure_rate = 1.0\nerror_kind = "529"\nmax_retries = 0')
    health = runner.health
    for i in range(3):
        runner.run(Task(f"T-{i}"), prompt="p", run_id=f"r{i}")
    assert health.status()["primary"] == "down"
    assert "3 consecutive failures" in health.explain()["primary"].reason
    # A separate process (a new Health over the same database) sees it too.
    other = Health(runner.loaded, Ledger.open(tmp_path / "ledger.db"), clock=clock, env={})
    assert other.status()["primary"] == "down"
    # While open, the router does not even try it.
    runner.run(Task("T-x"), prompt="p", run_id="rx")
    assert [r.provider for r in ledger.attempts(task_id="T-x")] == ["backup"]
    # After the cooldown: half-open, one probe at a time.
    clock.now += 31
    assert health.status()["primary"] == "degraded"
    assert health.allow("primary") is True
    assert other.allow("primary") is False  # the probe slot is taken
    health.record("primary", None)  # the probe succeeded
    assert health.status()["primary"] == "up"
    assert ledger.breakers()["primary"].state == "closed"


def test_failed_probe_reopens(tmp_path: Path) -> None:
    runner, _, clock = make(tmp_path, primary='failure_rate = 1.0\nerror_kind = "529"\nmax_retries = 0')
    for i in range(3):
        runner.run(Task(f"T-{i}"), prompt="p", run_id=f"r{i}")
    clock.now += 31
    runner.run(Task("T-probe"), prompt="p", run_id="rp")  # probes primary, fails, falls back
    assert runner.health.status()["primary"] == "down"
    assert "probe failed" in runner.health.explain()["primary"].reason


def test_breaker_opens_on_failure_rate(tmp_path: Path) -> None:
    loaded = loads_config(
        BASE.format(primary="", backup="").replace(
            "consecutive_failures = 3", "consecutive_failures = 100\nmin_calls = 4\nfailure_rate = 0.5"
        )
    )
    ledger = Ledger.open(tmp_path / "l.db")
    clock = Clock()
    health = Health(loaded, ledger, clock=clock, env={})
    from switchyard.failures import Failure

    boom = Failure(FailureKind.SERVER_ERROR, "x")
    outcomes = [None, boom, None, boom]
    for i, failure in enumerate(outcomes):
        ledger.record(
            AttemptRecord(
                f"a{i}",
                "t",
                "primary",
                "big",
                "ok" if failure is None else "failed",
                int(clock.now * 1000),
                int(clock.now * 1000),
                error_class=None if failure is None else "server_error",
            )
        )
        health.record("primary", failure)
    assert health.status()["primary"] == "down"
    assert "2 of 4 calls failed" in health.explain()["primary"].reason


def test_rate_limits_do_not_open_the_breaker(tmp_path: Path) -> None:
    runner, _, _ = make(tmp_path, primary='failure_rate = 1.0\nerror_kind = "429"\nmax_retries = 0\nretry_after_s = 0')
    for i in range(5):
        runner.run(Task(f"T-{i}"), prompt="p", run_id=f"r{i}")
    assert runner.health.status()["primary"] == "up"


def test_attempt_is_idempotent_on_its_id(tmp_path: Path) -> None:
    runner, ledger, _ = make(tmp_path)
    first = runner.run(Task("T-1", title="t"), prompt="p", run_id="same")
    again = runner.run(Task("T-1", title="t"), prompt="p", run_id="same")
    assert len(ledger.attempts()) == 1
    assert again.attempts[0].replayed and again.attempts[0].text == first.attempts[0].text


def test_cli_exec_log_providers(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        BASE.format(primary='failure_rate = 1.0\nerror_kind = "529"\nmax_retries = 0', backup="").replace(
            "backoff_base_s = 0.5", "backoff_base_s = 0"
        )
    )
    r = CliRunner()
    res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-1", "title": "hello"}', "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] is True and data["model"] == "small"
    assert [a["status"] for a in data["attempts"]] == ["failed", "ok"]
    assert Decimal(data["cost_usd"]) == sum(Decimal(a["cost_usd"]) for a in data["attempts"])
    assert (tmp_path / ".switchyard" / "ledger.db").exists()  # relative to the config file
    res = r.invoke(cli, ["log", "--config", str(cfg), "--task", "T-1", "--json"])
    assert [a["provider"] for a in json.loads(res.stdout)] == ["primary", "backup"]
    res = r.invoke(cli, ["log", "--config", str(cfg), "--since", "1h"])
    assert "T-1" in res.stdout and "overloaded" in res.stdout
    res = r.invoke(cli, ["providers", "--config", str(cfg), "--json"])
    assert {p["provider"]: p["status"] for p in json.loads(res.stdout)} == {"primary": "up", "backup": "up"}
    res = r.invoke(cli, ["providers", "reset", "primry", "--config", str(cfg)])
    assert res.exit_code == 2 and "did you mean 'primary'" in res.stderr


def test_cli_exec_failure_exits_1(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(BASE.format(primary='failure_rate = 1.0\nerror_kind = "400"', backup=""))
    res = CliRunner().invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-1"}'])
    assert res.exit_code == 1
    assert res.stdout.startswith("FAILED: task T-1")
    assert "bad_request" in res.stdout


def test_route_sees_the_persisted_breaker(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        BASE.format(primary='failure_rate = 1.0\nerror_kind = "529"\nmax_retries = 0', backup="").replace(
            "backoff_base_s = 0.5", "backoff_base_s = 0"
        )
    )
    r = CliRunner()
    for i in range(3):
        r.invoke(cli, ["exec", "--config", str(cfg), "--task", f'{{"id": "T-{i}"}}'])
    res = r.invoke(cli, ["route", "--config", str(cfg), "--task", '{"id": "T-9"}', "--json"])
    data = json.loads(res.stdout)
    assert data["model"] == "small"
    assert data["skipped"] == ["big: provider primary is down"]


def test_replay_returns_the_configured_output_file(tmp_path: Path) -> None:
    """A replayed attempt (a step re-run after a crash) finds the answer file the provider's output_file names."""
    answer = {"type": "result", "is_error": False, "result": "done", "usage": {"input_tokens": 10, "output_tokens": 2}}
    script = f"import sys; open(sys.argv[1], 'w').write('notes'); print({json.dumps(json.dumps(answer))})"
    loaded = loads_config(
        f"""
[providers.agent]
command_template = {json.dumps([sys.executable, "-c", script, "{output_file}"])}
usage_format = "claude-json"
output_file = "answer.md"

[[models]]
name = "a"
provider = "agent"

[routing]
default_model = "a"
""",
        str(tmp_path / "switchyard.toml"),
    )
    ledger = Ledger.open(tmp_path / "ledger.db")
    runner = Runner(loaded, ledger, health=Health(loaded, ledger, env={}), runs_dir=tmp_path / "runs")
    first = runner.run(Task("T-1"), prompt="p", run_id="same")
    assert first.final is not None and first.final.output_path is not None
    assert first.final.output_path.name == "answer.md" and first.final.output_path.read_text() == "notes"
    again = runner.run(Task("T-1"), prompt="p", run_id="same")
    assert again.final is not None and again.final.replayed
    assert again.final.output_path is not None
    assert again.final.output_path.resolve() == first.final.output_path.resolve()


# --- providers the router calls unavailable are never called (issue 11) ------------------------
def test_a_disabled_provider_is_never_called_and_every_candidate_unavailable_blocks(tmp_path: Path) -> None:
    # seen: with every candidate disabled, exec called them anyway and every task went dead
    runner, ledger, _ = make(tmp_path, primary="enabled = false", backup="enabled = false")
    result = runner.run(Task("T-1"), prompt="p", run_id="r1")
    assert result.attempts == [] and ledger.attempts() == []
    assert result.blocked is not None and result.blocked.on_exceed == "block"
    assert result.why == ("every candidate is unavailable: big via primary is disabled (enabled = false in the config)")


def test_a_route_decided_before_a_provider_went_missing_skips_it(tmp_path: Path) -> None:
    from switchyard.router import Router

    runner, ledger, _ = make(tmp_path, primary='api_key_env = "SWITCHYARD_TEST_NO_SUCH_KEY"')
    # A route made while the key was there (a workflow's checkpointed route, say): big first.
    route = Router(runner.loaded).decide(Task("T-1"), provider_status={}).route()
    assert [c.provider for c in route.candidates] == ["primary", "backup"]
    result = runner.run(Task("T-1"), prompt="p", run_id="r1", route=route)
    assert result.ok
    assert [r.provider for r in ledger.attempts()] == ["backup"]  # primary never called


def test_every_candidate_down_or_disabled_blocks_without_an_attempt(tmp_path: Path) -> None:
    runner, ledger, _ = make(
        tmp_path, primary='failure_rate = 1.0\nerror_kind = "529"\nmax_retries = 2', backup="enabled = false"
    )
    first = runner.run(Task("T-1"), prompt="p", run_id="r1")  # three failures open primary's circuit
    assert [r.status for r in ledger.attempts()] == ["failed"] * 3
    assert not first.ok and first.blocked is None  # it tried its one candidate: an ordinary failure
    again = runner.run(Task("T-2"), prompt="p", run_id="r2")
    assert again.attempts == [] and again.blocked is not None
    assert "big via primary is down (circuit open: 3 consecutive failures" in again.why


def test_cli_exec_with_every_provider_disabled_says_why_and_calls_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(BASE.format(primary="enabled = false", backup='api_key_env = "SWITCHYARD_TEST_NO_SUCH_KEY"'))
    r = CliRunner()
    res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-1"}'])
    assert res.exit_code == 1
    assert res.stderr.startswith("BLOCKED: task T-1: nothing was called: every candidate is unavailable: ")
    assert "big via primary is disabled (enabled = false in the config)" in res.stderr
    res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-1"}', "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["blocked"].startswith("every candidate is unavailable")
    assert "no attempts recorded" in r.invoke(cli, ["log", "--config", str(cfg)]).stdout


# --- failures that would repeat on every call disable the provider (issue 11) --------------------
def test_a_missing_executable_disables_its_provider_at_once(tmp_path: Path) -> None:
    # seen: `executable 'claude' not found` on every task, each retried like a transient failure
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        BASE.format(primary="", backup="")
        .replace('[providers.primary]\nkind = "simulated"\nlatency_ms = 0', "[providers.primary]")
        .replace(
            "[providers.backup]",
            'command_template = ["switchyard-test-no-such-agent", "-p"]\nusage_format = "claude-json"\n'
            "max_retries = 3\n\n[providers.backup]",
        )
    )
    r = CliRunner()
    res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-1"}', "--json"])
    out = json.loads(res.stdout)
    assert out["ok"] is True and [a["error_class"] for a in out["attempts"]] == ["config_error", None]
    reason = (
        "config_error: executable 'switchyard-test-no-such-agent' not found on PATH (provider primary) "
        "(fix the provider's config or environment, or run `switchyard providers reset primary`)"
    )
    providers = {
        p["provider"]: p for p in json.loads(r.invoke(cli, ["providers", "--config", str(cfg), "--json"]).stdout)
    }
    assert (providers["primary"]["status"], providers["primary"]["reason"]) == ("disabled", reason)
    route = json.loads(r.invoke(cli, ["route", "--config", str(cfg), "--task", '{"id": "T-2"}', "--json"]).stdout)
    assert route["model"] == "small" and route["skipped"] == ["big: provider primary is disabled"]
    explain = r.invoke(cli, ["route", "--config", str(cfg), "--task", '{"id": "T-2"}', "--explain"]).stdout
    assert "using its fallback small (skipped big: provider primary is disabled)" in explain
    assert f"provider primary: disabled ({reason})" in explain  # and why it is disabled
    res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-2"}', "--json"])
    assert [a["provider"] for a in json.loads(res.stdout)["attempts"]] == ["backup"]  # never called again
    assert r.invoke(cli, ["providers", "reset", "primary", "--config", str(cfg)]).exit_code == 0
    res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-3"}', "--json"])
    assert [a["error_class"] for a in json.loads(res.stdout)["attempts"]] == ["config_error", None]
    # The config is fixed: the provider is tried again, no reset needed.
    agent = json.dumps([sys.executable, str(Path(__file__).parent / "fakes" / "fake_agent.py")])
    cfg.write_text(cfg.read_text().replace('["switchyard-test-no-such-agent", "-p"]', agent))
    providers = {
        p["provider"]: p for p in json.loads(r.invoke(cli, ["providers", "--config", str(cfg), "--json"]).stdout)
    }
    assert providers["primary"]["status"] == "up"
    assert providers["primary"]["reason"] == "its config or environment changed since: " + reason
    res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", '{"id": "T-4"}', "--json"])
    assert [(a["provider"], a["status"]) for a in json.loads(res.stdout)["attempts"]] == [("primary", "ok")]
    providers = {
        p["provider"]: p for p in json.loads(r.invoke(cli, ["providers", "--config", str(cfg), "--json"]).stdout)
    }
    assert (providers["primary"]["status"], providers["primary"]["breaker"]) == ("up", "closed")


def test_a_missing_executable_installed_into_a_directory_already_on_path_is_called_again(tmp_path: Path) -> None:
    # seen: disabled for good after the user installed the CLI (PATH unchanged, so the fingerprint was)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        BASE.format(primary="", backup="")
        .replace('[providers.primary]\nkind = "simulated"\nlatency_ms = 0', "[providers.primary]")
        .replace(
            "[providers.backup]",
            'command_template = ["switchyard-test-late-agent", "-p"]\nusage_format = "claude-json"\n\n'
            "[providers.backup]",
        )
    )
    r = CliRunner(env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})

    def exec_(task: str) -> list[tuple[str, str | None]]:
        res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", json.dumps({"id": task}), "--json"])
        return [(a["provider"], a["error_class"]) for a in json.loads(res.stdout)["attempts"]]

    assert exec_("T-1") == [("primary", "config_error"), ("backup", None)]
    providers = {
        p["provider"]: p for p in json.loads(r.invoke(cli, ["providers", "--config", str(cfg), "--json"]).stdout)
    }
    assert providers["primary"]["status"] == "disabled"
    assert providers["primary"]["reason"].endswith("or run `switchyard providers reset primary`)")
    assert exec_("T-2") == [("backup", None)]  # still missing: not called
    agent = bindir / "switchyard-test-late-agent"
    fake = Path(__file__).parent / "fakes" / "fake_agent.py"
    agent.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    assert exec_("T-3") == [("backup", None)]  # there, but not executable yet: still missing
    agent.chmod(0o755)
    assert exec_("T-4") == [("primary", None)]  # installed where PATH already looked: called again
