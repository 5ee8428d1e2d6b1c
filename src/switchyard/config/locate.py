"""Find where a key path lives in TOML text, for error messages.

`tomllib` gives us values but no positions. This is a small, forgiving scanner
that walks the same text and records the 1-based line and column of every key
and of every value, keyed by path tuples such as `("routing", "rules", 2,
"condition")`. It never raises: text it cannot follow simply yields fewer
positions (tomllib has already rejected text that is not TOML).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

__all__ = ["Loc", "PathKey", "index_toml"]

PathKey = tuple[str | int, ...]

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class Loc:
    """Where a key and its value sit (1-based); `value_offset` is the value's absolute index."""

    line: int
    col: int
    value_line: int
    value_col: int
    value_offset: int


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.n = len(text)
        self.out: dict[PathKey, Loc] = {}
        self.array_counts: dict[PathKey, int] = {}
        self.line_starts = [0] + [m + 1 for m in range(len(text)) if text[m] == "\n"]

    # positions ---------------------------------------------------------
    def pos(self, i: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, i)
        return line, i - self.line_starts[line - 1] + 1

    def record(self, path: PathKey, key_at: int, value_at: int) -> None:
        if path in self.out:
            return
        kl, kc = self.pos(key_at)
        vl, vc = self.pos(value_at)
        self.out[path] = Loc(kl, kc, vl, vc, value_at)

    # lexing helpers ----------------------------------------------------
    def skip_ws(self, newlines: bool) -> None:
        while self.i < self.n:
            c = self.text[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                while self.i < self.n and self.text[self.i] != "\n":
                    self.i += 1
            else:
                return

    def read_string(self) -> str:
        t = self.text
        if t.startswith('"""', self.i) or t.startswith("'''", self.i):
            q = t[self.i : self.i + 3]
            end = t.find(q, self.i + 3)
            end = self.n if end == -1 else end + 3
            while end < self.n and t[end] == q[0]:
                end += 1
            s = t[self.i + 3 : end - 3]
            self.i = end
            return s
        q = t[self.i]
        j = self.i + 1
        buf = []
        while j < self.n and t[j] != q and t[j] != "\n":
            if q == '"' and t[j] == "\\" and j + 1 < self.n:
                buf.append(t[j + 1])
                j += 2
                continue
            buf.append(t[j])
            j += 1
        self.i = min(j + 1, self.n)
        return "".join(buf)

    def read_key(self) -> list[tuple[str, int]]:
        parts: list[tuple[str, int]] = []
        while self.i < self.n:
            self.skip_ws(False)
            at = self.i
            if self.i < self.n and self.text[self.i] in "\"'":
                parts.append((self.read_string(), at))
            else:
                j = self.i
                while j < self.n and self.text[j] in _BARE:
                    j += 1
                if j == self.i:
                    break
                parts.append((self.text[self.i : j], at))
                self.i = j
            self.skip_ws(False)
            if self.i < self.n and self.text[self.i] == ".":
                self.i += 1
                continue
            break
        return parts

    # values --------------------------------------------------------------
    def value(self, path: PathKey) -> None:
        self.skip_ws(True)
        if self.i >= self.n:
            return
        c = self.text[self.i]
        if c == "[":
            self.i += 1
            k = 0
            while self.i < self.n:
                self.skip_ws(True)
                if self.i < self.n and self.text[self.i] == "]":
                    self.i += 1
                    return
                at = self.i
                self.record((*path, k), at, at)
                before = self.i
                self.value((*path, k))
                k += 1
                self.skip_ws(True)
                if (self.i < self.n and self.text[self.i] == ",") or self.i == before:
                    self.i += 1
        elif c == "{":
            self.i += 1
            while self.i < self.n:
                self.skip_ws(True)
                if self.i < self.n and self.text[self.i] == "}":
                    self.i += 1
                    return
                before = self.i
                self.key_value(path)
                self.skip_ws(True)
                if (self.i < self.n and self.text[self.i] == ",") or self.i == before:
                    self.i += 1
        elif c in "\"'":
            self.read_string()
        else:
            while self.i < self.n and self.text[self.i] not in ",]}\n#":
                self.i += 1

    def key_value(self, table: PathKey) -> None:
        parts = self.read_key()
        if not parts:
            # Not a key: skip the rest of the line.
            while self.i < self.n and self.text[self.i] != "\n":
                self.i += 1
            return
        self.skip_ws(False)
        if self.i < self.n and self.text[self.i] == "=":
            self.i += 1
        self.skip_ws(False)
        path = table
        for name, at in parts:
            path = (*path, name)
            self.record(path, at, self.i)
        self.value(path)

    def header(self) -> PathKey:
        is_array = self.text.startswith("[[", self.i)
        self.i += 2 if is_array else 1
        parts = self.read_key()
        self.skip_ws(False)
        self.i += 2 if is_array else 1
        resolved: PathKey = ()
        for name, at in parts:
            resolved = (*resolved, name)
            if resolved in self.array_counts and (is_array is False or (name, at) != parts[-1]):
                resolved = (*resolved, self.array_counts[resolved] - 1)
        if is_array:
            k = self.array_counts.get(resolved, 0)
            self.array_counts[resolved] = k + 1
            at = parts[-1][1] if parts else self.i
            self.record(resolved, at, at)
            resolved = (*resolved, k)
            self.record(resolved, at, at)
        elif parts:
            self.record(resolved, parts[-1][1], parts[-1][1])
        return resolved

    def run(self) -> dict[PathKey, Loc]:
        table: PathKey = ()
        while True:
            self.skip_ws(True)
            if self.i >= self.n:
                return self.out
            if self.text[self.i] == "[":
                table = self.header()
            else:
                before = self.i
                self.key_value(table)
                if self.i == before:
                    self.i += 1


def index_toml(text: str) -> dict[PathKey, Loc]:
    """Map every key path in `text` to its location; never raises."""
    try:
        return _Scanner(text).run()
    except Exception:  # pragma: no cover - a locator must never hide the real error
        return {}
