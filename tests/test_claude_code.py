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

from agent_cli_cases import CLAUDE_CODE_ENV, EXE, claude_sonnet_model, switchyard
from agent_clis import CLAUDE, cli_env, require
from servers.anthropic_wire import (
    ZERO_USAGE,
    AnthropicWireServer,
    ErrorReply,
    RecordedRequest,
    Responder,
    Usage,
    text_block,
    tool_use_block,
)
from switchyard.catalog import Usage as SyUsage
from switchyard.config import load_config
from switchyard.ledger import Ledger
from switchyard.money import usd
from test_delivery import ISSUE, gh_calls, tools
from test_worktree import git, make_repo

KEY = "sk-ant-dummy-key-for-tests"


@pytest.fixture(scope="module")
def claude() -> Path:
    return require(CLAUDE)


def claude_code_provider(claude: Path, base_url: str, flags: str, timeout_s: int, extra_env: str = "") -> str:
    """The `[providers.claude-code]` table: the CLI printing JSON, with `flags` (TOML strings) after, on `base_url`."""
    return f"""
[providers.claude-code]
command_template = ["{claude}", "-p", "--model", "{{model}}", "--output-format", "json", {flags}]
stdin = "{{prompt_file}}"
usage_format = "claude-json"
api_key_env = "ANTHROPIC_API_KEY"
timeout_s = {timeout_s}
max_retries = 0
env = {{ ANTHROPIC_BASE_URL = "{base_url}", {CLAUDE_CODE_ENV} {extra_env} }}
"""


def write_config(tmp_path: Path, claude: Path, base_url: str, extra_env: str = "") -> Path:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        claude_code_provider(claude, base_url, '"--max-turns", "1"', 120, extra_env)
        + claude_sonnet_model("claude-code")
        + """
[routing]
default_model = "claude-sonnet-4-5"
"""
    )
    return cfg


def edit_config(cfg: Path, *changes: tuple[str, str]) -> None:
    """Rewrite `cfg`, each (old, new) replaced; each old text must stand in it once."""
    text = cfg.read_text()
    for old, new in changes:
        assert text.count(old) == 1, f"{old!r} in {text}"
        text = text.replace(old, new)
    cfg.write_text(text)


