"""The real Claude Code CLI as a command provider, offline, against a local Anthropic-compatible server.

The CLI (npm `@anthropic-ai/claude-code`, pinned in `agent_clis.py`) is installed
into `.ci-cache/` on first use. With SWITCHYARD_REQUIRE_REAL_CLI=1 (set by `.ci/run`)
a missing CLI fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from agent_clis import CLAUDE, require
from servers.anthropic_wire import ZERO_USAGE, AnthropicWireServer, ErrorReply, Usage
from switchyard.catalog import Usage as SyUsage
from switchyard.config import load_config
from switchyard.ledger import Ledger


@pytest.fixture(scope="module")
def claude() -> Path:
    return require(CLAUDE)


def write_config(tmp_path: Path, claude: Path, base_url: str, extra_env: str = "") -> Path:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        f"""
[providers.claude-code]
command_template = ["{claude}", "-p", "--model", "{{model}}", "--output-format", "json", "--max-turns", "1"]
stdin = "{{prompt_file}}"
usage_format = "claude-json"
api_key_env = "ANTHROPIC_API_KEY"
timeout_s = 120
max_retries = 0
env = {{ ANTHROPIC_BASE_URL = "{base_url}", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1", DISABLE_TELEMETRY = "1", DISABLE_AUTOUPDATER = "1", DISABLE_ERROR_REPORTING = "1", CLAUDE_CODE_MAX_RETRIES = "0" {extra_env} }}

[[models]]
name = "claude-sonnet-4-5"
provider = "claude-code"
cost_per_million_input = 3.0
cost_per_million_output = 15.0
cost_per_million_cached_input = 0.30
cost_per_million_cache_write = 3.75

[routing]
default_model = "claude-sonnet-4-5"
"""
    )
    return cfg


def run_exec(tmp_path: Path, cfg: Path, task: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "switchyard"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_API_KEY": "sk-ant-dummy-key-for-tests"}
    return subprocess.run(
        [str(exe), "exec", "--config", str(cfg), "--task", task, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_real_claude_code_usage_lands_in_the_ledger(tmp_path: Path, claude: Path) -> None:
    served = Usage(input_tokens=1234, output_tokens=567, cache_creation_input_tokens=2000, cache_read_input_tokens=4000)
    with AnthropicWireServer(usage=served, usage_by_model={"haiku": ZERO_USAGE}, reply_text="All done.") as srv:
        cfg = write_config(tmp_path, claude, srv.base_url)
        proc = run_exec(tmp_path, cfg, '{"id": "gh-42", "title": "Say hello", "body": "Reply with one line."}')
        assert proc.returncode == 0, proc.stdout + proc.stderr
        requests = srv.message_requests()
    out = json.loads(proc.stdout)
    assert out["ok"] is True
    assert out["text"] == "All done."
    # The CLI really went through our server, with the model we routed to and the prompt on stdin.
    assert [r.model for r in requests] == ["claude-sonnet-4-5"]
    assert "Say hello" in json.dumps(requests[0].body)

    loaded = load_config(cfg)
    with Ledger.open(loaded.ledger_location()) as ledger:
        [row] = ledger.attempts(task_id="gh-42")
    assert (row.input_tokens, row.output_tokens, row.cache_write_tokens, row.cache_read_tokens) == (
        1234,
        567,
        2000,
        4000,
    )
    expected = loaded.catalog.cost("claude-sonnet-4-5", SyUsage(1234, 567, 4000, 2000))
    assert row.cost_usd == expected == Decimal("0.020907")
    # Claude Code prices the same tokens itself; we keep its figure beside ours.
    assert row.reported_cost_usd is not None and abs(row.reported_cost_usd - expected) < Decimal("0.000001")
    assert row.status == "ok" and row.provider == "claude-code"


def test_real_claude_code_api_error_is_recorded(tmp_path: Path, claude: Path) -> None:
    with AnthropicWireServer(errors=[ErrorReply(529, times=5)]) as srv:
        cfg = write_config(tmp_path, claude, srv.base_url)
        proc = run_exec(tmp_path, cfg, '{"id": "gh-43", "title": "x"}')
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    [attempt] = out["attempts"]
    assert attempt["status"] == "failed"
    assert attempt["error_class"] == "overloaded"
    assert attempt["http_status"] == 529
    assert attempt["exit_code"] == 1
