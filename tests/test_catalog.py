"""Cost arithmetic against LiteLLM's reference values, tiers, off-peak windows, and price import."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.catalog import CatalogModel, Rates, UnknownModel, Usage, _Tier, _Window
from switchyard.catalog_import import import_litellm, parse_litellm
from switchyard.config import loads_config
from switchyard.ledger import AttemptRecord, Ledger

# Prices as in LiteLLM's model_prices_and_context_window.json, per million tokens.
CONFIG = """
[providers.p]
kind = "openai"

[[models]]
name = "gpt-4o"
provider = "p"
cost_per_million_input = 2.5
cost_per_million_output = 10.0
cost_per_million_cached_input = 1.25

[[models]]
name = "claude-sonnet-4-5"
provider = "p"
cost_per_million_input = 3.0
cost_per_million_output = 15.0
cost_per_million_cached_input = 0.3
cost_per_million_cache_write = 3.75

[[models]]
name = "gemini-2.5-pro"
provider = "p"
cost_per_million_input = 1.25
cost_per_million_output = 10.0
[[models.tiers]]
above_input_tokens = 200000
cost_per_million_input = 2.5
cost_per_million_output = 15.0

[[models]]
name = "gpt-5"
provider = "p"
cost_per_million_input = 1.25
cost_per_million_output = 10.0

[[models]]
name = "deepseek-chat"
provider = "p"
cost_per_million_input = 0.27
cost_per_million_output = 1.10
cost_per_million_cached_input = 0.07
[[models.off_peak]]
start = "16:30"
end = "00:30"
cost_per_million_input = 0.135
cost_per_million_output = 0.55

