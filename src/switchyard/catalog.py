"""The model catalog: prices and capabilities, and exact cost arithmetic.

Prices are per million tokens, as `Decimal`. `cost()` follows LiteLLM's
`generic_cost_per_token` so our numbers match what people already reconcile
against:

* uncached input, cache reads and cache writes are priced separately (a missing
  cache rate falls back to the input rate);
* reasoning tokens are part of the output; they are billed at the reasoning
  rate when the model has one, else at the output rate;
* a long-context tier whose threshold the prompt exceeds replaces the rates for
  the *whole* request (the highest such tier wins);
* an off-peak window (UTC) replaces the base rates while it is open.

`Usage` says which token convention it follows: Anthropic's `input_tokens`
excludes cache reads and writes; OpenAI's `prompt_tokens` includes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from switchyard.config.schema import ModelConfig
from switchyard._records import record

__all__ = [
    "Catalog",
    "CatalogModel",
    "Rates",
    "UnknownModel",
    "Usage",
]

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
Convention = Literal["anthropic", "openai"]


@record
class Usage:
    """Token counts of one call.

    With `convention="anthropic"`, `input_tokens` counts only uncached input;
    with `"openai"` it is the whole prompt, cache reads and writes included.
    `output_tokens` always includes `reasoning_tokens`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    convention: Convention = "anthropic"

    @property
    def uncached_input_tokens(self) -> int:
        """Prompt tokens that were neither read from nor written to a cache."""
        if self.convention == "anthropic":
            return self.input_tokens
        return max(0, self.input_tokens - self.cache_read_tokens - self.cache_write_tokens)

    @property
    def prompt_tokens(self) -> int:
        """All prompt tokens, cached or not (what tier thresholds are compared with)."""
        if self.convention == "anthropic":
            return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.input_tokens

    def normalized(self) -> Usage:
        """The same usage in the Anthropic convention (input excludes cache tokens)."""
        if self.convention == "anthropic":
            return self
        return Usage(
            self.uncached_input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            "anthropic",
        )

    def __add__(self, other: Usage) -> Usage:
        a, b = self.normalized(), other.normalized()
        return Usage(
            a.input_tokens + b.input_tokens,
            a.output_tokens + b.output_tokens,
            a.cache_read_tokens + b.cache_read_tokens,
            a.cache_write_tokens + b.cache_write_tokens,
            a.reasoning_tokens + b.reasoning_tokens,
            "anthropic",
        )


@record
class Rates:
    """Per-million-token prices in force for one request."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal


@record
class _Tier:
    above: int
    rates: Rates


@record
class _Window:
    start_min: int
    end_min: int
    rates: Rates

    def contains(self, minute: int) -> bool:
        if self.start_min == self.end_min:  # "00:00-00:00": all day, as LiteLLM reads it
            return True
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min


@record
class CatalogModel:
    """A model as the catalog knows it."""

    name: str
    provider: str
    rates: Rates
    capabilities: frozenset[str]
    context_window: int | None = None
    max_output_tokens: int | None = None
    provider_model: str | None = None
    tiers: tuple[_Tier, ...] = ()
    off_peak: tuple[_Window, ...] = ()

    def rates_for(self, usage: Usage, at: datetime | None = None) -> Rates:
        """The rates that apply to `usage`: the highest tier the prompt exceeds, then an open off-peak window."""
        rates = self.rates
        if self.tiers:
            prompt = usage.prompt_tokens
            for tier in self.tiers:  # sorted highest threshold first
                if prompt > tier.above:
                    rates = tier.rates
                    break
        if self.off_peak and at is not None:
            utc = at.astimezone(UTC) if at.tzinfo else at
            minute = utc.hour * 60 + utc.minute
            for w in self.off_peak:
                if w.contains(minute):
                    return w.rates
        return rates

    def cost(self, usage: Usage, at: datetime | None = None) -> Decimal:
        """Exact cost of `usage` in USD."""
        r = self.rates if not (self.tiers or self.off_peak) else self.rates_for(usage, at)
        uncached = usage.uncached_input_tokens
        reasoning = usage.reasoning_tokens
        out = usage.output_tokens
        total = (
            uncached * r.input
            + usage.cache_read_tokens * r.cache_read
            + usage.cache_write_tokens * r.cache_write
            + (out - reasoning) * r.output
            + reasoning * r.reasoning
        )
        return total / MILLION

    def cost_parts(self, usage: Usage, at: datetime | None = None) -> tuple[Decimal, Decimal]:
        """(prompt cost, completion cost), as LiteLLM's `cost_per_token` reports them."""
        r = self.rates_for(usage, at)
        prompt = (
            usage.uncached_input_tokens * r.input
            + usage.cache_read_tokens * r.cache_read
            + usage.cache_write_tokens * r.cache_write
        )
        completion = (usage.output_tokens - usage.reasoning_tokens) * r.output + usage.reasoning_tokens * r.reasoning
        return prompt / MILLION, completion / MILLION

    def max_cost(self, prompt_tokens: int, max_output_tokens: int, at: datetime | None = None) -> Decimal:
        """Worst-case cost of a call: every prompt token uncached, every output token at the dearest rate."""
        usage = Usage(input_tokens=prompt_tokens, output_tokens=max_output_tokens)
        r = self.rates_for(usage, at)
        prompt_rate = max(r.input, r.cache_write)
        out_rate = max(r.output, r.reasoning)
        return (prompt_tokens * prompt_rate + max_output_tokens * out_rate) / MILLION


