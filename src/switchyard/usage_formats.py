"""The usage formats: the one list of their names.

Config validation checks `usage_format = "..."` against it (without importing the
parsers: `switchyard route` must stay lean), and `usage_parsers.FORMATS` is built
from it: the format `name` is read by `usage_parsers._parse_<name, "-" as "_">`,
so a name without its parser fails at import.

To add a usage format: add its name here and its `_parse_...` function to `usage_parsers.py`.
"""

from __future__ import annotations

__all__ = ["USAGE_FORMATS"]

USAGE_FORMATS: tuple[str, ...] = (
    "claude-json",
    "claude-stream-json",
    "codex-jsonl",
    "gemini-json",
    "opencode-jsonl",
    "aider",
    "openai-json",
    "anthropic-json",
    "none",
)
