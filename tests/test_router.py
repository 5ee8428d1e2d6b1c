"""The router: first match, splits, failover through fallbacks/later rules/default, traces."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchyard.cli.route_cmd import parse_status_args
from switchyard.config import load_config, loads_config
from switchyard.errors import InputError
from switchyard.router import Router
from switchyard.task import Task, load_task_arg, parse_priority

DATA = Path(__file__).parent / "data"
NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
NIGHT = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)

CONFIG = """
[providers.cli]
command_template = ["agent"]
[providers.api]
kind = "openai"
[providers.off]
kind = "openai"
enabled = false

[[models]]
name = "opus"
provider = "cli"
[[models]]
name = "sonnet"
provider = "cli"
[[models]]
name = "haiku"
provider = "cli"
[[models]]
name = "cheap"
provider = "api"
[[models]]
name = "grok"
provider = "api"
[[models]]
name = "ghost"
provider = "off"

[routing]
default_model = "sonnet"
timezone = "Europe/Berlin"

[[routing.rules]]
condition = "priority == 0"
model = "opus"
fallbacks = ["cheap"]
reason = "critical"

[[routing.rules]]
condition = "labels contains 'docs'"
model = "haiku"

[[routing.rules]]
condition = "priority <= 1"
model = "cheap"

[[routing.rules]]
condition = "labels contains 'exp'"
split = { "grok" = 1, "sonnet" = 3 }
experiment = "grok-ab"

