"""`switchyard models` and `switchyard catalog import`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from switchyard.catalog import CatalogModel
from switchyard.cli.common import config_option, echo_json, json_option, load, money, table, warn
from switchyard.errors import InputError

__all__ = ["catalog", "models"]


def model_dict(m: CatalogModel) -> dict[str, Any]:
    """A model's prices and capabilities, JSON-ready (prices as exact decimal strings)."""
    r = m.rates
    return {
        "name": m.name,
        "provider": m.provider,
        "provider_model": m.provider_model,
        "cost_per_million": {
            "input": r.input,
            "output": r.output,
            "cached_input": r.cache_read,
            "cache_write": r.cache_write,
            "reasoning": r.reasoning,
        },
        "capabilities": sorted(m.capabilities),
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "tiers": [{"above_input_tokens": t.above, "input": t.rates.input, "output": t.rates.output} for t in m.tiers],
        "off_peak": [
            {
                "start_utc": f"{w.start_min // 60:02d}:{w.start_min % 60:02d}",
                "end_utc": f"{w.end_min // 60:02d}:{w.end_min % 60:02d}",
                "input": w.rates.input,
                "output": w.rates.output,
            }
            for w in m.off_peak
        ],
    }


@click.command()
@config_option
@json_option
def models(config_path: str | None, as_json: bool) -> None:
    """List the catalog: every model with its provider, prices per million tokens and capabilities."""
    loaded = load(config_path)
    if as_json:
        echo_json([model_dict(m) for m in loaded.catalog])
        return
    rows = []
    for m in loaded.catalog:
        extras = []
        if m.tiers:
            extras.append(f"{len(m.tiers)} tier(s)")
        if m.off_peak:
            extras.append("off-peak")
        rows.append(
            [
                m.name,
                m.provider,
                money(m.rates.input, 2),
                money(m.rates.output, 2),
                money(m.rates.cache_read, 2),
                ",".join(sorted(m.capabilities)),
                f"{m.context_window:,}" if m.context_window else "-",
                " ".join(extras),
            ]
        )
    click.echo(
        table(
            ["model", "provider", "in/M", "out/M", "cached/M", "capabilities", "context", "pricing"],
            rows,
            right={2, 3, 4, 6},
        )
    )


@click.group()
def catalog() -> None:
    """Work with price catalogs."""


@catalog.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--match", "patterns", multiple=True, metavar="GLOB", help="Only models whose name matches. Repeatable.")
@click.option("--provider", metavar="NAME", help="Set this provider on every imported model.")
@click.option("--all-modes", is_flag=True, help="Also import non-chat entries (embeddings, images...).")
def import_(file: str, patterns: tuple[str, ...], provider: str | None, all_modes: bool) -> None:
    """Print [[models]] TOML for entries of a LiteLLM-format price FILE.

    Paste the output into your config (or keep it in a file next to it).
    """
    from switchyard.catalog_import import import_litellm, parse_litellm

    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
    result = import_litellm(
        parse_litellm(text, file), patterns, provider=provider, source=path.name, all_modes=all_modes
    )
    if not result.imported:
        raise InputError(
            f"{file}: no chat model matched " + (" ".join(patterns) if patterns else "(the file has none)")
        )
    click.echo(result.toml, nl=False)
    warn(f"imported {len(result.imported)} model(s)" + (f"; skipped {len(result.skipped)}" if result.skipped else ""))
    for name, why in result.skipped[:20]:
        warn(f"  skipped {name}: {why}")
