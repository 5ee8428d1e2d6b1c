"""The real OpenAI Codex CLI as a command provider, offline, against the Responses API stand-in.

The CLI (npm `@openai/codex`, pinned in `agent_clis.py`) is installed into `.ci-cache/` on
first use; with SWITCHYARD_REQUIRE_REAL_CLI=1 (set by `.ci/run`) a missing CLI fails these
tests instead of skipping them. Each test runs the config `switchyard init --agent codex`
writes (or its provider table), so the starter is what is tested. The first tests need no
CLI: they read what codex 0.171.0 printed against the stand-in (tests/data/usage/codex_real_*).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent_cli_cases import (
    DATA,
    a_call,
    assert_charged_at_catalog,
    assert_config_checks,
    assert_failed_over_to_claude,
    claude_fallback,
    claude_sonnet_model,
    exec_task,
    failover_config,
    failures,
    init_starter,
    ledger_rows,
    model_table,
    replay_provider,
    run_real,
    run_side_by_side,
    statuses,
    tokens,
    work_dir,
)
from agent_clis import CLAUDE, CODEX, GEMINI, KEYS, cli_env, require, starter, starter_provider
from servers import gemini_wire as gw
from servers import responses_wire as rw
from servers.anthropic_wire import ZERO_USAGE, AnthropicWireServer
from servers.anthropic_wire import Usage as AnthropicUsage
from switchyard.catalog import Usage
from switchyard.config import load_config
from switchyard.failures import FailureKind
from switchyard.providers.base import Result
from switchyard.providers.command import CommandRunner
from switchyard.router import Router
from switchyard.task import Task
from switchyard.usage_parsers import parse_output

OPENAI_KEY = KEYS["OPENAI_API_KEY"]


# ------------------------------------------------------------- what codex 0.171.0 printed (no CLI needed)


def codex_replay(recorded: str, exit_code: int) -> CommandRunner:
    """A command provider whose "CLI" prints a recorded codex output and exits as codex did."""
    return replay_provider("codex", "gpt-5.1-codex", "codex-jsonl", recorded, "-", exit_code)


@pytest.mark.parametrize(
    ("recorded", "status", "kind"),
    [
        ("codex_real_429.jsonl", 429, FailureKind.RATE_LIMITED),  # "exceeded retry limit, last status: 429 ..."
        ("codex_real_500.jsonl", 500, FailureKind.SERVER_ERROR),  # "We’re currently experiencing high demand ..."
        ("codex_real_401.jsonl", 401, FailureKind.AUTH),  # "unexpected status 401 Unauthorized: ..."
        ("codex_real_404_model.jsonl", 404, FailureKind.NOT_FOUND),  # the API's model_not_found text only
        ("codex_real_400.jsonl", 400, FailureKind.BAD_REQUEST),  # the 400's body, printed as is
        ("codex_real_quota.jsonl", 429, FailureKind.OUT_OF_CREDITS),  # "Quota exceeded. Check your plan ..."
        ("codex_real_overloaded.jsonl", 503, FailureKind.OVERLOADED),  # "Selected model is at capacity ..."
    ],
)
def test_recorded_codex_errors_map_through_the_failure_table(
    tmp_path: Path, recorded: str, status: int, kind: FailureKind
) -> None:
    result = codex_replay(recorded, 1).execute(a_call(tmp_path, "gpt-5.1-codex"))
    assert result.failure is not None
    assert (result.failure.kind, result.failure.http_status, result.exit_code) == (kind, status, 1)
    assert result.usage is None and result.usage_problem is None


def test_recorded_codex_400_keeps_the_apis_message() -> None:
    parsed = parse_output("codex-jsonl", (DATA / "codex_real_400.jsonl").read_text())
    assert (parsed.error_message, parsed.error_code) == ("Invalid value for 'input'.", "invalid_value")


def test_recorded_codex_success_usage_and_rerouted_model() -> None:
    parsed = parse_output("codex-jsonl", (DATA / "codex_real_shell.jsonl").read_text())
    # Two requests of 1200 in (800 cached) / 300 out (120 reasoning): turn.completed sums them.
    assert parsed.usage == Usage(2400, 600, 1600, 0, 240, "openai")
    assert parsed.model == "gpt-5-codex-2026-01-15"  # "model rerouted: gpt-5-codex -> gpt-5-codex-2026-01-15"
    assert parsed.text == "Created done.txt." and not parsed.is_error and parsed.problem is None


def test_codex_cache_writes_are_read() -> None:
    """codex 0.171 added `cache_write_input_tokens`; inside `input_tokens` like the cache reads."""
    line = {
        "type": "turn.completed",
        "usage": {
            "input_tokens": 5000,
            "cached_input_tokens": 3000,
            "cache_write_input_tokens": 1500,
            "output_tokens": 90,
            "reasoning_output_tokens": 30,
        },
    }
    parsed = parse_output("codex-jsonl", '{"type":"turn.started"}\n' + json.dumps(line))
    assert parsed.usage == Usage(5000, 90, 3000, 1500, 30, "openai")
    assert parsed.usage.uncached_input_tokens == 500


# ------------------------------------------------------------------------------------------ the real CLI


@pytest.fixture(scope="module")
def codex() -> Path:
    return require(CODEX)


@pytest.fixture(scope="module")
def claude() -> Path:
    return require(CLAUDE)


@pytest.fixture(scope="module")
def gemini() -> Path:
    return require(GEMINI)


def test_codex_starter_runs_a_routed_task_with_a_real_shell_command(tmp_path: Path, codex: Path) -> None:
    per_request = rw.Usage(input_tokens=1500, output_tokens=200, cached_tokens=1000, reasoning_tokens=80)
    script: list[rw.Reply] = [
        [rw.reasoning("Writing the note."), rw.ShellCall("printf 'hello from codex' > note.txt && echo wrote")],
        [rw.message("Wrote note.txt.")],
    ]
    with rw.ResponsesWireServer(script=script, usage=per_request, api_key=OPENAI_KEY) as srv:
        env = cli_env(tmp_path)
        cfg = tmp_path / "switchyard.toml"
        init_starter(cfg, "codex", "OPENAI_API_KEY", env)
        # Codex takes no base URL from the environment: the one place the starter is edited.
        cfg.write_text(starter("codex", openai_base_url=srv.base_url))
        assert_config_checks(cfg, env)
        task = {
            "id": "docs-7",
            "title": "Write the note",
            "body": "Put a greeting in note.txt.",
            "labels": ["documentation"],
        }
        proc, out = exec_task(cfg, task, env)
        requests = srv.model_requests()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["ok"] is True and out["text"] == "Wrote note.txt."
    # Routed by the starter's rule, and the CLI asked for exactly that model, with our key.
    assert out["decision"]["model"] == "gpt-5.1-codex-mini"
    assert out["decision"]["reason"] == "Docs don't need an expensive model"
    assert [r.model for r in requests] == ["gpt-5.1-codex-mini", "gpt-5.1-codex-mini"]
    assert all(r.key_matches for r in requests)
    assert "Write the note" in json.dumps(requests[0].body)
    # The shell command really ran, in the task's working directory, and codex sent its output back.
    [row] = ledger_rows(cfg, "docs-7")
    assert (work_dir(cfg, row) / "note.txt").read_text() == "hello from codex"
    [output] = rw.tool_outputs(requests[1].body)
    assert "Process exited with code 0" in output and "wrote" in output
    # Exact tokens: turn.completed sums both requests; cached and reasoning included.
    assert tokens(row) == (1000, 2000, 0, 400, 160)
    # 1000 x $0.25 + 2000 x $0.025 + 400 x $2.00, per million; codex prints no cost
    usage = Usage(3000, 400, 2000, 0, 160, "openai")
    assert_charged_at_catalog(cfg, row, "codex", "gpt-5.1-codex-mini", usage, "0.0011")


def test_a_429_from_codexs_stand_in_fails_over_to_claude_code(tmp_path: Path, codex: Path, claude: Path) -> None:
    limited = rw.ErrorReply(429, "Rate limit reached for requests. Please try again in 7s.", retry_after=7, times=None)
    served = AnthropicUsage(
        input_tokens=300, output_tokens=40, cache_creation_input_tokens=0, cache_read_input_tokens=0
    )
    with (
        rw.ResponsesWireServer(errors=[limited]) as openai,
        claude_fallback(served) as anthropic,
    ):
        cfg = failover_config(
            tmp_path, "codex", "gpt-5.1-codex", "codex", "Codex tasks", openai_base_url=openai.base_url
        )
        env = cli_env(tmp_path, ANTHROPIC_BASE_URL=anthropic.base_url)
        proc, out = exec_task(cfg, {"id": "gh-9", "title": "Fix the bug", "labels": ["codex"]}, env)
        codex_requests = openai.model_requests()
        claude_requests = anthropic.message_requests()
    first, second = assert_failed_over_to_claude(proc, out, cfg, "gh-9", "codex", 1, claude_requests)
    # Codex's own retries are off in the starter: one request, then switchyard failed over.
    assert [r.status for r in codex_requests] == [429]
    assert "429 Too Many Requests" in (first.error_message or "")
    assert (second.input_tokens, second.output_tokens) == (300, 40)


def run_real_codex(tmp_path: Path, srv: rw.ResponsesWireServer, model: str = "gpt-5.1-codex") -> Result:
    """One call through the command provider built from the starter, in this process."""
    env = cli_env(tmp_path)
    return run_real(tmp_path, "codex", "OPENAI_API_KEY", model, env, openai_base_url=srv.base_url)


def test_real_codex_errors_and_reported_model(tmp_path: Path, codex: Path) -> None:
    """What the CLI makes of each stand-in reply, as the failure table sees it (run side by side)."""
    cases: dict[str, dict[str, Any]] = {
        "500": {"errors": [rw.ErrorReply(500, "The server had an error.", times=None)]},
        "401": {"api_key": "a-different-key"},
        "unknown-model": {"models": ["gpt-other"]},
        "rerouted": {"served_model": {"gpt-5.1-codex": "gpt-5.1-codex-2026-02-02"}, "usage": rw.Usage(90, 9, 40, 3)},
    }

    results = run_side_by_side(tmp_path, cases, rw.ResponsesWireServer, run_real_codex)
    assert failures(results) == {
        "500": (FailureKind.SERVER_ERROR, 500),
        "401": (FailureKind.AUTH, 401),
        "unknown-model": (FailureKind.NOT_FOUND, 404),
        "rerouted": None,
    }
    assert statuses(results) == {
        "500": [500],
        "401": [401],
        "unknown-model": [404],
        "rerouted": [200],
    }
    key = results["401"][0].failure
    assert key is not None and OPENAI_KEY not in key.message
    rerouted = results["rerouted"][0]
    assert rerouted.model == "gpt-5.1-codex-2026-02-02"  # what the CLI says served it
    assert rerouted.usage == Usage(90, 9, 40, 0, 3, "openai")


# ------------------------------------------------------------ a split across the three agent CLIs


def split_config(tmp_path: Path, openai_url: str) -> Path:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        starter_provider("codex", openai_base_url=openai_url, max_retries=0)
        + starter_provider("gemini", max_retries=0)
        + starter_provider("claude", max_retries=0)
        + model_table("gpt-5.1-codex", "codex")
        + model_table("gemini-2.5-pro", "gemini")
        + claude_sonnet_model("claude-cli")
        + """
