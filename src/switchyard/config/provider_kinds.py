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
from collections.abc import Callable
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


@record
class SimulatedProvider(ProviderConfig):
    """An offline stand-in: deterministic per task id and attempt, for demos and tests."""

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
    # The simulation draws its tokens from configured ranges: their tops are the worst case.
    prompt = config.input_tokens[1] + config.cache_read_tokens[1] + config.cache_write_tokens[1]
    top = config.output_tokens[1]
    return call.model.max_cost(prompt, min(top, call.max_output_tokens or top), call.at)


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
