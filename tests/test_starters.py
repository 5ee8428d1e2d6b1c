"""`switchyard init --agent claude|codex|gemini`: each starter loads clean and works as written.

The Codex and Gemini starters run against their stand-ins in test_codex_cli.py and
test_gemini_cli.py; the Claude Code one runs here, against the Anthropic stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent_clis import CLAUDE, AgentCli, cli_env, require, starter
from servers.anthropic_wire import ZERO_USAGE, AnthropicWireServer, RecordedRequest, text_block, tool_use_block
from servers.anthropic_wire import Usage as AnthropicUsage
from switchyard.cli import cli
from switchyard.cli.config_cmd import STARTERS
from switchyard.config import load_config
from switchyard.config.schema import CommandProvider
from switchyard.ledger import Ledger
from switchyard.runner import safe_name

EXE = Path(sys.executable).parent / "switchyard"


@pytest.mark.parametrize(
    ("agent", "key"), [("claude", "ANTHROPIC_API_KEY"), ("codex", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY")]
)
def test_init_writes_the_agents_starter_and_it_passes_check(tmp_path: Path, agent: str, key: str) -> None:
    target = tmp_path / "switchyard.toml"
    result = CliRunner().invoke(cli, ["init", "--agent", agent, str(target)])
    assert result.exit_code == 0, result.output
    assert f"set {key}" in result.output
    assert target.read_text() == starter(agent)
    check = CliRunner().invoke(cli, ["config", "check", "--config", str(target), "--json"])
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["warnings"] == []
    loaded = load_config(target)
    [cmd] = [p for p in loaded.providers.values() if isinstance(p, CommandProvider)]
    # What makes it work unattended: the prompt on stdin, a usage format, the key by name.
    assert cmd.stdin == "{prompt_file}" and cmd.usage_format != "none" and cmd.api_key_env == key
    assert cmd.name in {m.provider for m in loaded.catalog}
    again = CliRunner().invoke(cli, ["init", "--agent", agent, str(target)])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_init_defaults_to_claude_and_refuses_unknown_agents(tmp_path: Path) -> None:
    target = tmp_path / "switchyard.toml"
    assert CliRunner().invoke(cli, ["init", str(target)]).exit_code == 0
    assert target.read_text() == starter("claude")
    bad = CliRunner().invoke(cli, ["init", "--agent", "aider", str(tmp_path / "x.toml")])
    assert bad.exit_code == 2 and "'aider' is not one of" in bad.stderr
    assert sorted(STARTERS) == ["claude", "codex", "gemini"]


def test_a_missing_cli_fails_under_ci_and_skips_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = AgentCli("Nothing", "@example/nothing", "1.0.0", str(tmp_path / "absent"), "nothing")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm to install it with
    monkeypatch.setenv("SWITCHYARD_REQUIRE_REAL_CLI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"Nothing 1\.0\.0 is not installed"):
        require(missing)
    monkeypatch.delenv("SWITCHYARD_REQUIRE_REAL_CLI")
    with pytest.raises(pytest.skip.Exception):
        require(missing)


def test_claude_starter_edits_a_file_in_its_working_directory(tmp_path: Path) -> None:
    require(CLAUDE)

    def responder(req: RecordedRequest) -> list[dict[str, object]] | None:
        if "haiku" in (req.model or ""):
            return None  # Claude Code's side requests
        answered = any(
            isinstance(block, dict) and block.get("type") == "tool_result"
            for message in req.body["messages"]
            for block in (message["content"] if isinstance(message["content"], list) else [])
        )
        if answered:
            return [text_block("Wrote note.txt.")]
        return [tool_use_block("Write", {"file_path": "note.txt", "content": "hello from claude\n"})]

    usage = AnthropicUsage(
        input_tokens=700, output_tokens=90, cache_creation_input_tokens=300, cache_read_input_tokens=5000
    )
    with AnthropicWireServer(responder=responder, usage=usage, usage_by_model={"haiku": ZERO_USAGE}) as srv:
        env = cli_env(tmp_path, ANTHROPIC_BASE_URL=srv.base_url)
        cfg = tmp_path / "switchyard.toml"
        init = subprocess.run(
            [str(EXE), "init", "--agent", "claude", str(cfg)], env=env, capture_output=True, text=True, check=False
        )
        assert init.returncode == 0, init.stderr
        # Priority 1 matches none of the starter's rules (the night rule wants priority >= 2).
        task = {"id": "gh-1", "title": "Write the note", "priority": 1}
        proc = subprocess.run(
            [str(EXE), "exec", "--config", str(cfg), "--task", json.dumps(task), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        requests = [r for r in srv.message_requests() if "haiku" not in (r.model or "")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] is True and out["text"] == "Wrote note.txt."
    assert out["decision"]["model"] == "claude-sonnet-4-5"  # the starter's default model
    assert [r.model for r in requests] == ["claude-sonnet-4-5", "claude-sonnet-4-5"]
    with Ledger.open(load_config(cfg).ledger_location()) as ledger:
        [row] = ledger.attempts(task_id="gh-1")
    workdir = cfg.parent / ".switchyard" / "runs" / safe_name(row.task_id) / safe_name(row.attempt_id)
    # --permission-mode acceptEdits: without it Claude Code is refused the write (nobody to ask).
    assert (workdir / "note.txt").read_text() == "hello from claude\n"
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.output_tokens) == (
        1400,
        10000,
        600,
        180,
    )
    # 1400 x $3 + 10000 x $0.30 + 600 x $3.75 + 180 x $15, per million
    assert row.cost_usd == Decimal("0.01215")
