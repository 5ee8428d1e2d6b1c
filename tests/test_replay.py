"""Replay: the outcomes table and its errors, the ledger importer, the real router's escalation against
a table, the verifier model, simulated budgets, workflow stages, reference policies, the CLI and the chart."""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from switchyard.cli import cli
from switchyard.config import loads_config
from switchyard.errors import InputError
from switchyard.ledger import AttemptRecord, Ledger
from switchyard.replay.engine import (
    Replayer,
    Verifier,
    map_models,
    model_slug,
    oracle,
    oracle_frontier,
    single_model,
)
from switchyard.replay.outcomes import (
    OutcomeTable,
    load_outcomes,
    outcomes_from_ledger,
    parse_outcomes,
    write_outcomes,
)
from switchyard.replay.plot import PlotPoint, cost_quality_svg

# The public SWE-bench outcome table, beside the repository (or its worktrees' folder); never copied in.
_REPO = Path(__file__).resolve().parents[1]
SHARED = next(
    (
        p
        for base in (_REPO.parent, _REPO.parent.parent)
        if (p := base / "shared" / "data" / "swebench-verified-bash-only.csv").exists()
    ),
    _REPO.parent / "shared" / "data" / "swebench-verified-bash-only.csv",
)


def csv_text(rows: list[dict[str, object]]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in cols})
    return buf.getvalue()


def outcome(task: str, model: str, resolved: bool, cost: str, **extra: object) -> dict[str, object]:
    return {"task_id": task, "model": model, "resolved": int(resolved), "cost_usd": cost, **extra}


# t1: cheap resolves. t2: mid. t3: only big. t4: nobody.
LADDER_ROWS = [
    outcome("t1", "cheap", True, "0.01"),
    outcome("t1", "mid", False, "0.1"),
    outcome("t1", "big", True, "1"),
    outcome("t2", "cheap", False, "0.02"),
    outcome("t2", "mid", True, "0.2"),
    outcome("t2", "big", True, "2"),
    outcome("t3", "cheap", False, "0.03"),
    outcome("t3", "mid", False, "0.3"),
    outcome("t3", "big", True, "3"),
    outcome("t4", "cheap", False, "0.04"),
    outcome("t4", "mid", False, "0.4"),
    outcome("t4", "big", False, "4"),
]

MODELS = """
[providers.local]
kind = "simulated"
[providers.remote]
kind = "simulated"

[[models]]
name = "cheap"
provider = "local"
[[models]]
name = "mid"
provider = "local"
[[models]]
name = "big"
provider = "remote"
"""

LADDER = (
    MODELS
    + """
[coordinator]
max_attempts = {attempts}

[routing]
default_model = "cheap"
[[routing.rules]]
condition = "retry_count >= 2"
model = "big"
[[routing.rules]]
condition = "retry_count >= 1"
model = "mid"
"""
)


def table(rows: list[dict[str, object]] | None = None, *, fmt: str = "csv") -> object:
    rows = rows if rows is not None else LADDER_ROWS
    if fmt == "csv":
        return parse_outcomes(csv_text(rows), fmt="csv", source="t.csv")
    text = "".join(json.dumps(r) + "\n" for r in rows)
    return parse_outcomes(text, fmt="jsonl", source="t.jsonl")


