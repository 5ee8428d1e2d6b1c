"""The command line: exit codes, stdout/stderr discipline, JSON shapes, config discovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from switchyard.cli import cli

DATA = Path(__file__).parent / "data"
SEED = str(DATA / "seed.toml")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_config_check_ok_and_json() -> None:
    code, out, err = run("config", "check", "--config", SEED)
    assert code == 0
    assert out.startswith(f"{SEED}: ok (3 providers, 7 models, 5 rules, 2 workflows)")
    assert "warning:" in err and "prompt_file" in err
    code, out, _ = run("config", "check", "--config", SEED, "--json")
    data = json.loads(out)
    assert data["ok"] is True and data["summary"]["rules"] == 5
    assert "providers.claude-cli.command_template[2]" in [w["key_path"] for w in data["warnings"]]


def test_config_errors_exit_2_with_nothing_on_stdout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(Path(SEED).read_text().replace("priority == 0", "priority == 'high'"))
    code, out, err = run("config", "check", "--config", str(bad))
    assert code == 2
    assert out == ""
    assert f"{bad}:72:26: routing.rules[0].condition: cannot compare 'priority' (number) with 'high'" in err
    assert "^^^^^^" in err
    code, out, err = run("config", "check", "--config", str(bad), "--json")
    assert code == 2 and out == ""
    assert json.loads(err)["errors"][0]["key_path"] == "routing.rules[0].condition"
    # Any command that loads the config fails the same way.
    code, out, err = run("route", "--config", str(bad), "--task", '{"id": "x"}')
    assert (code, out) == (2, "")


def test_route_json_has_the_promised_fields() -> None:
    code, out, _ = run(
        "route",
        "--config",
        SEED,
        "--task",
        '{"id": "gh-7", "priority": 2}',
        "--at",
        "2026-01-01T23:30:00Z",
        "--json",
        env={"OPENROUTER_API_KEY": "test-key"},
    )
    assert code == 0
    data = json.loads(out)
    assert {"model", "provider", "reason", "rule", "candidates", "experiment", "arm", "trace"} <= set(data)
    assert data["model"] == "deepseek/deepseek-chat"
    assert data["rule"] == 2
    assert data["trace"][2] == {
        "rule": 2,
        "condition": "hour >= 22 or hour <= 6",
        "matched": True,
        "facts": {"hour": 23},
        "target": "deepseek/deepseek-chat",
        "reason": "Night jobs use budget model",
    }


def test_route_status_flag_and_explain() -> None:
    code, out, _ = run(
        "route",
        "--config",
        SEED,
        "--task",
        '{"id": "gh-7"}',
        "--at",
        "2026-01-01T12:00:00Z",
        "--status",
        "claude-cli=down",
        "--explain",
        env={"OPENROUTER_API_KEY": "test-key"},
    )
    assert code == 0
    assert out.startswith("task gh-7 -> anthropic/claude-3.5-sonnet (provider openrouter)")
    assert "[3] MATCH provider_status['claude-cli'] == 'down'" in out


def test_route_bad_task_exits_2() -> None:
    code, out, err = run("route", "--config", SEED, "--task", '{"id": "x", "priority": "urgent"}')
    assert (code, out) == (2, "")
    assert "task.priority" in err
    code, _, err = run("route", "--config", SEED, "--task", '{"id": "x"}', "--status", "nobody=down")
    assert code == 2 and "unknown provider 'nobody'" in err
    code, _, err = run("route", "--config", SEED, "--task", '{"id": "x"}', "--at", "yesterday")
    assert code == 2 and "--at yesterday" in err


def test_unset_api_key_disables_provider_for_route() -> None:
    env = {"OPENROUTER_API_KEY": ""}
    _code, out, _ = run(
        "route", "--config", SEED, "--task", '{"id": "gh-7"}', "--at", "2026-01-01T23:30:00Z", "--json", env=env
    )
    data = json.loads(out)
    assert data["model"] == "claude-sonnet-4-5"
    assert "deepseek/deepseek-chat: provider openrouter is disabled" in data["skipped"]


def test_models_json() -> None:
    code, out, _ = run("models", "--config", SEED, "--json")
    assert code == 0
    models = {m["name"]: m for m in json.loads(out)}
    assert models["deepseek/deepseek-chat"]["cost_per_million"]["input"] == "0.14"
    assert models["claude-sonnet-4-5"]["capabilities"] == ["code", "reasoning", "vision"]
    code, out, _ = run("models", "--config", SEED)
    assert "deepseek/deepseek-chat" in out and "$0.14" in out


def test_init_writes_a_config_that_passes_check(tmp_path: Path) -> None:
    target = tmp_path / "switchyard.toml"
    code, _, _ = run("init", str(target))
    assert code == 0 and target.exists()
    code, _out, err = run("config", "check", "--config", str(target))
    assert code == 0, err
    assert "warning" not in err
    code, _, err = run("init", str(target))
    assert code == 2 and "already exists" in err


def test_config_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("config", "check", env={"SWITCHYARD_CONFIG": ""})
    assert code == 2 and "switchyard.toml: config file not found" in err
    run("init")
    code, out, _ = run("config", "check", env={"SWITCHYARD_CONFIG": ""})
    assert code == 0 and out.startswith("switchyard.toml: ok")
    code, out, _ = run("config", "check", env={"SWITCHYARD_CONFIG": SEED})
    assert out.startswith(f"{SEED}: ok")
    code, out, _ = run("config", "check", "--config", "switchyard.toml", env={"SWITCHYARD_CONFIG": SEED})
    assert out.startswith("switchyard.toml: ok")


def test_catalog_import(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "gpt-4o": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2.5e-6,
                    "output_cost_per_token": 1e-5,
                }
            }
        )
    )
    code, out, err = run("catalog", "import", str(prices), "--match", "gpt-*", "--provider", "openai")
    assert code == 0
    assert '[[models]]\nname = "gpt-4o"\nprovider = "openai"\ncost_per_million_input = 2.5' in out
    assert "imported 1 model(s)" in err
    code, out, err = run("catalog", "import", str(prices), "--match", "claude-*")
    assert (code, out) == (2, "") and "no chat model matched" in err
    prices.write_text("{not json")
    code, _, err = run("catalog", "import", str(prices))
    assert code == 2 and "not valid JSON" in err


def test_usage_errors_exit_2() -> None:
    code, _, _ = run("route", "--config", SEED)
    assert code == 2
    code, _, _ = run("no-such-command")
    assert code == 2


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "switchyard"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "switchyard.cli"]
    proc = subprocess.run(
        [*argv, "route", "--config", SEED, "--task", '{"id": "gh-1", "priority": 0}'],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENROUTER_API_KEY": "x"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("claude-opus-4 (claude-cli): Critical tasks get best model")


def _modules_after_route(config: Path) -> set[str]:
    script = (
        "import json, sys\n"
        "from switchyard.cli import main\n"
        "try:\n"
        f"    main(['route', '--config', {str(config)!r}, '--task', '{{\"id\": \"t\", \"title\": \"feat: x\"}}'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_route_imports_re2_only_for_a_config_with_patterns(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text(
        '[providers.p]\nkind = "simulated"\n[[models]]\nname = "m"\nprovider = "p"\n'
        '[routing]\ndefault_model = "m"\n[[routing.rules]]\ncondition = "task.title starts_with \'feat\'"\nmodel = "m"\n'
    )
    patterned = tmp_path / "patterned.toml"
    patterned.write_text(plain.read_text().replace("starts_with 'feat'", "matches '^feat'"))
    assert "re2" not in _modules_after_route(plain)
    assert "re2" in _modules_after_route(patterned)


def test_explain_tells_one_story_when_a_matched_rule_is_passed_over() -> None:
    env = {"OPENROUTER_API_KEY": ""}  # openrouter is disabled, and the night rule's model is on it
    code, out, _ = run(
        "route", "--config", SEED, "--task", '{"id": "gh-7"}', "--at", "2026-01-01T23:30:00Z", "--explain", env=env
    )
    assert code == 0
    assert "no rule matched" not in out
    lines = out.splitlines()
    assert lines[1] == (
        "reason: rules[2] matched but was passed over (deepseek/deepseek-chat: provider openrouter is disabled); "
        "default model"
    )
    assert lines[2] == "rule: none: the default model (rules[2] was passed over)"
    [night] = [line for line in lines if line.startswith("  [2] ")]
    assert "MATCH" in night
    assert night.endswith("<= passed over: deepseek/deepseek-chat: provider openrouter is disabled")
    code, out, _ = run("route", "--config", SEED, "--task", '{"id": "gh-7"}', "--at", "2026-01-01T23:30:00Z", env=env)
    assert out == (
        "claude-sonnet-4-5 (claude-cli): rules[2] matched but was passed over "
        "(deepseek/deepseek-chat: provider openrouter is disabled); default model\n"
    )


@pytest.mark.parametrize(
    ("typo", "meant"), [("rnu", "run"), ("rout", "route"), ("stauts", "status"), ("dashbord", "dashboard")]
)
def test_a_mistyped_command_suggests_the_nearest(typo: str, meant: str) -> None:
    code, out, err = run(typo)
    assert (code, out) == (2, "")
    assert f"Error: No such command '{typo}' (did you mean '{meant}'?)." in err
    code, _, err = run("zzzzzz")
    assert code == 2 and "No such command 'zzzzzz'." in err and "did you mean" not in err


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        ("-0.04", 2, "-$0.04"),  # seen: $-0.04
        ("-0.04", 4, "-$0.0400"),
        ("-0.00001", 4, "-$0.00001"),
        ("-1234.5", 2, "-$1,234.50"),
        ("0.00001", 4, "$0.00001"),
        ("0", 4, "$0.0000"),
        ("-0", 2, "$0.00"),
        ("1234567.891", 2, "$1,234,567.89"),
    ],
)
def test_money_is_written_one_way(value: str, places: int, text: str) -> None:
    from decimal import Decimal

    from switchyard.cli.common import money
    from switchyard.money import usd

    assert money(Decimal(value), places) == text
    assert money(None) == "-"
    assert usd(Decimal("-0.0016384")) == "-$0.0016384" and usd(Decimal("12000.5")) == "$12,000.5"


def test_a_config_error_found_after_loading_is_placed_in_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[providers.sim]\nkind = "simulated"\n[[models]]\nname = "m"\nprovider = "sim"\n[routing]\ndefault_model = "m"\n'
        '\n[ledger]\nurl = "postgresql://127.0.0.1:1/nowhere"\n'
    )
    code, out, err = run("status", "--config", str(cfg))
    assert (code, out) == (2, "")
    assert err.startswith(f"{cfg}:10:7: ledger.url: cannot connect to the ledger database")


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ('default_model = "claude-sonnet-4-5"', 'default_model = "claude-sonet"', ":69:17: routing.default_model: "),
        ("priority == 0", "priority == 'high'", ":72:26: routing.rules[0].condition: "),
        ("cost_per_million_input = 0.14", "cost_per_million_input = nan", ":28:26: models[1].cost_per_million_input: "),
        ("[workflows.budget]", "[budgets]\ndaily_usd = 1e9\n[workflows.budget]", ":103:13: budgets.daily_usd: "),
    ],
)
def test_every_config_error_exits_2_with_file_key_line_col(tmp_path: Path, old: str, new: str, where: str) -> None:
    bad = tmp_path / "bad.toml"
    text = Path(SEED).read_text()
    assert old in text
    bad.write_text(text.replace(old, new, 1))
    for args in (["config", "check"], ["route", "--task", '{"id": "a"}'], ["status"]):
        code, out, err = run(*args, "--config", str(bad))
        assert (code, out) == (2, ""), args
        assert err.startswith(f"{bad}{where}"), (args, err)


@pytest.mark.parametrize("age", ["99999999d", "9999999999999999999999d", "99999999999999w"])
def test_an_age_before_the_year_1_is_an_input_error(age: str) -> None:
    from switchyard.cli.common import parse_when
    from switchyard.errors import InputError

    with pytest.raises(InputError, match=rf"^--since {age}: that is before the year 1"):
        parse_when(age, option="--since")
    code, out, err = run("log", "--config", SEED, "--since", age)
    assert (code, out) == (2, "") and f"error: --since {age}: that is before the year 1" in err
