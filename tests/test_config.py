"""Loading and validating config files: the seed's examples, and every kind of mistake."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from switchyard.config import load_config, loads_config
from switchyard.config.locate import index_toml
from switchyard.config.schema import CommandProvider, OpenAIProvider
from switchyard.errors import ConfigError
from switchyard.usage_formats import USAGE_FORMATS

DATA = Path(__file__).parent / "data"

BASE = """
[providers.cli]
command_template = ["agent", "--model", "{model}"]

[[models]]
name = "big"
provider = "cli"
cost_per_million_input = 3.0
cost_per_million_output = 15.0

[[models]]
name = "small"
provider = "cli"
cost_per_million_input = 0.25
cost_per_million_output = 1.25

[routing]
default_model = "big"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_config(text, "cfg.toml")
    return [p.render() for p in info.value.problems]


def test_seed_examples_load_as_written() -> None:
    loaded = load_config(DATA / "seed.toml")
    assert set(loaded.providers) == {"claude-cli", "openrouter", "openai"}
    # A provider with only a command_template is a command provider.
    assert all(isinstance(p, CommandProvider) for p in loaded.providers.values())
    assert loaded.providers["openrouter"].api_key_env == "OPENROUTER_API_KEY"
    assert loaded.catalog["deepseek/deepseek-chat"].rates.input == Decimal("0.14")
    assert [r.condition for r in loaded.routing.rules][:3] == [
        "priority == 0",
        "labels contains 'documentation'",
        "hour >= 22 or hour <= 6",
    ]
    assert [s.model for s in loaded.workflows["budget"].stages] == [
        "gpt-4o-mini",
        "deepseek/deepseek-chat",
        "claude-haiku-4",
    ]
    # The seed passes {prompt_file} right after -p: a lint warning, not an error.
    [warning] = loaded.warnings
    assert warning.key_path == "providers.claude-cli.command_template[2]"
    assert 'stdin = "{prompt_file}"' in (warning.hint or "")
    assert warning.line == 7


def test_prices_are_exact_decimals() -> None:
    loaded = loads_config(BASE)
    assert loaded.catalog["small"].rates.input == Decimal("0.25")
    assert isinstance(loaded.catalog["small"].rates.output, Decimal)


def test_unknown_key_with_suggestion_and_line() -> None:
    text = BASE.replace('default_model = "big"', 'default_model = "big"\ndefault_modle = "small"')
    [msg] = problems(text)
    assert msg.startswith("cfg.toml:19:1: routing.default_modle: unknown key 'default_modle'")
    assert "did you mean 'default_model'?" in msg


def test_unknown_top_level_table() -> None:
    [msg] = problems(BASE + "\n[routng]\nx = 1\n")
    assert "unknown key 'routng'" in msg and "did you mean 'routing'" in msg


def test_unknown_model_in_rule_names_rule_and_line() -> None:
    text = BASE + '\n[[routing.rules]]\ncondition = "priority == 0"\nmodel = "smal"\n'
    [msg] = problems(text)
    assert msg.startswith("cfg.toml:22:9: routing.rules[0].model: unknown model 'smal' (did you mean 'small'?)")


def test_every_reference_is_checked() -> None:
    text = BASE.replace('default_model = "big"', 'default_model = "huge"\ndefault_workflow = "std"') + (
        '\n[[routing.rules]]\ncondition = "true"\nsplit = { "big" = 1, "tiny" = 1 }\nfallbacks = ["nope"]\n'
        '\n[[models]]\nname = "orphan"\nprovider = "nowhere"\n'
        '\n[workflows.flow]\nstages = [{ name = "plan", model = "ghost" }]\n'
    )
    msgs = "\n".join(problems(text))
    assert "routing.default_model: unknown model 'huge'" in msgs
    assert "routing.default_workflow: unknown workflow 'std'" in msgs
    assert "routing.rules[0].split.tiny: unknown model 'tiny'" in msgs
    assert "routing.rules[0].fallbacks[0]: unknown model 'nope'" in msgs
    assert "models[2].provider: unknown provider 'nowhere'" in msgs
    assert "workflows.flow.stages[0].model: unknown model 'ghost'" in msgs


