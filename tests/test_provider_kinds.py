"""The provider-kind registry is the single source: config record, lazy factory and worst case per kind."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from switchyard._records import record
from switchyard.catalog import Usage
from switchyard.config import loads_config
from switchyard.config.provider_kinds import (
    PROVIDER_KINDS,
    CallShape,
    ProviderConfig,
    ProviderKind,
    worst_case,
)
from switchyard.config.schema import BudgetsConfig
from switchyard.errors import ConfigError
from switchyard.health import Health
from switchyard.ledger import Ledger
from switchyard.providers.base import Call, ProviderContext, Result, make_provider
from switchyard.runner import Runner
from switchyard.task import Task

ROOT = Path(__file__).resolve().parent.parent
NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

# The least each registered kind needs in its table.
MINIMAL = {
    "command": 'command_template = ["agent", "{model}"]',
    "openai": 'base_url = "http://127.0.0.1:9/v1"',
    "anthropic": 'base_url = "http://127.0.0.1:9"\napi_key_env = "ANT_KEY"',
    "simulated": "latency_ms = 0",
}

MODEL = """
[[models]]
name = "m"
provider = "p"
cost_per_million_input = 3.0
cost_per_million_output = 15.0

[routing]
default_model = "m"
timezone = "UTC"
"""


def one_provider(kind: str, options: str, extra: str = "") -> str:
    return f'[providers.p]\nkind = "{kind}"\n{options}\n{MODEL}{extra}'


def test_every_registered_kind_has_its_record_factory_and_worst_case() -> None:
    assert set(MINIMAL) == set(PROVIDER_KINDS), "a kind was added or removed: give it a minimal table above"
    for name, kind in PROVIDER_KINDS.items():
        assert issubclass(kind.config, ProviderConfig), name
        module, sep, attr = kind.factory.partition(":")
        assert sep, f"{name}: factory must read 'module:Class'"
        assert callable(getattr(importlib.import_module(module), attr)), name
        assert callable(kind.worst_case), name


@pytest.mark.parametrize("name", sorted(PROVIDER_KINDS))
def test_config_builds_each_kind_with_its_record_and_the_registry_builds_the_provider(name: str) -> None:
    loaded = loads_config(one_provider(name, MINIMAL[name]))
    config = loaded.providers["p"]
    assert type(config) is PROVIDER_KINDS[name].config
    assert config.kind == name
    provider = make_provider(config, ProviderContext(env={}))
    try:
        module, _, attr = PROVIDER_KINDS[name].factory.partition(":")
        assert type(provider) is getattr(importlib.import_module(module), attr)
        assert provider.name == "p"
    finally:
        provider.close()


def test_config_accepts_exactly_the_registered_kinds() -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(one_provider("telepathy", ""))
    [problem] = info.value.problems
    assert problem.message == "unknown provider kind 'telepathy'"
    assert problem.hint == "kinds: " + ", ".join(PROVIDER_KINDS)
    with pytest.raises(ConfigError) as info:
        loads_config("[providers.p]\nenabled = true\n" + MODEL)
    assert "set kind = " + " | ".join(repr(k) for k in PROVIDER_KINDS) in (info.value.problems[0].hint or "")


def test_each_kind_rejects_the_options_of_another() -> None:
    for name, kind in PROVIDER_KINDS.items():
        own = {f.name for f in fields(kind.config)}
        for other in PROVIDER_KINDS.values():
            for f in fields(other.config):
                if f.name in own:
                    continue
                with pytest.raises(ConfigError, match=f"unknown key '{f.name}'"):
                    loads_config(one_provider(name, MINIMAL[name] + f"\n{f.name} = 1"))


# --- the worst case of one call, per kind ---------------------------------------------------------------------------


def shape(prompt: str = "x" * 300, max_output_tokens: int | None = None, **budgets: object) -> CallShape:
    loaded = loads_config(one_provider("simulated", ""))
    return CallShape(loaded.catalog["m"], prompt, max_output_tokens, NOON, BudgetsConfig(**budgets))  # type: ignore[arg-type]


def provider(kind: str, options: str = "") -> ProviderConfig:
    return loads_config(one_provider(kind, MINIMAL[kind] + "\n" + options)).providers["p"]


def test_agent_cli_holds_its_max_cost_else_the_cli_hold() -> None:
    assert worst_case(provider("command", "max_cost_usd = 0.40"), shape()) == Decimal("0.40")
    assert worst_case(provider("command"), shape(cli_hold_usd=Decimal("2.5"))) == Decimal("2.5")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_one_request_holds_the_prompt_estimate_and_every_output_token(kind: str) -> None:
    # 300 bytes / 3 * 1.25 = 125 prompt tokens at $3/M, and 4096 (the default ceiling) output tokens at $15/M.
    assert worst_case(provider(kind), shape()) == (125 * 3 + 4096 * 15) / Decimal(10**6)
    # the call's own ceiling, the margin and a prompt that does not divide evenly (rounded up)
    assert worst_case(provider(kind), shape("é" * 50, 100, prompt_token_margin=Decimal(2))) == (
        67 * 3 + 100 * 15
    ) / Decimal(10**6)


def test_simulated_holds_the_top_of_its_ranges() -> None:
    sim = provider("simulated", "input_tokens = [1, 1000]\ncache_read_tokens = [0, 50]\noutput_tokens = [1, 300]")
    assert worst_case(sim, shape()) == (1050 * 3 + 300 * 15) / Decimal(10**6)
    assert worst_case(sim, shape(max_output_tokens=100)) == (1050 * 3 + 100 * 15) / Decimal(10**6)


# --- a new kind is one module and one registry line -----------------------------------------------------------------


@record
class EchoProvider(ProviderConfig):
    """A kind defined only here: proves nothing else has to know about it."""

    reply: str = "echo"


class Echo:
    def __init__(self, config: EchoProvider, context: ProviderContext) -> None:
        self.name = config.name
        self.config = config

    def execute(self, call: Call) -> Result:
        return Result(text=f"{self.config.reply}: {call.prompt}", usage=Usage(10, 2), model=call.model)

    def close(self) -> None:
        pass


def echo_ceiling(config: EchoProvider, call: CallShape) -> Decimal:
    return Decimal("0.125")


def test_a_new_kind_needs_only_its_registry_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(PROVIDER_KINDS, "echo", ProviderKind(EchoProvider, f"{__name__}:Echo", echo_ceiling))
    text = one_provider(
        "echo", 'reply = "heard"', f'\n[ledger]\npath = "{tmp_path / "l.db"}"\n[budgets]\ndaily_usd = 1'
    )
    loaded = loads_config(text)
    assert loaded.providers["p"] == EchoProvider("p", kind="echo", reply="heard")
    with pytest.raises(ConfigError, match="unknown key 'command_template'"):
        loads_config(one_provider("echo", 'command_template = ["x"]'))
    with pytest.raises(ConfigError) as info:
        loads_config(one_provider("ech", ""))
    assert "(did you mean 'echo'?)" in info.value.problems[0].message

    ledger = Ledger.open(tmp_path / "l.db")
    try:
        runner = Runner(
            loaded, ledger, health=Health(loaded, ledger, env={}), context=ProviderContext(env={}), runs_dir=tmp_path
        )
        result = runner.run(Task("T-1"), prompt="hi", run_id="r")
        assert result.ok, result.why
        # The budget held this kind's own worst case before the call.
        [row] = ledger.db.query("SELECT state, amount_pico FROM budget_holds")
        assert row == ("settled", 125_000_000_000)
    finally:
        ledger.close()


# --- factories are imported only when a provider is built -----------------------------------------------------------


def test_route_imports_no_provider_module(tmp_path: Path) -> None:
    config = tmp_path / "switchyard.toml"
    tables = "\n".join(f'[providers.{k}]\nkind = "{k}"\n{MINIMAL[k]}\n' for k in PROVIDER_KINDS)
    config.write_text(tables + MODEL.replace('provider = "p"', 'provider = "simulated"'))
    script = (
        "import json, sys\n"
        "from switchyard.cli import main\n"
        "try:\n"
        f"    main(['route', '--config', {str(config)!r}, '--task', '{{\"id\": \"t\"}}'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    modules = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "switchyard.router" in modules  # it did route
    heavy = {"httpx", "subprocess", "switchyard.usage_parsers", "switchyard.providers.base"}
    heavy |= {PROVIDER_KINDS[k].factory.partition(":")[0] for k in PROVIDER_KINDS}
    assert not heavy & modules
