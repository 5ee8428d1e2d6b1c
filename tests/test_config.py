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
    # The seed's templates are sketches (the seed elides them with `...`): claude-cli passes the prompt
    # file's path as the prompt, openrouter (curl) and openai never pass the prompt. Each gets a warning,
    # and so does each one's missing usage_format, which is an error for a template that can run.
    warnings = {w.key_path: w for w in loaded.warnings}
    assert list(warnings) == [
        "providers.claude-cli",
        "providers.claude-cli.command_template[2]",
        "providers.openrouter",
        "providers.openrouter.command_template",
        "providers.openai",
        "providers.openai.command_template",
    ]
    trap = warnings["providers.claude-cli.command_template[2]"]
    assert 'stdin = "{prompt_file}"' in (trap.hint or "")
    assert trap.line == 7
    assert "has no usage_format" in warnings["providers.claude-cli"].message
    assert 'usage_format = "claude-json"' in (warnings["providers.claude-cli"].hint or "")
    assert 'kind = "openai"' in (warnings["providers.openrouter"].hint or "")
    assert "never gives the agent the task's prompt" in warnings["providers.openai.command_template"].message


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
        "\n[budgets]\ndaily_usd = 1000000\nmonthly_usd = 1.5\n[runner]\ndefault_timeout_s = 86400\n"
        "[coordinator]\nmax_workers = 256\n"
    )
    loaded = loads_config(text)
    assert loaded.budgets.daily_usd == Decimal(1_000_000)


# --- command providers: usage_format, output options, shell variables ----------------------------------------------------

AGENT = """
[providers.agent]
command_template = {template}
stdin = "{{prompt_file}}"
{extra}

[[models]]
name = "m"
provider = "agent"

[routing]
default_model = "m"
"""


def agent(template: list[str], extra: str = "") -> str:
    import json

    return AGENT.format(template=json.dumps(template), extra=extra)


def test_a_command_provider_without_usage_format_is_an_error_that_names_the_format() -> None:
    # seen: Claude Code with --output-format stream-json and no usage_format recorded 0 tokens and $0
    [msg] = problems(agent(["claude", "-p", "--output-format", "stream-json", "--verbose"]))
    assert "providers.agent: command provider 'agent' has no usage_format" in msg
    assert (
        'hint: its template asks claude for --output-format stream-json: set usage_format = "claude-stream-json"' in msg
    )
    assert 'or usage_format = "none" to run it without reading usage (a warning)' in msg
    [msg] = problems(agent(["claude", "-p"]))  # text output: say how to get a readable one
    assert 'add "--output-format", "json" to the template and set usage_format = "claude-json"' in msg
    [msg] = problems(agent(["my-agent", "--go"]))
    assert "set usage_format to the format of its output: claude-json, " in msg


def test_usage_format_none_opts_out_with_a_warning() -> None:
    loaded = loads_config(agent(["claude", "-p", "--output-format", "json"], 'usage_format = "none"'), "cfg.toml")
    [warning] = loaded.warnings
    assert warning.key_path == "providers.agent.usage_format"
    assert warning.message.startswith('usage_format = "none": the tokens and cost')
    assert warning.hint == 'its template asks claude for --output-format json: set usage_format = "claude-json"'


@pytest.mark.parametrize(
    ("template", "fmt", "message"),
    [
        (
            ["claude", "-p", "--output-format", "stream-json"],
            "claude-json",
            "asks claude for --output-format stream-json",
        ),
        (["claude", "-p", "--output-format=json"], "claude-stream-json", "asks claude for --output-format json"),
        (["claude", "-p"], "claude-json", "has no usage in it for usage_format 'claude-json'"),
        (["codex", "exec", "-"], "codex-jsonl", "asks codex for no output option"),
        (["codex", "exec", "--json", "-"], "claude-json", "asks codex for --json, but usage_format 'claude-json'"),
        (["gemini", "-o", "stream-json"], "gemini-json", "asks gemini for -o stream-json"),
        (["/usr/local/bin/gemini", "--output-format", "text"], "gemini-json", "asks gemini for --output-format text"),
        (["opencode", "run", "--format", "json"], "claude-json", "asks opencode for --format json"),
    ],
)
def test_an_output_option_the_usage_format_does_not_read_is_a_warning(
    template: list[str], fmt: str, message: str
) -> None:
    loaded = loads_config(agent(template, f'usage_format = "{fmt}"'))
    [warning] = loaded.warnings
    assert warning.key_path == "providers.agent.usage_format"
    assert message in warning.message


