"""Turn parsed TOML into frozen dataclasses, collecting every problem on the way.

A small, declarative validator: the dataclasses in `schema.py` are the schema.
Field types drive the checks (text, integers, exact decimals, booleans,
literals, tuples, string-keyed maps, nested dataclasses); field metadata adds
per-field checks (`check`) and keys that come from the TOML table name
(`from_key`). Unknown keys are problems with a "did you mean". Nothing is
raised here: problems are collected with their key paths and the loader turns
them into one `ConfigError` with file positions.

Why not pydantic: importing it and building the models costs ~140 ms on this
class of machine, the whole budget of `switchyard route`; this file is the part
of it we need.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from switchyard.errors import did_you_mean

if TYPE_CHECKING:
    from switchyard.config.locate import PathKey

__all__ = [
    "ATTEMPTS",
    "MAX_USD",
    "MILLISECONDS",
    "SECONDS",
    "SECONDS_POSITIVE",
    "TOKENS",
    "TOKENS_POSITIVE",
    "USD",
    "USD_POSITIVE",
    "Reader",
    "check",
    "fraction",
    "non_negative",
    "parse_path",
    "path_str",
    "positive",
    "up_to",
]

Check = Callable[[Any], str | None]

_hints_cache: dict[type, dict[str, Any]] = {}


def check(fn: Check, **extra: Any) -> dict[str, Any]:
    """Field metadata that runs `fn(value)`; it returns a message when the value is wrong."""
    return {"check": fn, **extra}


# The common checks, for `check(...)`.
def non_negative(v: Decimal | float | int | None) -> str | None:
    return "must not be negative" if v is not None and v < 0 else None


def positive(v: Decimal | float | int | None) -> str | None:
    return "must be greater than zero" if v is not None and v <= 0 else None


def fraction(v: float | Decimal) -> str | None:
    return "must be between 0 and 1" if not 0 <= v <= 1 else None


def up_to(limit: Decimal | int, why: str, low: Check = non_negative) -> Check:
    """`low`, then at most `limit`: numbers that would overflow later (in the ledger, a timer, a float) stop at load."""
    shown = f"{limit:,}"

    def check_(v: Decimal | float | int | None) -> str | None:
        problem = low(v)
        if problem is None and v is not None and v > limit:
            problem = f"must be at most {shown} ({why})"
        return problem

    return check_


# The bounds, each with the reason a user reads when they pass it.
# Money: the ledger and the budget counters hold pico-dollars in signed 64-bit integers (at most about
# $9.2 million), and a counter adds a period's spend, its holds and the next hold before comparing them
# with the limit; a million dollars per amount leaves room for those sums.
MAX_USD = Decimal(1_000_000)
_USD_WHY = "dollars: the ledger counts pico-dollars in 64-bit integers, about $9.2 million at most"
USD = up_to(MAX_USD, _USD_WHY)
USD_POSITIVE = up_to(MAX_USD, _USD_WHY, positive)
# Durations are added to clocks and handed to timers and sleeps, which overflow long before a float does.
_DAY = 24 * 3600
SECONDS = up_to(365 * _DAY, "seconds, a year: durations are added to clocks and given to timers")
SECONDS_POSITIVE = up_to(365 * _DAY, "seconds, a year: durations are added to clocks and given to timers", positive)
MILLISECONDS = up_to(365 * _DAY * 1000, "milliseconds, a year: durations are given to timers")
TOKENS = up_to(1_000_000_000, "tokens: more than any model reads or writes in one call; counts are priced into money")
TOKENS_POSITIVE = up_to(1_000_000_000, "tokens: more than any model reads or writes in one call", positive)
# The backoff doubles with each try: past ~1,000 tries the delay no longer fits in a float.
ATTEMPTS = up_to(1000, "the backoff doubles with each try")


def path_str(path: PathKey) -> str:
    """`("routing", "rules", 2, "condition")` -> `routing.rules[2].condition`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            needs_quotes = not part or any(not (c.isalnum() or c in "_-") for c in part)
            piece = f'"{part}"' if needs_quotes else part
            out += f".{piece}" if out else piece
    return out