# ----------------------------------------------------------------------------- the table
def test_csv_and_jsonl_give_the_same_table_with_exact_costs() -> None:
    rows = [
        outcome(
            "a",
            "m1",
            True,
            "0.22785100000000003",
            priority="P0",
            labels="bug;ui",
            title="Fix it",
            submitted_at="2025-03-01T23:30:00Z",
            input_tokens=100,
            output_tokens=20,
            latency_ms=1500,
            api_calls=7,
            **{"meta.repo": "x/y"},
        ),
        outcome("a", "m2", False, "1.5", priority="0", labels="bug;ui"),
        outcome("b", "m1", False, "0"),
    ]
    from_csv = table(rows)
    jrows = [dict(r) for r in rows]
    for r in jrows:
        if "labels" in r:
            r["labels"] = str(r["labels"]).split(";")
    from_jsonl = parse_outcomes("".join(json.dumps(r) + "\n" for r in jrows), fmt="jsonl", source="t.jsonl")
    for t in (from_csv, from_jsonl):
        o = t.get("a", "m1")
        assert o is not None and o.resolved and o.cost_usd == Decimal("0.22785100000000003")
        assert (o.input_tokens, o.output_tokens, o.total_tokens, o.latency_ms, o.api_calls) == (100, 20, 120, 1500, 7)
        assert t.get("b", "m2") is None
        assert t.models == ("m1", "m2") and t.task_ids == ("a", "b")
        a = t.tasks[0]
        assert (a.priority, a.labels, a.title, dict(a.metadata)) == (0, ("bug", "ui"), "Fix it", {"repo": "x/y"})
        assert t.submitted["a"] == datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
        assert t.tasks[1].priority == 2 and t.has_priority and t.has_labels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task_id,model,cost_usd\na,m,1\n", "t.csv:1: missing column(s) resolved"),
        ("task_id,modle,resolved,cost_usd\na,m,1,1\n", "unknown column 'modle' (did you mean 'model'?)"),
        ("task_id,model,resolved,cost_usd\na,m,maybe,1\n", "t.csv:2: resolved: expected 1/0, true/false or yes/no"),
        ("task_id,model,resolved,cost_usd\na,m,1,-2\n", "t.csv:2: cost_usd: must not be negative"),
        ("task_id,model,resolved,cost_usd\na,m,1,abc\n", "t.csv:2: cost_usd: expected a number of dollars"),
        ("task_id,model,resolved,cost_usd\na,m,1,NaN\n", "t.csv:2: cost_usd: expected a finite number"),
        ("task_id,model,resolved,cost_usd\n\na,m,1,1\na,m,0,2\n", "t.csv:4: a second row for task 'a' and model 'm'"),
        ("task_id,model,resolved,cost_usd\na,m,1\n", "t.csv:2: 3 fields, but the header has 4"),
        ("task_id,model,resolved,cost_usd\n,m,1,1\n", "t.csv:2: task_id: missing"),
        ("task_id,model,resolved,cost_usd,priority\na,m,1,1,7\n", "t.csv:2: priority: priority must be between 0"),
        ("task_id,model,resolved,cost_usd,api_calls\na,m,1,1,2.5\n", "t.csv:2: api_calls: expected a non-negative"),
        ("task_id,model,resolved,verified,cost_usd\na,m,1,1,1\n", "both 'resolved' and 'verified' are given"),
        ("task_id,model,resolved,cost_usd,model\na,m,1,1,m\n", "column 'model' appears twice"),
        ("", "empty file"),
        ("task_id,model,resolved,cost_usd\n", "no outcome rows"),
        (
            "task_id,model,resolved,cost_usd,priority\na,m,1,1,0\na,n,1,1,1\n",
            "t.csv:3: priority: 1 disagrees with 0 at t.csv:2 for task 'a'",
        ),
        (
            "task_id,model,resolved,cost_usd,submitted_at\na,m,1,1,yesterday\n",
            "t.csv:2: submitted_at: expected an ISO 8601 time",
        ),
        ("task_id,model,resolved,cost_usd,metadata\na,m,1,1,[1]\n", "t.csv:2: metadata: expected a JSON object"),
    ],
)
def test_bad_csv_is_a_located_input_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_outcomes(text, fmt="csv", source="t.csv")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"task_id": "a", "model": "m", "resolved": 1, "cost_usd": 1}\n{"task_id": "b",\n', "t.jsonl:2:"),
        ("[1, 2]\n", "t.jsonl:1: expected a JSON object per line, got list"),
        ('{"task_id": "a", "model": "m", "resolved": 1, "cost_usd": 1, "labels": "x", "tokns": 1}\n', "'tokns'"),
        ('{"task_id": "a", "model": "m", "resolved": 2, "cost_usd": 1}\n', "t.jsonl:1: resolved: expected 1/0"),
        ('{"task_id": "a", "model": "m", "resolved": true, "cost_usd": 1, "labels": [1]}\n', "labels[0]"),
        ('{"task_id": true, "model": "m", "resolved": true, "cost_usd": 1}\n', "task_id: expected a string"),
    ],
)
def test_bad_jsonl_is_a_located_input_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_outcomes(text, fmt="jsonl", source="t.jsonl")
    assert message in str(err.value)


