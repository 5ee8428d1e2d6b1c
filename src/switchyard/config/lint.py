"""Checks on provider tables that need more than their types: what a template will really do.

Each check returns `Finding`s (an error or a warning, at a key path); the loader
places them in the file. Nothing here runs a process or reads the environment.

* A command provider's usage: without `usage_format` switchyard cannot read what
  a call used, so it is an error (`usage_format = "none"` opts out, with a
  warning); an argv that asks the CLI for one output while `usage_format` reads
  another is a warning (`--output-format stream-json` with `claude-json`).
* Shell syntax that is never expanded: switchyard runs argv lists, never a shell,
  and passes `env` and `headers` as written, so `${VAR}` / `$VAR` would reach the
  agent or the API as literal text. That is an error that says how to pass a value.
* The prompt: a template that never hands the agent the prompt (no
  `{prompt_file}`, no `stdin`), or hands Claude Code the prompt file's *path* as
  its prompt, cannot run a task as written. That is a warning, and such a sketch
  (the seed design's templates are sketches: `["curl", "-X", "POST", ".../..."]`)
  gets its missing `usage_format` as a warning too: it is incomplete anyway, and
  the usage format belongs to the output of the command it will become.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from switchyard._records import record
from switchyard.config.provider_kinds import CommandProvider, HTTPProvider, ProviderConfig
from switchyard.usage_formats import USAGE_FORMATS

if TYPE_CHECKING:
    from switchyard.config.locate import PathKey

__all__ = ["Finding", "lint_provider"]


@record
class Finding:
    """One problem with a provider table: an error (the config does not load) or a warning."""

    path: PathKey
    message: str
    hint: str | None = None
    error: bool = True


@record
class _Output:
    """How one agent CLI's argv chooses its output, and the usage format that reads each output."""

    options: tuple[str, ...]  # options taking a value: `--output-format json`, `--output-format=json`
    values: dict[str, str | None]  # option value -> the usage format reading it (None: no usage in it)
    switch: tuple[str, str] | None  # a flag that alone chooses an output, and its format: ("--json", "codex-jsonl")
    default: str | None  # the format read when the argv chooses nothing
    ask: str  # how to write the option that gives a readable output, as template elements
    ask_format: str  # the usage format of that output


# The agent CLIs whose output options we know (docs: /work/shared/reference/agent-clis.md).
_CLIS: dict[str, _Output] = {
    "claude": _Output(
        ("--output-format",),
        {"json": "claude-json", "stream-json": "claude-stream-json", "text": None},
        None,
        None,
        '"--output-format", "json"',
        "claude-json",
    ),
    "gemini": _Output(
        ("-o", "--output-format"),
        {"json": "gemini-json", "stream-json": "gemini-stream-json", "text": None},
        None,
        None,
        '"-o", "json"',
        "gemini-json",
    ),
    "codex": _Output((), {}, ("--json", "codex-jsonl"), None, '"--json" (after "exec")', "codex-jsonl"),
    "opencode": _Output(
        ("--format",), {"json": "opencode-jsonl", "default": None}, None, None, '"--format", "json"', "opencode-jsonl"
    ),
    "aider": _Output((), {}, None, "aider", "", "aider"),
}

# Command-line HTTP clients: a template running one is an HTTP API call, which a provider kind does better.
_HTTP_CLIS = frozenset({"curl", "wget", "http", "https", "xh", "openai"})
_USE_HTTP_KIND = (
    'for an HTTP API use kind = "openai" (any OpenAI-compatible API, OpenRouter too) or "anthropic" with '
    "api_key_env: switchyard then sends the request itself, reads its usage and prices it"
)

# `$NAME` or `${NAME}`: what a shell would expand. `$5`, `a$`, `$(` are left alone.
_SHELL_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def _executable(template: tuple[str, ...]) -> str:
    name = os.path.basename(template[0]) if template else ""
    return name.removesuffix(".exe").lower()


def _asked(template: tuple[str, ...], out: _Output) -> tuple[str, str | None] | None:
    """(what the argv asks for, the usage format that reads it); None when it asks for something we do not know."""
    for i, element in enumerate(template[1:], 1):
        if out.switch is not None and element == out.switch[0]:
            return element, out.switch[1]
        for option in out.options:
            value: str | None = None
            if element == option and i + 1 < len(template):
                value = template[i + 1]
            elif element.startswith(option + "="):
                value = element[len(option) + 1 :]
            if value is not None:
                return (f"{option} {value}", out.values[value]) if value in out.values else None
    return "no output option (its default output)", out.default


def _claude_prompt_path(template: tuple[str, ...]) -> int | None:
    """The index of `{prompt_file}` right after Claude Code's `-p`, which takes the prompt text itself."""
    if _executable(template) != "claude":
        return None
    for i in range(len(template) - 1):
        if template[i] in ("-p", "--print") and "{prompt_file}" in template[i + 1]:
            return i + 1
    return None


