"""Reports: exact figures on a hand-built ledger, windows across day edges, experiments, baseline, CLI output."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from report_ledger import D1, D2, D3, MODELS, providers, rec, report_attempts
from switchyard.catalog import CatalogModel, Rates, Usage, _Tier, _Window
from switchyard.cli import cli
from switchyard.config import loads_config
from switchyard.errors import InputError, RunError
from switchyard.ledger import AttemptRecord, Ledger
from switchyard.report import (
    BreakerOpening,
    Escalation,
    FailoverPair,
    Window,
    baseline,
    breakdown,
    experiments,
    failovers,
    jsonable,
    report,
    wilson,
)
from test_catalog import _priced_rows

CONFIG = (
    providers()
    + MODELS
    + """
[[models]]
name = "tiered"
provider = "a"
cost_per_million_input = 1.0
cost_per_million_output = 1.0
[[models.tiers]]
above_input_tokens = 1500
cost_per_million_input = 2.0
cost_per_million_output = 2.0

[routing]
default_model = "big"

[ledger]
path = "{path}"
"""
)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger.open(tmp_path / "l.db")
    for r in report_attempts():
        led.record(r)
    return led


def test_totals_and_groups_are_exact(ledger: Ledger) -> None:
    [total] = breakdown(ledger.db, Window(), ())
    # big: 1000*10 + 100*20 = 0.012 each (x3); small: 1000*1 + 100*2 = 0.0012 each (x2 ok)
    assert total.cost_usd == Decimal("0.0384")
    assert (total.attempts, total.successes, total.tasks, total.completed_tasks) == (6, 5, 5, 5)
    assert total.success_rate == round(5 / 6, 4)
    by_model = {g.key["model"]: g for g in breakdown(ledger.db, Window(), ("model",))}
    assert by_model["big"].cost_usd == Decimal("0.036") and by_model["big"].attempts == 3
    assert by_model["small"].attempts == 3 and by_model["small"].successes == 2
    assert by_model["big"].share_attempts == 0.5
    assert by_model["big"].cost_per_successful_task_usd == Decimal("0.012")
    labels = {g.key["label"]: g.attempts for g in breakdown(ledger.db, Window(), ("label",))}
    assert labels == {"bug": 5, "security": 1, "documentation": 1}
    prio = {g.key["priority"]: g.attempts for g in breakdown(ledger.db, Window(), ("priority",))}
    assert prio == {"P0": 1, "P2": 3, "P4": 2}
    days = {g.key["day"]: g.attempts for g in breakdown(ledger.db, Window(), ("day",))}
    assert days == {"2026-03-01": 2, "2026-03-02": 2, "2026-03-03": 2}


def test_latency_percentiles_are_within_five_percent(ledger: Ledger) -> None:
    [total] = breakdown(ledger.db, Window(), ())
    # latencies 1000..6000 ms: the median of six is the 3rd, 3000 ms; p95 is 6000 ms.
    assert total.latency_ms.median is not None and total.latency_ms.p95 is not None
    assert abs(total.latency_ms.median - 3000) / 3000 < 0.05
    assert abs(total.latency_ms.p95 - 6000) / 6000 < 0.05
    assert total.latency_ms.mean == 3500.0


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (D1, None, 6),
        (D1 + 500, None, 5),  # the day's first attempt is before the window (a partial day is scanned)
        (D2 - 12 * 3600_000, D3 - 12 * 3600_000, 2),  # exactly day 2 from the rollups
        (D2 + 1000, D3 + 1, 2),  # partial days at both ends
        (D2 + 1, D2 + 6000, 1),  # within one day
    ],
)
def test_windows_mix_rollups_and_scans_exactly(ledger: Ledger, since: int, until: int | None, expected: int) -> None:
    [total] = breakdown(ledger.db, Window(since, until), ())
    assert total.attempts == expected
    rows = [r for r in ledger.attempts() if r.started_ms >= since and (until is None or r.started_ms < until)]
    assert total.cost_usd == sum((r.cost_usd for r in rows), Decimal(0))


def test_failovers_and_escalations(ledger: Ledger) -> None:
    fo = failovers(ledger.db, Window())
    assert fo.failovers == (FailoverPair("b", "a", 1),)
    assert fo.escalations == (Escalation("big", 1, 1),)
    ledger.breaker_event("a", D2, "open", "3 consecutive failures")
    assert failovers(ledger.db, Window()).breaker_openings == (BreakerOpening("a", "open", 1),)


def test_baseline_reprices_recorded_tokens(ledger: Ledger, tmp_path: Path) -> None:
    loaded = loads_config(CONFIG.format(path=tmp_path / "x.db"))
    base = baseline(ledger.db, Window(), loaded.catalog["big"])
    assert base.total.actual_usd == Decimal("0.0384")
    assert base.total.baseline_usd == Decimal("0.060")  # five successful calls at 0.012
    assert base.non_critical.priority == "P1-P4"
    assert base.non_critical.saving_usd == Decimal("0.048") - Decimal("0.0264")
    assert "not a measured run" in base.note
    # A tiered baseline is priced per attempt: 1000 prompt tokens stay under the 1500 tier.
    tiered = baseline(ledger.db, Window(), loaded.catalog["tiered"])
    assert tiered.total.baseline_usd == Decimal("0.0055")


def test_experiment_statistics(ledger: Ledger) -> None:
    [exp] = experiments(ledger.db, Window())
    assert exp.experiment == "ab"
    assert [(a.arm, a.tasks, a.successes) for a in exp.arms] == [("big", 1, 1), ("small", 1, 1)]
    assert exp.warning is not None and "too few tasks" in exp.warning
    assert exp.comparison is not None and exp.comparison.p_value == 1.0


def test_wilson_interval_reference_values() -> None:
    assert wilson(0, 0) is None
    low, high = wilson(81, 263)  # a textbook example: 0.2553 to 0.3662
    assert (round(low, 3), round(high, 3)) == (0.255, 0.366)
    low, high = wilson(10, 10)
    assert (low, high) == (0.7225, 1.0)  # n / (n + z²) for all-successes


def test_report_cli_json_csv_and_text(ledger: Ledger, tmp_path: Path) -> None:
    ledger.close()
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(CONFIG.format(path=tmp_path / "l.db"))
    r = CliRunner()
    res = r.invoke(cli, ["report", "--config", str(cfg), "--by", "model", "--baseline", "big", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["total"]["cost_usd"] == "0.0384"
    assert {g["key"]["model"] for g in data["groups"]} == {"big", "small"}
    assert data["baseline"]["model"] == "big"
    res = r.invoke(cli, ["report", "--config", str(cfg), "--by", "provider", "--csv"])
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {row["provider"]: row["attempts"] for row in rows} == {"a": "3", "b": "3"}
    res = r.invoke(cli, ["report", "--config", str(cfg), "--by", "priority", "--baseline", "big"])
    assert "model distribution:" in res.stdout and "not a measured run" in res.stdout
    assert "b -> a: 1" in res.stdout
    res = r.invoke(cli, ["report", "--config", str(cfg), "--by", "modle"])
    assert res.exit_code == 2 and "did you mean 'model'" in res.stderr
    res = r.invoke(cli, ["report", "--config", str(cfg), "--baseline", "huge"])
    assert res.exit_code == 2 and "not in the catalog" in res.stderr
    res = r.invoke(cli, ["report", "--config", str(cfg), "--since", "2026-03-02T00:00:00Z", "--json"])
    assert json.loads(res.stdout)["total"]["attempts"] == 4


def test_report_of_an_empty_ledger(tmp_path: Path) -> None:
    led = Ledger.open(tmp_path / "e.db")
    data = report(led.db, Window(), ("model",))
    assert data.total is None and data.groups == () and data.experiments == ()
    assert jsonable(data)["groups"] == [] and "baseline" not in jsonable(data)


def test_report_on_postgresql(pg_url: str) -> None:
    with Ledger.open(pg_url) as led:
        for r in [
            rec(0, D1, "big"),
            rec(1, D2, "small", labels=("docs", "bug")),
            rec(2, D3, "big", status="failed", completed=False),
        ]:
            led.record(r)
        data = report(led.db, Window(D1 + 1, None), ("label",))
        assert data.total is not None and data.total.attempts == 2
        assert {g.key["label"]: g.attempts for g in data.groups} == {"bug": 2, "docs": 1}
        by_day = {g.key["day"]: g.attempts for g in breakdown(led.db, Window(), ("day",))}
        assert by_day == {"2026-03-01": 1, "2026-03-02": 1, "2026-03-03": 1}


def test_json_matches_the_golden_file(tmp_path: Path) -> None:
    """`report --json` and the dashboard endpoints keep their shape and figures, key order included.

    tests/data/report_golden.json was written by the switchyard of 45f5329 (dicts read by key),
    before reports became typed records; tests/data/make_report_golden.py rebuilds the same data.
    """
    path = Path(__file__).parent / "data" / "make_report_golden.py"
    spec = importlib.util.spec_from_file_location("make_report_golden", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    golden = json.loads((path.parent / "report_golden.json").read_text())
    built = module.build(tmp_path)
    assert list(built) == list(golden)
    for name, data in golden.items():
        assert built[name] == data, name
        assert json.dumps(built[name]) == json.dumps(data), f"{name}: same figures, other key order"


# --------------------------------------------------------------------------- re-pricing on another model
def _clear(led: Ledger) -> None:
    for table in ("attempts", "rollup_attempts", "rollup_latency", "rollup_labels", "rollup_failovers"):
        led.db.execute(f"DELETE FROM {table}")


def _record_priced(led: Ledger, rows: list[tuple[Usage, int]], priorities: list[int | None]) -> None:
    with led.db.transaction():
        led.record_many(
            AttemptRecord(
                f"r-{i}",
                f"t-{i}",
                "a",
                "big",
                "ok",
                ms,
                ms + 1,
                priority=priorities[i % len(priorities)],
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cache_read_tokens,
                cache_write_tokens=u.cache_write_tokens,
                reasoning_tokens=u.reasoning_tokens,
            )
            for i, (u, ms) in enumerate(rows)
        )


@pytest.fixture
def pricing_ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url) as led:
        yield led


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_priced_rows(), priorities=st.lists(st.sampled_from([None, 0, 1, 2, 4]), min_size=1, max_size=4))
def test_baseline_equals_the_python_cost_of_every_attempt(
    pricing_ledger: Ledger, case: tuple[CatalogModel, list[tuple[Usage, int]]], priorities: list[int | None]
) -> None:
    """`--baseline` (SQL for tiered and off-peak models, rollups otherwise) sums exactly what `cost()` charges."""
    model, rows = case
    _clear(pricing_ledger)
    _record_priced(pricing_ledger, rows, priorities)
    expected: dict[str, Decimal] = {}
    for i, (usage, ms) in enumerate(rows):
        prio = priorities[i % len(priorities)]
        label = "unknown" if prio is None else f"P{prio}"
        cost = model.cost(usage, datetime.fromtimestamp(ms / 1000, UTC))
        expected[label] = expected.get(label, Decimal(0)) + cost
    base = baseline(pricing_ledger.db, Window(), model)
    assert {c.priority: c.baseline_usd for c in base.by_priority} == expected
    assert base.total.baseline_usd == sum(expected.values(), Decimal(0))
    # Over a window with partial days at both ends too.
    since, until = min(ms for _, ms in rows), max(ms for _, ms in rows) + 1
    assert baseline(pricing_ledger.db, Window(since, until), model).total.baseline_usd == base.total.baseline_usd


def _flat(rate: str) -> Rates:
    return Rates(*(Decimal(rate),) * 5)


def test_baseline_overlapping_windows_price_like_the_runner(ledger_url: str) -> None:
    """Two open windows: the first one's rates apply, as in `cost()` (the SQL used to take the last one's)."""
    model = CatalogModel(
        "m", "p", _flat("3"), frozenset(), off_peak=(_Window(600, 720, _flat("2")), _Window(0, 0, _flat("1")))
    )
    with Ledger.open(ledger_url) as led:
        _record_priced(led, [(Usage(1_000_000), D1 - 90 * 60_000)], [2])  # 10:30 UTC: both windows are open
        assert baseline(led.db, Window(), model).total.baseline_usd == Decimal(2)
        # With a window (and so query parameters): the SQL's `%` used to break psycopg.
        assert baseline(led.db, Window(D1 - 86_400_000, D1), model).total.baseline_usd == Decimal(2)


def test_baseline_rates_finer_than_a_picodollar_per_token(ledger_url: str) -> None:
    """Rates are not truncated to whole picodollars per token (they were: 0.0000005/M priced as zero)."""
    model = CatalogModel("m", "p", _flat("0.0000005"), frozenset(), tiers=(_Tier(10**9, _flat("1")),))
    with Ledger.open(ledger_url) as led:
        _record_priced(led, [(Usage(3_000_000), D1)], [2])
        assert baseline(led.db, Window(), model).total.baseline_usd == Decimal("0.0000015")
        assert baseline(led.db, Window(), replace(model, tiers=())).total.baseline_usd == Decimal("0.0000015")


def test_baseline_that_overflows_integers_says_so(ledger_url: str) -> None:
    model = CatalogModel("m", "p", _flat("100.000000001"), frozenset(), tiers=(_Tier(10**12, _flat("1")),))
    with Ledger.open(ledger_url) as led:
        _record_priced(led, [(Usage(200_000_000), D1)], [2])
        with pytest.raises(RunError, match="re-pricing on m does not fit 64-bit integers"):
            baseline(led.db, Window(), model)


def test_label_with_a_dimension_labels_are_not_rolled_up_by(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match="--by label cannot be combined with --by provider: labels are rolled up by model, day only"
    ):
        breakdown(ledger.db, Window(), ("label", "provider"))
    assert {tuple(g.key.values()) for g in breakdown(ledger.db, Window(), ("label", "model"))} >= {("bug", "big")}
    ledger.close()
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(CONFIG.format(path=tmp_path / "l.db"))
    res = CliRunner().invoke(cli, ["report", "--config", str(cfg), "--by", "label", "--by", "stage"])
    assert res.exit_code == 2 and "cannot be combined with --by stage" in res.stderr
