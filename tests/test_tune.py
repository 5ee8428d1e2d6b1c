"""Tune: the fast scorer agrees with the real router on every policy shape it can print; the search finds
what exhaustive enumeration finds; cross-validation reports held-out figures only; the CLI and its errors."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.cli import cli
from switchyard.config import load_config, loads_config
from switchyard.errors import InputError
from switchyard.replay.engine import Replayer, Verifier, single_model
from switchyard.replay.fast import Matrix
from switchyard.replay.outcomes import OutcomeTable, parse_outcomes
from switchyard.replay.tune import (
    Arm,
    Group,
    Policy,
    TuneSettings,
    _groups,
    _policy_score,
    policy_toml,
    resolve_models,
    split_tasks,
    tune,
    tune_split,
)

MODELS = ("Cheap A (v1)", "cheap-b", "Mid.C", "Big D")
LABELS = ("docs", "bug", "it's")


def make_table(seed: int, n: int = 60, *, models: tuple[str, ...] = MODELS) -> OutcomeTable:
    """A random table where pricier models resolve more, costs with up to 9 decimals."""
    rng = random.Random(seed)
    lines = ["task_id,model,resolved,cost_usd,priority,labels"]
    for i in range(n):
        prio = rng.randrange(0, 4)
        labels = ";".join(x for x in LABELS if rng.random() < 0.3)
        hard = rng.random()
        for k, m in enumerate(models):
            skill = 0.3 + 0.2 * k
            cost = Decimal(rng.randrange(1, 10**9)) / Decimal(10**9) * (k + 1) ** 2
            lines.append(f'{i:03d},{m},{int(hard < skill)},{cost},{prio},"{labels}"')
    return parse_outcomes("\n".join(lines) + "\n", fmt="csv", source=f"random-{seed}.csv")


def replay_policy(t: OutcomeTable, policy: Policy, ids: list[str], verifier: Verifier) -> object:
    return Replayer(loads_config(policy_toml(policy), "<p>"), t, verifier=verifier).run(ids).summary


ladders = st.lists(st.sampled_from(MODELS), min_size=1, max_size=4)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    attempts = draw(st.integers(1, 4))

    def ladder() -> tuple[str, ...]:
        return tuple(draw(st.lists(st.sampled_from(MODELS), min_size=attempts, max_size=attempts)))

    def arms() -> tuple[Arm, ...]:
        if draw(st.booleans()):
            return (Arm(draw(st.integers(1, 99)), ladder()), Arm(None, ladder()))
        return (Arm(None, ladder()),)

    by = draw(st.sampled_from(["none", "priority", "label"]))
    return Policy(attempts, ((Group(by), arms()),))  # groups filled in by the test from the table


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    shape=policies(),
    noise=st.sampled_from([(1, 0), ("0.8", "0.1"), ("0.5", "0.5")]),
    vseed=st.integers(0, 5),
)
def test_fast_scorer_equals_the_router_replaying_the_printed_config(
    seed: int, shape: Policy, noise: tuple[object, object], vseed: int
) -> None:
    t = make_table(seed, 30)
    verifier = Verifier(noise[0], noise[1], vseed)  # type: ignore[arg-type]
    mx = Matrix(t, MODELS, verifier=verifier, attempts=shape.attempts)
    by = shape.parts[0][0].kind
    groups = _groups(t, mx, "none" if by == "rest" else by, mx.all)
    base = shape.parts[0][1]
    rng = random.Random(seed)
    parts = []
    for g, _m in groups:  # each group gets the drawn arms with its ladders shuffled
        parts.append((g, tuple(Arm(a.below, tuple(rng.sample(a.ladder, len(a.ladder)))) for a in base)))
    policy = Policy(shape.attempts, tuple(parts))
    ids = list(t.task_ids)
    fast = _policy_score(mx, policy, groups, mx.all)
    slow = replay_policy(t, policy, ids, verifier)
    assert (slow.resolved, slow.false_pass, slow.attempts, slow.cost_usd) == (  # type: ignore[attr-defined]
        fast.resolved,
        fast.false_pass,
        fast.attempts,
        mx.dollars(fast.cost),
    )


def test_printed_toml_reads_well_and_loads_from_a_file(tmp_path: Path) -> None:
    policy = Policy(
        3,
        (
            (Group("label", "it's"), (Arm(30, ("Cheap A (v1)", "Big D", "Big D")), Arm(None, ("cheap-b",) * 3))),
            (Group("priority", "0"), (Arm(None, ("Big D", "Big D", "Big D")),)),
            (Group("rest"), (Arm(None, ("Cheap A (v1)", "Mid.C", "Big D")),)),
        ),
    )
    text = policy_toml(policy, header=["a header line"])
    assert text.startswith("# a header line\n")
    path = tmp_path / "tuned.toml"
    path.write_text(text)
    loaded = load_config(path)
    assert loaded.coordinator.max_attempts == 3
    assert loaded.routing.default_model == "cheap-a-v1"
    conds = [r.condition for r in loaded.routing.rules]
    assert conds == [
        "labels contains 'it\\'s' and bucket < 30 and retry_count >= 1",
        "labels contains 'it\\'s' and bucket < 30",
        "labels contains 'it\\'s'",
        "priority == 0",
        "retry_count >= 2",
        "retry_count >= 1",
    ]
    assert [r.model for r in loaded.routing.rules] == ["big-d", "cheap-a-v1", "cheap-b", "big-d", "big-d", "mid-c"]
    assert policy.describe().startswith("label it's: bucket<30: Cheap A (v1) → Big D | cheap-b;")


def test_search_finds_the_exhaustive_optimum_and_beam_matches_on_small_spaces() -> None:
    t = make_table(3, 80)
    mx = Matrix(t, MODELS, attempts=3)
    every = mx.ladders(mx.all, MODELS, 3, repeats=True)
    assert len(every) <= 4**3
    beam = mx.beam(mx.all, MODELS, 3, repeats=True, width=10_000)
    assert sorted((lad, s.cost, s.resolved) for lad, s in every) == sorted((lad, s.cost, s.resolved) for lad, s in beam)
    for lad, s in every:  # the shared-prefix walk scores each ladder as the plain scorer does
        assert s == mx.score(lad, mx.all, exact=False)
    # Expected figures equal realized ones under a perfect verifier.
    for lad, _s in every[:20]:
        e, r = mx.expect(lad, mx.all), mx.score(lad, mx.all, exact=False)
        assert (e.resolved, e.false_pass, e.attempts, e.cost) == (r.resolved, r.false_pass, r.attempts, r.cost)


def test_expected_figures_under_a_noisy_verifier() -> None:
    t = parse_outcomes("task_id,model,resolved,cost_usd\nx,a,1,2\nx,b,0,1\n", fmt="csv")
    mx = Matrix(t, ["a", "b"], verifier=Verifier("0.75", "0.5"), attempts=2)
    e = mx.expect(("a", "a"), mx.all)  # pass on 1st (0.75) or miss then pass (0.25 * 0.75)
    assert e.resolved == pytest.approx(0.9375) and e.false_pass == 0
    assert e.attempts == pytest.approx(1.25) and mx.search_dollars(e.cost) == Decimal("2.5")
    e = mx.expect(("b", "a"), mx.all)  # b fools it half the time; else a
    assert e.false_pass == pytest.approx(0.5) and e.resolved == pytest.approx(0.375)


def test_tune_reports_held_out_figures_from_the_router_on_its_printed_config(tmp_path: Path) -> None:
    t = make_table(11, 120)
    s = TuneSettings(models=MODELS, max_attempts=3, target_best=True)
    r = tune_split(t, s, seed=5)
    assert set(r.fit_ids).isdisjoint(r.held_ids) and len(r.fit_ids) + len(r.held_ids) == 120
    best_fit = max(MODELS, key=lambda m: (single_model(t, m, r.fit_ids).summary.resolved, m))
    assert r.target_resolved == single_model(t, best_fit, r.fit_ids).summary.resolved
    assert r.reached and r.fit.resolved >= (r.target_resolved or 0)
    path = tmp_path / "tuned.toml"
    path.write_text(r.toml)
    again = Replayer(load_config(path), t).run(r.held_ids).summary
    assert again == r.held.summary  # the printed config, replayed, gives the reported held-out figures
    assert r.candidates >= 4 + 4 * 3 + 4 * 3 * 2
    # the winner is the cheapest frontier policy that reaches the target on the fitting tasks
    assert r.best_single.summary.tasks == len(r.held_ids) and r.best_single.name == best_fit


def test_tune_groups_budget_and_unreachable_targets() -> None:
    t = make_table(7, 100)
    by_p = tune_split(t, TuneSettings(models=MODELS, max_attempts=2, target=Decimal("0.6"), by="priority"), seed=1)
    groups = [g for g, _arms in by_p.policy.parts]
    assert [g.kind for g in groups][-1] == "rest" and all(g.kind == "priority" for g in groups[:-1])
    by_l = tune_split(t, TuneSettings(models=MODELS, max_attempts=2, target=Decimal("0.6"), by="label"), seed=1)
    assert {g.kind for g, _a in by_l.policy.parts} <= {"label", "rest"}
    budget = Decimal(80)
    r = tune_split(t, TuneSettings(models=MODELS, budget_usd=budget), seed=1)
    assert r.reached and r.fit is not None
    mx_cost = r.fit.cost  # exact units: check through the router's replay of the fitting tasks
    fit = Replayer(loads_config(r.toml), t).run(r.fit_ids).summary
    assert fit.cost_usd <= budget * len(r.fit_ids) / 100 and fit.attempts == r.fit.attempts and mx_cost > 0
    never = tune_split(t, TuneSettings(models=MODELS, target=Decimal(1)), seed=1)
    assert not never.reached  # nothing resolves every task: the closest is shown, flagged


def test_noisy_verifier_tune_agrees_with_the_router() -> None:
    t = make_table(2, 80)
    v = Verifier("0.9", "0.05", 3)
    r = tune_split(t, TuneSettings(models=MODELS, max_attempts=3, target_best=True, verifier=v), seed=2)
    again = Replayer(loads_config(r.toml), t, verifier=v).run(r.held_ids).summary
    assert again == r.held.summary


def test_split_and_model_name_resolution() -> None:
    ids = [f"t{i}" for i in range(10)]
    fit, held = split_tasks(ids, 4, 0.3)
    assert (len(fit), len(held)) == (7, 3) and split_tasks(ids, 4, 0.3) == (fit, held)
    assert split_tasks(ids, 5, 0.3) != (fit, held)
    with pytest.raises(InputError, match="fitting figures are never the result"):
        split_tasks(ids, 1, 0)
    with pytest.raises(InputError, match="cannot be split"):
        split_tasks(["a"], 1, 0.5)
    t = make_table(1, 5)
    assert resolve_models(t, ["cheap a v1", "Mid.C", "big", "cheap-b"]) == ["Cheap A (v1)", "Mid.C", "Big D", "cheap-b"]
    with pytest.raises(InputError, match="matches several models"):
        resolve_models(t, ["cheap"])
    with pytest.raises(InputError, match="did you mean 'Big D'"):
        resolve_models(t, ["Bgi D"])
    with pytest.raises(InputError, match="--repeat must be at least 1"):
        tune(t, TuneSettings(models=MODELS), seed=1, repeat=0)


def test_tune_skips_tasks_a_chosen_model_has_no_outcome_for() -> None:
    t = make_table(4, 40)
    lines = ["task_id,model,resolved,cost_usd"] + [
        f"{o.task_id},{o.model},{int(o.resolved)},{o.cost_usd}"
        for o in t
        if not (o.task_id == "000" and o.model == "Big D")
    ]
    holes = parse_outcomes("\n".join(lines) + "\n", fmt="csv")
    r = tune_split(holes, TuneSettings(models=MODELS, target=Decimal("0.5")), seed=1)
    assert "000" not in r.fit_ids + r.held_ids and len(r.fit_ids) + len(r.held_ids) == 39


def _table_file(tmp_path: Path) -> Path:
    t = make_table(9, 80)
    path = tmp_path / "o.csv"
    lines = ["task_id,model,resolved,cost_usd"] + [f"{o.task_id},{o.model},{int(o.resolved)},{o.cost_usd}" for o in t]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_tune_prints_config_held_out_figures_and_frontier(tmp_path: Path) -> None:
    path = _table_file(tmp_path)
    out = tmp_path / "tuned.toml"
    runner = CliRunner()
    r = runner.invoke(
        cli, ["tune", "--outcomes", str(path), "--max-attempts", "2", "--seed", "3", "--out", str(out), "--repeat", "2"]
    )
    assert r.exit_code == 0, r.output
    assert "Held-out result" in r.output and "[routing]" in r.output and "Frontier" in r.output
    assert "Repeated over 2 splits (seeds 3..4)" in r.output and "split seed 3" in r.output
    replayed = runner.invoke(cli, ["replay", "--outcomes", str(path), "--config", str(out), "--json"])
    assert json.loads(replayed.output)["policies"][0]["tasks"] == 80
    j = runner.invoke(
        cli,
        ["tune", "--outcomes", str(path), "--max-attempts", "2", "--json", "--models", "cheap-b", "--target", "0.1"],
    )
    data = json.loads(j.output)["splits"][0]
    assert data["policy"]["groups"][0]["arms"][0]["ladder"] == ["cheap-b"]  # one model: no point retrying it
    assert data["held_out"]["tasks"] == 40


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--target", "best", "--budget", "3"], "--target and --budget cannot be combined", 2),
        (["--target", "1.5"], "--target 1.5: expected a share between 0 and 1", 2),
        (["--target", "lots"], "--target lots: expected a share such as 0.75 or 75%", 2),
        (["--budget", "x"], "--budget x: expected dollars", 2),
        (["--models", "nothing-like-it"], "--models nothing-like-it: no such model", 2),
        (["--holdout", "1"], "--holdout 1.0: must be between 0 and 1", 2),
        (["--by", "priority"], "--by priority: the outcomes table has no priority column", 2),
        (["--target", "100%"], "no policy reached the aim", 1),
    ],
)
def test_cli_tune_errors(tmp_path: Path, args: list[str], message: str, code: int) -> None:
    r = CliRunner().invoke(cli, ["tune", "--outcomes", str(_table_file(tmp_path)), "--max-attempts", "2", *args])
    assert r.exit_code == code and message in r.output, r.output