[[routing.rules]]
condition = "labels contains 'ghost'"
model = "ghost"
"""


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(loads_config(CONFIG))


def t(id: str = "T-1", **kw: object) -> Task:
    return Task.from_dict({"id": id, **kw})


def test_first_matching_rule_wins(router: Router) -> None:
    d = router.decide(t(priority=0, labels=["docs"]), now=NOON)
    assert (d.model, d.provider, d.rule, d.reason) == ("opus", "cli", 0, "critical")
    assert [c.model for c in d.candidates] == ["opus", "cheap", "haiku", "sonnet"]
    assert [c.source for c in d.candidates] == ["rules[0]", "rules[0].fallbacks[0]", "rules[1]", "default"]


def test_default_when_nothing_matches(router: Router) -> None:
    d = router.decide(t(priority=3), now=NOON)
    assert (d.model, d.rule) == ("sonnet", None)
    assert d.reason == "no rule matched; default model"
    assert [c.model for c in d.candidates] == ["sonnet"]


def test_down_provider_walks_fallbacks_then_later_rules_then_default(router: Router) -> None:
    task = t(priority=0, labels=["docs"])
    d = router.decide(task, now=NOON, provider_status={"cli": "down"})
    assert (d.model, d.rule) == ("cheap", 0)  # the rule's own fallback
    assert d.skipped == ("opus: provider cli is down",)
    assert "fallback cheap" in d.reason
    d = router.decide(task, now=NOON, provider_status={"api": "down"})
    assert d.model == "opus"
    assert [c.model for c in d.candidates] == ["opus", "haiku", "sonnet"]  # cheap dropped: its provider is down
    d = router.decide(t(priority=1, labels=["docs"]), now=NOON, provider_status={"cli": "down"})
    assert (d.model, d.rule) == ("cheap", 2)  # a later matching rule
    d = router.decide(t(priority=1), now=NOON, provider_status={"api": "disabled"})
    assert (d.model, d.rule) == ("sonnet", None)  # then the default
    assert d.skipped == ("cheap: provider api is disabled",)


def test_config_disabled_provider_is_skipped(router: Router) -> None:
    d = router.decide(t(labels=["ghost"]), now=NOON)
    assert d.model == "sonnet"
    assert d.skipped == ("ghost: provider off is disabled",)


def test_everything_down_keeps_first_choice_and_says_so(router: Router) -> None:
    d = router.decide(t(priority=0), now=NOON, provider_status={"cli": "down", "api": "down"})
    assert d.model == "opus"
    assert d.available is False
    assert "every candidate's provider is unavailable" in d.skipped[-1]


def test_degraded_is_still_usable(router: Router) -> None:
    assert router.decide(t(priority=0), now=NOON, provider_status={"cli": "degraded"}).model == "opus"


def test_split_is_sticky_and_weighted(router: Router) -> None:
    arms = Counter()
    for i in range(4000):
        task = t(f"gh-{i}", labels=["exp"], priority=3)
        d = router.decide(task, now=NOON)
        assert d.experiment == "grok-ab"
        assert d.arm == d.model
        arms[d.arm] += 1
        if i < 50:  # sticky: the same task always lands in the same arm
            assert router.decide(task, now=NIGHT).arm == d.arm
    assert 850 < arms["grok"] < 1150  # 25 % of 4000 = 1000
    assert arms["grok"] + arms["sonnet"] == 4000


def test_trace_lists_every_rule_with_the_facts_it_read(router: Router) -> None:
    d = router.decide(t(priority=1, labels=["docs"]), now=NOON)
    assert d.model == "haiku"
    trace = {e.index: e for e in d.trace}
    assert trace[0].matched is False and trace[0].facts == {"priority": 1}
    assert trace[1].matched is True and trace[1].facts == {"labels": ("docs",)}
    assert trace[2].matched is True  # later rules are evaluated too, for the chain
    assert len(d.trace) == 5
    data = d.to_dict()
    assert {"model", "provider", "reason", "rule", "candidates", "experiment", "arm", "trace"} <= set(data)


def test_hour_uses_routing_timezone() -> None:
    loaded = loads_config(CONFIG + '\n[[routing.rules]]\ncondition = "hour == 13"\nmodel = "haiku"\n')
    r = Router(loaded)
    # 12:00 UTC is 13:00 in Berlin (CET, winter).
    assert r.decide(t(priority=3), now=NOON).model == "haiku"


def test_seed_rules(tmp_path: Path) -> None:
    r = Router(load_config(DATA / "seed.toml"))
    assert r.select_model(t(priority=0), now=NOON) == "claude-opus-4"
    assert r.select_model(t(labels=["documentation"]), now=NOON) == "claude-haiku-4"
    assert r.select_model(t(), now=NIGHT) == "deepseek/deepseek-chat"
    assert r.select_model(t(), now=NOON, provider_status={"claude-cli": "down"}) == "anthropic/claude-3.5-sonnet"
    assert r.select_model(t("gh-120"), now=NOON) == "grok-beta"
    assert r.select_model(t("gh-121"), now=NOON) == "claude-sonnet-4-5"


def test_retry_count_from_error_tracking_escalates() -> None:
    text = CONFIG.replace('condition = "priority == 0"', 'condition = "priority == 0 or retry_count >= 1"')
    r = Router(loads_config(text))
    task = Task.from_dict({"id": "x", "priority": 3, "error_tracking": {"attempt_count": 1}})
    assert task.retry_count == 1
    assert r.select_model(task, now=NOON) == "opus"
    assert r.select_model(task.with_retry(0), now=NOON) == "sonnet"


def test_decide_is_pure(router: Router) -> None:
    task = t(priority=1, labels=["exp"])
    a = router.decide(task, now=NOON).to_dict()
    b = router.decide(task, now=NOON).to_dict()
    assert a == b


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"id": "a", "priority": "high"}, "task.priority: expected an integer 0-4 or 'P0'-'P4', got 'high'"),
        ({"id": "a", "priority": 7}, "task.priority: priority must be between 0 (critical) and 4, got 7"),
        ({"id": "a", "labels": "bug"}, "task.labels: expected a list of strings, got str"),
        ({"id": "a", "labels": ["ok", 3]}, "task.labels[1]: expected a string, got int"),
        ({"id": "a", "retry_count": -1}, "task.retry_count: expected a non-negative integer"),
        ({"id": "a", "title": 5}, "task.title: expected a string, got int 5"),
        ({"title": "no id"}, "task.id: missing"),
        ({"id": "a", "priorty": 1}, "task.priorty: unknown field (did you mean 'priority'?)"),
        ({"id": "a", "error_tracking": {"attempt_count": "2"}}, "task.error_tracking.attempt_count"),
        ([1, 2], "task: expected a JSON object, got list"),
    ],
)
def test_task_errors_name_the_field(doc: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        Task.from_dict(doc)
    assert message in str(info.value)


def test_task_accepts_p_priorities_github_labels_and_int_ids() -> None:
    task = Task.from_dict({"id": 42, "priority": "P1", "labels": [{"name": "bug"}], "description": "d"})
    assert (task.id, task.priority, task.labels, task.body) == ("42", 1, ("bug",), "d")
    assert parse_priority("p3") == 3


def test_task_arg_from_file_and_bad_json(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text('{"id": "x", "priority": 0}')
    assert load_task_arg(f"@{f}").priority == 0
    with pytest.raises(InputError, match="not valid JSON"):
        load_task_arg("{nope")
    with pytest.raises(InputError, match="cannot read"):
        load_task_arg("@/nonexistent.json")


def test_status_flags() -> None:
    providers = {"cli": 1, "api": 1}
    assert parse_status_args(["cli=down"], providers) == {"cli": "down"}
    with pytest.raises(InputError, match="did you mean 'cli'"):
        parse_status_args(["clii=down"], providers)
    with pytest.raises(InputError, match="status must be one of"):
        parse_status_args(["cli=dead"], providers)


def test_a_matched_rule_passed_over_is_named_in_the_reason_not_denied() -> None:
    # seen: "no rule matched; default model" above a trace showing "[7] MATCH" (its provider was disabled)
    r = Router(loads_config(CONFIG))
    d = r.decide(t(priority=1), now=NOON, provider_status={"api": "disabled"})
    assert (d.model, d.rule) == ("sonnet", None)
    assert d.reason == "rules[2] matched but was passed over (cheap: provider api is disabled); default model"
    assert d.passed_over == ((2, "cheap: provider api is disabled"),)
    assert [(x.index, x.matched) for x in d.trace if x.matched] == [(2, True)]
    assert d.to_dict()["passed_over"] == [{"rule": 2, "why": "cheap: provider api is disabled"}]
    # Two rules passed over, the second one's fallback... then a later rule is chosen: each passed-over rule is named.
    d = r.decide(t(priority=0, labels=["docs"]), now=NOON, provider_status={"cli": "down", "api": "down"})
    assert d.available is False  # everything is down: the first choice is kept, nothing was "chosen over" it
    d = r.decide(t(priority=0, labels=["docs"]), now=NOON, provider_status={"api": "down"})
    assert (d.model, d.rule, d.passed_over) == ("opus", 0, ())
    d = r.decide(t(priority=1, labels=["docs"]), now=NOON, provider_status={"cli": "down"})
    assert (d.model, d.rule) == ("cheap", 2)
    assert d.passed_over == ((1, "haiku: provider cli is down"),)
    assert (
        d.reason
        == "rules[2] matched: priority <= 1 (rules[1] matched but was passed over: haiku: provider cli is down)"
    )
    # Two rules passed over, then the default.
    d = r.decide(t(priority=1, labels=["ghost"]), now=NOON, provider_status={"api": "disabled"})
    assert (d.model, d.rule) == ("sonnet", None)
    assert d.reason == (
        "rules[2] and rules[4] matched but were passed over "
        "(cheap: provider api is disabled; ghost: provider off is disabled); default model"
    )


def test_status_flag_with_an_unknown_name_lists_the_providers() -> None:
    providers = {"claude-cli": 1, "openrouter": 1, "openai": 1}
    with pytest.raises(InputError) as info:
        parse_status_args(["nobody=down"], providers)
    assert (
        str(info.value) == "--status nobody=down: unknown provider 'nobody'; providers: claude-cli, openai, openrouter"
    )
    with pytest.raises(InputError) as info:
        parse_status_args(["openroutr=down"], providers)
    assert str(info.value) == "--status openroutr=down: unknown provider 'openroutr' (did you mean 'openrouter'?)"
