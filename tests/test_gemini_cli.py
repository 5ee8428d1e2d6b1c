"""The real Google Gemini CLI as a command provider, offline, against the Gemini API stand-in.

The CLI (npm `@google/gemini-cli`, pinned in `agent_clis.py`) is installed into `.ci-cache/`
on first use; with SWITCHYARD_REQUIRE_REAL_CLI=1 (set by `.ci/run`) a missing CLI fails these
tests instead of skipping them. Each test runs the config `switchyard init --agent gemini`
writes (or its provider table) with a HOME whose ~/.gemini/settings.json says what the
starter asks for (see `agent_clis.gemini_home`). The first tests need no CLI: they replay
what gemini-cli 0.61.0 printed against the stand-in (tests/data/usage/gemini_real_*).
The split across the three CLIs is in test_codex_cli.py.
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
    exec_task,
    failover_config,
    failures,
    init_starter,
    ledger_rows,
    replay_provider,
    run_real,
    run_side_by_side,
    statuses,
    tokens,
    work_dir,
)
from agent_clis import CLAUDE, GEMINI, KEYS, cli_env, require
from servers import gemini_wire as gw
from servers.anthropic_wire import Usage as AnthropicUsage
from switchyard.catalog import Usage
from switchyard.failures import FailureKind
from switchyard.providers.base import Result
from switchyard.providers.command import CommandRunner
from switchyard.usage_parsers import parse_output

GEMINI_KEY = KEYS["GEMINI_API_KEY"]


# ---------------------------------------------------------- what gemini-cli 0.61.0 printed (no CLI needed)


def gemini_replay(stderr: str, exit_code: int) -> CommandRunner:
    """A command provider whose "CLI" prints a recorded gemini stderr (nothing on stdout) and exits as it did."""
    return replay_provider("gemini", "gemini-2.5-pro", "gemini-json", "-", stderr, exit_code)


@pytest.mark.parametrize(
    ("recorded", "exit_code", "status", "kind", "retry_after"),
    [
        # The CLI exits with the HTTP status modulo 256 and prints {"error": {"code": 429, ...}} on stderr.
        ("gemini_real_429.stderr.txt", 173, 429, FailureKind.RATE_LIMITED, 7.0),  # "Suggested retry after 7s."
        ("gemini_real_500.stderr.txt", 244, 500, FailureKind.SERVER_ERROR, None),
        ("gemini_real_bad_key.stderr.txt", 144, 400, FailureKind.AUTH, None),  # 400 with reason API_KEY_INVALID
        ("gemini_real_404_model.stderr.txt", 1, 404, FailureKind.NOT_FOUND, None),  # the CLI loses the 404: "code": 1
    ],
)
def test_recorded_gemini_errors_map_through_the_failure_table(
    tmp_path: Path, recorded: str, exit_code: int, status: int, kind: FailureKind, retry_after: float | None
) -> None:
    result = gemini_replay(recorded, exit_code).execute(a_call(tmp_path, "gemini-2.5-pro"))
    assert result.failure is not None
    failure = result.failure
    assert (failure.kind, failure.http_status, failure.retry_after_s, result.exit_code) == (
        kind,
        status,
        retry_after,
        exit_code,
    )
    assert "at retryWithBackoff" not in failure.message  # the error, not the stack trace before it
    assert result.usage is None and result.usage_problem is None


def test_recorded_gemini_api_body_gives_the_real_message() -> None:
    stderr = (DATA / "gemini_real_bad_key.stderr.txt").read_text()
    parsed = parse_output("gemini-json", "", files={"stderr": stderr})
    assert parsed.error_message == "API key not valid. Please pass a valid API key."
    assert (parsed.error_status, parsed.error_code) == (400, "API_KEY_INVALID")


def test_gemini_error_json_is_found_after_other_objects_on_stderr() -> None:
    logged = "".join(f'{{"debug": {n}}}\n' for n in range(8))  # more than the generic reader tries
    stderr = logged + (DATA / "gemini_real_429.stderr.txt").read_text()
    parsed = parse_output("gemini-json", "", files={"stderr": stderr})
    assert (parsed.error_status, parsed.retry_after_s) == (429, 7.0)


def test_gemini_stderr_is_not_read_when_stdout_has_the_result() -> None:
    stdout = (DATA / "gemini_real_success.json").read_text()
    stderr = (DATA / "gemini_real_500.stderr.txt").read_text()
    parsed = parse_output("gemini-json", stdout, files={"stderr": stderr})
    assert not parsed.is_error and parsed.text == "OK"


def test_recorded_gemini_success_usage_and_served_model() -> None:
    parsed = parse_output("gemini-json", (DATA / "gemini_real_success.json").read_text())
    # prompt 1000 (600 cached) + tool-use prompt 30; candidates 200 + thoughts 50
    assert parsed.usage == Usage(1030, 250, 600, 0, 50, "openai")
    assert parsed.model == "gemini-2.5-pro-002"  # stats are keyed by the modelVersion that answered
    assert not parsed.is_error and parsed.problem is None


# ------------------------------------------------------------------------------------------ the real CLI


@pytest.fixture(scope="module")
def gemini() -> Path:
    return require(GEMINI)


@pytest.fixture(scope="module")
def claude() -> Path:
    return require(CLAUDE)


def test_gemini_starter_runs_a_routed_task_with_a_real_tool_call(tmp_path: Path, gemini: Path) -> None:
    per_request = gw.Usage(
        prompt_tokens=1200, candidates_tokens=150, cached_tokens=800, thoughts_tokens=60, tool_use_prompt_tokens=20
    )
    script: list[gw.Reply] = [
        [gw.function_call("write_file", {"file_path": "docs/note.md", "content": "hello from gemini\n"})],
        [gw.text("Wrote docs/note.md.")],
    ]
    with gw.GeminiWireServer(script=script, usage=per_request, api_key=GEMINI_KEY) as srv:
        env = cli_env(tmp_path, GOOGLE_GEMINI_BASE_URL=srv.base_url)
        cfg = tmp_path / "switchyard.toml"
        init_starter(cfg, "gemini", "GEMINI_API_KEY", env)  # run as written: only the environment differs
        assert_config_checks(cfg, env)
        task = {
            "id": "docs-3",
            "title": "Write the note",
            "body": "Greet in docs/note.md.",
            "labels": ["documentation"],
        }
        proc, out = exec_task(cfg, task, env)
        requests = srv.agent_requests()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["ok"] is True and out["text"] == "Wrote docs/note.md."
    # Routed by the starter's rule; the CLI asked for that model, with our key, on our server.
    assert out["decision"]["model"] == "gemini-2.5-flash"
    assert [r.model for r in requests] == ["gemini-2.5-flash", "gemini-2.5-flash"]
    assert all(r.key_matches for r in requests) and all(r.query == "alt=sse" for r in requests)
    assert "Write the note" in json.dumps(requests[0].body)
    # The tool really ran in the task's working directory, and the CLI sent its result back.
    [row] = ledger_rows(cfg, "docs-3")
    assert (work_dir(cfg, row) / "docs" / "note.md").read_text() == "hello from gemini\n"
    [response] = gw.function_responses(requests[1].body)
    assert response["name"] == "write_file"
    # Exact tokens over both requests: prompt and tool-use prompt in, cached 1600, thoughts in the output.
    assert tokens(row) == (840, 1600, 0, 420, 120)
    # 840 x $0.30 + 1600 x $0.03 + 420 x $2.50, per million; the Gemini CLI prints no cost
    usage = Usage(2440, 420, 1600, 0, 120, "openai")
    assert_charged_at_catalog(cfg, row, "gemini", "gemini-2.5-flash", usage, "0.00135")


def test_a_429_from_geminis_stand_in_fails_over_to_claude_code(tmp_path: Path, gemini: Path, claude: Path) -> None:
    limited = gw.ErrorReply(429, "Resource has been exhausted (e.g. check quota).", retry_after=7, times=None)
    served = AnthropicUsage(input_tokens=250, output_tokens=30, cache_read_input_tokens=1000)
    with (
        gw.GeminiWireServer(errors=[limited]) as google,
        claude_fallback(served) as anthropic,
    ):
        cfg = failover_config(tmp_path, "gemini", "gemini-2.5-pro", "gemini", "Gemini tasks")
        env = cli_env(tmp_path, ANTHROPIC_BASE_URL=anthropic.base_url, GOOGLE_GEMINI_BASE_URL=google.base_url)
        proc, out = exec_task(cfg, {"id": "gh-11", "title": "Fix the bug", "labels": ["gemini"]}, env)
        gemini_requests = google.model_requests()
        claude_requests = anthropic.message_requests()
    first, second = assert_failed_over_to_claude(proc, out, cfg, "gh-11", "gemini", 173, claude_requests)
    # general.maxAttempts = 1: the CLI asked once, then switchyard failed over.
    assert [r.status for r in gemini_requests] == [429]
    assert (first.error_message or "").startswith("Resource has been exhausted")
    assert (second.input_tokens, second.cache_read_tokens, second.output_tokens) == (250, 1000, 30)


def run_real_gemini(tmp_path: Path, srv: gw.GeminiWireServer, model: str = "gemini-2.5-pro") -> Result:
    """One call through the command provider built from the starter, in this process."""
    env = cli_env(tmp_path, GOOGLE_GEMINI_BASE_URL=srv.base_url)
    return run_real(tmp_path, "gemini", "GEMINI_API_KEY", model, env)


def test_real_gemini_errors_and_reported_model(tmp_path: Path, gemini: Path) -> None:
    """What the CLI makes of each stand-in reply, as the failure table sees it (run side by side)."""
    cases: dict[str, dict[str, Any]] = {
        "500": {"errors": [gw.ErrorReply(500, "An internal error has occurred.", times=None)]},
        "bad-key": {"api_key": "a-different-key"},
        "unknown-model": {"models": ["gemini-other"]},
        "served": {"served_model": {"gemini-2.5-pro": "gemini-2.5-pro-002"}, "usage": gw.Usage(90, 9, 40, 3, 1)},
    }

    results = run_side_by_side(tmp_path, cases, gw.GeminiWireServer, run_real_gemini)
    assert failures(results) == {
        "500": (FailureKind.SERVER_ERROR, 500),
        "bad-key": (FailureKind.AUTH, 400),  # Google answers a bad key with 400 API_KEY_INVALID
        "unknown-model": (FailureKind.NOT_FOUND, 404),
        "served": None,
    }
    assert statuses(results) == {
        "500": [500],
        "bad-key": [400],
        "unknown-model": [404],
        "served": [200],
    }
    key = results["bad-key"][0].failure
    assert key is not None and GEMINI_KEY not in key.message
    served = results["served"][0]
    assert served.model == "gemini-2.5-pro-002"  # what the CLI says answered
    assert served.usage == Usage(91, 12, 40, 0, 3, "openai")
