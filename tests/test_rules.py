"""The condition language: evaluation tables, error messages with carets, and a fuzz test."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.errors import ConfigError
from switchyard.facts import BudgetView, Facts, PeriodFacts, build_schema
from switchyard.rules import compile_condition
from switchyard.task import Task

SCHEMA = build_schema(providers=["claude-cli", "openrouter"], models=["m1", "m2"], workflows=["standard"])


def facts(**kw: Any) -> Facts:
    task = Task(
        id=kw.pop("id", "gh-120"),
        title=kw.pop("title", "Fix the login bug"),
        priority=kw.pop("priority", 1),
        labels=tuple(kw.pop("labels", ["bug", "backend"])),
        retry_count=kw.pop("retry_count", 0),
        type=kw.pop("type", "bug"),
        metadata=kw.pop("metadata", {"team": "core", "points": 3}),
    )
    return Facts(
        task,
        now=kw.pop("now", datetime(2026, 3, 4, 23, 30, tzinfo=UTC)),  # a Wednesday
        tz=UTC,
        stage=kw.pop("stage", None),
        workflow=kw.pop("workflow", None),
        provider_status=kw.pop("status", {"claude-cli": "down"}),
        budget=kw.pop("budget", None),
    )


CASES = [
    # the seed's own conditions
    ("priority == 0", {}, False),
    ("priority == 0", {"priority": 0}, True),
    ("labels contains 'documentation'", {}, False),
    ("labels contains 'bug'", {}, True),
    ("hour >= 22 or hour <= 6", {}, True),
    ("hour >= 22 or hour <= 6", {"now": datetime(2026, 3, 4, 12, tzinfo=UTC)}, False),
    ("provider_status['claude-cli'] == 'down'", {}, True),
    ("provider_status['openrouter'] == 'up'", {}, True),  # unknown status reads as up
    ("task.id ends_with '0'", {}, True),
    ("task.id ends_with '0'", {"id": "gh-121"}, False),
    # operators
    ("priority != 0", {}, True),
    ("priority < 2 and retry_count > 0", {"retry_count": 1}, True),
    ("priority <= 1 and not (labels contains 'docs')", {}, True),
    ("not priority == 1", {}, False),
    ("labels not contains 'bug'", {}, False),
    ("'backend' in labels", {}, True),
    ("task.type in ['bug', 'incident']", {}, True),
    ("task.type not in ['bug', 'incident']", {}, False),
    ("priority in [0, 1]", {}, True),
    ("task.title starts_with 'Fix'", {}, True),
    ("task.title matches '(?i)login'", {}, True),
    ("task.title not matches '^Add'", {}, True),
    ("task.title contains 'login'", {}, True),
    ('"login" in task.title', {}, True),
    ("weekday == 'wed'", {}, True),
    ("weekday in ['sat', 'sun']", {}, False),
    ("true", {}, True),
    ("false or priority == 1", {}, True),
    ("a_b" if False else "retry_count >= 0", {}, True),
    # precedence: or < and < not < comparison
    ("priority == 0 or priority == 1 and labels contains 'nope'", {}, False),
    ("(priority == 0 or priority == 1) and labels contains 'bug'", {}, True),
    # missing values: positive comparisons false, negated ones true
    ("stage == 'plan'", {}, False),
    ("stage != 'plan'", {}, True),
    ("stage == 'plan'", {"stage": "plan"}, True),
    ("workflow == 'standard'", {"workflow": "standard"}, True),
    ("task.metadata.team == 'core'", {}, True),
    ("task.metadata['points'] >= 3", {}, True),
    ("task.metadata.absent == 'x'", {}, False),
    ("task.metadata.points contains 'x'", {}, False),  # wrong runtime type: false, no crash
    ("bucket >= 0 and bucket < 100", {}, True),
    # budget facts
    ("budget.day.fraction > 0.5", {"budget": BudgetView(day=PeriodFacts(Decimal(6), Decimal(0), Decimal(10)))}, True),
    (
        "budget.day.remaining_usd < 5",
        {"budget": BudgetView(day=PeriodFacts(Decimal(6), Decimal(0), Decimal(10)))},
        True,
    ),
    ("budget.day.remaining_usd < 5", {}, False),  # no limit: unlimited remaining
    (
        "budget['provider:openrouter'].fraction >= 0.9",
        {"budget": BudgetView(scopes={"provider:openrouter": PeriodFacts(Decimal(95), Decimal(0), Decimal(100))})},
        True,
    ),
    # a scope no limit names is unlimited: nothing spent, nothing remaining to count down
    ("budget['provider:openrouter'].fraction == 0", {}, True),
    ("budget['provider:openrouter'].remaining_usd < 1", {}, False),
]


def test_budget_view_get_honours_its_default() -> None:
    view = BudgetView(scopes={"model:a": PeriodFacts(Decimal(1))})
    fallback = PeriodFacts(Decimal(2), Decimal(0), Decimal(3))
    assert view.get("model:a", fallback) == PeriodFacts(Decimal(1))
    assert view.get("model:b", fallback) is fallback  # once ignored: the default was always "unlimited"
    assert view.get("model:b") == PeriodFacts()


@pytest.mark.parametrize(("source", "overrides", "expected"), CASES)
def test_evaluates(source: str, overrides: dict[str, Any], expected: bool) -> None:
    cond = compile_condition(source, SCHEMA)
    assert cond.test(facts(**overrides)) is expected


def test_reads_names_the_facts_a_condition_uses() -> None:
    cond = compile_condition("priority == 0 or provider_status['claude-cli'] == 'down'", SCHEMA)
    assert cond.read_values(facts()) == {"priority": 1, "provider_status['claude-cli']": "down"}


def test_constant_conditions_are_folded() -> None:
    assert compile_condition("true", SCHEMA).constant is True
    assert compile_condition("1 == 2", SCHEMA).constant is False
    assert compile_condition("priority == 1", SCHEMA).constant is None


ERRORS = [
    (
        "lables contains 'documentation'",
        "unknown name 'lables' (did you mean 'labels'?)\n    lables contains 'documentation'\n    ^^^^^^",
    ),
    (
        "priority == 'high'",
        "cannot compare 'priority' (number) with 'high' (text)\n    priority == 'high'\n                ^^^^^^",
    ),
    (
        "provider_status['claude-cl'] == 'down'",
        "unknown provider 'claude-cl' (did you mean 'claude-cli'?)\n"
        "    provider_status['claude-cl'] == 'down'\n                    ^^^^^^^^^^^",
    ),
    (
        "provider_status['claude-cli'] == 'dwon'",
        "'dwon' is not a provider status (did you mean 'down'?)\n"
        "    provider_status['claude-cli'] == 'dwon'\n                                     ^^^^^^",
    ),
    ("task.titel == 'x'", "'task' has no field 'titel' (did you mean 'task.title'?)"),
    ("priority = 0", "'=' is not an operator here"),
    ("priority == 0 && retry_count > 1", "'&&' is not an operator here"),
    ("priority ==", "expected a value after '==', found the end of the condition"),
    ("(priority == 0", "expected ')', found the end of the condition"),
    ("labels contains 'doc", "unterminated string"),
    ("priority == 0 labels", "unexpected 'labels' after a complete expression"),
    ("1 < priority < 3", "comparisons cannot be chained"),
    ("hour >= 'night'", "'>=' compares numbers, but 'night' is text"),
    ("labels contains 3", "is number, but the list holds text"),
    ("task.title matches '(unclosed'", "invalid regular expression"),
    ("priority", "'priority' is a number, not a condition"),
    ("weekday == 'saturday'", "'saturday' is not a weekday (did you mean 'sat'?)"),
    ("budget['provider:openroutr'].fraction > 0.5", "unknown provider 'openroutr' in budget scope"),
    ("task == 'x'", "'task' is a group of facts"),
    ("", "empty condition"),
    ("priority == 0 and", "expected a value, found the end of the condition"),
]


@pytest.mark.parametrize(("source", "expected"), ERRORS)
def test_errors_name_the_problem_with_a_caret(source: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_condition(source, SCHEMA)
    rendered = info.value.render()
    assert expected in rendered
    if source:
        assert "^" in rendered


def test_caret_sits_under_the_offending_part() -> None:
    with pytest.raises(ConfigError) as info:
        compile_condition("priority == 0 and lables contains 'x'", SCHEMA)
    problem = info.value.problems[0]
    assert problem.span == (18, 24)
    lines = problem.render().splitlines()
    assert lines[-1] == "    " + " " * 18 + "^^^^^^"


def test_deep_nesting_is_a_config_error_not_a_crash() -> None:
    with pytest.raises(ConfigError, match="nested more than"):
        compile_condition("(" * 500 + "true" + ")" * 500, SCHEMA)
    with pytest.raises(ConfigError, match="nested more than"):
        compile_condition("not " * 500 + "true", SCHEMA)


TOKENS = [
    "priority",
    "labels",
    "hour",
    "task",
    ".",
    "id",
    "title",
    "metadata",
    "provider_status",
    "[",
    "]",
    "(",
    ")",
    "'claude-cli'",
    "'down'",
    "'x'",
    '"y"',
    "0",
    "1",
    "22",
    "-3",
    "1.5",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "and",
    "or",
    "not",
    "in",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "true",
    "false",
    ",",
    "budget",
    "day",
    "fraction",
    "'provider:openrouter'",
    "'('",
    "weekday",
    "'sat'",
    "=",
    "&&",
    "!",
    "\\",
    "'",
    '"',
    "stage",
    "bucket",
    "retry_count",
]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_random_text_only_raises_config_error(source: str) -> None:
    try:
        cond = compile_condition(source, SCHEMA)
    except ConfigError:
        return
    assert isinstance(cond.test(facts()), bool)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14))
def test_fuzz_token_soup_only_raises_config_error(tokens: list[str]) -> None:
    source = " ".join(tokens)
    try:
        cond = compile_condition(source, SCHEMA)
    except ConfigError as exc:
        assert exc.problems and exc.problems[0].message
        return
    # Whatever compiles evaluates to a bool without raising.
    assert isinstance(cond.test(facts()), bool)
    assert isinstance(cond.test(facts(stage="plan", metadata={}, labels=[])), bool)


# --- `matches` runs user patterns in linear time (RE2) -----------------------------------------------------------------


def test_a_backtracking_pattern_does_not_hang_the_router() -> None:
    # With Python's re, '(a+)+$' on 40 a's and a '!' backtracks for longer than anyone waits: run it in a child with a
    # deadline so a regression fails loudly instead of hanging the suite.
    script = (
        "from datetime import UTC, datetime\n"
        "from switchyard.facts import Facts, build_schema\n"
        "from switchyard.rules import compile_condition\n"
        "from switchyard.task import Task\n"
        "cond = compile_condition(\"task.title matches '(a+)+$'\", build_schema(providers=[], models=[], workflows=[]))\n"
        "facts = Facts(Task(id='t', title='a' * 40 + '!'), now=datetime(2026, 1, 1, tzinfo=UTC), tz=UTC)\n"
        "print(cond.test(facts))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("'(a+)+$' did not finish on 41 characters: conditions must not backtrack")
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("pattern", "reason", "hint"),
    [
        (r"(a)\\1", "invalid escape sequence", "no backreferences"),
        ("(?=x)y", "invalid perl operator: (?=", "no lookahead"),
        ("(?<!x)y", "invalid perl operator: (?<!", "no lookbehind"),
        (r"done\\Z", "invalid escape sequence", r"\z"),
        ("(unclosed", "missing )", None),
    ],
)
def test_a_pattern_re2_cannot_run_is_a_config_error_with_the_reason(
    pattern: str, reason: str, hint: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        compile_condition(f"task.title matches '{pattern}'", SCHEMA)
    [problem] = info.value.problems
    assert problem.message.startswith("invalid regular expression")
    assert reason in problem.message
    if hint is not None:
        assert hint in (problem.hint or "")
    start, end = problem.span or (0, 0)
    assert problem.source is not None and problem.source[start:end] == f"'{pattern}'"


@pytest.mark.parametrize(
    ("source", "title", "expected"),
    [
        ("task.title matches '^Fix'", "Fix it", True),
        ("task.title matches 'it$'", "Fix it", True),
        ("task.title matches '(?i)LOGIN'", "the login page", True),
        ("task.title matches '\\\\bbug\\\\b'", "a bug here", True),
        ("task.title matches '\\\\bbug\\\\b'", "debugging", False),
        ("task.title matches 'é+'", "café", True),  # text is matched as characters, not bytes
        ("task.title matches '^.{4}$'", "café", True),
        ("task.title not matches 'x'", "abc", True),
        ("task.title matches ''", "", True),
        ("task.title matches 'a'", "\ud800 a", True),  # a lone surrogate (valid JSON) does not raise
    ],
)
def test_matches_searches_like_re(source: str, title: str, expected: bool) -> None:
    cond = compile_condition(source, SCHEMA)
    assert cond.test(facts(title=title)) is expected


def test_matches_on_a_missing_value_is_false() -> None:
    cond = compile_condition("task.metadata.team matches 'core'", SCHEMA)
    assert cond.test(facts(metadata={})) is False
    assert cond.test(facts(metadata={"team": 3})) is False
