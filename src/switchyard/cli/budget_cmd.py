"""`switchyard budget`: every limit, what is spent and held, what is left, when the period ends."""

from __future__ import annotations

import click

from switchyard.cli.common import config_option, echo_json, json_option, load, money, open_ledger, table

__all__ = ["budget"]


@click.command()
@config_option
@json_option
def budget(config_path: str | None, as_json: bool) -> None:
    """Show every budget limit: spent, held by running calls, remaining, and when the period ends."""
    from switchyard.budgets import Budgets
    from switchyard.report import jsonable

    loaded = load(config_path)
    with open_ledger(loaded) as ledger:
        rows = Budgets(loaded, ledger).report()
    if as_json:
        echo_json(jsonable(rows))
        return
    if not rows:
        click.echo("no budgets configured: add [budgets] daily_usd = ... or [[budgets.limits]] to the config")
        return
    out = [
        [
            r.scope,
            r.period,
            money(r.limit_usd, 4),
            money(r.spent_usd, 4),
            money(r.held_usd, 4),
            money(r.remaining_usd, 4),
            f"{float(r.fraction) * 100:.0f}%",
            r.on_exceed,
            r.period_end[:16].replace("T", " "),
        ]
        for r in rows
    ]
    click.echo(
        table(
            ["scope", "period", "limit", "spent", "held", "remaining", "used", "on exceed", "period ends"],
            out,
            right={2, 3, 4, 5, 6},
        )
    )
