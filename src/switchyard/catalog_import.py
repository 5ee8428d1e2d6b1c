"""Turn LiteLLM's `model_prices_and_context_window.json` into `[[models]]` TOML.

Prices there are per token as JSON floats; we read them as exact decimals
(`parse_float=Decimal`) and print them per million tokens. Long-context keys
(`*_above_200k_tokens`, list-form `tiered_pricing`) become `[[models.tiers]]`;
`off_peak_pricing` becomes `[[models.off_peak]]`.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from switchyard.errors import InputError

__all__ = ["ImportResult", "import_litellm", "parse_litellm"]

MILLION = Decimal(1_000_000)
CHAT_MODES = frozenset({"chat", "responses", "completion"})
_ABOVE = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost)_above_(\d+)([km])_tokens$"
)
_CAPS = {
    "supports_vision": "vision",
    "supports_function_calling": "tools",
    "supports_reasoning": "reasoning",
    "supports_prompt_caching": "caching",
    "supports_pdf_input": "pdf",
    "supports_web_search": "web-search",
    "supports_response_schema": "json-schema",
}
_RATE_KEYS = {
    "input_cost_per_token": "cost_per_million_input",
    "output_cost_per_token": "cost_per_million_output",
    "cache_read_input_token_cost": "cost_per_million_cached_input",
    "cache_creation_input_token_cost": "cost_per_million_cache_write",
    "output_cost_per_reasoning_token": "cost_per_million_reasoning",
}


@dataclass
class ImportResult:
    """The TOML text and what was left out, and why."""

    toml: str
    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _per_million(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        if isinstance(value, str):
            try:
                return Decimal(value.strip()) * MILLION
            except ArithmeticError:
                return None
        return None
    return Decimal(value) * MILLION


def _num(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return text if "." in text else text + ".0"


def _str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _rates(entry: dict[str, Any], keys: dict[str, str] = _RATE_KEYS) -> list[tuple[str, Decimal]]:
    out = []
    for src, dst in keys.items():
        if src in entry:
            v = _per_million(entry[src])
            if v is not None:
                out.append((dst, v))
    return out


def _windows(spec: Any) -> list[tuple[str, str]] | None:
    hours = spec.get("hours_utc") if isinstance(spec, dict) else None
    items = [hours] if isinstance(hours, str) else hours if isinstance(hours, list) else None
    if not items:
        return None
    out = []
    for item in items:
        m = re.fullmatch(r"\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*", str(item))
        if not m:
            return None
        out.append((m.group(1).zfill(5), m.group(2).zfill(5)))
    return out


def _model_toml(name: str, entry: dict[str, Any], provider: str | None) -> tuple[str, list[str]]:
    notes: list[str] = []
    lines = ["[[models]]", f"name = {_str(name)}"]
    if provider:
        lines.append(f"provider = {_str(provider)}")
    else:
        lines.append(
            f"provider = {_str(str(entry.get('litellm_provider', 'CHANGE-ME')))}  # set to one of your [providers.*]"
        )
    for key, value in _rates(entry):
        lines.append(f"{key} = {_num(value)}")
    caps = sorted({cap for flag, cap in _CAPS.items() if entry.get(flag) is True})
    if caps:
        lines.append("capabilities = [" + ", ".join(_str(c) for c in caps) + "]")
    for src, dst in (("max_input_tokens", "context_window"), ("max_output_tokens", "max_output_tokens")):
        v = entry.get(src)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            lines.append(f"{dst} = {v}")

    tiers: dict[int, dict[str, Decimal]] = {}
    for key, value in entry.items():
        m = _ABOVE.match(key)
        if m:
            threshold = int(m.group(2)) * (1000 if m.group(3) == "k" else 1_000_000)
            v = _per_million(value)
            if v is not None:
                tiers.setdefault(threshold, {})[_RATE_KEYS[m.group(1)]] = v
    tiered = entry.get("tiered_pricing")
    if isinstance(tiered, list):
        for tier in tiered:
            rng = tier.get("range") if isinstance(tier, dict) else None
            if not (isinstance(rng, list) and rng and isinstance(rng[0], (int, Decimal)) and rng[0] > 0):
                continue
            tiers.setdefault(int(rng[0]), {}).update(dict(_rates(tier)))
    for threshold in sorted(tiers):
        rates = tiers[threshold]
        if "cost_per_million_input" not in rates or "cost_per_million_output" not in rates:
            rates.setdefault("cost_per_million_input", _per_million(entry.get("input_cost_per_token")) or Decimal(0))
            rates.setdefault("cost_per_million_output", _per_million(entry.get("output_cost_per_token")) or Decimal(0))
        lines.append("")
        lines.append("[[models.tiers]]")
        lines.append(f"above_input_tokens = {threshold}")
        for key in (
            "cost_per_million_input",
            "cost_per_million_output",
            "cost_per_million_cached_input",
            "cost_per_million_cache_write",
        ):
            if key in rates:
                lines.append(f"{key} = {_num(rates[key])}")

    off_peak = entry.get("off_peak_pricing")
    if off_peak is not None:
        windows = _windows(off_peak)
        if windows is None or (isinstance(off_peak, dict) and off_peak.get("windows")):
            notes.append("off_peak_pricing with weekday windows is not imported")
        else:
            assert isinstance(off_peak, dict)
            rates = dict(_rates(off_peak))
            rates.setdefault("cost_per_million_input", _per_million(entry.get("input_cost_per_token")) or Decimal(0))
            rates.setdefault("cost_per_million_output", _per_million(entry.get("output_cost_per_token")) or Decimal(0))
            for start, end in windows:
                lines.append("")
                lines.append("[[models.off_peak]]")
                lines.append(f'start = "{start}"')
                lines.append(f'end = "{end}"')
                for key in _RATE_KEYS.values():
                    if key in rates:
                        lines.append(f"{key} = {_num(rates[key])}")
    return "\n".join(lines), notes


def parse_litellm(text: str, where: str = "price file") -> dict[str, Any]:
    """Parse the JSON with exact decimals."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object mapping model names to prices")
    return data


def import_litellm(
    data: dict[str, Any],
    patterns: Iterable[str] = (),
    *,
    provider: str | None = None,
    source: str = "model_prices_and_context_window.json",
    all_modes: bool = False,
) -> ImportResult:
    """`[[models]]` TOML for every entry whose name matches one of `patterns` (all when none)."""
    pats = list(patterns)
    result = ImportResult("")
    blocks: list[str] = []
    for name, entry in data.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        if pats and not any(fnmatch.fnmatchcase(name, p) for p in pats):
            continue
        mode = entry.get("mode", "chat")
        if not all_modes and mode not in CHAT_MODES:
            result.skipped.append((name, f"mode {mode!r} is not a chat model"))
            continue
        if "input_cost_per_token" not in entry and "output_cost_per_token" not in entry:
            result.skipped.append((name, "no per-token prices"))
            continue
        block, notes = _model_toml(name, entry, provider)
        for note in notes:
            result.skipped.append((name, note))
        blocks.append(block)
        result.imported.append(name)
    header = [
        f"# Imported from {source} by `switchyard catalog import`.",
        "# Prices are USD per million tokens; check them against your provider's price page.",
    ]
    result.toml = "\n".join(header) + "\n\n" + "\n\n".join(blocks) + ("\n" if blocks else "")
    return result
