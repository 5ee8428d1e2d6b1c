"""The model catalog: prices and capabilities, and exact cost arithmetic.

Prices are per million tokens, as `Decimal`. The cost formula is written once,
as `_cost_formula`, and follows LiteLLM's `generic_cost_per_token` so our
numbers match what people already reconcile against:

* uncached input, cache reads and cache writes are priced separately (a missing
  cache rate falls back to the input rate);
* reasoning tokens are part of the output; they are billed at the reasoning
  rate when the model has one, else at the output rate.

Which rates apply is written once too, as `CatalogModel.price_rules`, tried in
order, the first that applies wins:

* an off-peak window (UTC) replaces the base rates while it is open (the first
  open window, in config order);
* else a long-context tier whose threshold the prompt exceeds replaces the rates
  for the *whole* request (the highest such tier wins);
* else the base rates.

`CatalogModel.cost` evaluates both in Python; `CatalogModel.cost_sql` renders
the same two as one SQL integer expression, so reports re-price millions of
recorded attempts inside the database, exactly (tests/test_catalog.py checks the
two agree to the last digit, on SQLite and PostgreSQL, over random usage, tiers,
windows and times).

`Usage` says which token convention it follows: Anthropic's `input_tokens`
excludes cache reads and writes; OpenAI's `prompt_tokens` includes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

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
            return _prompt_formula(self)  # type: ignore[no-any-return]
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


def _cost_formula(usage: Any, rates: Any) -> tuple[Any, Any]:
    """The cost formula, the only one: (prompt, completion) cost in USD, times a million.

    Plain arithmetic on a `Usage` (Anthropic-convention counts) and `Rates`; given `_Sql`
    stand-ins instead, the same function writes the SQL that prices a ledger row.
    """
    reasoning = usage.reasoning_tokens
    prompt = (
        usage.uncached_input_tokens * rates.input
        + usage.cache_read_tokens * rates.cache_read
        + usage.cache_write_tokens * rates.cache_write
    )
    completion = (usage.output_tokens - reasoning) * rates.output + reasoning * rates.reasoning
    return prompt, completion


def _prompt_formula(usage: Any) -> Any:
    """All prompt tokens, cached or not: what tier thresholds compare with (Python or `_Sql`)."""
    return usage.uncached_input_tokens + usage.cache_read_tokens + usage.cache_write_tokens


class _Sql:
    """An SQL expression the formulas above can compute with (+, -, *), so they write themselves as SQL."""

    def __init__(self, text: str) -> None:
        self.text = text

    @staticmethod
    def _of(value: object) -> str:
        return value.text if isinstance(value, _Sql) else str(value)

    def __add__(self, other: object) -> _Sql:
        return _Sql(f"({self.text} + {self._of(other)})")

    def __radd__(self, other: object) -> _Sql:
        return _Sql(f"({self._of(other)} + {self.text})")

    def __sub__(self, other: object) -> _Sql:
        return _Sql(f"({self.text} - {self._of(other)})")

    def __rsub__(self, other: object) -> _Sql:
        return _Sql(f"({self._of(other)} - {self.text})")

    def __mul__(self, other: object) -> _Sql:
        return _Sql(f"{self.text} * {self._of(other)}")

    def __rmul__(self, other: object) -> _Sql:
        return _Sql(f"{self._of(other)} * {self.text}")


class _SqlColumns:
    """A row of token counts for the formulas: each `Usage` attribute is the SQL `column(name)` gives."""

    def __init__(self, column: Callable[[str], str]) -> None:
        self._column = column

    def __getattr__(self, name: str) -> _Sql:
        return _Sql(self._column(name))


@record
class Rates:
    """Per-million-token prices in force for one request."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal

    def cost_parts(self, usage: Usage) -> tuple[Decimal, Decimal]:
        """(prompt cost, completion cost) in USD of `usage` at these rates, as LiteLLM's `cost_per_token`."""
        prompt, completion = _cost_formula(usage, self)
        return prompt / MILLION, completion / MILLION

    def cost(self, usage: Usage) -> Decimal:
        """Exact cost in USD of `usage` at these rates (the sum of `cost_parts`)."""
        prompt, completion = _cost_formula(usage, self)
        return (prompt + completion) / MILLION  # type: ignore[no-any-return]

    def decimals(self) -> int:
        """How many decimal places the rates have at most (so `rate * 10**decimals()` is a whole number)."""
        return max(max(0, -int(getattr(self, name).normalize().as_tuple().exponent)) for name in _RATE_NAMES)

    def cost_sql(self, column: Callable[[str], str], decimals: int) -> str:
        """`_cost_formula` as an SQL integer expression: the cost in units of 10**-(6 + decimals) USD.

        `column(name)` is the SQL for a `Usage` token count (Anthropic convention); `decimals`,
        at least `decimals()`, turns every rate into a whole number, so the database's integer
        arithmetic is exact.
        """
        scaled = {}
        for name in _RATE_NAMES:
            value = getattr(self, name).scaleb(decimals)
            if value != value.to_integral_value():
                raise ValueError(f"rate {name} = {getattr(self, name)} has more than {decimals} decimals")
            scaled[name] = int(value)
        prompt, completion = _cost_formula(_SqlColumns(column), Rates(**scaled))  # type: ignore[arg-type]
        return _Sql._of(prompt + completion)