def test_duplicate_models_negative_prices_bad_weights() -> None:
    text = BASE + (
        '\n[[models]]\nname = "big"\nprovider = "cli"\ncost_per_million_input = -1.0\n'
        '\n[[routing.rules]]\ncondition = "true"\nsplit = { "big" = 0, "small" = 2 }\n'
    )
    msgs = "\n".join(problems(text))
    assert "models[2].cost_per_million_input: must not be negative" in msgs
    assert "routing.rules[0].split: split weights must be greater than zero (check 'big')" in msgs
    text = BASE + '\n[[models]]\nname = "big"\nprovider = "cli"\n'
    assert "models[2].name: duplicate model name 'big'" in "\n".join(problems(text))


def test_condition_error_points_into_the_file() -> None:
    text = BASE + '\n[[routing.rules]]\ncondition = "priority == 0 or lables contains \'x\'"\nmodel = "small"\n'
    [msg] = problems(text)
    lines = msg.splitlines()
    # Line 21, column: the string starts at col 13, the name at offset 17 inside it.
    assert lines[0] == ("cfg.toml:21:31: routing.rules[0].condition: unknown name 'lables' (did you mean 'labels'?)")
    assert lines[1] == "    priority == 0 or lables contains 'x'"
    assert lines[2] == "                     ^^^^^^"


def test_type_mismatch_in_condition_is_a_config_error() -> None:
    text = BASE + '\n[[routing.rules]]\ncondition = "priority == \'high\'"\nmodel = "small"\n'
    [msg] = problems(text)
    assert "cannot compare 'priority' (number) with 'high' (text)" in msg


def test_wrong_types_are_named() -> None:
    text = BASE.replace("cost_per_million_input = 3.0", 'cost_per_million_input = "3"')
    [msg] = problems(text)
    assert "models[0].cost_per_million_input: expected a number, got text '3'" in msg


def test_provider_kinds() -> None:
    text = BASE + '\n[providers.or]\nkind = "openai"\nbase_url = "http://x"\napi_key_env = "OR_KEY"\n'
    loaded = loads_config(text)
    assert isinstance(loaded.providers["or"], OpenAIProvider)
    # options of another kind are rejected
    msgs = problems(BASE + '\n[providers.or]\nkind = "openai"\ncommand_template = ["x"]\n')
    assert "providers.or.command_template: unknown key 'command_template'" in msgs[0]
    msgs = problems(BASE + '\n[providers.or]\nkind = "opanai"\n')
    assert "unknown provider kind 'opanai' (did you mean 'openai'?)" in msgs[0]
    msgs = problems(BASE + "\n[providers.or]\nenabled = true\n")
    assert "provider 'or' has no kind" in msgs[0]


def test_usage_formats_are_checked_against_the_one_list() -> None:
    for fmt in USAGE_FORMATS:
        loaded = loads_config(BASE.replace('{model}"]', f'{{model}}"]\nusage_format = "{fmt}"'))
        assert isinstance(loaded.providers["cli"], CommandProvider)
        assert loaded.providers["cli"].usage_format == fmt
    [msg] = problems(BASE.replace('{model}"]', '{model}"]\nusage_format = "claude-jsn"'))
    assert "providers.cli.usage_format: unknown usage format 'claude-jsn' (did you mean 'claude-json'?)" in msg
    assert msg.endswith("formats: " + ", ".join(USAGE_FORMATS))


def test_api_key_env_must_be_a_name_not_a_key() -> None:
    msgs = problems(BASE + '\n[providers.or]\nkind = "openai"\napi_key_env = "sk-live-123456"\n')
    assert "is not an environment variable name" in msgs[0]


