"""Helpers shared by the CLI commands: config lookup, JSON output, options."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import click

from switchyard.cli import LOADED
from switchyard.config import LoadedConfig, find_config, load_config
from switchyard.errors import InputError
from switchyard.money import usd

if TYPE_CHECKING:
    from switchyard.ledger.store import Ledger

__all__ = [
    "clip",
    "config_option",
    "dump_json",
    "echo_json",
    "json_option",
    "load",
    "money",
    "open_ledger",
    "parse_when",
    "table",
    "warn",
]

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    """`--config FILE` (else $SWITCHYARD_CONFIG, else ./switchyard.toml)."""
    return click.option(
        "--config",
        "config_path",
        metavar="FILE",
        help="Config file (default: $SWITCHYARD_CONFIG, then ./switchyard.toml).",
    )(fn)


def json_option(fn: F) -> F:
    """`--json`: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def warn(message: str) -> None:
    """A diagnostic on stderr."""
    click.echo(message, err=True)


def load(config_path: str | None, *, quiet: bool = False) -> LoadedConfig:
    """Find and load the config; print its lint warnings to stderr."""
    loaded = load_config(find_config(config_path))
    LOADED[:] = [loaded]  # a config error raised later (the ledger URL will not connect) is placed in this file
    if not quiet:
        for w in loaded.warnings:
            text = "warning: " + w.render()
            if text not in _WARNED:  # one warning printed once, however often this process loads the file
                _WARNED.add(text)
                warn(text)
    return loaded


_WARNED: set[str] = set()


def open_ledger(loaded: LoadedConfig) -> Ledger:
    """The config's ledger (created on first use)."""
    from switchyard.ledger.store import Ledger

    return Ledger.open(loaded.ledger_location())


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(value: str | None, *, option: str, now: datetime | None = None) -> datetime | None:
    """`--since`/`--until`: ISO 8601, `today`, `yesterday`, or an age such as `30m`, `2h`, `7d`."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    text = value.strip().lower()
    m = _RELATIVE.match(text)
    if m:
        try:
            return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
        except OverflowError:
            raise InputError(
                f"{option} {value}: that is before the year 1; give an age such as 2h or 7d, or a date"
            ) from None
    if text in ("today", "yesterday"):
        local = now.astimezone()
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return start - timedelta(days=1) if text == "yesterday" else start
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {value}: expected an ISO 8601 time, 'today', or an age such as 2h or 7d") from None
    return at if at.tzinfo else at.astimezone()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dump_json(obj: Any) -> str:
    """JSON text; decimals become strings so no precision is lost."""
    return json.dumps(obj, indent=2, default=_default, ensure_ascii=False)


def echo_json(obj: Any) -> None:
    """Print `obj` as JSON on stdout."""
    click.echo(dump_json(obj))


def table(headers: list[str], rows: list[list[str]], *, right: set[int] | None = None) -> str:
    """A plain aligned text table (no colour, safe to pipe)."""
    right = right or set()
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def fmt(row: list[str]) -> str:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def money(value: Decimal | None, places: int = 4) -> str:
    """A dollar amount for humans, `-$0.0400` for a negative one (exact values stay in JSON); `-` for none."""
    return "-" if value is None else usd(value, places)


def clip(text: str | None, width: int) -> str:
    """The first line of `text`, cut to `width` characters with an ellipsis (…) when it was longer."""
    if not text:
        return ""
    lines = text.strip().splitlines() or [""]
    line = lines[0]
    if len(line) > width or len(lines) > 1:
        return line[: max(0, width - 1)].rstrip() + "…"
    return line