def _prompt_findings(name: str, p: CommandProvider) -> list[Finding]:
    path: PathKey = ("providers", name, "command_template")
    trap = _claude_prompt_path(p.command_template)
    if trap is not None:
        return [
            Finding(
                (*path, trap),
                "Claude Code reads the argument after -p as the prompt text itself, so it would "
                "receive the prompt file's path, not its contents",
                'drop "{prompt_file}" from the template and add stdin = "{prompt_file}"',
                error=False,
            )
        ]
    if p.stdin is None and not any("{prompt_file}" in element for element in p.command_template):
        return [
            Finding(
                path,
                "the template never gives the agent the task's prompt",
                'add stdin = "{prompt_file}" (the prompt on standard input), or "{prompt_file}" where the CLI '
                "takes a file to read",
                error=False,
            )
        ]
    return []


def _usage_findings(name: str, p: CommandProvider, stated: bool, sketch: bool) -> list[Finding]:
    path: PathKey = ("providers", name)
    exe = _executable(p.command_template)
    out = _CLIS.get(exe)
    asked = _asked(p.command_template, out) if out is not None else None
    known = [f for f in USAGE_FORMATS if f != "none"]
    suggestion: str | None = None
    if out is not None and asked is not None:
        what, fmt = asked
        if fmt is not None and fmt in USAGE_FORMATS:
            suggestion = f'its template asks {exe} for {what}: set usage_format = "{fmt}"'
        elif out.ask:
            suggestion = f'add {out.ask} to the template and set usage_format = "{out.ask_format}"'
    if not stated:
        message = f"command provider '{name}' has no usage_format, so the tokens and cost of its calls cannot be read"
        hint = (suggestion or "set usage_format to the format of its output: " + ", ".join(known)) + (
            '; or usage_format = "none" to run it without reading usage (a warning)'
        )
        if exe in _HTTP_CLIS:
            hint = _USE_HTTP_KIND + "; or " + hint
        if sketch:
            return [Finding(path, message + " (a warning while its template cannot run a task)", hint, error=False)]
        return [Finding(path, message, hint)]
    if p.usage_format == "none":
        return [
            Finding(
                (*path, "usage_format"),
                'usage_format = "none": the tokens and cost of this provider\'s calls are not read from its output',
                suggestion,
                error=False,
            )
        ]
    if out is None or asked is None:
        return []
    what, fmt = asked
    if fmt == p.usage_format:
        return []
    if fmt is None:
        message = f"the template asks {exe} for {what}, which has no usage in it for usage_format '{p.usage_format}'"
    else:
        message = f"the template asks {exe} for {what}, but usage_format '{p.usage_format}' reads another output"
    return [Finding((*path, "usage_format"), message, suggestion, error=False)]


def _literal_variables(name: str, p: ProviderConfig) -> list[Finding]:
    """`$VAR` written where switchyard passes text as written (argv, env values, headers, base_url)."""
    places: list[tuple[PathKey, str]] = []
    path: PathKey = ("providers", name)
    if isinstance(p, CommandProvider):
        places += [((*path, "command_template", i), e) for i, e in enumerate(p.command_template)]
        places += [((*path, "max_cost_flag", i), e) for i, e in enumerate(p.max_cost_flag)]
        places += [((*path, "env", k), v) for k, v in p.env.items()]
    if isinstance(p, HTTPProvider):
        places += [((*path, "headers", k), v) for k, v in p.headers.items()]
        places.append(((*path, "base_url"), p.base_url))
    found = []
    for where, text in places:
        m = _SHELL_VAR.search(text)
        if m is None:
            continue
        var = m.group(1)
        if isinstance(p, HTTPProvider):
            hint = f'for the API key write api_key_env = "{var}" (the variable\'s name); it is sent as the key'
        elif where[2] == "env":
            hint = f'to hand the agent the value of ${var}, list it in pass_env = ["{var}"] (or api_key_env = "{var}")'
        else:
            hint = (
                f'to hand the agent ${var}, list it in pass_env = ["{var}"] (or api_key_env = "{var}" for a key) and '
                f'let the CLI read it from its environment; env = {{ NAME = "value" }} sets a fixed one'
            )
            if isinstance(p, CommandProvider) and _executable(p.command_template) in _HTTP_CLIS:
                hint += ". " + _USE_HTTP_KIND
        found.append(
            Finding(
                where,
                f"'{m.group(0)}' would be sent as these very characters: switchyard runs no shell and expands "
                "no variables",
                hint,
            )
        )
    return found


def lint_provider(name: str, p: ProviderConfig, *, usage_format_stated: bool) -> list[Finding]:
    """Every finding for provider `name`; `usage_format_stated` says whether its table sets `usage_format`."""
    findings = _literal_variables(name, p)
    if isinstance(p, CommandProvider) and p.command_template:
        prompt = _prompt_findings(name, p)
        findings += prompt
        findings += _usage_findings(name, p, usage_format_stated, sketch=bool(prompt))
    return findings
