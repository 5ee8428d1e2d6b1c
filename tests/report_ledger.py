"""The small ledger reports are tested on: two providers (a, b), two models (big on a, small on b), three days.

Used by test_report.py, test_dashboard.py, data/make_report_golden.py and data/legacy/make_legacy_ledger.py.
Nothing of switchyard is imported at module level: the data scripts load this module against an older
switchyard (the one whose output they pin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchyard.ledger import AttemptRecord

D1 = int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp() * 1000)
D2 = int(datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp() * 1000)
D3 = int(datetime(2026, 3, 3, 12, tzinfo=UTC).timestamp() * 1000)

#: $ per million (input, output) tokens of each model.
PRICES = {"big": (10, 20), "small": (1, 2), "tiered": (1, 1)}


def providers(b_kind: str = "simulated") -> str:
    """`[providers.a]` (simulated) and `[providers.b]` (`b_kind`; an openai one has a key that is never set)."""
    b = 'kind = "openai"\napi_key_env = "B_KEY_NOT_SET"' if b_kind == "openai" else f'kind = "{b_kind}"'
    return f'\n[providers.a]\nkind = "simulated"\n[providers.b]\n{b}\n'


#: The `[[models]]` tables of big and small at the prices in PRICES.
MODELS = """
[[models]]
name = "big"
provider = "a"
cost_per_million_input = 10.0
cost_per_million_output = 20.0

[[models]]
name = "small"
provider = "b"
cost_per_million_input = 1.0
cost_per_million_output = 2.0
"""

#: The dashboard's config: b an openai provider without a key, a daily and a monthly budget.
DASHBOARD_CONFIG = (
    providers("openai")
    + MODELS
    + """
[routing]
default_model = "big"

[budgets]
daily_usd = 10
[[budgets.limits]]
scope = "provider:a"
period = "month"
limit_usd = 100
"""
)


def rec(i: int, at: int, model: str, status: str = "ok", *, with_completed: bool = True, **kw: object) -> AttemptRecord:
    """Attempt `att-i` of task `T-i` on `model`, started at `at` ms and taking a second; `tokens=(in, out)`
    (default 1000 / 100) priced at PRICES when ok, nothing when not. `with_completed=False`: for a
    switchyard older than the `completed` field (the legacy ledger)."""
    from switchyard.ledger import AttemptRecord

    provider = "a" if model in ("big", "tiered") else "b"
    price = PRICES[model]
    tin, tout = kw.pop("tokens", (1000, 100))  # type: ignore[misc]
    cost = Decimal(tin * price[0] + tout * price[1]) / 1_000_000 if status == "ok" else Decimal(0)
    base: dict[str, object] = {"priority": 2, "labels": ("bug",), "first": True, "latency_ms": 1000 * (i + 1)}
    if with_completed:
        base["completed"] = status == "ok"
    base.update(kw)
    return AttemptRecord(
        f"att-{i}",
        f"T-{i}",
        provider,
        model,
        status,
        at,
        at + 1000,
        input_tokens=tin if status == "ok" else 0,
        output_tokens=tout if status == "ok" else 0,
        cost_usd=cost,
        **base,  # type: ignore[arg-type]
    )


def report_attempts(**fallback: object) -> list[AttemptRecord]:
    """The six attempts test_report.py and the golden file are figured on: labels, a failure, a failover
    (`fallback`: more fields of it, e.g. its reason), an experiment with a retry."""
    return [
        rec(0, D1, "big", priority=0, labels=("bug", "security")),
        rec(1, D1 + 1000, "small", labels=("documentation",)),
        rec(2, D2, "small", status="failed", error_class="overloaded", completed=False),
        rec(3, D2 + 5000, "big", candidate_index=1, failover_from="b", first=False, **fallback),
        rec(4, D3, "small", experiment="ab", arm="small", priority=4),
        rec(5, D3 + 1, "big", experiment="ab", arm="big", priority=4, task_retry=1),
    ]
