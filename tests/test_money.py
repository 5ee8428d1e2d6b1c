"""Money that goes uncounted (issue 11): unreadable usage is charged its worst case and shown as unpriced;
the model the provider says ran and its own cost are recorded, and a cost far from the catalog's is flagged."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from switchyard.cli import cli
from switchyard.config import loads_config
from switchyard.health import Health
from switchyard.ledger import Ledger
from switchyard.runner import Runner
from switchyard.task import Task

FAKE = str(Path(__file__).parent / "fakes" / "fake_agent.py")


def agent_config(mode: str, usage_format: str = "claude-json", extra: str = "") -> str:
    template = json.dumps([sys.executable, FAKE, "-p", "--model", "{model}"])
    cost = ', FAKE_COST = "0.096"' if mode == "ok" else ""  # what Claude Code reports for its usage at opus prices
    return f"""
[providers.agent]
command_template = {template}
stdin = "{{prompt_file}}"
usage_format = "{usage_format}"
max_retries = 0
max_cost_usd = 0.75
env = {{ FAKE_MODE = "{mode}"{cost} }}

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


# --- the model that ran, and the provider's own cost ------------------------------------------------
OPUS_COST = Decimal("0.096")  # the fake's usage (1000 in, 500 out, 2000 cache write, 4000 cache read) at opus prices


def test_the_reported_model_and_cost_are_recorded_and_a_far_cost_is_flagged(tmp_path: Path) -> None:
    # seen: Claude Code asked for claude-opus-4-1 ran another model and reported $0.0117 against the
    # catalog's $0.043875; nothing showed the gap
    _, ledger = run_one(tmp_path, agent_config("other_model"))
    [rec] = ledger.attempts()
    assert rec.reported_model == "claude-haiku-4-5"
    assert (rec.cost_basis, rec.cost_usd, rec.reported_cost_usd) == ("catalog", OPUS_COST, Decimal("0.0117"))
    assert rec.cost_flagged


def test_a_reported_cost_near_the_catalogs_is_not_flagged(tmp_path: Path) -> None:
    text = agent_config("other_model").replace(
        'FAKE_MODE = "other_model"', 'FAKE_MODE = "other_model", FAKE_COST = "0.09"'
    )
    _, ledger = run_one(tmp_path, text)
    [rec] = ledger.attempts()
    assert rec.reported_cost_usd == Decimal("0.09") and not rec.cost_flagged  # 6 % off, under 25 %


def test_the_flagging_share_is_configurable_and_checked(tmp_path: Path) -> None:
    _, ledger = run_one(tmp_path, agent_config("other_model", extra="[runner]\nreported_cost_gap = 0.9"))
    assert not ledger.attempts()[0].cost_flagged  # 88 % off, under 90 %
    for bad, why in (("0", "must be greater than zero"), ("-1", "must be greater than zero"), ("1000", "100")):
        cfg = tmp_path / "bad.toml"
        cfg.write_text(agent_config("ok", extra=f"[runner]\nreported_cost_gap = {bad}"))
        res = CliRunner().invoke(cli, ["config", "check", "--config", str(cfg)])
        assert res.exit_code == 2, res.output
        assert "runner.reported_cost_gap" in res.stderr and why in res.stderr, res.stderr


