"""The shape of a switchyard config file, as frozen dataclasses.

`validate.Reader` builds these from TOML; field types are the schema. Prices
are `Decimal` (TOML floats are parsed straight to Decimal, never via float).
Provider tables are validated by the record registered for their `kind` in
`provider_kinds.PROVIDER_KINDS` (re-exported here), so each kind rejects
options that belong to another.
"""

from __future__ import annotations

import re
from dataclasses import field
from decimal import Decimal
from typing import Literal

from switchyard._records import record
from switchyard.config.provider_kinds import (
    PROVIDER_KINDS,
    AnthropicProvider,
    CommandProvider,
    OpenAIProvider,
    Outage,
    ProviderConfig,
    SimulatedProvider,
)
from switchyard.config.validate import (
    SECONDS,
    SECONDS_POSITIVE,
    TOKENS,
    TOKENS_POSITIVE,
    USD,
    USD_POSITIVE,
    check,
    fraction,
    non_negative,
    positive,
    up_to,
)
from switchyard.patterns import PatternError, compile_pattern

__all__ = [
    "PROVIDER_KINDS",
    "AnthropicProvider",
    "BudgetLimit",
    "BudgetsConfig",
    "CommandProvider",
    "Config",
    "CoordinatorConfig",
    "HealthConfig",
    "LedgerConfig",
    "ModelConfig",
    "OffPeakWindow",
    "OpenAIProvider",
    "Outage",
    "PriceTier",
    "ProviderConfig",
    "RoutingConfig",
    "RuleConfig",
    "RunnerConfig",
    "SimulatedProvider",
    "StageConfig",
    "WorkflowConfig",
]


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _regex(v: str | None) -> str | None:
    """A user pattern must compile with RE2 (`switchyard.patterns`): it will run in linear time on agent output."""
    if v is None:
        return None
    try:
        compile_pattern(v)
    except PatternError as exc:
        return f"invalid regular expression: {exc.reason}" + (f"; {exc.hint}" if exc.hint else "")
    return None


def _scope(v: str) -> str | None:
    if v == "global":
        return None
    kind, sep, name = v.partition(":")
    if sep and name and kind in ("provider", "model", "label", "workflow"):
        return None
    return f"{v!r} is not a scope: write 'global', 'provider:NAME', 'model:NAME', 'label:NAME' or 'workflow:NAME'"


def _hhmm(v: str) -> str | None:
    return None if _HHMM.match(v) else f"expected a UTC time as 'HH:MM', got {v!r}"


PRICE = check(USD)  # per million tokens


# --------------------------------------------------------------------------- state and execution
@record
class LedgerConfig:
    """`[ledger]`: where attempts are recorded. Relative paths are relative to the config file."""

    path: str = ".switchyard/ledger.db"
    url: str | None = None


@record
class RunnerConfig:
    """`[runner]`: retries, backoff and where each attempt's files go."""

    runs_dir: str = ".switchyard/runs"
    max_attempts: int = field(default=8, metadata=check(up_to(1000, "the backoff doubles with each try", positive)))
    backoff_base_s: float = field(default=0.5, metadata=check(SECONDS))
    backoff_max_s: float = field(default=8.0, metadata=check(SECONDS))
    default_timeout_s: float = field(default=1800.0, metadata=check(SECONDS_POSITIVE))
    # Flag an attempt whose provider-reported cost differs from the catalog's by more than this share
    # of the catalog's (0.25: a quarter); `report` and the dashboard list the flagged ones.
    reported_cost_gap: Decimal = field(
        default=Decimal("0.25"), metadata=check(up_to(100, "a share of the catalog's cost (1 is 100 %)", positive))
    )


@record
class HealthConfig:
    """`[health]`: when a provider's circuit breaker opens, and for how long."""

    consecutive_failures: int = field(default=5, metadata=check(positive))
    failure_rate: float = field(default=0.5, metadata=check(fraction))
    window_s: float = field(default=60.0, metadata=check(SECONDS_POSITIVE))
    min_calls: int = field(default=10, metadata=check(positive))
    cooldown_s: float = field(default=30.0, metadata=check(SECONDS))
    probe_timeout_s: float = field(default=900.0, metadata=check(SECONDS_POSITIVE))


