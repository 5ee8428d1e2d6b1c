"""The simulated provider's world: task difficulty × model skill, answers that cost tokens and escalate, the verdict seam."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from switchyard.config import loads_config
from switchyard.config.provider_kinds import CallShape, worst_case
from switchyard.config.schema import BudgetsConfig, SimulatedProvider
from switchyard.errors import ConfigError
from switchyard.failures import FailureKind
from switchyard.health import Health
from switchyard.ledger import Ledger
from switchyard.providers.base import Call, ProviderContext
from switchyard.providers.simulated import ANSWER_FILE, Simulated, World, verdict
from switchyard.runner import Runner
from switchyard.task import Task

EXE = str(Path(sys.executable).parent / "switchyard")
IDS = [f"T-{i}" for i in range(4000)]


def world(rates: dict[str, float], **kw: float) -> World:
    return World(rates, **kw)  # type: ignore[arg-type]


# --- the world ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.05, 0.35, 0.6, 0.744, 0.95])
@pytest.mark.parametrize("sd", [0.0, 1.0, 2.4])
def test_a_model_resolves_its_rate_of_all_tasks(rate: float, sd: float) -> None:
    w = world({"m": rate}, difficulty_sd=sd)
    # The exact chance per task averages to the rate (no sampling noise beyond the task sample)...
    assert sum(w.chance(t, "m") for t in IDS) / len(IDS) == pytest.approx(rate, abs=0.02)
    # ...and so do the draws (4,000 tasks: a standard error under 0.008).
    share = sum(w.resolves(t, None, "m", 0, 0) for t in IDS) / len(IDS)
    assert share == pytest.approx(rate, abs=0.03)


def test_a_better_model_resolves_more_and_hard_tasks_are_hard_for_every_model() -> None:
    w = world({"weak": 0.4, "strong": 0.75})
    weak = {t for t in IDS if w.resolves(t, None, "weak", 0, 0)}
    strong = {t for t in IDS if w.resolves(t, None, "strong", 0, 0)}
    assert len(strong) > len(weak) + 1000
    # Difficulty is shared: tasks the weak model solves are solved by the strong one far more often than average.
    assert len(weak & strong) / len(weak) > len(strong) / len(IDS) + 0.1
    # ...but not always: a weak model sometimes gets what the strong one misses (the leaderboard's oracle > best).
    assert weak - strong


def test_the_world_is_a_pure_function_of_its_arguments_whatever_the_order() -> None:
    w = world({"a": 0.6, "b": 0.7})
    keys = [
        (t, s, m, r, k) for t in IDS[:300] for s in (None, "review") for m in "ab" for r in range(2) for k in range(2)
    ]
    first = {key: w.resolves(*key) for key in keys}
    shuffled = keys[:]
    random.Random(3).shuffle(shuffled)
    again = world({"a": 0.6, "b": 0.7})
    assert {key: again.resolves(*key) for key in shuffled} == first
    # Another world seed is another world.
    other = world({"a": 0.6, "b": 0.7}, seed=1)
    assert {key: other.resolves(*key) for key in keys} != first


def test_persistence_decides_how_often_a_model_fails_the_same_task_again() -> None:
    def second_try_after_a_failure(persistence: float) -> float:
        w = world({"m": 0.6}, persistence=persistence)
        failed = [t for t in IDS if not w.resolves(t, None, "m", 0, 0)]
        return sum(w.resolves(t, None, "m", 1, 0) for t in failed) / len(failed)

    fixed = world({"m": 0.6}, persistence=1.0)
    assert all(fixed.resolves(t, None, "m", 0, 0) == fixed.resolves(t, None, "m", 2, 1) for t in IDS[:500])
    assert second_try_after_a_failure(1.0) == 0
    assert 0 < second_try_after_a_failure(0.5) < second_try_after_a_failure(0.0) < 0.6


def test_the_default_difficulty_spread_reproduces_the_leaderboard_aggregates() -> None:
    # The 25 per-model rates of the SWE-bench bash-only leaderboard (aggregate figures only). The model's
    # tasks that no model resolves, and two cascades, against the leaderboard's 64/500, 77.6 % and 79.4 %.
    rates = [74.4, 74.2, 70.6, 67.6, 66.0, 66.0, 65.0, 64.8, 61.0, 60.0, 59.8, 58.4, 56.4]
    rates += [55.4, 55.4, 54.2, 53.8, 53.6, 45.0, 43.8, 34.8, 26.0, 21.0, 10.2, 9.0]
    w = world({f"m{i}": r / 100 for i, r in enumerate(rates)}, difficulty_sd=SimulatedProvider("p").difficulty_sd)

    def union(models: list[int]) -> float:
        total = 0.0
        for t in IDS:
            miss = 1.0
            for m in models:
                miss *= 1 - w.chance(t, f"m{m}")
            total += 1 - miss
        return total / len(IDS)

    assert (1 - union(list(range(25)))) * 500 == pytest.approx(64, abs=6)
    assert union([9, 0]) == pytest.approx(0.776, abs=0.015)  # DeepSeek V3.2 Reasoner -> Claude 4.5 Opus
    assert union([9, 10, 0]) == pytest.approx(0.794, abs=0.015)  # ... -> GPT-5 mini -> Claude 4.5 Opus


# --- the provider ------------------------------------------------------------------------------------------------------

TABLE = """
[providers.sim]
kind = "simulated"
latency_ms = 0
input_tokens = [1000, 1000]
output_tokens = [100, 100]
{options}