def test_log_report_and_dashboard_show_unpriced_and_flagged_attempts(tmp_path: Path) -> None:
    from switchyard.config import load_config
    from switchyard.dashboard import Dashboard

    cfg = tmp_path / "switchyard.toml"
    r = CliRunner()
    for task, mode in (("T-1", "no_usage"), ("T-2", "other_model"), ("T-3", "ok")):
        cfg.write_text(agent_config(mode))
        res = r.invoke(cli, ["exec", "--config", str(cfg), "--task", json.dumps({"id": task})])
        assert res.exit_code == 0, res.output
        if mode == "no_usage":
            assert "$0.750000 unpriced" in res.stdout and "charged its worst case, $0.75" in res.stdout
        if mode == "other_model":
            assert "flagged" in res.stdout and "the provider reports running claude-haiku-4-5" in res.stdout
            assert "the provider reports $0.011700, the catalog says $0.096000" in res.stdout
    log = r.invoke(cli, ["log", "--config", str(cfg)]).stdout
    assert "$0.750000 unpriced" in log and "$0.096000 flagged" in log
    data = json.loads(r.invoke(cli, ["report", "--config", str(cfg), "--json"]).stdout)
    assert data["total"]["unpriced"] == 1 and data["total"]["unpriced_cost_usd"] == "0.75"
    assert data["total"]["flagged"] == 1 and data["total"]["flagged_gap_usd"] == "-0.0843"
    q = data["money_in_question"]
    assert (q["unpriced_attempts"], q["unpriced_charged_usd"], q["flagged_attempts"]) == (1, "0.75", 1)
    [unpriced] = q["unpriced"]
    assert (unpriced["model"], unpriced["attempts"], unpriced["charged_usd"]) == ("claude-opus-4-1", 1, "0.75")
    [flagged] = q["flagged"]
    assert (flagged["task_id"], flagged["reported_model"], flagged["gap_usd"]) == ("T-2", "claude-haiku-4-5", "-0.0843")
    text = r.invoke(cli, ["report", "--config", str(cfg)]).stdout
    assert "unpriced: 1 attempt(s) whose usage could not be read, charged their worst case, $0.75" in text
    assert "flagged: 1 attempt(s) whose provider-reported cost is far from the catalog's" in text
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        dash = Dashboard(load_config(cfg), ledger)
        money = dash.route("/api/money", {})
        decisions = dash.route("/api/decisions", {})
    assert money["question"]["unpriced_attempts"] == 1 and money["question"]["flagged_attempts"] == 1
    marks = {d["task"]: (d.get("cost_basis"), d.get("flagged")) for d in decisions}
    assert marks == {"T-1": ("unknown", None), "T-2": (None, True), "T-3": (None, None)}
    page = (Path(__file__).parent.parent / "src" / "switchyard" / "examples" / "dashboard.html").read_text()
    assert '"/api/money?days=30"' in page and 'id="panel-money"' in page


def test_a_flagged_cost_in_the_sums_matches_a_scan(tmp_path: Path) -> None:
    """The rollups' unpriced and flagged sums equal a scan of the attempts (a partial day reads the scan)."""
    from switchyard.ledger.rollup import SCAN_SUMS_SQL, SUMS, SUMS_SQL, Sums

    for i, mode in enumerate(("no_usage", "other_model", "ok", "other_model")):
        run_one(tmp_path, agent_config(mode), task_id=f"T-{i}")
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        rolled = Sums.from_sql(ledger.db.one(f"SELECT {SUMS_SQL} FROM rollup_attempts") or ())
        scanned = Sums.from_sql(ledger.db.one(f"SELECT {SCAN_SUMS_SQL} FROM attempts a") or ())
    assert rolled == scanned and "flagged_gap_pico" in SUMS
    assert (rolled.unpriced, rolled.flagged) == (1, 2)
    assert rolled.flagged_gap_pico == 2 * (11_700_000_000 - 96_000_000_000)


def test_money_in_question_on_sqlite_and_postgresql(ledger_url: str) -> None:
    """The sums, the scan of a partial day and the lists agree on both databases."""
    from switchyard.ledger.store import AttemptRecord
    from switchyard.report import Window, report

    day = 86_400_000
    base = 1_780_000_000_000 // day * day  # a UTC midnight
    rows = [
        AttemptRecord("u-1", "T-1", "agent", "m", "ok", base + 1000, base + 2000, cost_usd=Decimal("0.75"),
                      cost_basis="unknown", usage_problem="no usage reported; charged its worst case, $0.75"),
        AttemptRecord("f-1", "T-2", "agent", "m", "ok", base + 3000, base + 4000, cost_usd=Decimal("0.096"),
                      reported_cost_usd=Decimal("0.0117"), reported_model="haiku", cost_flagged=True),
        AttemptRecord("c-1", "T-3", "agent", "m", "ok", base + 5000, base + 6000, cost_usd=Decimal("0.096"),
                      reported_cost_usd=Decimal("0.096")),
    ]  # fmt: skip
    with Ledger.open(ledger_url) as led:
        with led.db.transaction():
            led.record_many(rows)
        whole = report(led.db, Window())  # the rollups
        edge = report(led.db, Window(base + 500, base + day - 1))  # a partial day: a scan of the attempts
    for rep in (whole, edge):
        q = rep.money_in_question
        assert q is not None, rep
        assert (q.unpriced_attempts, q.unpriced_charged_usd) == (1, Decimal("0.75"))
        assert (q.flagged_attempts, q.flagged_gap_usd) == (1, Decimal("-0.0843"))
        assert [(u.model, u.attempts, u.charged_usd) for u in q.unpriced] == [("m", 1, Decimal("0.75"))]
        assert [(f.attempt_id, f.reported_model, f.gap_usd) for f in q.flagged] == [
            ("f-1", "haiku", Decimal("-0.0843"))
        ]
        assert rep.total is not None and rep.total.cost_usd == Decimal("0.942")