[routing]
default_model = "gpt-4o"
"""

CATALOG = loads_config(CONFIG).catalog
D = Decimal


@pytest.mark.parametrize(
    ("model", "usage", "prompt_cost", "completion_cost"),
    [
        # The reference table in shared/reference/peers.md ("How LiteLLM computes cost").
        ("gpt-4o", Usage(1000, 500, convention="openai"), "0.0025", "0.005"),
        ("gpt-4o", Usage(10_000, 100, cache_read_tokens=8000, convention="openai"), "0.015", "0.001"),
        (
            "claude-sonnet-4-5",
            Usage(7000, 500, cache_read_tokens=4000, cache_write_tokens=2000, convention="openai"),
            "0.0117",
            "0.0075",
        ),
        # The same call in Anthropic's own convention (input excludes cache tokens): same cost.
        (
            "claude-sonnet-4-5",
            Usage(1000, 500, cache_read_tokens=4000, cache_write_tokens=2000, convention="anthropic"),
            "0.0117",
            "0.0075",
        ),
        # Feeding Anthropic's raw input_tokens as if they were OpenAI prompt_tokens underbills, as LiteLLM does.
        (
            "claude-sonnet-4-5",
            Usage(1000, 500, cache_read_tokens=4000, cache_write_tokens=2000, convention="openai"),
            "0.0087",
            "0.0075",
        ),
        ("gemini-2.5-pro", Usage(150_000, 1000, convention="openai"), "0.1875", "0.01"),
        ("gemini-2.5-pro", Usage(250_000, 1000, convention="openai"), "0.625", "0.015"),
        ("gpt-5", Usage(1000, 3000, reasoning_tokens=2500, convention="openai"), "0.00125", "0.03"),
    ],
)
def test_matches_litellm_reference_values(model: str, usage: Usage, prompt_cost: str, completion_cost: str) -> None:
    prompt, completion = CATALOG[model].cost_parts(usage)
    assert (prompt, completion) == (D(prompt_cost), D(completion_cost))
    assert CATALOG.cost(model, usage) == D(prompt_cost) + D(completion_cost)


def test_cost_is_exact_decimal_not_float() -> None:
    cost = CATALOG.cost("deepseek-chat", Usage(1, 1))
    assert isinstance(cost, Decimal)
    assert cost == D("0.00000137")  # 0.27e-6 + 1.10e-6, no binary rounding


def test_tier_boundary_is_strictly_above() -> None:
    at_threshold = CATALOG.cost("gemini-2.5-pro", Usage(200_000, 0, convention="openai"))
    above = CATALOG.cost("gemini-2.5-pro", Usage(200_001, 0, convention="openai"))
    assert at_threshold == D("0.25")
    assert above == D("0.5000025")


def test_tier_counts_cached_tokens_in_the_prompt() -> None:
    # Anthropic convention: 150k uncached + 60k cache reads = 210k prompt tokens -> tier rates.
    usage = Usage(150_000, 0, cache_read_tokens=60_000)
    assert CATALOG["gemini-2.5-pro"].rates_for(usage).input == D("2.5")


def test_off_peak_window_wraps_midnight() -> None:
    usage = Usage(1_000_000, 1_000_000)
    peak = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    off = datetime(2026, 5, 1, 23, 0, tzinfo=UTC)
    after_midnight = datetime(2026, 5, 2, 0, 15, tzinfo=UTC)
    end = datetime(2026, 5, 2, 0, 30, tzinfo=UTC)
    assert CATALOG.cost("deepseek-chat", usage, at=peak) == D("1.37")
    assert CATALOG.cost("deepseek-chat", usage, at=off) == D("0.685")
    assert CATALOG.cost("deepseek-chat", usage, at=after_midnight) == D("0.685")
    assert CATALOG.cost("deepseek-chat", usage, at=end) == D("1.37")
    # A window without its own cache rate keeps the model's explicit one.
    assert CATALOG["deepseek-chat"].rates_for(usage, off).cache_read == D("0.07")


def test_missing_cache_rates_fall_back_to_input() -> None:
    rates = CATALOG["gpt-5"].rates
    assert rates.cache_read == rates.input == rates.cache_write
    assert rates.reasoning == rates.output


def test_usage_addition_normalizes_conventions() -> None:
    total = Usage(7000, 500, 4000, 2000, convention="openai") + Usage(10, 5, 1, 0)
    assert total == Usage(1010, 505, 4001, 2000, 0, "anthropic")


def test_unknown_model() -> None:
    with pytest.raises(UnknownModel, match="not in the catalog"):
        CATALOG.cost("nope", Usage())


def test_max_cost_is_an_upper_bound() -> None:
    m = CATALOG["claude-sonnet-4-5"]
    worst = m.max_cost(10_000, 2000)
    assert worst >= m.cost(Usage(10_000, 2000))
    assert worst >= m.cost(Usage(0, 2000, cache_write_tokens=10_000))


PRICES = {
    "sample_spec": {"input_cost_per_token": 0},
    "gpt-4o": {
        "litellm_provider": "openai",
        "mode": "chat",
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-06,
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "supports_vision": True,
        "supports_function_calling": True,
    },
    "gemini/gemini-2.5-pro": {
        "litellm_provider": "gemini",
        "mode": "chat",
        "input_cost_per_token": 1.25e-06,
        "input_cost_per_token_above_200k_tokens": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "output_cost_per_token_above_200k_tokens": 1.5e-05,
        "supports_reasoning": True,
    },
    "deepseek/deepseek-chat": {
        "litellm_provider": "deepseek",
        "mode": "chat",
        "input_cost_per_token": 2.7e-07,
        "output_cost_per_token": 1.1e-06,
        "off_peak_pricing": {
            "hours_utc": "16:30-00:30",
            "input_cost_per_token": 1.35e-07,
            "output_cost_per_token": 5.5e-07,
        },
    },
    "text-embedding-3-small": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08},
}


def test_catalog_import_writes_loadable_models(tmp_path: Path) -> None:
    data = parse_litellm(json.dumps(PRICES))
    result = import_litellm(data, ["gpt-4o", "gemini/*", "deepseek/*", "text-*"], provider="p")
    assert result.imported == ["gpt-4o", "gemini/gemini-2.5-pro", "deepseek/deepseek-chat"]
    assert ("text-embedding-3-small", "mode 'embedding' is not a chat model") in result.skipped
    assert "cost_per_million_input = 2.5\n" in result.toml
    config = '[providers.p]\nkind = "openai"\n\n' + result.toml + '\n[routing]\ndefault_model = "gpt-4o"\n'
    catalog = loads_config(config).catalog
    assert catalog["gpt-4o"].rates.cache_read == D("1.25")
    assert catalog["gpt-4o"].context_window == 128000
    assert catalog["gpt-4o"].capabilities == {"vision", "tools"}
    # The imported tier reproduces LiteLLM's whole-request tier pricing.
    assert catalog.cost("gemini/gemini-2.5-pro", Usage(250_000, 1000, convention="openai")) == D("0.64")
    off = datetime(2026, 5, 1, 23, 0, tzinfo=UTC)
    assert catalog.cost("deepseek/deepseek-chat", Usage(1_000_000, 0), at=off) == D("0.135")


def test_catalog_import_prices_are_exact() -> None:
    # 1.1e-06 as a float times 1e6 is 1.0999999999999999; read as a decimal it is 1.1.
    result = import_litellm(parse_litellm(json.dumps(PRICES)), ["deepseek/*"])
    assert "cost_per_million_output = 1.1\n" in result.toml
    assert 'provider = "deepseek"  # set to one of your [providers.*]' in result.toml


# --------------------------------------------------------------------------- SQL re-pricing
@st.composite
def _price(draw: st.DrawFn) -> Decimal:
    # Up to $200 per million tokens with up to 9 decimal places (finer than a picodollar per token).
    places = draw(st.integers(0, 9))
    return Decimal(draw(st.integers(0, 200 * 10**places))).scaleb(-places)


def _rates_strategy() -> st.SearchStrategy[Rates]:
    return st.builds(Rates, _price(), _price(), _price(), _price(), _price())


@st.composite
def _priced_rows(draw: st.DrawFn) -> tuple[CatalogModel, list[tuple[Usage, int]]]:
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        output = draw(st.integers(0, 2_000_000))
        usage = Usage(
            draw(st.integers(0, 5_000_000)),
            output,
            draw(st.integers(0, 5_000_000)),
            draw(st.integers(0, 500_000)),
            draw(st.integers(0, output)),  # reasoning is part of the output
        )
        day = draw(st.integers(19_000, 25_000))  # 2022..2038
        minute = draw(st.integers(0, 1439))
        rows.append((usage, (day * 1440 + minute) * 60_000 + draw(st.integers(0, 59_999))))
    prompts = [u.prompt_tokens for u, _ in rows]
    # Thresholds and window edges right at the drawn prompts and times, so the boundaries get hit.
    threshold = st.one_of(
        st.integers(0, 12_000_000), st.sampled_from(prompts).map(lambda p: max(0, p + draw(st.integers(-1, 1))))
    )
    minutes = st.one_of(st.integers(0, 1439), st.sampled_from([(ms // 60_000) % 1440 for _, ms in rows]))
    tiers = {draw(threshold): draw(_rates_strategy()) for _ in range(draw(st.integers(0, 3)))}
    windows = [_Window(draw(minutes), draw(minutes), draw(_rates_strategy())) for _ in range(draw(st.integers(0, 3)))]
    model = CatalogModel(
        name="m",
        provider="p",
        rates=draw(_rates_strategy()),
        capabilities=frozenset(),
        tiers=tuple(_Tier(above, r) for above, r in sorted(tiers.items(), key=lambda kv: -kv[0])),
        off_peak=tuple(windows),
    )
    return model, rows


@pytest.fixture
def pricing_db(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url) as led:
        yield led


_SQL_COLUMNS = {"uncached_input_tokens": "a.input_tokens"}  # the ledger keeps the Anthropic convention


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_priced_rows())
def test_sql_pricing_equals_python_pricing_exactly(
    pricing_db: Ledger, case: tuple[CatalogModel, list[tuple[Usage, int]]]
) -> None:
    """Over random usage, tiers, off-peak windows and times, the SQL cost of each ledger row is the Python cost."""
    model, rows = case
    ids = [f"p-{uuid.uuid4().hex}" for _ in rows]
    with pricing_db.db.transaction():
        pricing_db.record_many(
            [
                AttemptRecord(
                    i,
                    "t",
                    "p",
                    "m",
                    "ok",
                    ms,
                    ms,
                    input_tokens=u.input_tokens,
                    output_tokens=u.output_tokens,
                    cache_read_tokens=u.cache_read_tokens,
                    cache_write_tokens=u.cache_write_tokens,
                    reasoning_tokens=u.reasoning_tokens,
                )
                for i, (u, ms) in zip(ids, rows, strict=True)
            ]
        )
    sql, exponent = model.cost_sql(lambda name: _SQL_COLUMNS.get(name, f"a.{name}"), "((a.started_ms / 60000) % 1440)")
    marks = ", ".join("?" for _ in ids)
    got = dict(pricing_db.db.query(f"SELECT a.attempt_id, {sql} FROM attempts a WHERE a.attempt_id IN ({marks})", ids))
    for i, (usage, ms) in zip(ids, rows, strict=True):
        value = got[i]
        assert isinstance(value, (int, Decimal)) and not isinstance(value, bool), value
        assert Decimal(value).scaleb(exponent) == model.cost(usage, datetime.fromtimestamp(ms / 1000, UTC))


def test_overlapping_off_peak_windows_first_one_wins() -> None:
    cheap, cheaper = (Rates(D(r), D(r), D(r), D(r), D(r)) for r in ("2", "1"))
    model = CatalogModel(
        "m",
        "p",
        Rates(D(3), D(3), D(3), D(3), D(3)),
        frozenset(),
        off_peak=(_Window(600, 720, cheap), _Window(0, 0, cheaper)),
    )
    at = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert model.cost(Usage(1_000_000), at) == D(2)
    assert model.cost(Usage(1_000_000), at.replace(hour=13)) == D(1)
    assert model.cost(Usage(1_000_000)) == D(3)  # no time: no window
