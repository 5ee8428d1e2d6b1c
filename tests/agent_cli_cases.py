"""What the tests of the real agent CLIs share (test_codex_cli.py, test_gemini_cli.py, test_claude_code.py).

Running `switchyard` as a subprocess, reading the ledger it wrote, a command provider that replays a
recorded CLI output, the starter's provider run in this process, a failover config to Claude Code,
and the checks that the tests make the same way for each CLI. The CLIs themselves: `agent_clis.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent_clis import starter, starter_provider
from servers._wire import WireServer
from servers.anthropic_wire import ZERO_USAGE as ANTHROPIC_ZERO
from servers.anthropic_wire import AnthropicWireServer
from servers.anthropic_wire import RecordedRequest as AnthropicRequest
from servers.anthropic_wire import Usage as AnthropicUsage
from switchyard.catalog import Usage
from switchyard.config import load_config, loads_config
from switchyard.failures import FailureKind
from switchyard.ledger import Ledger
from switchyard.ledger.store import AttemptRecord
from switchyard.providers.base import Call, ProviderContext, Result
from switchyard.providers.command import CommandRunner
from switchyard.redact import Redactor
from switchyard.runner import safe_name
from switchyard.task import Task

DATA = Path(__file__).parent / "data" / "usage"
REPLAY = Path(__file__).parent / "fakes" / "replay.py"
EXE = Path(sys.executable).parent / "switchyard"

# Claude Code's switches for a test: no traffic but the model's, no retries of its own.
CLAUDE_CODE_ENV = (
    'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1", DISABLE_TELEMETRY = "1", DISABLE_AUTOUPDATER = "1", '
    'DISABLE_ERROR_REPORTING = "1", CLAUDE_CODE_MAX_RETRIES = "0"'
)


def claude_sonnet_model(provider: str) -> str:
    """The `[[models]]` table of claude-sonnet-4-5 at its list prices, served by `provider`."""
    return f"""
[[models]]
name = "claude-sonnet-4-5"
provider = "{provider}"
cost_per_million_input = 3.0
cost_per_million_output = 15.0
cost_per_million_cached_input = 0.30
cost_per_million_cache_write = 3.75
"""


def model_table(name: str, provider: str) -> str:
    """A `[[models]]` table at $1.25 / $10 / $0.125 per million (input / output / cached input)."""
    return f"""
[[models]]
name = "{name}"
provider = "{provider}"
cost_per_million_input = 1.25
cost_per_million_output = 10.0
cost_per_million_cached_input = 0.125
"""


# ------------------------------------------------------------------ recorded outputs (no CLI needed)


def replay_provider(
    provider: str, model: str, usage_format: str, stdout: str, stderr: str, exit_code: int
) -> CommandRunner:
    """A command provider whose "CLI" prints recorded files (`-`: nothing) on stdout and stderr, and exits
    as the real CLI did."""
    argv = [sys.executable, str(REPLAY), str(DATA / stdout) if stdout != "-" else "-"]
    argv += [str(DATA / stderr) if stderr != "-" else "-", str(exit_code)]
    loaded = loads_config(
        f"""
[providers.{provider}]
command_template = {json.dumps(argv)}
stdin = "{{prompt_file}}"
usage_format = "{usage_format}"

[[models]]
name = "{model}"
provider = "{provider}"