def test_rule_needs_a_target_and_not_two() -> None:
    msgs = problems(BASE + '\n[[routing.rules]]\ncondition = "true"\nmodel = "big"\nsplit = { "small" = 1 }\n')
    assert "either model or split" in msgs[0]
    msgs = problems(BASE + '\n[[routing.rules]]\ncondition = "true"\n')
    assert "a rule needs model, split or workflow" in msgs[0]


def test_timezone_is_checked() -> None:
    msgs = problems(BASE.replace('default_model = "big"', 'default_model = "big"\ntimezone = "Europe/Berln"'))
    assert "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)" in msgs[0]


def test_missing_routing_and_bad_toml() -> None:
    msgs = problems('[providers.cli]\ncommand_template = ["x"]\n')
    assert "missing [routing] table" in msgs[0]
    msgs = problems("[routing\ndefault_model = 1\n")
    assert msgs[0].startswith("cfg.toml:1:")
    assert "not valid TOML" in msgs[0]


def test_all_problems_are_reported_at_once_in_file_order() -> None:
    text = BASE.replace('name = "small"', 'name = "small"\ncolour = "red"') + "\n[routing.extra]\n"
    msgs = problems(text)
    assert len(msgs) == 2
    assert "colour" in msgs[0] and "extra" in msgs[1]


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/switchyard.toml")


def test_locator_handles_array_tables_and_inline_arrays() -> None:
    text = (
        "[[a]]\nx = 1\n[[a]]\nx = 2\n[a.sub]\ny = 'q'\n"
        "[w.s]\nstages = [\n  { name = 'p', model = 'm' },\n  { name = 'i' },\n]\n"
    )
    idx = index_toml(text)
    assert idx[("a", 1, "x")].line == 4
    assert idx[("a", 1, "sub", "y")].line == 6
    assert idx[("w", "s", "stages", 1, "name")].line == 10
    assert idx[("w", "s", "stages", 0, "model")].value_col == 25


# --- user-written patterns: RE2 syntax, rejected at load with the reason -------------------------------------------------


def test_a_condition_pattern_re2_cannot_run_names_the_rule_and_the_reason() -> None:
    text = BASE + '\n[[routing.rules]]\ncondition = "task.title matches \'(x)\\\\\\\\1\'"\nmodel = "small"\n'
    [msg] = problems(text)
    assert msg.startswith("cfg.toml:21:33: routing.rules[0].condition: invalid regular expression: ")
    assert "invalid escape sequence" in msg and "hint: RE2 has no backreferences" in msg


def test_a_reject_if_pattern_re2_cannot_run_is_a_config_error() -> None:
    text = BASE + (
        '\n[workflows.w]\nstages = [{ name = "a", model = "big" },'
        ' { name = "b", model = "small", loop_to = "a", reject_if = "(?!LGTM)" }]\n'
    )
    [msg] = problems(text)
    assert "workflows.w.stages[1].reject_if: invalid regular expression" in msg
    assert "invalid perl operator: (?!" in msg and "RE2 has no lookahead" in msg