[routing]
default_model = "claude-sonnet-4-5"

[[routing.rules]]
condition = "labels contains 'ab'"
split = { "gpt-5.1-codex" = 1, "gemini-2.5-pro" = 1, "claude-sonnet-4-5" = 1 }
experiment = "three-agents"
reason = "Compare the three agent CLIs"
"""
    )
    return cfg


def test_a_split_across_the_three_agent_clis_records_each_arm(
    tmp_path: Path, codex: Path, gemini: Path, claude: Path
) -> None:
    with (
        rw.ResponsesWireServer(reply_text="codex arm", usage=rw.Usage(1000, 100, 600, 40)) as openai,
        gw.GeminiWireServer(reply_text="gemini arm", usage=gw.Usage(2000, 150, 1500, 50, 10)) as google,
        AnthropicWireServer(
            reply_text="claude arm",
            usage=AnthropicUsage(input_tokens=500, output_tokens=60, cache_read_input_tokens=4000),
            usage_by_model={"haiku": ZERO_USAGE},
        ) as anthropic,
    ):
        cfg = split_config(tmp_path, openai.base_url)
        env = cli_env(tmp_path, ANTHROPIC_BASE_URL=anthropic.base_url, GOOGLE_GEMINI_BASE_URL=google.base_url)
        # The first task ids that land on each arm (the split is sticky per task id).
        router = Router(load_config(cfg))
        ids: dict[str, str] = {}
        for n in range(200):
            decision = router.decide(Task(id=f"ab-{n}", title="x", labels=("ab",)))
            ids.setdefault(decision.model, f"ab-{n}")
        assert len(ids) == 3
        outs = {
            model: exec_task(cfg, {"id": tid, "title": "Say hi", "labels": ["ab"]}, env) for model, tid in ids.items()
        }
    for model, (proc, out) in outs.items():
        assert proc.returncode == 0, f"{model}: {proc.stdout}{proc.stderr}"
        assert out["model"] == model
    assert {model: out["text"] for model, (_, out) in outs.items()} == {
        "gpt-5.1-codex": "codex arm",
        "gemini-2.5-pro": "gemini arm",
        "claude-sonnet-4-5": "claude arm",
    }
    rows = {model: ledger_rows(cfg, tid) for model, tid in ids.items()}
    assert {model: tokens(r) for model, [r] in rows.items()} == {
        "gpt-5.1-codex": (400, 600, 0, 100, 40),
        "gemini-2.5-pro": (510, 1500, 0, 200, 50),  # prompt + tool-use prompt; candidates + thoughts
        "claude-sonnet-4-5": (500, 4000, 0, 60, 0),
    }
    loaded = load_config(cfg)
    for model, [r] in rows.items():
        assert (r.experiment, r.arm, r.status) == ("three-agents", model, "ok")
        assert r.cost_usd == loaded.catalog.cost(model, r.usage) > 0
