"""Dollar amounts for people: the one way switchyard writes money in text.

`usd(Decimal("-0.04"), 2)` is `-$0.04` (never `$-0.04`). Exact values (JSON, the
ledger) stay `Decimal`; this is only for messages and tables. It imports nothing,
so every layer (config errors, budgets, the CLI) writes money the same way.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["usd"]


def usd(value: Decimal, places: int | None = None) -> str:
    """`-$1,234.5000` style: the sign before the dollar sign, thousands separated.

    With `places`, rounded to that many decimals, except an amount smaller than the last place
    is written exactly (`$0.00001`, not `$0.0000`); without, written exactly (`$0.0016384`).
    """
    sign = "-" if value < 0 else ""
    size = abs(value)
    if places is not None:
        step = Decimal(1).scaleb(-places)
        if size >= step or size == 0:
            return f"{sign}${size.quantize(step):,}"
    text = f"{size.normalize():f}"
    whole, dot, frac = text.partition(".")
    return f"{sign}${int(whole):,}{dot}{frac}"
