"""Regular expressions a user writes, run in linear time (RE2).

Patterns from a config (`matches` in a rule condition, a workflow stage's
`reject_if`) run on text nobody vetted: a task's title, an agent's output.
Python's `re` backtracks, so `(a+)+$` on thirty a's and a `!` runs for
minutes. RE2 (the `google-re2` package) matches in time linear in the text, and
refuses at compile time what it cannot do that way: backreferences and
lookaround. `compile_pattern` turns that refusal into a `PatternError` with
RE2's reason and a hint; the caller knows where the pattern came from and
raises it as a located config error.

`re2` is imported on the first compile, so a config without patterns never pays
for it (~25 ms). We call RE2's own `Match` (the `re2._re2` binding of the C++
`RE2::Match`) instead of the module's `re`-style `search`: the latter builds a
match object through a generator, ~30 µs a call against ~2 µs, and a rule
condition only needs yes or no.

This module imports nothing of switchyard: any layer may use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Pattern", "PatternError", "compile_pattern"]


class PatternError(ValueError):
    """A pattern RE2 will not compile: `reason` is RE2's, `hint` says what to write instead."""

    def __init__(self, pattern: str, reason: str, hint: str | None = None) -> None:
        self.pattern = pattern
        self.reason = reason
        self.hint = hint
        super().__init__(f"invalid regular expression {pattern!r}: {reason}" + (f" ({hint})" if hint else ""))


class Pattern:
    """A compiled pattern: `search(text)` is true when it matches anywhere in `text`."""

    __slots__ = ("_match", "_unanchored", "pattern")

    def __init__(self, pattern: str, regexp: Any, unanchored: Any) -> None:
        self.pattern = pattern
        self._match = regexp.Match
        self._unanchored = unanchored

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in `text`. Linear in `len(text)`; never raises for a str."""
        # surrogatepass: a lone surrogate (valid JSON, "\\ud800") must not raise; RE2 sees bytes that match nothing.
        data = text.encode("utf-8", "surrogatepass")
        start, _ = self._match(self._unanchored, data, 0, len(data))[0]
        return bool(start >= 0)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


def _hint(pattern: str, reason: str) -> str | None:
    if "invalid escape sequence: \\Z" in reason:
        return r"RE2 writes the end of the text as \z"
    if "invalid escape sequence: \\" in reason and reason[-1:].isdigit():
        return "RE2 has no backreferences: they need backtracking, which can take exponential time"
    if "invalid perl operator: (?=" in reason or "invalid perl operator: (?!" in reason:
        return "RE2 has no lookahead: match the text itself, or split the test into two conditions"
    if "invalid perl operator: (?<" in reason:
        return "RE2 has no lookbehind: match the text itself, or split the test into two conditions"
    if "pattern too large" in reason:
        return "RE2 caps a compiled pattern at 8 MiB: write a shorter one"
    return None


def compile_pattern(pattern: str) -> Pattern:
    """Compile `pattern` with RE2 (Python-like syntax: https://github.com/google/re2/wiki/Syntax).

    Raises `PatternError` when RE2 rejects it, with RE2's reason and a hint.
    """
    try:
        import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
        from re2 import _re2  # the C++ RE2 class itself
    except ImportError:  # pragma: no cover - it is a dependency; this is for a broken install
        raise PatternError(
            pattern, "the google-re2 package is not installed", "install it: pip install google-re2"
        ) from None
    options = re2.Options()
    options.log_errors = False  # RE2 would print every rejected pattern on stderr
    options.never_capture = True  # we only ask whether it matches
    try:
        data = pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise PatternError(pattern, "the pattern is not valid Unicode text") from None
    regexp = _re2.RE2(data, options)
    if not regexp.ok():
        reason = bytes(regexp.error()).decode("utf-8", "replace")
        raise PatternError(pattern, reason, _hint(pattern, reason))
    return Pattern(pattern, regexp, _re2.RE2.Anchor.UNANCHORED)
