"""`switchyard demo`: two measured runs on one simulated world, the same output every time, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from switchyard.config import loads_config
from switchyard.demo import all_default_config_text, demo_config_text, demo_tasks

EXE = str(Path(sys.executable).parent / "switchyard")
GOLDEN = Path(__file__).parent / "data" / "demo_output.txt"


def demo(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    cwd, tmp = tmp_path_factory.mktemp("cwd1"), tmp_path_factory.mktemp("tmp1")
    return demo(cwd, env={"TMPDIR": str(tmp), "TZ": "UTC", "PYTHONHASHSEED": "1"}), cwd, tmp


def test_the_demo_runs_offline_and_leaves_nothing_behind(
    first_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    proc, cwd, tmp = first_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert list(cwd.iterdir()) == []  # nothing written where it ran (a repository, say)
    assert list(tmp.iterdir()) == []  # its temporary workspaces are gone
    out = proc.stdout
    for line in (
        "switchyard demo: 200 tasks, run twice through the coordinator on one simulated world",
        "every task to claude-sonnet-4-5 (routing.default_model)",
        "priority == 0     ->  claude-opus-4-5",
        "retry_count >= 2  ->  gemini-3-pro",
        "SWE-bench bash-only leaderboard: claude-opus-4-5 74.4 %",
        "Which answer resolved each task:",
        "Where the routed run's attempts went:",
        "run `switchyard demo --dir DIR`",
    ):
        assert line in out, line


def test_two_runs_print_byte_identical_output(
    first_run: tuple[subprocess.CompletedProcess[str], Path, Path], tmp_path: Path
) -> None:
    # Another hash seed, another local time zone, another directory: the same bytes.
    again = demo(tmp_path, env={"TMPDIR": str(tmp_path), "TZ": "Asia/Tokyo", "PYTHONHASHSEED": "2"})
    assert again.returncode == 0, again.stderr
    assert again.stdout == first_run[0].stdout
    # And the same as the recorded output: the same figures on every machine.
    # Regenerate after an intended change: .venv/bin/switchyard demo > tests/data/demo_output.txt
    assert again.stdout == GOLDEN.read_text(), "the demo's output changed; if intended, regenerate the golden file"


def test_routing_saves_on_non_critical_tasks_without_losing_verified_success(
    first_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    out = first_run[0].stdout
    row = re.search(r"^P1-P4 +(\d+) +(\d+) \(\d+%\) +\$([\d,.]+) +(\d+) \(\d+%\) +\$([\d,.]+) +(-?\d+)%$", out, re.M)
    assert row, out
    _tasks, base_ok, base_cost, routed_ok, routed_cost, saving = row.groups()
    assert int(routed_ok) >= int(base_ok)
    # The target: at least 70 % less on non-critical tasks.
    assert Decimal(routed_cost.replace(",", "")) <= Decimal("0.30") * Decimal(base_cost.replace(",", ""))
    assert int(saving) >= 70
    # Escalation happened in the routed run: tasks resolved by the 2nd, 3rd and 4th answer.
    routed = re.search(r"^routed +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)$", out, re.M)
    assert routed and int(routed[2]) > 0 and int(routed[3]) > 0 and int(routed[4]) > 0


def test_with_dir_both_workspaces_stay_and_a_second_run_starts_fresh(tmp_path: Path) -> None:
    first = demo(tmp_path, "--dir", "kept", "--tasks", "24")
    assert first.returncode == 0, first.stderr
    kept = tmp_path / "kept"
    for side in ("all-default", "routed"):
        assert (kept / side / "switchyard.toml").exists()
        assert len((kept / side / "tasks.jsonl").read_text().splitlines()) == 24
        assert (kept / side / ".switchyard" / "ledger.db").exists()
    assert f"switchyard report --config {kept / 'routed' / 'switchyard.toml'} --by model" in first.stdout
    report = subprocess.run(
        [EXE, "report", "--config", str(kept / "routed" / "switchyard.toml"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(report.stdout)
    assert data["total"]["attempts"] >= 24
    again = demo(tmp_path, "--dir", "kept", "--tasks", "24")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout  # not 48 tasks: the old ledgers were cleared


def test_a_run_that_fails_is_an_error_naming_its_side_and_log(tmp_path: Path) -> None:
    (tmp_path / "kept" / "routed").mkdir(parents=True)
    (tmp_path / "kept" / "routed" / ".switchyard").write_text("not a directory")  # the run cannot keep its state
    proc = demo(tmp_path, "--dir", "kept", "--tasks", "4")
    assert proc.returncode == 1
    assert "the routed run failed" in proc.stderr
    assert str(tmp_path / "kept" / "routed" / "run.log") in proc.stderr


def test_the_all_default_config_is_the_routed_one_without_its_rules() -> None:
    routed = loads_config(demo_config_text())
    base = loads_config(all_default_config_text())
    assert routed.routing.rules and not base.routing.rules
    assert base.routing.default_model == routed.routing.default_model
    assert base.providers == routed.providers
    assert base.config.models == routed.config.models
    assert base.coordinator == routed.coordinator
    assert base.workflows == routed.workflows == {}
    assert not routed.budgets.all_limits()  # a limit would stop whichever task came last: order-dependent


def test_demo_tasks_are_fixed_by_their_seed() -> None:
    tasks = demo_tasks(200)
    assert [t.to_dict() for t in tasks] == [t.to_dict() for t in demo_tasks(200)]
    assert {t.priority for t in tasks} == {0, 1, 2, 3, 4}
    assert len({t.id for t in tasks}) == 200
    assert any(t.metadata.get("shift") == "night" for t in tasks)


def test_a_measured_run_reads_the_fixed_clock_for_routing_prices_and_the_ledger(tmp_path: Path) -> None:
    import multiprocessing

    from switchyard.cli.demo_cmd import _measured_run
    from switchyard.demo import CLOCK
    from switchyard.ledger import Ledger

    # The demo's config plus a first rule that only the demo's instant (a Monday, 10:00 UTC) matches.
    first_rule = '[[routing.rules]]\ncondition = "weekday == \'mon\' and hour == 10"\nmodel = "gpt-5-mini"\n\n'
    text = re.sub(r"^(?=\[\[routing\.rules\]\])", lambda _: first_rule, demo_config_text(), count=1, flags=re.M)
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(text)
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a process of its own: DBOS is one per process
        assert pool.apply(_measured_run, (str(cfg), 6)) is None
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts()
    assert len(attempts) >= 6
    assert {a.started_ms for a in attempts} == {int(CLOCK.timestamp() * 1000)}
    assert {a.model for a in attempts if a.task_retry == 0} == {"gpt-5-mini"}