[routing]
default_model = "{model}"
"""
    )
    return CommandRunner(loaded.providers[provider], ProviderContext(env={"PATH": "/usr/bin:/bin"}))  # type: ignore[arg-type]


def a_call(tmp_path: Path, model: str, title: str = "Say hello") -> Call:
    return Call("att-1", Task(id="t-1", title=title), model, model, f"{title}\n", tmp_path / "run", 120.0)


# ------------------------------------------------------------------------ switchyard as a subprocess


def switchyard(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def exec_task(cfg: Path, task: dict[str, Any], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Any]:
    proc = switchyard("exec", "--config", str(cfg), "--task", json.dumps(task), "--json", env=env)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"switchyard exec printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc, out


def ledger_rows(cfg: Path, task_id: str) -> list[AttemptRecord]:
    with Ledger.open(load_config(cfg).ledger_location()) as ledger:
        return ledger.attempts(task_id=task_id)


def work_dir(cfg: Path, row: AttemptRecord) -> Path:
    """Where the attempt ran (no provider workdir: its run directory)."""
    return cfg.parent / ".switchyard" / "runs" / safe_name(row.task_id) / safe_name(row.attempt_id)


def tokens(row: AttemptRecord) -> tuple[int, int, int, int, int]:
    """(input, cache read, cache write, output, reasoning) tokens of a ledger row."""
    return (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.output_tokens, row.reasoning_tokens)


# -------------------------------------------------------------------------- the starters, end to end


def init_starter(cfg: Path, agent: str, key_env: str, env: dict[str, str]) -> None:
    """`switchyard init --agent AGENT` writes the starter and names the key it needs."""
    init = switchyard("init", "--agent", agent, str(cfg), env=env)
    assert init.returncode == 0, init.stderr
    assert key_env in init.stdout
    assert cfg.read_text() == starter(agent)


def assert_config_checks(cfg: Path, env: dict[str, str]) -> None:
    check = switchyard("config", "check", "--config", str(cfg), env=env)
    assert check.returncode == 0 and check.stderr == "", check.stderr


def assert_charged_at_catalog(
    cfg: Path, row: AttemptRecord, provider: str, model: str, usage: Usage, cost: str
) -> None:
    """The row is an ok attempt of `model` on `provider`, charged `cost` = the catalog's price of `usage`;
    the CLI printed no cost of its own."""
    expected = load_config(cfg).catalog.cost(model, usage)
    assert row.cost_usd == expected == Decimal(cost)
    assert row.reported_cost_usd is None
    assert (row.status, row.provider, row.model, row.exit_code) == ("ok", provider, model, 0)


# ------------------------------------------------------------------------- failover to Claude Code


def failover_config(tmp_path: Path, agent: str, model: str, label: str, reason: str, **starter_kwargs: Any) -> Path:
    """AGENT's starter provider serving `model` for tasks labelled `label`, failing over to Claude Code."""
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        starter_provider(agent, max_retries=0, **starter_kwargs)
        + starter_provider("claude", max_retries=0)
        + model_table(model, agent)
        + claude_sonnet_model("claude-cli")
        + f"""
[routing]
default_model = "claude-sonnet-4-5"

[[routing.rules]]
condition = "labels contains '{label}'"
model = "{model}"
fallbacks = ["claude-sonnet-4-5"]
reason = "{reason}"
"""
    )
    return cfg


def claude_fallback(served: AnthropicUsage) -> AnthropicWireServer:
    """The Anthropic stand-in Claude Code fails over to: it says "Claude did it.", reporting `served`
    (Claude Code's own haiku side requests: nothing)."""
    return AnthropicWireServer(usage=served, usage_by_model={"haiku": ANTHROPIC_ZERO}, reply_text="Claude did it.")


def assert_failed_over_to_claude(
    proc: subprocess.CompletedProcess[str],
    out: Any,
    cfg: Path,
    task_id: str,
    provider: str,
    exit_code: int,
    claude_requests: list[AnthropicRequest],
) -> tuple[AttemptRecord, AttemptRecord]:
    """The task failed on `provider` (rate limited, the CLI exiting `exit_code`), then Claude Code did it,
    asking the Anthropic stand-in once, for the model routed to."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["ok"] is True and out["provider"] == "claude-cli" and out["text"] == "Claude did it."
    assert [r.model for r in claude_requests] == ["claude-sonnet-4-5"]
    first, second = ledger_rows(cfg, task_id)
    assert (first.provider, first.status, first.error_class, first.http_status, first.exit_code) == (
        provider,
        "failed",
        "rate_limited",
        429,
        exit_code,
    )
    assert (second.provider, second.status, second.candidate_index, second.failover_from) == (
        "claude-cli",
        "ok",
        1,
        provider,
    )
    return first, second


# ----------------------------------------------------------------- the starter's provider, in process


def run_real(
    tmp_path: Path, agent: str, key_env: str, model: str, env: dict[str, str], **starter_kwargs: Any
) -> Result:
    """One call through the command provider built from AGENT's starter, in this process."""
    loaded = loads_config(
        starter_provider(agent, **starter_kwargs)
        + f'[[models]]\nname = "{model}"\nprovider = "{agent}"\n[routing]\ndefault_model = "{model}"\n'
    )
    context = ProviderContext(redactor=Redactor.from_env([key_env], env), env=env)
    runner = CommandRunner(loaded.providers[agent], context)  # type: ignore[arg-type]
    return runner.execute(a_call(tmp_path, model))


Outcomes = dict[str, tuple[Result, list[int | None]]]
ServerT = TypeVar("ServerT", bound=WireServer[Any])


def run_side_by_side(
    tmp_path: Path,
    cases: Mapping[str, dict[str, Any]],
    server: Callable[..., ServerT],
    call: Callable[[Path, ServerT], Result],
) -> Outcomes:
    """For each case, in parallel: `call` (in `tmp_path / NAME`) against a `server(**case)`; each case's result
    and the statuses its server answered."""

    def run(name: str) -> tuple[Result, list[int | None]]:
        with server(**cases[name]) as srv:
            result = call(tmp_path / name, srv)
            return result, [r.status for r in srv.model_requests()]

    with ThreadPoolExecutor(len(cases)) as pool:
        return dict(zip(cases, pool.map(run, cases), strict=True))


def failures(results: Outcomes) -> dict[str, tuple[FailureKind, int | None] | None]:
    return {name: (r.failure.kind, r.failure.http_status) if r.failure else None for name, (r, _) in results.items()}


def statuses(results: Outcomes) -> dict[str, list[int | None]]:
    return {name: answered for name, (_, answered) in results.items()}