@pytest.mark.parametrize(
    ("template", "fmt"),
    [
        (["claude", "-p", "--output-format", "json"], "claude-json"),
        (["claude", "-p", "--verbose", "--output-format", "stream-json"], "claude-stream-json"),
        (["codex", "exec", "--json", "-m", "{model}", "-"], "codex-jsonl"),
        (["gemini", "-m", "{model}", "-o", "json"], "gemini-json"),
        (["opencode", "run", "--format", "json"], "opencode-jsonl"),
        (["aider", "--message-file", "{prompt_file}"], "aider"),
        (["claude", "-p", "--output-format", "{model}"], "claude-json"),  # not an option value we know: no opinion
        (["my-agent"], "openai-json"),
    ],
)
def test_agreeing_output_option_and_format_load_quietly(template: list[str], fmt: str) -> None:
    assert loads_config(agent(template, f'usage_format = "{fmt}"')).warnings == ()


@pytest.mark.parametrize(
    ("table", "where", "hint"),
    [
        # seen: a curl-style template sent "Authorization: Bearer ${OPENROUTER_API_KEY}" as written
        (
            '[providers.agent]\ncommand_template = ["curl", "-H", "Authorization: Bearer ${OPENROUTER_API_KEY}", '
            '"https://openrouter.ai/api/v1/chat/completions"]\nstdin = "{prompt_file}"\nusage_format = "openai-json"',
            "providers.agent.command_template[2]",
            'pass_env = ["OPENROUTER_API_KEY"]',
        ),
        (
            '[providers.agent]\ncommand_template = ["agent", "--key", "$AGENT_KEY"]\nstdin = "{prompt_file}"\n'
            'usage_format = "claude-json"',
            "providers.agent.command_template[2]",
            'api_key_env = "AGENT_KEY"',
        ),
        (
            '[providers.agent]\ncommand_template = ["agent"]\nstdin = "{prompt_file}"\nusage_format = "claude-json"\n'
            'env = { TOKEN = "${GH_TOKEN}" }',
            "providers.agent.env.TOKEN",
            'pass_env = ["GH_TOKEN"]',
        ),
        (
            '[providers.agent]\nkind = "openai"\nheaders = { Authorization = "Bearer $OPENAI_API_KEY" }',
            "providers.agent.headers.Authorization",
            'api_key_env = "OPENAI_API_KEY"',
        ),
    ],
)
def test_shell_variables_are_never_expanded_so_they_are_errors(table: str, where: str, hint: str) -> None:
    text = table + '\n[[models]]\nname = "m"\nprovider = "agent"\n[routing]\ndefault_model = "m"\n'
    [msg] = problems(text)
    assert f": {where}: '$" in msg
    assert "would be sent as these very characters: switchyard runs no shell and expands no variables" in msg
    assert hint in msg
    if "curl" in table:
        assert 'kind = "openai"' in msg


def test_dollars_that_are_not_variables_are_left_alone() -> None:
    text = agent(
        ["agent", "--grep", "cost$", "--price", "$5", "--x", "$(", "--model", "{model}"], 'usage_format = "aider"'
    )
    assert loads_config(text).warnings == ()


def test_a_template_that_never_passes_the_prompt_is_a_sketch_warned_about() -> None:
    text = agent(["agent", "--model", "{model}"]).replace('stdin = "{prompt_file}"\n', "")
    warnings = {w.key_path: w.message for w in loads_config(text).warnings}
    assert warnings["providers.agent.command_template"] == "the template never gives the agent the task's prompt"
    assert "no usage_format" in warnings["providers.agent"] and "(a warning while" in warnings["providers.agent"]


# --- a budget that can never admit a call is rejected at load, with the numbers -----------------------------------------

HOLDS = """
[providers.agent]
command_template = ["agent"]
stdin = "{{prompt_file}}"
usage_format = "claude-json"
{agent}

[providers.api]
kind = "openai"
{api}

[[models]]
name = "cli-model"
provider = "agent"

[[models]]
name = "dear"
provider = "api"
cost_per_million_input = 15.0
cost_per_million_output = 75.0
{dear}

[[models]]
name = "cheap"
provider = "api"
cost_per_million_input = 0.1
cost_per_million_output = 0.4

[routing]
default_model = "cheap"

[budgets]
{budgets}
"""


def holds(budgets: str, agent: str = "max_cost_usd = 0.05", api: str = "", dear: str = "") -> str:
    return HOLDS.format(budgets=budgets, agent=agent, api=api, dear=dear)


def test_a_provider_whose_every_call_holds_more_than_a_limit_is_an_error() -> None:
    # seen: max_cost_usd 2.0 under daily_usd 1 passed check and left the tasks blocked forever
    [msg] = problems(holds("daily_usd = 1", agent="max_cost_usd = 2.0"))
    assert msg.startswith("cfg.toml:6:16: providers.agent.max_cost_usd: no call to provider 'agent' can ever start")
    assert "under budgets.daily_usd ($1 per day): each holds $2 (its max_cost_usd)" in msg
    assert "hint: raise the limit to at least $2, or lower max_cost_usd" in msg


def test_a_command_provider_without_max_cost_holds_the_cli_hold() -> None:
    [msg] = problems(holds("daily_usd = 0.5", agent=""))
    assert "providers.agent: no call to provider 'agent' can ever start under budgets.daily_usd ($0.5 per day)" in msg
    assert "each holds $1 (budgets.cli_hold_usd, as it sets no max_cost_usd)" in msg
    assert "hint: set max_cost_usd below $0.5" in msg


