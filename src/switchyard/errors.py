"""Errors raised by switchyard, split by who is at fault.

    SwitchyardError
    ├── ConfigError            the config file is wrong (exit status 2)
    ├── InputError             a task, flag or file given on the command line is wrong (exit 2)
    └── RunError               something failed while running (exit status 1)

Every message says where the problem is and, where we can tell, how to fix it:
a misspelt name gets `did_you_mean`'s " (did you mean 'x'?)", the one spelling of
that hint. Secrets never appear in a message: run errors pass provider text
through `switchyard.redact` before they are raised.

This module sits at the bottom of the import graph (it imports only `_records`),
so every layer can raise these errors and build these hints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from switchyard._records import record

__all__ = [
    "ConfigError",
    "InputError",
    "Problem",
    "RunError",
    "SwitchyardError",
    "did_you_mean",
    "suggest",
]


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """Closest spelling of `word` among `choices`, or None."""
    import difflib  # only on the error path: it costs ~13 ms to import

    ordered = sorted(choices)
    matches = difflib.get_close_matches(word, ordered, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    low = word.lower()
    if len(low) >= 2:
        for choice in ordered:  # 'saturday' -> 'sat', 'doc' -> 'documentation'
            c = choice.lower()
            if len(c) >= 2 and (low.startswith(c) or c.startswith(low)):
                return choice
    return None


def _quoted(near: str) -> str:
    return f"'{near}'"


def did_you_mean(word: str, choices: Iterable[str], show: Callable[[str], str] = _quoted) -> str:
    """`" (did you mean 'x'?)"` for the closest of `choices` to `word`, or `""` when none is close.

    `show` writes the suggestion as the user would type it (`'provider:x'`, `{model}`);
    quoted by default. An empty result lets the caller offer another hint instead.
    """
    near = suggest(word, choices)
    return f" (did you mean {show(near)}?)" if near is not None else ""


class SwitchyardError(Exception):
    """Root of every error switchyard raises on purpose."""

    exit_code = 1


@record
class Problem:
    """One thing wrong in a config file, located as precisely as we can.

    `key_path` reads like `routing.rules[2].condition`. `line`/`col` are 1-based
    positions in the file. `source`/`span` carry an expression (a rule condition)
    and the half-open character range inside it to underline with carets.
    """

    message: str
    key_path: str = ""
    file: str = ""
    line: int | None = None
    col: int | None = None
    source: str | None = None
    span: tuple[int, int] | None = None
    hint: str | None = None

    def render(self) -> str:
        """Format like a compiler: `file:line:col: key.path: message`, then a caret excerpt."""
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        head = f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"
        lines = [head]
        if self.source is not None and self.span is not None:
            start, end = self.span
            # Show only the line of the expression the span starts on.
            line_start = self.source.rfind("\n", 0, start) + 1
            line_end = self.source.find("\n", start)
            if line_end == -1:
                line_end = len(self.source)
            text = self.source[line_start:line_end]
            width = max(1, min(end, line_end) - start)
            lines.append("    " + text)
            lines.append("    " + " " * (start - line_start) + "^" * width)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view, for `config check --json`."""
        return {
            "file": self.file,
            "key_path": self.key_path,
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "hint": self.hint,
            "expression": self.source,
            "span": list(self.span) if self.span else None,
        }


class ConfigError(SwitchyardError):
    """The configuration is invalid; carries every problem found, in file order."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | None = None) -> None:
        self.problems: list[Problem] = list(problems or [])
        super().__init__(self.render())

    def render(self) -> str:
        """All problems, one block each."""
        return "\n".join(p.render() for p in self.problems)

    def __str__(self) -> str:
        return self.render()

    @classmethod
    def single(cls, message: str, **where: object) -> ConfigError:
        """Build an error with one problem; `where` takes `Problem`'s fields."""
        return cls([Problem(message, **where)])  # type: ignore[arg-type]


class InputError(SwitchyardError):
    """Bad input on the command line or in a task document (exit status 2)."""

    exit_code = 2


class RunError(SwitchyardError):
    """A failure while routing or running a task (exit status 1)."""

    exit_code = 1