# --- numbers that would overflow later stop at load, with the bound ------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # seen: passed check, then OverflowError in SQLite when the first call was held
        (
            "[budgets]\ndaily_usd = 10000000",
            "budgets.daily_usd: must be at most 1,000,000 (dollars: the ledger counts pico-dollars",
        ),
        ("[budgets]\ndaily_usd = 1e999999", "budgets.daily_usd: must be at most 1,000,000"),
        ("[budgets]\nweekly_usd = inf", "budgets.weekly_usd: expected a finite number, got Infinity"),
        ("[budgets]\nmonthly_usd = nan", "budgets.monthly_usd: expected a finite number, got NaN"),  # was a traceback
        ("[budgets]\ncli_hold_usd = 1e30", "budgets.cli_hold_usd: must be at most 1,000,000"),
        (
            "[[budgets.limits]]\nscope = 'global'\nperiod = 'day'\nlimit_usd = 2e6",
            "limit_usd: must be at most 1,000,000",
        ),
        ("[budgets]\nprompt_token_margin = 1e30", "budgets.prompt_token_margin: must be at most 100"),
        ("[budgets]\ndefault_max_output_tokens = 99999999999999999999", "must be at most 1,000,000,000 (tokens"),
        (
            "[runner]\ndefault_timeout_s = 1e300",
            "runner.default_timeout_s: must be at most 31,536,000 (seconds, a year",
        ),
        ("[runner]\ndefault_timeout_s = 1" + "0" * 400, "runner.default_timeout_s: is too large to compute with"),
        ("[runner]\nbackoff_max_s = inf", "runner.backoff_max_s: expected a finite number, got Infinity"),
        (
            "[runner]\nmax_attempts = 5000",
            "runner.max_attempts: must be at most 1,000 (the backoff doubles with each try)",
        ),
        ("[health]\ncooldown_s = 1e20", "health.cooldown_s: must be at most 31,536,000"),
        ("[coordinator]\nmax_workers = 100000", "coordinator.max_workers: must be at most 256"),
        ("[coordinator]\ngrace_s = nan", "coordinator.grace_s: expected a finite number, got NaN"),
        ("[[routing.rules]]\nsplit = { big = 1e999999, small = 1 }", "split weights are shares, at most 1,000,000"),
        ("[[routing.rules]]\nsplit = { big = nan, small = 1 }", "routing.rules[0].split.big: expected a finite number"),
    ],
)
def test_numbers_that_would_overflow_later_are_config_errors(extra: str, message: str) -> None:
    assert message in "\n".join(problems(BASE + "\n" + extra + "\n"))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "cost_per_million_input = 3.0",
            "cost_per_million_input = 1e30",
            "models[0].cost_per_million_input: must be at most",
        ),
        ("cost_per_million_input = 3.0", "cost_per_million_input = nan", "expected a finite number, got NaN"),
        (
            "cost_per_million_input = 3.0",
            "cost_per_million_input = 3.0\ncontext_window = 10000000000",
            "must be at most",
        ),
        (
            'command_template = ["agent", "--model", "{model}"]',
            'command_template = ["a"]\ntimeout_s = inf',
            "timeout_s",
        ),
        (
            'command_template = ["agent", "--model", "{model}"]',
            'command_template = ["a"]\nmax_cost_usd = 1e9',
            "max_cost_usd",
        ),
        (
            'command_template = ["agent", "--model", "{model}"]',
            'command_template = ["a"]\nmax_retries = 2000',
            "max_retries",
        ),
    ],
)
def test_model_and_provider_numbers_are_bounded(old: str, new: str, message: str) -> None:
    assert message in "\n".join(problems(BASE.replace(old, new, 1)))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("latency_ms = 1e300", "providers.sim.latency_ms: must be at most 31,536,000,000 (milliseconds"),
        ("output_tokens = [1, 99999999999999999999]", "providers.sim.output_tokens: must be at most 1,000,000,000"),
        ("retry_after_s = inf", "providers.sim.retry_after_s: expected a finite number"),
        ("outages = [{ after_s = 1e300, for_s = 1 }]", "providers.sim.outages[0].after_s: must be at most"),
    ],
)
def test_simulated_provider_numbers_are_bounded(table: str, message: str) -> None:
    text = BASE + f'\n[providers.sim]\nkind = "simulated"\n{table}\n'
    assert message in "\n".join(problems(text))


def test_the_bounds_still_admit_real_values() -> None:
    text = BASE + (
        "\n[budgets]\ndaily_usd = 1000000\nmonthly_usd = 0.000001\n[runner]\ndefault_timeout_s = 86400\n"
        "[coordinator]\nmax_workers = 256\n"
    )
    loaded = loads_config(text)
    assert loaded.budgets.daily_usd == Decimal(1_000_000)
