"""Provider kinds: the one registry. A kind is declared here and nowhere else.

Each entry of `PROVIDER_KINDS` gives, for one `kind = "..."`:

* its config record: the dataclass a `[providers.NAME]` table of that kind is
  validated into (so each kind rejects the options of another);
* its factory, as `"module:Class"`: imported only when a provider of the kind is
  first built (`providers.base.make_provider`), so `switchyard route` never
  imports httpx or the process machinery;
* its worst case for one call: what a budget holds before the call starts.

To add a kind: write `providers/<kind>.py` with a class built as
`Class(config, context)` that has `name`, `execute(call) -> Result` and
`close()`; then add its config record and one `ProviderKind` line below.

This module imports only the validator's helpers: config loading reads it on
every start.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import field
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from switchyard._records import record
from switchyard.config.validate import (
    ATTEMPTS,
    MILLISECONDS,
    SECONDS,
    SECONDS_POSITIVE,
    TOKENS,
    TOKENS_POSITIVE,
    USD_POSITIVE,
    check,
    fraction,
)
from switchyard.errors import did_you_mean
from switchyard.usage_formats import USAGE_FORMATS

if TYPE_CHECKING:
    from datetime import datetime

    from switchyard.catalog import CatalogModel
    from switchyard.config.schema import BudgetsConfig

__all__ = [
    "PROVIDER_KINDS",
    "AnthropicProvider",
    "CallShape",
    "CommandProvider",
    "HTTPProvider",
    "OpenAIProvider",
    "Outage",
    "ProviderConfig",
    "ProviderKind",
    "SimulatedProvider",
    "scaled",
    "worst_case",
]


def _env_name(v: str | None) -> str | None:
    if v is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        return None
    return f"{v!r} is not an environment variable name (put the variable's name here, never the key itself)"


def _usage_format(v: str) -> str | None:
    if v in USAGE_FORMATS:
        return None
    return f"unknown usage format {v!r}{did_you_mean(v, USAGE_FORMATS)}; formats: {', '.join(USAGE_FORMATS)}"


def _token_range(v: tuple[int, ...]) -> str | None:
    if len(v) == 2 and 0 <= v[0] <= v[1]:
        return TOKENS(v[1])
    return "expected [low, high] with 0 <= low <= high"


# --------------------------------------------------------------------------- config records
@record
class ProviderConfig:
    """Options every provider kind shares."""

    name: str = field(metadata={"from_key": True})
    kind: str = "command"
    enabled: bool = True
    api_key_env: str | None = field(default=None, metadata=check(_env_name))
    timeout_s: float | None = field(default=None, metadata=check(SECONDS_POSITIVE))
    max_retries: int = field(default=2, metadata=check(ATTEMPTS))
    retry_after_cap_s: float = field(default=60.0, metadata=check(SECONDS))
    max_cost_usd: Decimal | None = field(default=None, metadata=check(USD_POSITIVE))
    description: str = ""

    def model_problems(self, served: Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
        """What is wrong with this table given the `[[models]]` it serves: (key path under the table, message)."""
        return []


@record
class CommandProvider(ProviderConfig):
    """An agent CLI run from an argv template (Claude Code, Codex, Gemini CLI, aider, …)."""

    command_template: tuple[str, ...] = ()
    stdin: str | None = None
    usage_format: str = field(default="none", metadata=check(_usage_format))
    env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    workdir: str | None = None
    output_file: str = "output.txt"
    max_cost_flag: tuple[str, ...] = ()


@record
class HTTPProvider(ProviderConfig):
    """Options every HTTP API kind shares."""

    base_url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    connect_timeout_s: float = field(default=10.0, metadata=check(SECONDS_POSITIVE))


@record
class OpenAIProvider(HTTPProvider):
    """An OpenAI-compatible chat-completions endpoint."""

    base_url: str = "https://api.openai.com/v1"
    max_output_tokens: int | None = field(default=None, metadata=check(TOKENS_POSITIVE))


@record
class AnthropicProvider(HTTPProvider):
    """The Anthropic Messages API (or a compatible gateway)."""

    api_key_env: str | None = field(default="ANTHROPIC_API_KEY", metadata=check(_env_name))
    base_url: str = "https://api.anthropic.com"
    anthropic_version: str = "2023-06-01"
    max_output_tokens: int = field(default=4096, metadata=check(TOKENS_POSITIVE))


@record
class Outage:
    """A window, in seconds after the provider is first used, during which every call fails."""

    after_s: float = field(metadata=check(SECONDS))
    for_s: float = field(metadata=check(SECONDS_POSITIVE))
    error_kind: Literal["500", "529", "timeout", "connection"] = "529"


def _resolve_rates(v: dict[str, float]) -> str | None:
    bad = [m for m, rate in v.items() if not 0 < rate < 1]
    if bad:
        return f"the resolve rate of {', '.join(repr(m) for m in bad)} must be above 0 and below 1 (a share of tasks)"
    return None


def _token_scales(v: dict[str, float]) -> str | None:
    bad = [m for m, scale in v.items() if not 0 < scale <= 10]
    if bad:
        return f"the token scale of {', '.join(repr(m) for m in bad)} must be above 0 and at most 10"
    return None


def _difficulty_sd(v: float) -> str | None:
    return None if 0 <= v <= 20 else "must be between 0 and 20 (in units of one attempt's noise)"


@record
class SimulatedProvider(ProviderConfig):
    """An offline stand-in: deterministic per task id and attempt, for demos and tests.

    With `resolve_rate` it also simulates quality (`providers/simulated.py`): each
    task has a difficulty, each model a skill calibrated so that it resolves
    `resolve_rate[model]` of all tasks; an answer that does not resolve its task
    still costs its tokens.
    """

    seed: int = 0
    latency_ms: float = field(default=50.0, metadata=check(MILLISECONDS))
    latency_jitter_ms: float = field(default=0.0, metadata=check(MILLISECONDS))
    input_tokens: tuple[int, ...] = field(default=(800, 3000), metadata=check(_token_range))
    output_tokens: tuple[int, ...] = field(default=(200, 1200), metadata=check(_token_range))
    cache_read_tokens: tuple[int, ...] = field(default=(0, 0), metadata=check(_token_range))
    cache_write_tokens: tuple[int, ...] = field(default=(0, 0), metadata=check(_token_range))
    failure_rate: float = field(default=0.0, metadata=check(fraction))
    error_kind: Literal["429", "500", "529", "402", "401", "400", "timeout", "malformed", "connection"] = "500"
    retry_after_s: float = field(default=1.0, metadata=check(SECONDS))
    outages: tuple[Outage, ...] = ()
    # Quality. Each model this provider serves: the share of all tasks it resolves (empty: every answer resolves).
    resolve_rate: dict[str, float] = field(default_factory=dict, metadata=check(_resolve_rates))
    # Per model, a factor on the token ranges above (a model that works in fewer or more tokens per task).
    token_scale: dict[str, float] = field(default_factory=dict, metadata=check(_token_scales))
    # How much task difficulty varies, in units of one attempt's noise (see providers/simulated.py for the fit).
    difficulty_sd: float = field(default=2.4, metadata=check(_difficulty_sd))
    # How much of a model's luck on a task carries over to its next attempt on it: 0 = a fresh draw every
    # attempt, 1 = a model that failed a task fails it again (as an outcomes table has it).
    persistence: float = field(default=0.5, metadata=check(fraction))
    world_seed: int = 0  # task difficulties and answers: keep it equal across providers for one world
    # Who judges an answer: "provider" = an unresolved answer is a failed attempt (kind `unresolved`) that
    # escalates; "verify" = it is returned as a success carrying `"resolved": false`, for a verify step.
    verdict: Literal["provider", "verify"] = "provider"

    def model_problems(self, served: Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        mine = set(served)
        for key in ("resolve_rate", "token_scale"):
            table: dict[str, float] = getattr(self, key)
            for model in table:
                if model not in mine:
                    problems.append(
                        (
                            (key, model),
                            f"'{model}' is not a model of this provider{did_you_mean(model, served)}"
                            + (f"; its models: {', '.join(served)}" if served else "; no [[models]] entry names it"),
                        )
                    )
        if self.resolve_rate:
            for model in served:
                if model not in self.resolve_rate:
                    problems.append(
                        (
                            ("resolve_rate",),
                            f"model '{model}' has no resolve rate: give every model of this provider one"
                            f' (e.g. "{model}" = 0.6), or none to make every answer resolve',
                        )
                    )
        return problems


# --------------------------------------------------------------------------- worst case of one call
@record
class CallShape:
    """What is known of a call before it starts: enough to bound what it can cost."""

    model: CatalogModel
    prompt: str
    max_output_tokens: int | None  # the ceiling the call is sent with, when it has one
    at: datetime  # prices can depend on the time of day (off-peak windows)
    budgets: BudgetsConfig  # the hold settings: cli_hold_usd, prompt_token_margin, default_max_output_tokens


def _agent_cli_ceiling(config: CommandProvider, call: CallShape) -> Decimal:
    # Agent CLIs run many turns: their ceiling is the provider's max_cost_usd (passed to the CLI
    # through max_cost_flag where it has one, such as claude --max-budget-usd).
    return config.max_cost_usd or call.budgets.cli_hold_usd


def _one_request_ceiling(config: ProviderConfig, call: CallShape) -> Decimal:
    # One request: the prompt estimated from its size (~3 bytes a token, with a margin), every
    # output token the call may produce.
    margin = call.budgets.prompt_token_margin
    prompt_tokens = int((Decimal(len(call.prompt.encode("utf-8"))) / 3 * margin).to_integral_value(ROUND_CEILING))
    return call.model.max_cost(prompt_tokens, call.max_output_tokens or call.budgets.default_max_output_tokens, call.at)


def _simulated_ceiling(config: SimulatedProvider, call: CallShape) -> Decimal:
    # The simulation draws its tokens from configured ranges (times the model's token scale): their tops.
    scale = config.token_scale.get(call.model.name, 1.0)
    prompt = sum(
        scaled(r[1], scale) for r in (config.input_tokens, config.cache_read_tokens, config.cache_write_tokens)
    )
    top = scaled(config.output_tokens[1], scale)
    return call.model.max_cost(prompt, min(top, call.max_output_tokens or top), call.at)


def scaled(tokens: int, scale: float) -> int:
    """A token count times a model's `token_scale`, rounded half up (the simulation and its worst case agree)."""
    return tokens if scale == 1.0 else int(tokens * scale + 0.5)


# --------------------------------------------------------------------------- the registry
C = TypeVar("C", bound=ProviderConfig)


@record
class ProviderKind(Generic[C]):
    """One provider kind: its config record, where its implementation lives, its worst case per call."""

    config: type[C]
    factory: str  # "module:Class", imported when the first provider of this kind is built
    worst_case: Callable[[C, CallShape], Decimal]


PROVIDER_KINDS: dict[str, ProviderKind[Any]] = {
    "command": ProviderKind(CommandProvider, "switchyard.providers.command:CommandRunner", _agent_cli_ceiling),
    "openai": ProviderKind(OpenAIProvider, "switchyard.providers.http:OpenAIChat", _one_request_ceiling),
    "anthropic": ProviderKind(AnthropicProvider, "switchyard.providers.http:AnthropicMessages", _one_request_ceiling),
    "simulated": ProviderKind(SimulatedProvider, "switchyard.providers.simulated:Simulated", _simulated_ceiling),
}


def worst_case(config: ProviderConfig, call: CallShape) -> Decimal:
    """The most `call` can cost on the provider `config` describes: what a budget holds before it starts."""
    return PROVIDER_KINDS[config.kind].worst_case(config, call)