# --------------------------------------------------------------------------- models
@record
class PriceTier:
    """Above `above_input_tokens` prompt tokens the whole request is billed at these rates."""

    above_input_tokens: int = field(metadata=check(TOKENS))
    cost_per_million_input: Decimal = field(metadata=PRICE)
    cost_per_million_output: Decimal = field(metadata=PRICE)
    cost_per_million_cached_input: Decimal | None = field(default=None, metadata=PRICE)
    cost_per_million_cache_write: Decimal | None = field(default=None, metadata=PRICE)


@record
class OffPeakWindow:
    """A daily UTC window (`start` inclusive, `end` exclusive, may wrap midnight) with its own rates."""

    start: str = field(metadata=check(_hhmm))
    end: str = field(metadata=check(_hhmm))
    cost_per_million_input: Decimal = field(metadata=PRICE)
    cost_per_million_output: Decimal = field(metadata=PRICE)
    cost_per_million_cached_input: Decimal | None = field(default=None, metadata=PRICE)
    cost_per_million_cache_write: Decimal | None = field(default=None, metadata=PRICE)
    cost_per_million_reasoning: Decimal | None = field(default=None, metadata=PRICE)


@record
class ModelConfig:
    """One `[[models]]` entry: what the model is and what it costs."""

    name: str
    provider: str
    cost_per_million_input: Decimal = field(default=Decimal(0), metadata=PRICE)
    cost_per_million_output: Decimal = field(default=Decimal(0), metadata=PRICE)
    cost_per_million_cached_input: Decimal | None = field(default=None, metadata=PRICE)
    cost_per_million_cache_write: Decimal | None = field(default=None, metadata=PRICE)
    cost_per_million_reasoning: Decimal | None = field(default=None, metadata=PRICE)
    capabilities: tuple[str, ...] = ()
    context_window: int | None = field(default=None, metadata=check(TOKENS_POSITIVE))
    max_output_tokens: int | None = field(default=None, metadata=check(TOKENS_POSITIVE))
    provider_model: str | None = None
    tiers: tuple[PriceTier, ...] = ()
    off_peak: tuple[OffPeakWindow, ...] = ()
    description: str = ""
    outcome_model: str | None = None  # its name in an outcomes table (`switchyard replay`), when that differs


# --------------------------------------------------------------------------- routing
_MAX_WEIGHT = 1_000_000


def _split_weights(v: dict[str, Decimal]) -> str | None:
    if not v:
        return "a split needs at least one model"
    bad = [k for k, w in v.items() if w <= 0]
    if bad:
        return f"split weights must be greater than zero (check {', '.join(repr(b) for b in bad)})"
    big = [k for k, w in v.items() if w > _MAX_WEIGHT]
    if big:
        return f"split weights are shares, at most {_MAX_WEIGHT:,} (check {', '.join(repr(b) for b in big)})"
    return None


@record
class RuleConfig:
    """One `[[routing.rules]]` entry."""

    condition: str = "true"
    model: str | None = None
    split: dict[str, Decimal] | None = field(default=None, metadata=check(_split_weights))
    fallbacks: tuple[str, ...] = ()
    reason: str | None = None
    experiment: str | None = None
    workflow: str | None = None
    name: str | None = None
    enabled: bool = True


@record
class RoutingConfig:
    """The `[routing]` table."""

    default_model: str
    timezone: str | None = None
    default_workflow: str | None = None
    rules: tuple[RuleConfig, ...] = ()


def _priorities(v: dict[str, int]) -> str | None:
    bad = [k for k, p in v.items() if not 0 <= p <= 4]
    return f"priorities are 0-4 (check {', '.join(repr(b) for b in bad)})" if bad else None


def default_priority_labels() -> dict[str, int]:
    """GitHub labels that set a task's priority: `priority:P0`…`priority:P4` and `P0`…`P4`."""
    return {**{f"priority:P{i}": i for i in range(5)}, **{f"P{i}": i for i in range(5)}}