def parse_path(text: str) -> PathKey:
    """`routing.rules[2].condition` -> `("routing", "rules", 2, "condition")`: `path_str` read back."""
    out: list[str | int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == ".":
            i += 1
        elif c == "[":
            end = text.find("]", i)
            if end < 0 or not text[i + 1 : end].isdigit():
                return tuple(out)
            out.append(int(text[i + 1 : end]))
            i = end + 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                return tuple(out)
            out.append(text[i + 1 : end])
            i = end + 1
        else:
            j = i
            while j < n and text[j] not in '.["':
                j += 1
            out.append(text[i:j])
            i = j
    return tuple(out)


def _hints(cls: type) -> dict[str, Any]:
    hints = _hints_cache.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _hints_cache[cls] = hints
    return hints


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is str:
        return "text"
    if tp is int:
        return "an integer"
    if tp in (float, Decimal):
        return "a number"
    if tp is bool:
        return "true or false"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    return str(tp)


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, (int, Decimal, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


_FAIL = object()


class Reader:
    """Collects `(path, message, hint)` problems while converting raw values."""

    def __init__(self) -> None:
        self.problems: list[tuple[PathKey, str, str | None]] = []

    def error(self, path: PathKey, message: str, hint: str | None = None) -> None:
        self.problems.append((path, message, hint))

    def build(self, cls: type, raw: Any, path: PathKey, **from_key: Any) -> Any:
        """Build dataclass `cls` from table `raw`; returns None (and records why) on failure."""
        if not isinstance(raw, dict):
            self.error(path, f"expected a table, got {_got(raw)}")
            return None
        hints = _hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        known = [n for n, f in fields.items() if not f.metadata.get("from_key") and not f.metadata.get("internal")]
        kwargs: dict[str, Any] = dict(from_key)
        ok = True
        for key, value in raw.items():
            spec = fields.get(key)
            if spec is None or spec.metadata.get("from_key") or spec.metadata.get("internal"):
                mean = did_you_mean(key, known)
                hint = None if mean else "known keys: " + ", ".join(sorted(known))
                self.error((*path, key), f"unknown key '{key}'{mean}", hint)
                ok = False
                continue
            converted = self.convert(hints[key], value, (*path, key))
            if converted is _FAIL:
                ok = False
                continue
            problem_check = spec.metadata.get("check")
            if problem_check is not None:
                msg = problem_check(converted)
                if msg:
                    self.error((*path, key), msg)
                    ok = False
                    continue
            kwargs[key] = converted
        for fname, spec in fields.items():
            if fname in kwargs or spec.metadata.get("internal"):
                continue
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                self.error(path, f"missing required key '{fname}'")
                ok = False
        if not ok:
            return None
        return cls(**kwargs)

    def convert(self, tp: Any, value: Any, path: PathKey) -> Any:
        """Convert `value` to type `tp`, or record a problem and return `_FAIL`."""
        origin = get_origin(tp)
        if tp is Any:
            return value
        if origin in (Union, types.UnionType):
            arms = [a for a in get_args(tp) if a is not type(None)]
            # Try each arm silently; report against the union if none fits.
            for arm in arms:
                trial = Reader()
                result = trial.convert(arm, value, path)
                if result is not _FAIL:
                    return result
                if len(arms) == 1 or (isinstance(value, dict) and dataclasses.is_dataclass(arm)):
                    self.problems.extend(trial.problems)
                    return _FAIL
            self.error(path, f"expected {_type_name(tp)}, got {_got(value)}")
            return _FAIL
        if origin is Literal:
            choices = get_args(tp)
            if value in choices and type(value) is type(choices[0]):
                return value
            mean = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
            self.error(path, f"expected one of {', '.join(repr(c) for c in choices)}, got {_got(value)}{mean}")
            return _FAIL
        if origin is tuple:
            if not isinstance(value, list):
                self.error(path, f"expected a list, got {_got(value)}")
                return _FAIL
            item_t = get_args(tp)[0]
            items = [self.convert(item_t, v, (*path, i)) for i, v in enumerate(value)]
            return _FAIL if any(i is _FAIL for i in items) else tuple(items)
        if origin is dict:
            if not isinstance(value, dict):
                self.error(path, f"expected a table, got {_got(value)}")
                return _FAIL
            val_t = get_args(tp)[1]
            out = {k: self.convert(val_t, v, (*path, k)) for k, v in value.items()}
            return _FAIL if any(v is _FAIL for v in out.values()) else out
        if dataclasses.is_dataclass(tp):
            built = self.build(tp, value, path)  # type: ignore[arg-type]
            return _FAIL if built is None else built
        if tp is bool:
            if isinstance(value, bool):
                return value
        elif tp is str:
            if isinstance(value, str):
                return value
        elif tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif tp is Decimal:
            if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
                number = Decimal(value)
                if number.is_finite():
                    return number
                self.error(path, f"expected a finite number, got {value}")
                return _FAIL
        elif tp is float and isinstance(value, (int, Decimal, float)) and not isinstance(value, bool):
            finite = not isinstance(value, Decimal) or value.is_finite()
            try:
                real = float(value)  # an integer past 1e308 raises; a Decimal past it becomes inf
            except OverflowError:
                real = math.inf
            if math.isfinite(real):
                return real
            self.error(path, "is too large to compute with" if finite else f"expected a finite number, got {value}")
            return _FAIL
        self.error(path, f"expected {_type_name(tp)}, got {_got(value)}")
        return _FAIL