[[models]]
name = "weak"
provider = "sim"
cost_per_million_input = 1.0
cost_per_million_output = 5.0

[[models]]
name = "strong"
provider = "sim"
cost_per_million_input = 3.0
cost_per_million_output = 15.0

[routing]
default_model = "weak"

[[routing.rules]]
condition = "retry_count >= 1"
model = "strong"
fallbacks = ["weak"]
"""

RATES = "resolve_rate = { weak = 0.01, strong = 0.99 }\npersistence = 1.0\ndifficulty_sd = 0.0"


def call(task: Task, model: str, tmp_path: Path, *, workdir: Path | None = None) -> Call:
    return Call("a1", task, model, model, "do it", tmp_path / "run", 60, workdir=workdir)


def sim(tmp_path: Path, options: str = RATES) -> Simulated:
    loaded = loads_config(TABLE.format(options=options), str(tmp_path / "switchyard.toml"))
    provider = loaded.providers["sim"]
    assert isinstance(provider, SimulatedProvider)
    return Simulated(provider, ProviderContext(sleep=lambda s: None))


def test_an_unresolved_answer_is_a_failed_attempt_that_costs_its_tokens(tmp_path: Path) -> None:
    task = Task(id="T-1", title="fix it")
    result = sim(tmp_path).execute(call(task, "weak", tmp_path))
    assert result.failure is not None and result.failure.kind is FailureKind.UNRESOLVED
    assert result.failure.policy.action == "fatal" and not result.failure.policy.breaker
    assert result.usage is not None and result.usage.input_tokens == 1000  # paid for
    assert verdict(result.text) is False
    good = sim(tmp_path).execute(call(task, "strong", tmp_path))
    assert good.ok and verdict(good.text) is True
    assert good.text is not None and good.text.startswith("[simulated strong] fix it: resolved\n")


def test_without_resolve_rates_every_answer_resolves(tmp_path: Path) -> None:
    provider = sim(tmp_path, "")
    assert provider.world is None
    for i in range(50):
        result = provider.execute(call(Task(id=f"T-{i}"), "weak", tmp_path))
        assert result.ok and verdict(result.text) is True


def test_with_verdict_verify_the_answer_is_a_success_carrying_its_verdict_and_a_file(tmp_path: Path) -> None:
    work = tmp_path / "worktree"
    result = sim(tmp_path, RATES + '\nverdict = "verify"').execute(call(Task(id="T-1"), "weak", tmp_path, workdir=work))
    assert result.ok and result.usage is not None
    assert verdict(result.text) is False
    answer = json.loads((work / ANSWER_FILE).read_text())
    assert answer == {"simulated": {"task": "T-1", "model": "weak", "stage": None, "resolved": False}}


@pytest.mark.parametrize("text", [None, "", "done", "{}", '{"simulated": {"resolved": "yes"}}', "x\n[1, 2]", "{bad"])
def test_verdict_is_none_for_anything_but_a_simulated_answer(text: str | None) -> None:
    assert verdict(text) is None


def test_token_scale_scales_the_draws_and_the_worst_case(tmp_path: Path) -> None:
    provider = sim(tmp_path, "token_scale = { strong = 0.25 }")
    result = provider.execute(call(Task(id="T-1"), "strong", tmp_path))
    assert result.usage is not None and (result.usage.input_tokens, result.usage.output_tokens) == (250, 25)
    loaded = loads_config(TABLE.format(options="token_scale = { strong = 0.25 }"))
    shape = CallShape(loaded.catalog["strong"], "", None, datetime(2026, 1, 1, tzinfo=UTC), BudgetsConfig())
    assert worst_case(provider.config, shape) == (250 * 3 + 25 * 15) / Decimal(10**6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("resolve_rate = { weak = 0.5 }", "model 'strong' has no resolve rate"),
        (
            "resolve_rate = { weak = 0.5, strong = 0.5, strng = 0.6 }",
            "'strng' is not a model of this provider (did you mean 'strong'?)",
        ),
        ("resolve_rate = { weak = 0.5, strong = 1.0 }", "must be above 0 and below 1"),
        ("resolve_rate = { weak = 0, strong = 0.5 }", "must be above 0 and below 1"),
        ("token_scale = { wek = 2 }", "'wek' is not a model of this provider (did you mean 'weak'?)"),
        ("token_scale = { weak = 11 }", "must be above 0 and at most 10"),
        ("persistence = 1.5", "must be between 0 and 1"),
        ("difficulty_sd = -1", "must be between 0 and 20"),
        ('verdict = "tests"', "expected one of 'provider', 'verify'"),
    ],
)
def test_quality_settings_are_checked_at_load_with_their_place(options: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads_config(TABLE.format(options=options), "sw.toml")
    text = str(err.value)
    assert message in text, text
    assert "sw.toml:7:" in text  # the line of the option, under [providers.sim]


# --- escalation through the runner and the coordinator ----------------------------------------------------------------


def test_exec_stops_at_an_unresolved_answer_without_retrying_or_failing_over(tmp_path: Path) -> None:
    # The rule routes to "weak" (which answers wrongly) with "strong" as its fallback, and the provider may retry.
    text = TABLE.format(options=RATES + "\nmax_retries = 3").replace('"retry_count >= 1"', '"true"')
    text = text.replace('model = "strong"\nfallbacks = ["weak"]', 'model = "weak"\nfallbacks = ["strong"]')
    loaded = loads_config(text, str(tmp_path / "switchyard.toml"))
    ledger = Ledger.open(tmp_path / "ledger.db")
    runner = Runner(loaded, ledger, health=Health(loaded, ledger, env={}), runs_dir=tmp_path / "runs")
    route = runner.decide(Task(id="T-1"))
    assert [c.model for c in route.candidates][:2] == ["weak", "strong"]
    result = runner.run(Task(id="T-1"), prompt="p", route=route)
    assert [a.record.error_class for a in result.attempts] == ["unresolved"]  # no retry, no fallback
    rec = result.attempts[0].record
    assert rec.status == "failed" and rec.cost_usd == Decimal("0.0015")  # 1000 x $1/M + 100 x $5/M
    assert "unresolved" in result.why
    assert Health(loaded, ledger, env={}).status()["sim"] == "up"  # a wrong answer is not an unhealthy provider
    ledger.close()


def test_the_coordinator_escalates_an_unresolved_answer_to_the_next_rule(tmp_path: Path) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        TABLE.format(options=RATES) + "\n[coordinator]\nmax_workers = 2\nmax_attempts = 2\npoll_interval_s = 0.05\n"
    )
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"T-{i}", "title": f"task {i}"}) + "\n" for i in range(6)))
    proc = subprocess.run(
        [EXE, "run", "--config", str(cfg), "--tasks", str(tasks), "--once"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    with Ledger.open(tmp_path / ".switchyard" / "ledger.db") as ledger:
        states = {row.task_id: (row.state, row.retry_count) for row in ledger.tasks()}
        attempts = ledger.attempts()
    assert states == {f"T-{i}": ("done", 1) for i in range(6)}
    for i in range(6):
        mine = [(a.model, a.error_class, a.task_retry) for a in attempts if a.task_id == f"T-{i}"]
        assert mine == [("weak", "unresolved", 0), ("strong", None, 1)]
    assert all(a.cost_usd > 0 for a in attempts)  # the wrong answers were paid for


def test_each_escalation_level_draws_afresh(tmp_path: Path) -> None:
    # The draws used to ignore the retry count: a task failed (or cost) exactly the same at every level.
    text = TABLE.format(options=RATES + "\nfailure_rate = 0.5").replace("[1000, 1000]", "[1000, 9000]")
    config = loads_config(text).providers["sim"]
    assert isinstance(config, SimulatedProvider)
    provider = Simulated(config, ProviderContext(sleep=lambda s: None))
    first = [provider.execute(call(Task(id=f"T-{i}"), "strong", tmp_path)) for i in range(40)]
    again = [provider.execute(call(Task(id=f"T-{i}", retry_count=1), "strong", tmp_path)) for i in range(40)]
    assert [r.ok for r in first] != [r.ok for r in again]
    tokens = [
        (a.usage.input_tokens, b.usage.input_tokens) for a, b in zip(first, again, strict=True) if a.usage and b.usage
    ]
    assert tokens and any(a != b for a, b in tokens)
    # ...and stay a pure function of the call: the same call, the same answer.
    assert [r.ok for r in first] == [
        provider.execute(call(Task(id=f"T-{i}"), "strong", tmp_path)).ok for i in range(40)
    ]