_RATE_NAMES = ("input", "output", "cache_read", "cache_write", "reasoning")


def minute_of_day(at: datetime | None) -> int | None:
    """Minutes since midnight UTC (a naive `at` is taken as UTC); None without a time."""
    if at is None:
        return None
    utc = at.astimezone(UTC) if at.tzinfo else at
    return utc.hour * 60 + utc.minute


@record
class _Tier:
    """Above `above` prompt tokens (cached ones included) the whole request is billed at `rates`."""

    above: int
    rates: Rates

    def applies(self, prompt_tokens: int, minute: int | None) -> bool:
        return prompt_tokens > self.above

    def sql(self, prompt: str, minute: str) -> str:
        return f"{prompt} > {self.above}"


@record
class _Window:
    """A daily UTC window, [start, end) in minutes of the day, wrapping midnight when start > end."""

    start_min: int
    end_min: int
    rates: Rates

    def contains(self, minute: int) -> bool:
        if self.start_min == self.end_min:  # "00:00-00:00": all day, as LiteLLM reads it
            return True
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min

    def applies(self, prompt_tokens: int, minute: int | None) -> bool:
        return minute is not None and self.contains(minute)

    def sql(self, prompt: str, minute: str) -> str:
        if self.start_min == self.end_min:
            return "1 = 1"
        if self.start_min < self.end_min:
            return f"({minute} >= {self.start_min} AND {minute} < {self.end_min})"
        return f"({minute} >= {self.start_min} OR {minute} < {self.end_min})"


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
    tiers: tuple[_Tier, ...] = ()  # highest threshold first
    off_peak: tuple[_Window, ...] = ()

    @property
    def price_rules(self) -> tuple[_Window | _Tier, ...]:
        """The conditional rates in the order they are tried (the first that applies wins; else `rates`)."""
        return (*self.off_peak, *self.tiers)

    def cost_sql(self, column: Callable[[str], str], minute: str) -> tuple[str, int]:
        """(SQL, exponent): the exact cost of a row's tokens on this model is SQL * 10**exponent USD.

        `column(name)` is the SQL for a `Usage` token count of the row (the names `_cost_formula` reads),
        `minute` an integer SQL expression for the row's minute of the UTC day. The SQL walks
        `price_rules` as `rates_for` does, with each rule's own `sql` condition.
        """
        rules = self.price_rules
        decimals = max(r.decimals() for r in (self.rates, *(rule.rates for rule in rules)))
        base = self.rates.cost_sql(column, decimals)
        if rules:
            prompt = _Sql._of(_prompt_formula(_SqlColumns(column)))
            whens = " ".join(
                f"WHEN {rule.sql(prompt, minute)} THEN {rule.rates.cost_sql(column, decimals)}" for rule in rules
            )
            base = f"(CASE {whens} ELSE {base} END)"
        return base, -(6 + decimals)

    def rates_for(self, usage: Usage, at: datetime | None = None) -> Rates:
        """The rates that apply to `usage` at `at` (see `price_rules`; without `at` no off-peak window is open)."""
        if self.tiers or self.off_peak:
            prompt, minute = usage.prompt_tokens, minute_of_day(at)
            for rule in self.price_rules:
                if rule.applies(prompt, minute):
                    return rule.rates
        return self.rates

    def cost(self, usage: Usage, at: datetime | None = None) -> Decimal:
        """Exact cost of `usage` in USD."""
        return self.rates_for(usage, at).cost(usage)

    def cost_parts(self, usage: Usage, at: datetime | None = None) -> tuple[Decimal, Decimal]:
        """(prompt cost, completion cost), as LiteLLM's `cost_per_token` reports them."""
        return self.rates_for(usage, at).cost_parts(usage)

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