def run_exec(tmp_path: Path, cfg: Path, task: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_API_KEY": KEY}
    return subprocess.run(
        [str(EXE), "exec", "--config", str(cfg), "--task", task, "--json"],
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


# ------------------------------------------------------------------ verified outcomes, end to end
GOOD = "def f():\n    return 2\n"
BAD = "def f():\n    return 1\n"
CHECK = "from feature import f\nassert f() == 2, f'f() returned {f()}, expected 2'\nprint('check passed')\n"


def _writes(by_model: dict[str, str]) -> Responder:
    """A scripted Claude: on its first turn it writes feature.py (the text for the model family it runs as, e.g.
    "sonnet": Claude Code may send another id upstream than the one it was asked for), then says so."""

    def respond(req: RecordedRequest) -> list[dict[str, object]] | None:
        if "haiku" in (req.model or ""):
            return None  # Claude Code's own side requests
        answered = any(
            isinstance(block, dict) and block.get("type") == "tool_result"
            for message in req.body["messages"]
            for block in (message["content"] if isinstance(message["content"], list) else [])
        )
        if answered:
            return [text_block("Wrote feature.py.")]
        [text] = [t for family, t in by_model.items() if family in (req.model or "")]
        return [tool_use_block("Write", {"file_path": "feature.py", "content": text})]

    return respond


def _delivery_project(tmp_path: Path, claude: Path, base_url: str) -> tuple[Path, Path, dict[str, str]]:
    repo = make_repo(tmp_path / "repo", {"check.py": CHECK, "README.md": "project\n"})
    remote = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    cfg = repo / "switchyard.toml"
    cfg.write_text(
        claude_code_provider(claude, base_url, '"--permission-mode", "acceptEdits"', 180)
        + claude_sonnet_model("claude-code")
        + f"""
[[models]]
name = "claude-opus-4-1"
provider = "claude-code"
cost_per_million_input = 15.0
cost_per_million_output = 75.0
cost_per_million_cached_input = 1.5
cost_per_million_cache_write = 18.75

[routing]
default_model = "claude-sonnet-4-5"

[[routing.rules]]
condition = "retry_count >= 1"
model = "claude-opus-4-1"
reason = "a rejected change goes to the stronger model"

[coordinator]
max_attempts = 2
poll_interval_s = 0.05

[runner]
max_attempts = 1

[[sources]]
kind = "github"
repo = "o/r"
label = "agent"

[verify]
allowed_paths = ["feature.py"]
[[verify.commands]]
name = "check"
argv = ["{sys.executable}", "check.py"]
env = {{ PYTHONDONTWRITEBYTECODE = "1" }}
"""
    )
    bin_dir = tools(tmp_path / "bin")
    env = cli_env(
        tmp_path,
        PATH=f"{bin_dir}:{CLAUDE.path.parent}:{os.environ['PATH']}",
        ANTHROPIC_API_KEY=KEY,
        FAKE_GH_LOG=str(tmp_path / "gh.log"),
        FAKE_GH_STATE=str(tmp_path / "gh-state.json"),
        FAKE_GH_ISSUES=json.dumps([ISSUE]),
    )
    return cfg, remote, env


def _run(cfg: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return switchyard(*args, "--config", str(cfg), env=env, timeout=600)


def test_real_claude_code_change_is_verified_pushed_and_proposed(tmp_path: Path, claude: Path) -> None:
    served = Usage(input_tokens=900, output_tokens=120, cache_creation_input_tokens=0, cache_read_input_tokens=3000)
    responder = _writes({"sonnet": GOOD})
    with AnthropicWireServer(responder=responder, usage=served, usage_by_model={"haiku": ZERO_USAGE}) as srv:
        cfg, remote, env = _delivery_project(tmp_path, claude, srv.base_url)
        proc = _run(cfg, env, "run", "--once")
        models = {r.model for r in srv.message_requests() if "haiku" not in (r.model or "")}
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert models == {"claude-sonnet-4-5"}
    with Ledger.open(load_config(cfg).ledger_location()) as ledger:
        [row] = ledger.attempts(task_id="gh-7")
    assert (row.model, row.status, row.verdict) == ("claude-sonnet-4-5", "ok", "verified")
    assert row.verify_detail == "verified: change ok, paths ok, secrets ok, check ok"
    assert row.cost_usd > 0
    # Claude Code's edit, checked by the repository's own test, is on the branch at the remote.
    assert git(remote, "show", "switchyard/gh-7:feature.py") + "\n" == GOOD
    assert "Switchyard-Model: claude-sonnet-4-5" in git(remote, "log", "-1", "--format=%B", "switchyard/gh-7")
    [create] = gh_calls(tmp_path, "pr create")
    assert "--head=switchyard/gh-7" in create["args"]
    assert "`claude-sonnet-4-5`" in create["body"] and usd(row.cost_usd) in create["body"]
    [comment] = gh_calls(tmp_path, "issue comment")
    assert "Done: pull request https://github.com/o/r/pull/100." in comment["body"]
    assert "`claude-sonnet-4-5`" in comment["body"]


def test_real_claude_code_rejected_change_escalates_to_the_stronger_model(tmp_path: Path, claude: Path) -> None:
    served = Usage(input_tokens=900, output_tokens=120)
    responder = _writes({"sonnet": BAD, "opus": GOOD})
    with AnthropicWireServer(responder=responder, usage=served, usage_by_model={"haiku": ZERO_USAGE}) as srv:
        cfg, remote, env = _delivery_project(tmp_path, claude, srv.base_url)
        proc = _run(cfg, env, "run", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Ledger.open(load_config(cfg).ledger_location()) as ledger:
        first, second = ledger.attempts(task_id="gh-7")
    assert (first.model, first.verdict, first.verify_check) == ("claude-sonnet-4-5", "rejected", "check")
    assert "f() returned 1, expected 2" in (first.verify_detail or "")
    assert (second.model, second.verdict, second.task_retry) == ("claude-opus-4-1", "verified", 1)
    assert second.reason == "a rejected change goes to the stronger model"
    assert git(remote, "show", "switchyard/gh-7:feature.py") + "\n" == GOOD
    # `report` shows the path the task took and why the first attempt was rejected.
    report = _run(cfg, env, "report")
    assert report.returncode == 0, report.stderr
    assert "claude-sonnet-4-5 rejected (check) -> claude-opus-4-1 verified" in report.stdout
    data = json.loads(_run(cfg, env, "report", "--json").stdout)
    [path] = data["verification"]["paths"]
    assert path["path"] == ["claude-sonnet-4-5 rejected (check)", "claude-opus-4-1 verified"] and path["tasks"] == 1


def test_real_claude_code_usage_error_disables_the_provider(tmp_path: Path, claude: Path) -> None:
    # seen: a CLI usage error was retried three times; it is a configuration error (issue 11)
    with AnthropicWireServer() as srv:
        cfg = write_config(tmp_path, claude, srv.base_url)
        edit_config(
            cfg,
            ('"--max-turns", "1"', '"--max-turns", "1", "--no-such-option"'),
            ("max_retries = 0", "max_retries = 3"),
        )
        proc = run_exec(tmp_path, cfg, '{"id": "gh-44", "title": "x"}')
        assert srv.message_requests() == []
    assert proc.returncode == 1
    [attempt] = json.loads(proc.stdout)["attempts"]  # not retried
    assert attempt["error_class"] == "config_error"
    assert attempt["error_message"] == (
        f"{claude} rejected its command line (exit 1): error: unknown option '--no-such-option'; "
        "fix command_template of provider claude-code"
    )
    shown = switchyard("providers", "--config", str(cfg), "--json", env={**os.environ, "ANTHROPIC_API_KEY": KEY})
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    assert row["status"] == "disabled" and "unknown option '--no-such-option'" in row["reason"]


def test_real_claude_code_reported_model_and_a_far_cost_are_recorded(tmp_path: Path, claude: Path) -> None:
    # seen: Claude Code reported $0.0117 while switchyard charged $0.043875 from the catalog; nothing showed it
    served = Usage(input_tokens=1234, output_tokens=567, cache_creation_input_tokens=2000, cache_read_input_tokens=4000)
    with AnthropicWireServer(usage=served, usage_by_model={"haiku": ZERO_USAGE}, reply_text="ok") as srv:
        cfg = write_config(tmp_path, claude, srv.base_url)
        # A catalog whose token prices are a fifth of what Claude Code itself charges for the model.
        edit_config(
            cfg,
            ("cost_per_million_input = 3.0", "cost_per_million_input = 0.6"),
            ("cost_per_million_output = 15.0", "cost_per_million_output = 3.0"),
        )
        proc = run_exec(tmp_path, cfg, '{"id": "gh-45", "title": "x"}')
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ran = [r.model for r in srv.message_requests() if r.model and "haiku" not in r.model]
    [attempt] = json.loads(proc.stdout)["attempts"]
    assert attempt["reported_model"] == ran[-1]  # the model the CLI sent upstream
    catalog, reported = Decimal(attempt["cost_usd"]), Decimal(attempt["reported_cost_usd"])
    assert (
        reported > Decimal("1.5") * catalog and attempt["cost_flagged"] is True and attempt["cost_basis"] == "catalog"
    )
    shown = switchyard("report", "--config", str(cfg), "--json", env=dict(os.environ))
    assert shown.returncode == 0, shown.stderr
    [flagged] = json.loads(shown.stdout)["money_in_question"]["flagged"]
    assert flagged["task_id"] == "gh-45" and Decimal(flagged["gap_usd"]) == reported - catalog


def test_real_claude_code_with_unreadable_usage_is_charged_its_worst_case(tmp_path: Path, claude: Path) -> None:
    # seen: Claude Code whose usage was not read recorded 0 tokens and $0 (here: usage_format = "none")
    with AnthropicWireServer(usage_by_model={"haiku": ZERO_USAGE}, reply_text="ok") as srv:
        cfg = write_config(tmp_path, claude, srv.base_url)
        edit_config(
            cfg,
            ('usage_format = "claude-json"', 'usage_format = "none"'),
            ("timeout_s = 120", "timeout_s = 120\nmax_cost_usd = 0.40"),
        )
        proc = run_exec(tmp_path, cfg, '{"id": "gh-46", "title": "x"}')
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert srv.message_requests()  # the CLI really called the model
    [attempt] = json.loads(proc.stdout)["attempts"]
    assert attempt["status"] == "ok" and attempt["cost_basis"] == "unknown"
    assert Decimal(attempt["cost_usd"]) == Decimal("0.40")  # max_cost_usd: the worst case of the call
    assert attempt["usage_problem"].endswith("charged its worst case, $0.40")