@record
class CoordinatorConfig:
    """`[coordinator]`: how `switchyard run` pulls, queues and runs tasks."""

    max_workers: int = field(default=2, metadata=check(up_to(256, "tasks at once, as --workers", positive)))
    max_attempts: int = field(default=3, metadata=check(up_to(1000, "escalations of one task", positive)))
    prompt_template: str | None = None
    system_db: str | None = None
    # DBOS executor identity: leave unset, each installation makes its own (.switchyard/executor_id);
    # one shared by several machines is refused at start while another holds it.
    executor_id: str | None = None
    # Many machines on one PostgreSQL (switchyard.ledger.leases): each renews its lease every renew_s;
    # one that cannot for lease_s stops its agents and exits; the others take its work over once
    # takeover_s passed since its last renewal (at least lease_s + 5 s, so it has fenced itself first).
    lease_s: float = field(default=10.0, metadata=check(up_to(3600, "seconds, an hour", positive)))
    renew_s: float = field(default=2.0, metadata=check(up_to(1800, "seconds, half an hour", positive)))
    takeover_s: float = field(default=20.0, metadata=check(up_to(7200, "seconds, two hours", positive)))
    poll_interval_s: float = field(default=0.2, metadata=check(SECONDS_POSITIVE))
    # `switchyard run` without --once keeps re-reading its sources every watch_s seconds (as --watch)
    watch_s: float | None = field(default=None, metadata=check(SECONDS_POSITIVE))
    grace_s: float = field(default=30.0, metadata=check(SECONDS))
    priority_labels: dict[str, int] = field(default_factory=default_priority_labels, metadata=check(_priorities))
    default_priority: int = field(default=2, metadata=check(lambda v: None if 0 <= v <= 4 else "priorities are 0-4"))


# --------------------------------------------------------------------------- workflows
@record
class StageConfig:
    """One stage of a workflow: a fixed model, or `route = true` to let the rules decide."""

    name: str
    model: str | None = None
    route: bool = False
    prompt: str | None = None
    prompt_file: str | None = None
    requires: tuple[str, ...] = ()
    timeout_s: float | None = field(default=None, metadata=check(SECONDS_POSITIVE))
    # A review stage can send the task back: when its output matches `reject_if` (a regex), or
    # its JSON output's `verdict_field` holds one of `reject_values`, go back to stage `loop_to`.
    loop_to: str | None = None
    reject_if: str | None = field(default=None, metadata=check(_regex))
    verdict_field: str | None = None
    reject_values: tuple[str, ...] = ("reject", "rejected", "changes_requested", "request_changes")
    # `[verify]` judges this stage's attempts (default: the last stage that is not a review).
    verify: bool | None = None


@record
class WorkflowConfig:
    """`[workflows.NAME]`."""

    name: str = field(metadata={"from_key": True})
    stages: tuple[StageConfig, ...] = ()
    max_loops: int = field(default=2, metadata=check(non_negative))
    description: str = ""


# --------------------------------------------------------------------------- budgets
@record
class BudgetLimit:
    """One `[[budgets.limits]]` entry."""

    scope: str = field(metadata=check(_scope))
    period: Literal["day", "week", "month"]
    limit_usd: Decimal = field(metadata=check(USD))
    on_exceed: Literal["block", "downgrade"] = "block"


@record
class BudgetsConfig:
    """`[budgets]`: spend limits per period and scope, held exactly under concurrency."""

    daily_usd: Decimal | None = field(default=None, metadata=check(USD))
    weekly_usd: Decimal | None = field(default=None, metadata=check(USD))
    monthly_usd: Decimal | None = field(default=None, metadata=check(USD))
    limits: tuple[BudgetLimit, ...] = ()
    cli_hold_usd: Decimal = field(default=Decimal("1.00"), metadata=check(USD_POSITIVE))
    prompt_token_margin: Decimal = field(
        default=Decimal("1.25"), metadata=check(up_to(100, "a factor on the prompt's estimated size", positive))
    )
    default_max_output_tokens: int = field(default=4096, metadata=check(TOKENS_POSITIVE))
    recheck_s: float = field(default=30.0, metadata=check(SECONDS_POSITIVE))

    def all_limits(self) -> tuple[BudgetLimit, ...]:
        """The shorthand daily/weekly/monthly totals as global limits, then the explicit ones."""
        periods: tuple[tuple[Literal["day", "week", "month"], Decimal | None], ...] = (
            ("day", self.daily_usd),
            ("week", self.weekly_usd),
            ("month", self.monthly_usd),
        )
        shorthand = [BudgetLimit("global", period, amount, "block") for period, amount in periods if amount is not None]
        return (*shorthand, *self.limits)


# --------------------------------------------------------------------------- whole file
@record
class Config:
    """A validated config. `path` is the file it came from; `source` its text."""

    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: tuple[ModelConfig, ...] = ()
    routing: RoutingConfig | None = None
    workflows: dict[str, WorkflowConfig] = field(default_factory=dict)
    path: str = field(default="", metadata={"internal": True})
    source: str = field(default="", metadata={"internal": True})