def test_a_limit_under_every_model_of_an_api_provider_is_an_error() -> None:
    # dear: 4096 output tokens at $75/M = $0.3072; cheap: 4096 at $0.4/M = $0.0016384; the agent holds $0.0005
    [msg] = problems(holds("daily_usd = 0.001", agent="max_cost_usd = 0.0005"))
    assert "providers.api: no call to provider 'api' can ever start under budgets.daily_usd ($0.001 per day)" in msg
    assert "each holds $0.0016384 (4096 output tokens at its output price, with an empty prompt)" in msg
    assert "hint: raise the limit to at least $0.0016384, or lower the models' max_output_tokens" in msg
    # A provider's own limit that none of its models fits under is the limit's error.
    limit = '[[budgets.limits]]\nscope = "provider:api"\nperiod = "day"\nlimit_usd = 0.001\n'
    [msg] = problems(holds(limit))
    assert msg.startswith("cfg.toml:36:13: budgets.limits[0].limit_usd: no call can ever start under the limit")


def test_a_limit_no_call_fits_under_is_an_error_at_the_limit() -> None:
    [msg] = problems(holds("weekly_usd = 0.001"))
    assert msg.startswith("cfg.toml:33:14: budgets.weekly_usd: no call can ever start under budgets.weekly_usd")
    assert "the least any call it covers holds is $0.0016384 (cheap: 4096 output tokens" in msg


def test_one_model_that_never_fits_is_a_warning_when_others_of_its_provider_do() -> None:
    loaded = loads_config(holds("daily_usd = 0.1"), "cfg.toml")
    [warning] = loaded.warnings
    assert warning.key_path == "models[1].name"
    assert warning.message == (
        "no call to model 'dear' can ever fit under budgets.daily_usd ($0.1 per day): it holds $0.3072 "
        "(4096 output tokens at its output price, with an empty prompt); tasks routed to it wait until the limit is raised"
    )


def test_holds_follow_output_ceilings_time_of_day_downgrade_and_disabled_providers() -> None:
    # A smaller output ceiling makes dear fit.
    assert loads_config(holds("daily_usd = 0.1", dear="max_output_tokens = 1000")).warnings == ()
    assert loads_config(holds("daily_usd = 0.1", api="max_output_tokens = 1000")).warnings == ()
    # An off-peak window where it is cheap enough: the least hold is then.
    window = 'off_peak = [{ start = "01:00", end = "02:00", cost_per_million_input = 1, cost_per_million_output = 2 }]'
    assert loads_config(holds("daily_usd = 0.1", dear=window)).warnings == ()
    # A downgrade limit passes a call on to the next candidate: a warning, not an error.
    limit = '[[budgets.limits]]\nscope = "provider:agent"\nperiod = "day"\nlimit_usd = 0.01\non_exceed = "downgrade"\n'
    [warning] = loads_config(holds(limit)).warnings
    assert warning.key_path == "budgets.limits[0].limit_usd"
    assert warning.message.endswith("so every call it covers is passed on to another candidate (downgrade)")
    # A disabled provider is never called.
    assert loads_config(holds("daily_usd = 1", agent="max_cost_usd = 2.0\nenabled = false")).warnings == ()


def test_a_call_that_fits_no_limit_is_reported_once_against_the_tightest() -> None:
    # One warning (or error) printed once: not once per limit it does not fit under.
    [msg] = problems(holds("daily_usd = 1.5\nweekly_usd = 1\nmonthly_usd = 1.8", agent="max_cost_usd = 2.0"))
    assert "under budgets.weekly_usd ($1 per week)" in msg
    [warning] = loads_config(holds("daily_usd = 0.2\nweekly_usd = 0.1")).warnings
    assert warning.key_path == "models[1].name" and "budgets.weekly_usd ($0.1 per week)" in warning.message


def test_the_budget_warning_for_providers_without_max_cost_is_printed_once() -> None:
    text = (DATA / "seed.toml").read_text() + "\n[budgets]\ndaily_usd = 5\n"
    warned = [w for w in loads_config(text, "seed.toml").warnings if "budgets are set" in w.message]
    assert [w.message for w in warned] == [
        "budgets are set but providers 'claude-cli', 'openrouter', 'openai' have no max_cost_usd: "
        "each call holds budgets.cli_hold_usd ($1) and may spend more"
    ]
    assert warned[0].key_path == "providers.claude-cli"


@pytest.mark.parametrize(
    "path",
    [
        ("ledger", "url"),
        ("routing", "rules", 2, "condition"),
        ("providers", "a b", "env", "X"),
        ("models", 0, "tiers", 1),
    ],
)
def test_key_paths_read_back(path: tuple[str | int, ...]) -> None:
    from switchyard.config.validate import parse_path, path_str

    assert parse_path(path_str(path)) == path
