"""Money that goes uncounted (issue 11): unreadable usage is charged its worst case and shown as unpriced;
the model the provider says ran and its own cost are recorded, and a cost far from the catalog's is flagged."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

from switchyard.config import loads_config
from switchyard.health import Health
from switchyard.ledger import Ledger
from switchyard.runner import Runner
from switchyard.task import Task

FAKE = str(Path(__file__).parent / "fakes" / "fake_agent.py")


def agent_config(mode: str, usage_format: str = "claude-json", extra: str = "") -> str:
    template = json.dumps([sys.executable, FAKE, "-p", "--model", "{model}"])
    return f"""
[providers.agent]
command_template = {template}
stdin = "{{prompt_file}}"
usage_format = "{usage_format}"
max_retries = 0
max_cost_usd = 0.75
env = {{ FAKE_MODE = "{mode}" }}

[[models]]
name = "claude-opus-4-1"
provider = "agent"
cost_per_million_input = 15.0
cost_per_million_output = 75.0
cost_per_million_cached_input = 1.5
cost_per_million_cache_write = 18.75

[routing]
default_model = "claude-opus-4-1"

[budgets]
daily_usd = 10
{extra}
"""


def run_one(tmp_path: Path, text: str, task_id: str = "T-1") -> tuple[Runner, Ledger]:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(text)
    loaded = loads_config(text, str(cfg))
    ledger = Ledger.open(tmp_path / ".switchyard" / "ledger.db")
    runner = Runner(loaded, ledger, health=Health(loaded, ledger, env={}), runs_dir=tmp_path / "runs")
    runner.run(Task(task_id, title="x"), prompt="p", run_id=task_id)
    runner.close()
    return runner, ledger


def spent(ledger: Ledger) -> Decimal:
    pico = ledger.db.one("SELECT spent_pico FROM budget_counters")[0]  # type: ignore[index]
    return Decimal(pico) / 10**12


def test_a_cli_result_without_usage_is_unpriced_and_charged_its_hold(tmp_path: Path) -> None:
    # seen: Claude Code whose output had no usage was recorded ok at $0 and the budget charged nothing
    _, ledger = run_one(tmp_path, agent_config("no_usage"))
    [rec] = ledger.attempts()
    assert (rec.status, rec.cost_basis, rec.cost_usd) == ("ok", "unknown", Decimal("0.75"))  # max_cost_usd
    assert rec.usage_problem == ("unparseable usage: no usage in the result message; charged its worst case, $0.75")
    assert spent(ledger) == Decimal("0.75")


def test_usage_format_none_is_unpriced_and_charged_its_hold(tmp_path: Path) -> None:
    _, ledger = run_one(tmp_path, agent_config("ok", usage_format="none"))
    [rec] = ledger.attempts()
    assert (rec.status, rec.cost_basis, rec.cost_usd) == ("ok", "unknown", Decimal("0.75"))
    assert rec.usage_problem == "no usage reported; charged its worst case, $0.75"
    assert spent(ledger) == Decimal("0.75")


def test_priced_attempts_say_catalog(tmp_path: Path) -> None:
    _, ledger = run_one(tmp_path, agent_config("ok"))
    [rec] = ledger.attempts()
    assert rec.cost_basis == "catalog" and rec.cost_usd == spent(ledger) < Decimal("0.75")