def test_load_outcomes_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="outcomes file not found"):
        load_outcomes(tmp_path / "nope.csv")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(InputError, match=r"use a \.csv or \.jsonl file"):
        load_outcomes(tmp_path / "t.txt")
    (tmp_path / "bin.csv").write_bytes(b"task_id,model\n\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8"):
        load_outcomes(tmp_path / "bin.csv")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_write_then_read_is_the_same_table(tmp_path: Path, fmt: str) -> None:
    rows = [
        outcome("a", "m1", True, "0.125", priority=1, labels="x;y", stage="plan", submitted_at="2025-01-01T00:00:00Z"),
        outcome("a", "m1", False, "0.5", priority=1, labels="x;y", stage="review"),
        outcome("b", "m2", False, "3", priority=3, **{"meta.k": "v"}),
    ]
    original = table(rows)
    path = tmp_path / f"out.{fmt}"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        write_outcomes(original, fh, fmt=fmt)
    again = load_outcomes(path)
    assert [o._replace(where="") for o in again] == [o._replace(where="") for o in original]
    assert again.tasks == original.tasks and again.submitted == original.submitted
    assert again.stages == {"plan", "review", ""}


# ----------------------------------------------------------------------------- from the ledger
def _attempt(aid: str, task: str, model: str, status: str, cost: str, started: int, **kw: object) -> AttemptRecord:
    return AttemptRecord(
        attempt_id=aid,
        task_id=task,
        provider="p",
        model=model,
        status=status,
        started_ms=started,
        ended_ms=started + 100,
        cost_usd=Decimal(cost),
        input_tokens=10,
        cache_read_tokens=5,
        output_tokens=3,
        latency_ms=100,
        **kw,  # type: ignore[arg-type]
    )