class UnknownModel(KeyError):
    """Asked the catalog for a model it does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


def _rates(
    inp: Decimal,
    out: Decimal,
    cached: Decimal | None,
    write: Decimal | None,
    reasoning: Decimal | None,
    base: ModelConfig | None = None,
) -> Rates:
    """Resolve missing rates: the model's own explicit rate if it has one, else input (output for reasoning)."""

    def pick(own: Decimal | None, model_level: Decimal | None, default: Decimal) -> Decimal:
        if own is not None:
            return own
        return model_level if model_level is not None else default

    return Rates(
        input=inp,
        output=out,
        cache_read=pick(cached, base.cost_per_million_cached_input if base else None, inp),
        cache_write=pick(write, base.cost_per_million_cache_write if base else None, inp),
        reasoning=pick(reasoning, base.cost_per_million_reasoning if base else None, out),
    )


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _catalog_model(m: ModelConfig) -> CatalogModel:
    base = _rates(
        m.cost_per_million_input,
        m.cost_per_million_output,
        m.cost_per_million_cached_input,
        m.cost_per_million_cache_write,
        m.cost_per_million_reasoning,
    )
    tiers = sorted(
        (
            _Tier(
                t.above_input_tokens,
                _rates(
                    t.cost_per_million_input,
                    t.cost_per_million_output,
                    t.cost_per_million_cached_input,
                    t.cost_per_million_cache_write,
                    None,
                    m,
                ),
            )
            for t in m.tiers
        ),
        key=lambda t: -t.above,
    )
    windows = tuple(
        _Window(
            _minutes(w.start),
            _minutes(w.end),
            _rates(
                w.cost_per_million_input,
                w.cost_per_million_output,
                w.cost_per_million_cached_input,
                w.cost_per_million_cache_write,
                w.cost_per_million_reasoning,
                m,
            ),
        )
        for w in m.off_peak
    )
    return CatalogModel(
        name=m.name,
        provider=m.provider,
        rates=base,
        capabilities=frozenset(m.capabilities),
        context_window=m.context_window,
        max_output_tokens=m.max_output_tokens,
        provider_model=m.provider_model,
        tiers=tuple(tiers),
        off_peak=windows,
    )


class Catalog:
    """All models of a config, by name."""

    def __init__(self, models: Iterable[CatalogModel]) -> None:
        self._models = {m.name: m for m in models}

    @classmethod
    def from_config(cls, models: Iterable[ModelConfig]) -> Catalog:
        """Build from validated `[[models]]` entries."""
        return cls(_catalog_model(m) for m in models)

    def __getitem__(self, name: str) -> CatalogModel:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModel(f"model {name!r} is not in the catalog") from None

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[CatalogModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def names(self) -> list[str]:
        """Model names in config order."""
        return list(self._models)

    def cost(self, model: str, usage: Usage, *, at: datetime | None = None) -> Decimal:
        """Exact cost in USD of `usage` on `model` at time `at` (UTC; off-peak windows need it)."""
        return self[model].cost(usage, at)