def test_ledger_importer_one_row_per_task_stage_and_model(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.add_task("t1", json.dumps({"id": "t1", "title": "T one", "priority": 0, "labels": ["bug"]}), "f", 1000)
        for rec in (
            _attempt("t1:-:a0", "t1", "cheap", "failed", "0.01", 2000, error_class="server_error"),
            _attempt("t1:-:a1", "t1", "cheap", "ok", "0.02", 3000),
            _attempt("t1:-:a2", "t1", "big", "interrupted", "0.5", 4000),
            _attempt("t2:-:a0", "t2", "big", "failed", "1.25", 5000, priority=3, labels=("docs",)),
            _attempt("t2:plan:a0", "t2", "big", "ok", "0.75", 6000, priority=3, labels=("docs",), stage="plan"),
        ):
            ledger.record(rec)
        t = outcomes_from_ledger(ledger)
    one = t.get("t1", "cheap")
    assert one is not None and one.resolved and one.cost_usd == Decimal("0.03") and one.api_calls == 2
    assert (one.input_tokens, one.output_tokens, one.latency_ms) == (30, 6, 200)
    assert t.get("t1", "big") is None  # interrupted attempts are not outcomes
    two = t.get("t2", "big")
    assert two is not None and not two.resolved and two.cost_usd == Decimal("1.25")
    plan = t.get("t2", "big", "plan")
    assert plan is not None and plan.resolved
    by_id = {x.id: x for x in t.tasks}
    assert (by_id["t1"].title, by_id["t1"].priority, by_id["t1"].labels) == ("T one", 0, ("bug",))
    assert (by_id["t2"].priority, by_id["t2"].labels) == (3, ("docs",))
    assert t.submitted["t1"] == datetime.fromtimestamp(1, UTC) and t.submitted["t2"] == datetime.fromtimestamp(5, UTC)


def test_ledger_importer_errors(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        with pytest.raises(InputError, match="no attempts recorded"):
            outcomes_from_ledger(ledger)
        with pytest.raises(InputError, match="--success bogus: unknown; choose one of ok, verified"):
            outcomes_from_ledger(ledger, success="bogus")


def test_ledger_importer_counts_verified_outcomes(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        for rec in (
            # [verify] rejected cheap's change and verified big's
            _attempt("t1:-:a0", "t1", "cheap", "rejected", "0.01", 2000, verdict="rejected", verify_check="tests"),
            _attempt("t1:-:a1", "t1", "big", "ok", "0.20", 3000, verdict="verified"),
            # a check could not run: not resolved, whatever the agent did
            _attempt("t2:-:a0", "t2", "cheap", "failed", "0.01", 4000, verdict="error", verify_check="lint"),
            # nothing judged it (a plan stage; a ledger from before [verify]): ok counts
            _attempt("t3:plan:a0", "t3", "cheap", "ok", "0.01", 5000, stage="plan"),
        ):
            ledger.record(rec)
        verified = outcomes_from_ledger(ledger)
        ok = outcomes_from_ledger(ledger, success="ok")
    cells = [("t1", "cheap", None), ("t1", "big", None), ("t2", "cheap", None), ("t3", "cheap", "plan")]

    def resolved(t: OutcomeTable) -> list[bool]:
        found = [t.get(task, model, stage) if stage else t.get(task, model) for task, model, stage in cells]
        return [o is not None and o.resolved for o in found]

    assert resolved(verified) == [False, True, False, True]
    assert resolved(ok) == resolved(verified)  # a rejected attempt is recorded "rejected", never "ok"


# ----------------------------------------------------------------------------- the replay
def test_the_ladder_escalates_on_failed_outcomes_up_to_max_attempts() -> None:
    t = table()
    res = Replayer(loads_config(LADDER.format(attempts=3)), t).run()
    by = {r.task_id: r for r in res.tasks}
    assert [(by[k].status, by[k].attempts, by[k].cost_usd, by[k].models) for k in ("t1", "t2", "t3", "t4")] == [
        ("resolved", 1, Decimal("0.01"), ("cheap",)),
        ("resolved", 2, Decimal("0.22"), ("cheap", "mid")),
        ("resolved", 3, Decimal("3.33"), ("cheap", "mid", "big")),
        ("failed", 3, Decimal("4.44"), ("cheap", "mid", "big")),
    ]
    s = res.summary
    assert (s.tasks, s.resolved, s.failed, s.attempts, s.cost_usd) == (4, 3, 1, 9, Decimal("8.00"))
    two = Replayer(loads_config(LADDER.format(attempts=2)), t).run().summary
    assert (two.resolved, two.attempts, two.cost_usd) == (2, 7, Decimal("0.01") + Decimal("0.22") + Decimal("0.77"))


def test_a_model_without_an_outcome_is_reported_not_guessed() -> None:
    rows = [r for r in LADDER_ROWS if not (r["task_id"] == "t3" and r["model"] == "big")]
    res = Replayer(loads_config(LADDER.format(attempts=3)), table(rows)).run()
    t3 = next(r for r in res.tasks if r.task_id == "t3")
    assert t3.status == "missing" and t3.attempts == 2 and "no outcome for 'big'" in (t3.note or "")
    assert res.summary.missing == 1 and res.summary.resolved == 2
    assert any("no outcome for 'big': 1 task(s)" in n for n in res.notes)


def test_config_models_map_to_table_models() -> None:
    assert map_models(["cheap", "Big-Model", "other"], ["cheap", "big model"], {}) == {
        "cheap": "cheap",
        "Big-Model": "big model",
        "other": None,
    }
    assert map_models(["x"], ["cheap"], {"x": "cheap"}) == {"x": "cheap"}
    with pytest.raises(InputError, match="'chepa' is not a model in the outcomes table"):
        map_models(["x"], ["cheap"], {"x": "chepa"})
    with pytest.raises(InputError, match="matches several table models"):
        map_models(["a-b"], ["A b", "a.b"])
    assert model_slug("Claude 4.5 Opus (2025-11-01)") == "claude-4-5-opus-2025-11-01"
    renamed = [{**r, "model": {"cheap": "Cheap One"}.get(str(r["model"]), r["model"])} for r in LADDER_ROWS]
    res = Replayer(loads_config(LADDER.format(attempts=3)), table(renamed)).run()
    assert res.summary.missing == 4 and "matches no table model (use --map cheap=TABLE_MODEL)" in res.notes[0]
    mapped = Replayer(loads_config(LADDER.format(attempts=3)), table(renamed), model_map={"cheap": "Cheap One"}).run()
    assert mapped.summary.resolved == 3


def test_a_config_model_names_its_table_model_with_outcome_model() -> None:
    renamed = [{**r, "model": {"cheap": "Cheap One (2025)"}.get(str(r["model"]), r["model"])} for r in LADDER_ROWS]
    named = LADDER.format(attempts=3).replace(
        'name = "cheap"\nprovider = "local"', 'name = "cheap"\nprovider = "local"\noutcome_model = "Cheap One (2025)"'
    )
    assert Replayer(loads_config(named), table(renamed)).run().summary.resolved == 3
    # --map wins over the config's own name (here: pointing cheap at the big model's outcomes).
    over = Replayer(loads_config(named), table(renamed), model_map={"cheap": "big"}).run()
    assert over.tasks[2].models[0] == "cheap" and over.summary.cost_usd > Decimal(5)
    wrong = named.replace('outcome_model = "Cheap One (2025)"', 'outcome_model = "Cheap One (2026)"')
    with pytest.raises(InputError) as err:
        Replayer(loads_config(wrong, "c.toml"), table(renamed))
    assert str(err.value) == (
        "c.toml: model 'cheap' has outcome_model = 'Cheap One (2026)', which is not a model in the outcomes table"
        " (did you mean 'Cheap One (2025)'?); fix it, or override it with --map cheap=TABLE_MODEL"
    )


def test_verifier_extremes_false_pass_ends_the_task_and_a_miss_escalates() -> None:
    cfg = loads_config(LADDER.format(attempts=3))
    fooled = Replayer(cfg, table(), verifier=Verifier(1, 1)).run()  # every attempt passes
    by = {r.task_id: r for r in fooled.tasks}
    assert [by[k].status for k in ("t1", "t2", "t3", "t4")] == ["resolved", "false_pass", "false_pass", "false_pass"]
    assert fooled.summary.resolved == 1 and fooled.summary.false_pass == 3 and fooled.summary.attempts == 4
    assert fooled.summary.cost_usd == Decimal("0.10")  # paid for, believed done, not resolved
    blind = Replayer(cfg, table(), verifier=Verifier(0, 0)).run()  # nothing ever passes
    assert blind.summary.resolved == 0 and blind.summary.failed == 4 and blind.summary.attempts == 12


def test_verifier_draws_are_seeded_and_shared_across_configs() -> None:
    rows = [outcome(f"t{i}", "m", i % 2 == 0, "1") for i in range(200)]
    cfg = loads_config(
        '[providers.p]\nkind = "simulated"\n[[models]]\nname = "m"\nprovider = "p"\n'
        '[coordinator]\nmax_attempts = 1\n[routing]\ndefault_model = "m"\n'
    )
    runs = [Replayer(cfg, table(rows), verifier=Verifier("0.5", "0.25", seed)).run().summary for seed in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    s = runs[0]
    assert 25 <= s.resolved <= 75 and 5 <= s.false_pass <= 45  # 100 resolvable at 0.5, 100 not at 0.25
    with pytest.raises(InputError, match=r"--verifier-recall 1\.5: expected a number between 0 and 1"):
        Verifier("1.5")


BUDGET = (
    MODELS
    + """
[coordinator]
max_attempts = 2

[routing]
default_model = "big"
[[routing.rules]]
condition = "budget.day.fraction >= 0.5"
model = "cheap"
reason = "half the day's budget is gone"
[[routing.rules]]
condition = "true"
model = "big"
fallbacks = ["mid"]

[budgets]
{limits}
"""
)


def test_budget_facts_route_and_block_stops_the_task() -> None:
    rows = [
        outcome(f"t{i}", m, m == "big", c) for i in range(4) for m, c in (("big", "3"), ("mid", "1"), ("cheap", "1"))
    ]
    res = Replayer(loads_config(BUDGET.format(limits="daily_usd = 7")), table(rows)).run()
    assert [(r.status, r.models) for r in res.tasks] == [
        ("resolved", ("big",)),
        ("resolved", ("big",)),  # $6 of $7 spent: the rules now see fraction >= 0.5
        ("blocked", ("cheap",)),  # cheap fails ($7 spent); its second attempt would pass the limit
        ("blocked", ()),
    ]
    assert res.summary.cost_usd == Decimal(7) and res.summary.blocked == 2


def test_budget_downgrade_walks_the_route_candidates() -> None:
    limits = '[[budgets.limits]]\nscope = "provider:remote"\nperiod = "day"\nlimit_usd = 3\non_exceed = "downgrade"'
    rows = [outcome(f"t{i}", m, True, c) for i in range(3) for m, c in (("big", "3"), ("mid", "1"), ("cheap", "1"))]
    res = Replayer(loads_config(BUDGET.format(limits=limits)), table(rows)).run()
    # t0 spends remote's $3 on big; then big is refused and the rule's fallback mid takes the task.
    assert [r.models for r in res.tasks] == [("big",), ("mid",), ("mid",)]
    assert res.summary.cost_usd == Decimal(5)


def test_budget_periods_follow_submitted_at() -> None:
    rows = [
        outcome("a", "big", True, "3", submitted_at="2025-01-01T10:00:00Z"),
        outcome("b", "big", True, "3", submitted_at="2025-01-02T10:00:00Z"),
        outcome("c", "big", True, "3", submitted_at="2025-01-01T11:00:00Z"),
    ]
    cfg = loads_config(BUDGET.format(limits="daily_usd = 5").replace("budget.day.fraction >= 0.5", "false"))
    res = Replayer(cfg, table(rows)).run()
    assert [(r.task_id, r.status) for r in res.tasks] == [("a", "resolved"), ("b", "resolved"), ("c", "blocked")]


WORKFLOW = (
    MODELS
    + """
[coordinator]
max_attempts = 2

[routing]
default_model = "cheap"
[[routing.rules]]
condition = "labels contains 'flow'"
workflow = "std"
[[routing.rules]]
condition = "stage == 'build' and retry_count >= 1"
model = "big"

[workflows.std]
stages = [
  { name = "plan", model = "mid" },
  { name = "build", route = true },
  { name = "review", model = "big" },
]
"""
)


def test_workflow_stages_replay_where_the_table_has_them() -> None:
    rows = [
        outcome("w", "mid", True, "0.5", stage="plan", labels="flow"),
        outcome("w", "cheap", False, "0.1", stage="build", labels="flow"),
        outcome("w", "big", True, "2", stage="build", labels="flow"),
        outcome("x", "cheap", True, "0.1", stage="build", labels="flow"),
        outcome("y", "cheap", True, "0.1"),
    ]
    res = Replayer(loads_config(WORKFLOW), table(rows)).run()
    by = {r.task_id: r for r in res.tasks}
    # w: plan passes, build escalates to big (retry_count 1), review has no rows anywhere: skipped.
    assert (by["w"].status, by["w"].models, by["w"].cost_usd) == ("resolved", ("mid", "cheap", "big"), Decimal("2.6"))
    # x: the plan stage has rows in the table but none for x and mid.
    assert by["x"].status == "missing" and "no outcome for 'mid' at stage 'plan'" in (by["x"].note or "")
    assert by["y"].status == "resolved"  # no workflow: the stage-less row
    assert any("stage 'review' has no rows in the table" in n for n in res.notes)
    flat = Replayer(loads_config(WORKFLOW), table(rows), workflows=False).run()
    assert {r.task_id: r.status for r in flat.tasks} == {"w": "missing", "x": "missing", "y": "resolved"}


def test_a_workflow_with_no_stage_in_the_table_says_so() -> None:
    rows = [outcome("w", "cheap", True, "0.1", labels="flow")]
    res = Replayer(loads_config(WORKFLOW), table(rows)).run()
    assert res.tasks[0].status == "missing" and "try --no-workflows" in (res.tasks[0].note or "")


def test_the_router_sees_the_task_time_priority_labels_and_disabled_providers() -> None:
    disabled = MODELS.replace(
        '[providers.remote]\nkind = "simulated"', '[providers.remote]\nkind = "simulated"\nenabled = false'
    )
    cfg = loads_config(
        disabled
        + """
[routing]
default_model = "cheap"
timezone = "UTC"
[[routing.rules]]
condition = "hour >= 22"
model = "mid"
[[routing.rules]]
condition = "priority == 0 or labels contains 'hard'"
model = "big"
fallbacks = ["mid"]
"""
    )
    rows = [
        outcome("night", "mid", True, "1", submitted_at="2025-01-01T23:00:00+00:00"),
        outcome("p0", "mid", True, "2", priority=0),  # no time: the replay's clock, noon
        outcome("day", "cheap", True, "3", submitted_at="2025-01-01T09:00:00Z"),
    ]
    res = Replayer(cfg, table(rows), now=datetime(2025, 1, 1, 12, tzinfo=UTC)).run()
    assert [r.models for r in res.tasks] == [("mid",), ("mid",), ("cheap",)]  # big's provider is disabled


def test_reference_policies() -> None:
    t = table()
    big = single_model(t, "big")
    assert (big.summary.resolved, big.summary.cost_usd, big.summary.attempts) == (3, Decimal(10), 4)
    o = oracle(t)
    assert (o.summary.resolved, o.summary.cost_usd) == (3, Decimal("3.21"))
    assert [r.models for r in o.tasks] == [("cheap",), ("mid",), ("big",), ()]
    assert oracle_frontier(t) == [(Decimal(0), 0), (Decimal("0.01"), 1), (Decimal("0.21"), 2), (Decimal("3.21"), 3)]
    part = single_model(table(LADDER_ROWS[:4]), "big")
    assert part.summary.missing == 1 and part.notes == ("no outcome for 1 task(s)",)


def test_breakdown_by_priority_and_label() -> None:
    rows = [{**r, "priority": 0 if r["task_id"] in ("t1", "t3") else 3} for r in LADDER_ROWS]
    rows = [{**r, "labels": "docs" if r["task_id"] == "t2" else ""} for r in rows]
    res = Replayer(loads_config(LADDER.format(attempts=3)), table(rows)).run()
    assert set(res.groups) == {"priority:0", "priority:3", "label:docs"}
    p0 = res.groups["priority:0"]
    assert (p0.tasks, p0.resolved, p0.cost_usd) == (2, 2, Decimal("3.34"))
    assert res.groups["label:docs"].cost_usd == Decimal("0.22")


# ----------------------------------------------------------------------------- the chart
def test_chart_is_deterministic_self_contained_svg() -> None:
    points = [
        PlotPoint("A & <B>", "model", Decimal("10"), 0.5),
        PlotPoint("C", "model", Decimal("400"), 0.7),
        PlotPoint("my.toml", "config", Decimal("50"), 0.75),
        PlotPoint("oracle", "oracle", Decimal("20"), 0.9),
    ]
    frontier = [(Decimal(0), 0.0), (Decimal(1), 0.1), (Decimal(20), 0.9)]
    svg = cost_quality_svg(points, frontier=frontier)
    assert svg == cost_quality_svg(points, frontier=frontier)
    root = ET.fromstring(svg)
    texts = "".join(root.itertext())
    assert "A &amp; <B>" not in svg and "A & <B>" in texts and "my.toml" in texts and "(log scale)" in texts
    assert "<script" not in svg and "href" not in svg


# ----------------------------------------------------------------------------- the command
def _files(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "o.csv"
    out.write_text(csv_text([{**r, "priority": 1} for r in LADDER_ROWS]))
    cfg = tmp_path / "ladder.toml"
    cfg.write_text(LADDER.format(attempts=3))
    return out, cfg


def test_cli_replay_text_json_csv_and_plot(tmp_path: Path) -> None:
    out, cfg = _files(tmp_path)
    runner = CliRunner()
    r = runner.invoke(cli, ["replay", "--outcomes", str(out), "--config", str(cfg), "--plot", str(tmp_path / "c.svg")])
    assert r.exit_code == 0, r.output
    assert "ladder.toml (config)" in r.output and "3/4" in r.output and "oracle (cheapest resolver)" in r.output
    assert "priority:1" in r.output
    ET.parse(tmp_path / "c.svg")
    j = runner.invoke(cli, ["replay", "--outcomes", str(out), "--config", str(cfg), "--json", "--tasks"])
    data = json.loads(j.output)
    first = data["policies"][0]
    assert (first["name"], first["resolved"], first["cost_usd"], len(first["tasks"])) == ("ladder.toml", 3, "8.00", 4)
    assert [p["kind"] for p in data["policies"]] == ["config", "oracle", "model", "model", "model"]
    c = runner.invoke(cli, ["replay", "--outcomes", str(out), "--config", str(cfg), "--csv"])
    rows = list(csv.DictReader(io.StringIO(c.output)))
    assert rows[0]["policy"] == "ladder.toml" and rows[0]["group"] == "all" and rows[0]["cost_usd"] == "8.00"
    assert rows[1]["group"] == "priority:1"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--json", "--csv"], "--json and --csv cannot be combined"),
        (["--map", "nope=big"], "no config given has a model named 'nope'"),
        (["--map", "cheap"], "expected CONFIG_MODEL=TABLE_MODEL"),
        (["--map", "cheap=bgi"], "'bgi' is not a model in the outcomes table (did you mean 'big'?)"),
        (["--verifier-recall", "2"], "--verifier-recall 2: expected a number between 0 and 1"),
        (["--now", "noon"], "--now noon: expected an ISO 8601 time"),
        (["--plot", "/nonexistent/dir/c.svg"], "--plot /nonexistent/dir/c.svg: cannot write"),
    ],
)
def test_cli_replay_bad_input_exits_2(tmp_path: Path, extra: list[str], message: str) -> None:
    out, cfg = _files(tmp_path)
    r = CliRunner().invoke(cli, ["replay", "--outcomes", str(out), "--config", str(cfg), *extra])
    assert r.exit_code == 2 and message in r.output, r.output


def test_cli_replay_bad_table_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("task_id,model,resolved,cost_usd\na,m,1,1\na,m,1,x\n")
    r = CliRunner().invoke(cli, ["replay", "--outcomes", str(bad)])
    assert r.exit_code == 2 and f"{bad}:3: cost_usd" in r.output


def test_cli_replay_warns_about_missing_outcomes(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    out.write_text(csv_text(LADDER_ROWS[:4]))  # t2 has no row for mid
    cfg = tmp_path / "ladder.toml"
    cfg.write_text(LADDER.format(attempts=3))
    r = CliRunner().invoke(cli, ["replay", "--outcomes", str(out), "--config", str(cfg)])
    assert r.exit_code == 0 and "routed to a model with no outcome" in r.output


def test_cli_outcomes_exports_the_ledger(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(LADDER.format(attempts=3))
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        ledger.record(_attempt("a0", "t1", "cheap", "failed", "0.01", 1000))
        ledger.record(_attempt("a1", "t1", "mid", "ok", "0.1", 2000))
    runner = CliRunner()
    r = runner.invoke(cli, ["outcomes", "--config", str(cfg), "--out", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 0, r.output
    t = load_outcomes(tmp_path / "o.jsonl")
    assert [(o.model, o.resolved) for o in t] == [("cheap", False), ("mid", True)]
    r = runner.invoke(cli, ["replay", "--outcomes", str(tmp_path / "o.jsonl"), "--config", str(cfg)])
    assert r.exit_code == 0 and "1/1" in r.output
    r = runner.invoke(cli, ["outcomes", "--config", str(cfg)])
    assert r.output.splitlines()[0].startswith("task_id,model,resolved,cost_usd")


# ----------------------------------------------------------------------------- the public table, if present
@pytest.mark.skipif(not SHARED.exists(), reason="the SWE-bench outcomes table is not on this machine")
def test_swebench_anchor_figures() -> None:
    t = load_outcomes(SHARED)
    opus = single_model(t, "Claude 4.5 Opus medium (20251101)").summary
    assert (opus.resolved, opus.cost_usd.quantize(Decimal("0.01"))) == (372, Decimal("360.62"))
    o = oracle(t).summary
    assert (o.resolved, o.cost_usd.quantize(Decimal("0.01"))) == (436, Decimal("37.04"))
    cfg = loads_config(
        '[providers.p]\nkind = "simulated"\n'
        + "".join(f'[[models]]\nname = "{n}"\nprovider = "p"\n' for n in ("deepseek-v3-2-reasoner", "mini", "opus"))
        + '[routing]\ndefault_model = "deepseek-v3-2-reasoner"\n'
        '[[routing.rules]]\ncondition = "retry_count >= 2"\nmodel = "opus"\n'
        '[[routing.rules]]\ncondition = "retry_count >= 1"\nmodel = "mini"\n'
    )
    res = Replayer(
        cfg,
        t,
        model_map={"mini": "GPT-5 mini (2025-08-07) (medium reasoning)", "opus": "Claude 4.5 Opus medium (20251101)"},
    ).run()
    assert (res.summary.resolved, res.summary.cost_usd.quantize(Decimal("0.01"))) == (397, Decimal("174.96"))
    assert os.path.basename(t.source) == SHARED.name


@pytest.mark.skipif(not SHARED.exists(), reason="the SWE-bench outcomes table is not on this machine")
def test_the_demo_configs_replay_on_the_leaderboard_rows_their_models_name() -> None:
    from switchyard.demo import all_default_config_text, demo_config_text

    t = load_outcomes(SHARED)
    routed = Replayer(loads_config(demo_config_text()), t).run().summary
    default = Replayer(loads_config(all_default_config_text()), t).run().summary
    assert routed.missing == default.missing == 0  # every model's outcome_model is a row of the table
    # The table has no priorities: every task is non-critical, DeepSeek -> GPT-5 mini -> Gemini 3 Pro (twice)
    # against Sonnet x 4 (the table holds one run per task and model: a model's retry repeats its outcome).
    assert (routed.resolved, routed.cost_usd.quantize(Decimal("0.01"))) == (392, Decimal("178.33"))
    assert (default.resolved, default.cost_usd.quantize(Decimal("0.01"))) == (353, Decimal("582.30"))


def test_no_usable_provider_means_no_attempt_and_the_task_escalates_to_its_end() -> None:
    cfg = loads_config(
        MODELS.replace(
            '[providers.local]\nkind = "simulated"', '[providers.local]\nkind = "simulated"\nenabled = false'
        )
        + '[coordinator]\nmax_attempts = 2\n[routing]\ndefault_model = "cheap"\n'
        '[[routing.rules]]\ncondition = "retry_count >= 1"\nmodel = "big"\n'
    )
    res = Replayer(cfg, table()).run()
    # Attempt 1: cheap's provider is disabled and the chain has nothing usable; attempt 2 routes to big.
    by = {r.task_id: (r.status, r.models) for r in res.tasks}
    assert by == {
        "t1": ("resolved", ("big",)),
        "t2": ("resolved", ("big",)),
        "t3": ("resolved", ("big",)),
        "t4": ("failed", ("big",)),
    }
