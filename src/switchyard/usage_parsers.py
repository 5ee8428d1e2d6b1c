"""Read token usage, cost and outcome from what an agent CLI or an API printed.

`parse_output(fmt, stdout, files=...)` turns one run's output into a
`ParsedOutput`: the `Usage` to price, the tool's own cost figure when it prints
one, whether the tool reported a failure (with its HTTP status and message), the
agent's final text and the model name. It never raises: output it cannot read
comes back with `problem` set to ``"unparseable usage: <reason>"``.

Formats live in `FORMATS` (name -> parser), built from the names in
`switchyard.usage_formats`: format `x-y` is read by `_parse_x_y` below. The
token convention of each one, and the source it was checked against:

* ``claude-json`` / ``claude-stream-json``: the Claude Code ``result`` message.
  `usage` is the Anthropic shape (input excludes cache reads and writes), summed
  by the CLI over the run's requests. With ``--max-budget-usd`` the CLI reports
  a zero top-level `usage` but real `modelUsage`, so `modelUsage` is the
  fallback. `total_cost_usd` is the CLI's own list-price figure.
* ``codex-jsonl``: ``turn.completed.usage``. Codex builds it from the thread's
  *cumulative* ``total_token_usage`` (codex-rs/exec event processor:
  ``usage_from_last_total``), so the last event is the run's total and summing
  events would double count (and after ``codex exec resume`` it includes the
  thread's earlier runs). ``input_tokens`` includes ``cached_input_tokens`` and
  ``cache_write_input_tokens`` (OpenAI convention); ``reasoning_output_tokens`` is inside
  ``output_tokens``. An ``error`` event is not fatal by itself (codex goes on
  retrying); ``turn.failed``, or an ``error`` with no later ``turn.completed``,
  is. Codex prints no HTTP status field: its error texts carry it
  (``unexpected status 401 …``, ``exceeded retry limit, last status: 429 …``) or
  are fixed texts for one status (`_CODEX_ERRORS`, from codex 0.171's own
  messages). The model is only named when the server rerouted the request
  (``model rerouted: A -> B``).
* ``gemini-json``: ``stats.models[*].tokens``; ``prompt`` includes ``cached``
  (uiTelemetry.ts sets ``input = prompt - cached``), so OpenAI convention;
  ``candidates`` excludes ``thoughts``, so output is their sum; ``tool``
  (toolUsePromptTokenCount) is prompt the API adds on top, counted as input.
  The models are keyed by the ``modelVersion`` the API answered with. On a
  failure the CLI writes its JSON (``error.code`` the HTTP status when it has
  one) to stderr, not stdout: it is read from ``files["stderr"]``.
* ``opencode-jsonl``: sum of ``step_finish`` parts. opencode's ``getUsage``
  subtracts cache reads and writes from ``input`` (Anthropic convention) and,
  since anomalyco/opencode#21047, keeps ``reasoning`` out of ``output``; a step
  whose ``total`` shows reasoning already inside ``output`` (older versions) is
  read as such.
* ``aider``: the analytics log's ``message_send`` events, else the
  ``Tokens: … sent, … cache write, … cache hit, … received.`` lines. ``sent`` is
  LiteLLM's ``prompt_tokens`` (cache reads included) plus aider's own addition
  of cache writes (base_coder.py ``calculate_and_show_tokens_and_cost``): the
  whole prompt, OpenAI convention. There is one line per message, so they are
  summed; their numbers are rounded ("12k"). The log has exact counts but no
  cache split, which is taken from the lines when they match the log's messages.
* ``openai-json``: a chat.completions body (OpenAI convention; OpenRouter adds
  ``cost`` and ``cache_write_tokens``). ``anthropic-json``: a Messages body.
* ``none``: no usage, the text is stdout.

`output_tokens` always includes reasoning; a reasoning count larger than the
output (some OpenAI-compatible servers report that) is clamped to the output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from switchyard.catalog import Convention, Usage
from switchyard.usage_formats import USAGE_FORMATS

__all__ = ["FORMATS", "INTERNAL_ERROR", "PROBLEM_PREFIX", "ParsedOutput", "parse_output", "parser_name"]

PROBLEM_PREFIX = "unparseable usage: "
# The problem a parser that raised is reported as: a bug in this module, never an answer to bad input.
_INTERNAL = "internal error: "
INTERNAL_ERROR = PROBLEM_PREFIX + _INTERNAL
MAX_ERROR_CHARS = 2000
MAX_TOKENS = 2**63 - 1  # what an SQLite INTEGER holds
_MAX_COST = Decimal(10) ** 9  # a "cost" above a billion dollars is garbage, not money
_MAX_REASON_CHARS = 200
_MAX_OBJECT_STARTS = 5  # candidate "{" lines tried when JSON follows other output

JsonObject = dict[str, object]


@dataclass(frozen=True)
class ParsedOutput:
    """What one run's output says about usage, cost and outcome.

    `usage` is None when none could be read; then `problem` says why, unless the tool
    reported a failure (`is_error`) without usage. `problem` set implies `usage` None.
    `error_status` is an HTTP status (400-599) only; `error_code` the API's error code
    (``insufficient_quota``, ``API_KEY_INVALID``…) when the output names one, for
    `switchyard.failures.classify_http`; `text` is the agent's final answer.
    """

    usage: Usage | None
    reported_cost_usd: Decimal | None
    is_error: bool
    error_status: int | None
    error_message: str | None
    text: str | None
    model: str | None
    problem: str | None
    retry_after_s: float | None = None
    error_code: str | None = None


class _Bad(Exception):
    """A value that makes the usage unreadable (negative count, wrong type...)."""


@dataclass
class _Draft:
    usage: Usage | None = None
    reported_cost_usd: Decimal | None = None
    is_error: bool = False
    error_status: int | None = None
    error_message: str | None = None
    text: str | None = None
    model: str | None = None
    problem: str | None = None
    retry_after_s: float | None = None
    error_code: str | None = None

    def fail(self, reason: str) -> None:
        if self.problem is None:
            if len(reason) > _MAX_REASON_CHARS:
                reason = reason[:_MAX_REASON_CHARS] + "…"
            self.problem = PROBLEM_PREFIX + reason

    def error(self, message: str | None, status: int | None = None, code: str | None = None) -> None:
        self.is_error = True
        if message and self.error_message is None:
            self.error_message = message
        if status is not None and self.error_status is None:
            self.error_status = status
        if code and self.error_code is None:
            self.error_code = code

    def done(self, missing: str) -> ParsedOutput:
        """Freeze; `missing` is the problem to report when a successful run gave no usage.

        A problem always comes without usage: a partial reading is not passed off as the run's.
        """
        if self.usage is None and not self.is_error:
            self.fail(missing)
        if self.problem is not None:
            self.usage = None
        message = self.error_message
        if message is not None and len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + "…"
        retry = self.retry_after_s
        if retry is None and self.is_error and message:
            retry = _retry_after_from_text(message)
        return ParsedOutput(
            usage=self.usage,
            reported_cost_usd=self.reported_cost_usd,
            is_error=self.is_error,
            error_status=self.error_status,
            error_message=message,
            text=self.text,
            model=self.model,
            problem=self.problem,
            retry_after_s=retry,
            error_code=self.error_code,
        )


# --- JSON -------------------------------------------------------------------------------------------------------


def _no_constant(_name: str) -> None:
    """NaN and Infinity read as null: they are never a count or an amount of money."""
    return None


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)
_FAIL = object()


def _loads(text: str) -> object:
    """`text` as JSON (floats as Decimal), or `_FAIL`."""
    try:
        return _DECODER.decode(text)
    except Exception:  # JSONDecodeError, int digit limit, RecursionError on deep nesting, ...
        return _FAIL


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", Decimal: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _load_object(text: str) -> tuple[JsonObject | None, str]:
    """The one JSON object in `text`, tolerating lines of other output before or after it.

    Tried in order: the whole text; an object starting at the beginning of a line and
    running to the end (pretty-printed JSON after warnings); the last line that is a
    JSON object; the first object starting at the beginning of a line, whatever follows.
    Returns (object, "") or (None, reason).
    """
    stripped = text.strip()
    if not stripped:
        return None, "empty output"
    whole = _loads(stripped)
    if isinstance(whole, dict):
        return whole, ""
    if whole is not _FAIL:
        return None, f"expected a JSON object, got {_kind(whole)}"
    lines = stripped.split("\n")
    offset = 0
    starts: list[int] = []
    for line in lines:
        brace = len(line) - len(line.lstrip())
        if line[brace : brace + 1] == "{" and len(starts) < _MAX_OBJECT_STARTS:
            starts.append(offset + brace)
        offset += len(line) + 1
    decoded: list[tuple[JsonObject, int]] = []
    for start in starts:
        try:
            value, end = _DECODER.raw_decode(stripped, start)
        except Exception:
            continue
        if isinstance(value, dict):
            if end == len(stripped):  # nothing but the object follows
                return value, ""
            decoded.append((value, end))
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            value = _loads(line)
            if isinstance(value, dict):
                return value, ""
    if decoded:  # a (pretty-printed) object followed by other output
        return decoded[0][0], ""
    return None, "no JSON object found"


def _jsonl(text: str) -> Iterator[JsonObject]:
    """The JSON objects of a JSONL stream, skipping any other line (split on \\n only:
    JSON.stringify leaves U+2028 raw inside strings)."""
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            value = _loads(line)
            if isinstance(value, dict):
                yield value


def _obj(value: object) -> JsonObject | None:
    return value if isinstance(value, dict) else None


def _get(value: object, *path: str) -> object:
    """`value[path[0]][path[1]]…`, or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


# --- numbers ------------------------------------------------------------------------------------------------------


def _count(value: object, name: str) -> int:
    """A token count: a non-negative integer (an integral JSON number is fine); null or missing is 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Bad(f"{name} is {_kind(value)}, not a token count")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Bad(f"{name} is not a finite number")
        if value < 0:
            raise _Bad(f"{name} is negative: {value}")
        if value > MAX_TOKENS:
            raise _Bad(f"{name} is too large")
        if value != value.to_integral_value():
            raise _Bad(f"{name} is not an integer: {value}")
        return int(value)
    if value < 0:
        raise _Bad(f"{name} is negative: {value}")
    if value > MAX_TOKENS:
        raise _Bad(f"{name} is too large")
    return value


def _counts(obj: object, where: str, **keys: str) -> dict[str, int]:
    """Read several counts from `obj` (a JSON object, or null for all zeros): {alias: key}."""
    if obj is None:
        return dict.fromkeys(keys, 0)
    if not isinstance(obj, dict):
        raise _Bad(f"{where} is {_kind(obj)}, not an object")
    return {alias: _count(obj.get(key), f"{where}.{key}") for alias, key in keys.items()}


def _usage(convention: Convention, inp: int, out: int, read: int, write: int, reasoning: int) -> Usage:
    for n in (inp, out, read, write, reasoning):
        if n > MAX_TOKENS:
            raise _Bad("token total is too large")
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=min(reasoning, out),
        convention=convention,
    )


def _money(value: object) -> Decimal | None:
    """A cost in USD: a finite, non-negative number (or numeric string); anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            return None
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0 or value > _MAX_COST:
        return None
    return value


def _dsum(values: Iterable[Decimal]) -> Decimal:
    """Exact sum (costs are bounded, so 80 digits never rounds)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return sum(values, Decimal(0))


def _http_status(value: object) -> int | None:
    """An HTTP error status (400-599) from an int or a numeric string; exit codes and error names are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) == 3:
        value = int(value.strip())
    if isinstance(value, int) and 400 <= value <= 599:
        return value
    return None


_RETRY_RE = re.compile(
    r"(?:try again|retry)\s+(?:in|after)\s+(?:(\d+)\s*m(?:in(?:ute)?s?)?\s*)?(\d+(?:\.\d+)?)\s*"
    r"(ms|milliseconds?|s|secs?|seconds?)(?![a-z])",
    re.IGNORECASE,
)
_MAX_RETRY_S = 7 * 24 * 3600.0


def _retry_after_from_text(message: str) -> float | None:
    """Seconds to wait when an error message says so ("Please try again in 6m0s", "retry in 27.5s")."""
    m = _RETRY_RE.search(message)
    if m is None:
        return None
    minutes, amount, unit = m.group(1), float(m.group(2)), m.group(3).lower()
    seconds = amount / 1000 if unit.startswith("m") else amount
    if minutes:
        seconds += int(minutes) * 60
    return seconds if seconds <= _MAX_RETRY_S else None


def _retry_after_header(headers: object) -> float | None:
    """Seconds from `retry-after-ms` / `retry-after` (delta seconds only; an HTTP date is ignored)."""
    if not isinstance(headers, dict):
        return None
    lowered = {str(k).lower(): v for k, v in headers.items()}
    for key, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = lowered.get(key)
        if isinstance(raw, bool):
            continue
        if isinstance(raw, int | Decimal | str):
            try:
                seconds = float(raw) / scale
            except ValueError:
                continue
            if 0 <= seconds <= _MAX_RETRY_S:
                return seconds
    return None


def _biggest(models: JsonObject, size: Callable[[object], int]) -> str | None:
    """The model name whose entry is largest by `size` (the first on ties)."""
    best: str | None = None
    best_size = -1
    for name, entry in models.items():
        n = size(entry)
        if n > best_size:
            best, best_size = name, n
    return best


def _safe_size(entry: object, *keys: str) -> int:
    total = 0
    for key in keys:
        value = _get(entry, *key.split("."))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total += value
    return total


# --- Claude Code --------------------------------------------------------------------------------------------------


def _anthropic_usage(usage: object, where: str) -> Usage | None:
    """An Anthropic `usage` object (input excludes cache tokens); None when absent."""
    if usage is None:
        return None
    c = _counts(
        usage,
        where,
        inp="input_tokens",
        out="output_tokens",
        read="cache_read_input_tokens",
        write="cache_creation_input_tokens",
    )
    details = _get(usage, "output_tokens_details")
    thinking = _get(details, "thinking_tokens")
    if thinking is None:
        thinking = _get(details, "reasoning_tokens")
    reasoning = _count(thinking, f"{where}.output_tokens_details.thinking_tokens")
    return _usage("anthropic", c["inp"], c["out"], c["read"], c["write"], reasoning)


def _claude_model_usage(model_usage: object) -> Usage | None:
    """The sum of Claude Code's per-model `modelUsage` entries (camelCase, Anthropic convention)."""
    if model_usage is None:
        return None
    if not isinstance(model_usage, dict):
        raise _Bad(f"modelUsage is {_kind(model_usage)}, not an object")
    inp = out = read = write = reasoning = 0
    for name, entry in model_usage.items():
        c = _counts(
            entry,
            f"modelUsage[{name!r}]",
            inp="inputTokens",
            out="outputTokens",
            read="cacheReadInputTokens",
            write="cacheCreationInputTokens",
            thinking="thinkingTokens",
        )
        inp += c["inp"]
        out += c["out"]
        read += c["read"]
        write += c["write"]
        reasoning += min(c["thinking"], c["out"])
    return _usage("anthropic", inp, out, read, write, reasoning)


def _is_zero(u: Usage) -> bool:
    return not (u.input_tokens or u.output_tokens or u.cache_read_tokens or u.cache_write_tokens)


def _claude_result(d: _Draft, result: JsonObject) -> None:
    kind = result.get("type")
    if kind is not None and kind != "result":
        d.fail(f"expected the result message, got type {_str(kind) or _kind(kind)!r}")
        return
    subtype = _str(result.get("subtype")) or ""
    text = _str(result.get("result"))
    if result.get("is_error") is True or subtype.startswith("error"):
        errors = result.get("errors")
        listed = "; ".join(e for e in errors if isinstance(e, str)) if isinstance(errors, list) else ""
        d.error(
            text or listed or subtype or "Claude Code reported an error", _http_status(result.get("api_error_status"))
        )
    else:
        d.text = text
    model_usage = _obj(result.get("modelUsage"))
    if model_usage:
        d.model = _biggest(model_usage, lambda e: _safe_size(e, "inputTokens", "outputTokens"))
    d.reported_cost_usd = _money(result.get("total_cost_usd"))
    try:
        top = _anthropic_usage(result.get("usage"), "usage")
        per_model = _claude_model_usage(result.get("modelUsage"))
    except _Bad as e:
        d.fail(str(e))
        return
    # --max-budget-usd quirk: top-level usage all zeros, modelUsage holds the real numbers.
    if top is None or (_is_zero(top) and per_model is not None and not _is_zero(per_model)):
        top = per_model
    d.usage = top


def _parse_claude_json(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    result, reason = _load_object(stdout)
    if result is None:
        d.fail(reason)
    else:
        _claude_result(d, result)
    return d.done("no usage in the result message")


def _parse_claude_stream_json(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    result: JsonObject | None = None
    init_model: str | None = None
    texts: dict[str, list[str]] = {}  # message id -> its text blocks (a message spans several lines)
    last_with_text: str | None = None
    seen = 0
    for n, event in enumerate(_jsonl(stdout)):
        seen += 1
        kind = event.get("type")
        if kind == "result":
            result = event
        elif kind == "system" and event.get("subtype") == "init":
            init_model = _str(event.get("model")) or init_model
        elif kind == "assistant":
            message = _obj(event.get("message"))
            if message is None:
                continue
            init_model = init_model or _str(message.get("model"))
            key = _str(message.get("id")) or f"#{n}"
            content = message.get("content")
            for block in content if isinstance(content, list) else ():
                block_text = _str(_get(block, "text")) if _get(block, "type") == "text" else None
                if block_text:
                    parts = texts.setdefault(key, [])
                    if block_text not in parts:
                        parts.append(block_text)
                    last_with_text = key
    if result is not None:
        _claude_result(d, result)
        d.model = d.model or init_model
        return d.done("no usage in the result message")
    d.fail("no result line" if seen else "no JSON lines")
    d.model = init_model
    if last_with_text is not None:
        d.text = "".join(texts[last_with_text])
    # Per-message usage lines repeat for every content block: summing them would over-count.
    return d.done("no result line")


# --- Codex CLI ----------------------------------------------------------------------------------------------------

_CODEX_STATUS = re.compile(r"(?:unexpected status|last status:)\s+(\d{3})\b")
# Codex's own texts for API errors whose status it does not print (codex 0.171: codex-api api_bridge.rs
# map_api_error and the CodexErr messages): (text, HTTP status, API error code).
_CODEX_ERRORS: tuple[tuple[str, int, str | None], ...] = (
    ("Quota exceeded. Check your plan and billing details", 429, "insufficient_quota"),
    ("currently experiencing high demand, which may cause temporary errors", 500, None),
    ("Selected model is at capacity", 503, "server_is_overloaded"),
    ("does not exist or you do not have access to it", 404, "model_not_found"),  # the API's model_not_found text
)
_CODEX_REROUTED = re.compile(r"^model rerouted: (\S+) -> (\S+)")


def _codex_error(d: _Draft, message: str) -> None:
    """Record a Codex error text with the HTTP status and error code it stands for."""
    status: int | None = None
    code: str | None = None
    m = _CODEX_STATUS.search(message)
    if m is not None:
        status = _http_status(int(m.group(1)))
    else:
        for text, known_status, known_code in _CODEX_ERRORS:
            if text in message:
                status, code = known_status, known_code
                break
        else:
            body = _loads(message.strip()) if message.lstrip().startswith("{") else None
            error = _get(body, "error")
            if isinstance(error, dict):  # a 400's body, printed as is (CodexErr::InvalidRequest)
                status = 400
                code = _str(error.get("code"))
                message = _str(error.get("message")) or message
    d.error(message, status, code)


def _parse_codex_jsonl(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    usage: object = None
    completed = open_turn = False
    pending_error: str | None = None  # an `error` event not (yet) followed by a completed turn
    seen = 0
    for event in _jsonl(stdout):
        seen += 1
        kind = event.get("type")
        if kind == "turn.started":
            open_turn = True
        elif kind == "turn.completed":
            # Cumulative for the thread: the last one is the total, never sum them.
            usage = event.get("usage")
            completed, open_turn = True, False
            pending_error = None
        elif kind == "turn.failed":
            open_turn = False
            _codex_error(d, _str(_get(event, "error", "message")) or "turn failed")
        elif kind == "error":
            pending_error = _str(event.get("message")) or "error"
        elif kind == "item.completed" and _get(event, "item", "type") == "agent_message":
            d.text = _str(_get(event, "item", "text")) or d.text
        elif kind == "item.completed" and _get(event, "item", "type") == "error":
            rerouted = _CODEX_REROUTED.match(_str(_get(event, "item", "message")) or "")
            if rerouted is not None:
                d.model = rerouted.group(2)
    if pending_error is not None:
        _codex_error(d, pending_error)
    if not seen:
        d.fail("no JSON lines")
    elif open_turn and not d.is_error:
        d.fail("the last turn has no turn.completed event")  # cut short: its usage is unknown
    elif completed:
        try:
            if not isinstance(usage, dict):
                raise _Bad(f"turn.completed usage is {_kind(usage)}, not an object")
            c = _counts(
                usage,
                "usage",
                inp="input_tokens",
                out="output_tokens",
                read="cached_input_tokens",
                write="cache_write_input_tokens",
                reasoning="reasoning_output_tokens",
            )
            d.usage = _usage("openai", c["inp"], c["out"], c["read"], c["write"], c["reasoning"])
        except _Bad as e:
            d.fail(str(e))
    return d.done("no turn.completed event")


# --- Gemini CLI ---------------------------------------------------------------------------------------------------


def _gemini_usage(models: object) -> Usage | None:
    if models is None:
        return None
    if not isinstance(models, dict):
        raise _Bad(f"stats.models is {_kind(models)}, not an object")
    inp = out = read = reasoning = 0
    for name, entry in models.items():
        tokens = _get(entry, "tokens")
        where = f"stats.models[{name!r}].tokens"
        c = _counts(
            tokens,
            where,
            prompt="prompt",
            uncached="input",
            cand="candidates",
            cached="cached",
            thoughts="thoughts",
            tool="tool",
        )
        prompt = c["prompt"]
        if _get(tokens, "prompt") is None:  # only the uncached part was reported
            prompt = c["uncached"] + c["cached"]
        inp += prompt + c["tool"]
        out += c["cand"] + c["thoughts"]
        read += c["cached"]
        reasoning += c["thoughts"]
    return _usage("openai", inp, out, read, 0, reasoning)


def _gemini_model(models: JsonObject) -> str | None:
    """The model that served the main role, else the one with the most tokens (routers use a small one too)."""
    mains = [name for name, entry in models.items() if isinstance(_get(entry, "roles", "main"), dict)]
    if len(mains) == 1:
        return mains[0]
    return _biggest(models, lambda e: _safe_size(e, "tokens.prompt", "tokens.candidates", "tokens.thoughts"))


# The API's text for an unknown model; the CLI (0.61) loses that error's 404 and reports exit code 1.
_GEMINI_NOT_FOUND = re.compile(r"models/\S+ is not found for API version")


def _gemini_error(d: _Draft, error: JsonObject) -> None:
    """Record the CLI's `error` object: `code` is an HTTP status for API errors but a process exit
    code (41 auth, 52 config...) otherwise; an API error's `message` may be the API's JSON body."""
    message = _str(error.get("message")) or _str(error.get("type")) or "error"
    status = _http_status(error.get("code"))
    code: str | None = None
    body = _loads(message.strip()) if message.lstrip().startswith("{") else None
    inner = _get(body, "error")
    if isinstance(inner, dict):
        status = status or _http_status(inner.get("code"))
        details = inner.get("details")
        for detail in details if isinstance(details, list) else ():
            code = code or _str(_get(detail, "reason"))  # google.rpc.ErrorInfo, e.g. API_KEY_INVALID
        code = code or _str(inner.get("status"))
        message = _str(inner.get("message")) or message
    if status is None and _GEMINI_NOT_FOUND.search(message):
        status = 404
    d.error(message, status, code)


def _parse_gemini_json(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    obj, reason = _load_object(stdout)
    if obj is None:
        # A failed run prints its JSON on stderr (gemini-cli handleError), after whatever it logged
        # (stack traces...), and nothing on stdout: read from the last line that opens an object.
        stderr = files.get("stderr", "")
        on_stderr, _ = _load_object(stderr[stderr.rfind("\n{") + 1 :])
        if on_stderr is not None and isinstance(on_stderr.get("error"), dict):
            obj = on_stderr
    if obj is None:
        d.fail(reason)
        return d.done(reason)
    error = obj.get("error")
    if isinstance(error, dict):
        _gemini_error(d, error)
    elif isinstance(error, str) and error:
        d.error(error)
    d.text = _str(obj.get("response"))
    models = _get(obj, "stats", "models")
    if isinstance(models, dict) and models:
        d.model = _gemini_model(models)
    try:
        d.usage = _gemini_usage(models)
    except _Bad as e:
        d.fail(str(e))
    return d.done("no stats.models in the output")


# --- opencode -----------------------------------------------------------------------------------------------------


def _opencode_step(tokens: object) -> tuple[int, int, int, int, int]:
    """(input, output incl. reasoning, cache read, cache write, reasoning) of one step_finish part."""
    if not isinstance(tokens, dict):
        raise _Bad(f"step_finish tokens is {_kind(tokens)}, not an object")
    c = _counts(tokens, "tokens", inp="input", out="output", reasoning="reasoning")
    cache = _counts(tokens.get("cache"), "tokens.cache", read="read", write="write")
    inp, out, reasoning, read, write = c["inp"], c["out"], c["reasoning"], cache["read"], cache["write"]
    total = tokens.get("total")
    # opencode keeps reasoning out of `output` (total = input+output+reasoning+cache); older versions
    # left it inside for OpenAI-style providers, which `total` then shows.
    already_inside = isinstance(total, int) and not isinstance(total, bool) and total == inp + out + read + write
    if reasoning and not already_inside:
        out += reasoning
    return inp, out, read, write, reasoning


def _opencode_error(d: _Draft, error: object) -> None:
    data = _get(error, "data")
    message = _str(_get(data, "message")) or _str(_get(error, "message")) or _str(_get(error, "name"))
    if message is None and isinstance(error, str):
        message = error
    d.error(message or "opencode reported an error", _http_status(_get(data, "statusCode")))
    if d.retry_after_s is None:
        d.retry_after_s = _retry_after_header(_get(data, "responseHeaders"))


def _parse_opencode_jsonl(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    steps: list[JsonObject] = []
    texts: list[str] = []
    seen = 0
    open_step = False
    for event in _jsonl(stdout):
        seen += 1
        kind = event.get("type")
        part = _obj(event.get("part"))
        part_type = part.get("type") if part else None
        if kind == "step_start" or part_type == "step-start":
            open_step = True
        elif kind == "step_finish" or part_type == "step-finish":
            open_step = False
            if part is not None:
                steps.append(part)
        elif kind == "text" or part_type == "text":
            text = _str(part.get("text")) if part else None
            if text and text.strip():
                texts.append(text.strip())
        elif kind == "error":
            _opencode_error(d, event.get("error"))
    d.text = "\n\n".join(texts) or None
    if not seen:
        d.fail("no JSON lines")
    elif open_step and not d.is_error:
        d.fail("the last step has no step_finish event")  # cut short: its usage is unknown
    elif steps:
        costs = [c for c in (_money(s.get("cost")) for s in steps) if c is not None]
        d.reported_cost_usd = _dsum(costs) if costs else None
        try:
            inp = out = read = write = reasoning = 0
            for step in steps:
                i, o, r, w, x = _opencode_step(step.get("tokens"))
                inp, out, read, write, reasoning = inp + i, out + o, read + r, write + w, reasoning + x
            d.usage = _usage("anthropic", inp, out, read, write, reasoning)
        except _Bad as e:
            d.fail(str(e))
    return d.done("no step_finish event")


# --- aider --------------------------------------------------------------------------------------------------------

_TOKENS_LINE = re.compile(r"Tokens:\s*(.*)")
# The lookbehind anchors each try at the start of a number, which keeps the scan linear on long digit runs.
_TOKEN_ITEM = re.compile(
    r"(?<![\d,.])(\d[\d,]*(?:\.\d+)?)\s*([kKmM]?)\s+(sent|received|cache write|cache hit|cache read|total|thinking)\b",
    re.IGNORECASE,
)
_TOKEN_KEYS = {"cache write": "write", "cache hit": "read", "cache read": "read", "total": "received"}
_COST = re.compile(r"Cost:\s*\$\s*(\d[\d,]*(?:\.\d+)?)\s+(?:message|request),\s*\$\s*(\d[\d,]*(?:\.\d+)?)\s+session")
_AIDER_MODEL = re.compile(r"^(?:Main )?[Mm]odel:\s*(\S+)", re.MULTILINE)
_SUFFIX = {"": 1, "k": 1000, "m": 1_000_000}


def _human_count(number: str, suffix: str) -> int:
    """'12' / '1,234' / '1.2k' / '3M' -> an int (aider prints rounded values: this is approximate)."""
    digits = number.replace(",", "")
    if len(digits) > 30:
        raise _Bad(f"token count {digits[:20]}… is too large")
    return int((Decimal(digits) * _SUFFIX[suffix.lower()]).to_integral_value())


def _aider_stdout(stdout: str) -> tuple[list[dict[str, int]], Decimal | None]:
    """Per-message token counts from every `Tokens:` line, and the last session cost.

    One line per message (aider resets its message counters after printing), so a run's
    usage is their sum. Also reads the fork format "…; 4.5k Total (1.2k thinking, 3.3k returned)".
    """
    lines: list[dict[str, int]] = []
    for m in _TOKENS_LINE.finditer(stdout):
        counts = {"sent": 0, "received": 0, "write": 0, "read": 0, "thinking": 0}
        found = False
        for item in _TOKEN_ITEM.finditer(m.group(1)):
            kind = item.group(3).lower()
            key = _TOKEN_KEYS.get(kind, kind)
            if key == "received" and kind == "total" and counts["received"]:
                continue
            counts[key] += _human_count(item.group(1), item.group(2))
            found = True
        if found:
            lines.append(counts)
    costs = _COST.findall(stdout)
    session = _money(costs[-1][1].replace(",", "")) if costs else None
    return lines, session


def _parse_aider(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    unreadable_lines = None  # why the Tokens lines cannot be read: fatal only when they are the usage
    try:
        lines, session_cost = _aider_stdout(stdout)
    except _Bad as e:
        lines, session_cost, unreadable_lines = [], None, str(e)
    models = _AIDER_MODEL.findall(stdout)
    d.model = models[-1] if models else None
    analytics = files.get("output_file")
    sends: list[JsonObject] = []
    if isinstance(analytics, str) and analytics:
        sends = [
            props
            for event in _jsonl(analytics)
            if event.get("event") == "message_send" and (props := _obj(event.get("properties"))) is not None
        ]
    try:
        if sends:
            inp = out = 0
            costs: list[Decimal] = []
            for props in sends:
                c = _counts(props, "message_send", inp="prompt_tokens", out="completion_tokens")
                inp += c["inp"]
                out += c["out"]
                cost = _money(props.get("cost"))
                if cost is not None:
                    costs.append(cost)
                d.model = _str(props.get("main_model")) or d.model
            # The log has no cache split; the Tokens lines of the same messages do (rounded).
            read = write = 0
            if len(lines) == len(sends):
                read = min(sum(line["read"] for line in lines), inp)
                write = min(sum(line["write"] for line in lines), inp - read)
            d.usage = _usage("openai", inp, out, read, write, 0)
            d.reported_cost_usd = _dsum(costs) if costs else _money(sends[-1].get("total_cost"))
        elif unreadable_lines is not None:
            d.fail(unreadable_lines)
        elif lines:
            inp = sum(line["sent"] for line in lines)
            read = min(sum(line["read"] for line in lines), inp)
            write = min(sum(line["write"] for line in lines), inp - read)
            out = sum(line["received"] for line in lines)
            d.usage = _usage("openai", inp, out, read, write, sum(line["thinking"] for line in lines))
            d.reported_cost_usd = session_cost
    except _Bad as e:
        d.fail(str(e))
    return d.done("no message_send event and no Tokens line")


# --- raw API bodies -----------------------------------------------------------------------------------------------


def _openai_text(obj: JsonObject) -> str | None:
    choices = obj.get("choices")
    if isinstance(choices, list) and choices:
        content = _get(choices[0], "message", "content")
        if isinstance(content, list):  # content parts
            return "".join(t for p in content if (t := _str(_get(p, "text")))) or None
        return _str(content)
    output = obj.get("output")  # Responses API
    parts: list[str] = []
    for item in output if isinstance(output, list) else ():
        content = _get(item, "content") if _get(item, "type") == "message" else None
        for block in content if isinstance(content, list) else ():
            if t := _str(_get(block, "text")):
                parts.append(t)
    return "".join(parts) or None


def _openai_usage(usage: object) -> Usage | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise _Bad(f"usage is {_kind(usage)}, not an object")
    if "prompt_tokens" not in usage and "input_tokens" in usage:  # Responses API names
        c = _counts(usage, "usage", inp="input_tokens", out="output_tokens")
        read = _count(_get(usage, "input_tokens_details", "cached_tokens"), "usage.input_tokens_details.cached_tokens")
        reasoning = _count(
            _get(usage, "output_tokens_details", "reasoning_tokens"), "usage.output_tokens_details.reasoning_tokens"
        )
        return _usage("openai", c["inp"], c["out"], read, 0, reasoning)
    c = _counts(usage, "usage", inp="prompt_tokens", out="completion_tokens")
    details = _counts(
        usage.get("prompt_tokens_details"),
        "usage.prompt_tokens_details",
        read="cached_tokens",
        write="cache_write_tokens",
    )
    reasoning = _count(
        _get(usage, "completion_tokens_details", "reasoning_tokens"), "usage.completion_tokens_details.reasoning_tokens"
    )
    return _usage("openai", c["inp"], c["out"], details["read"], details["write"], reasoning)


def _parse_openai_json(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    obj, reason = _load_object(stdout)
    if obj is None:
        d.fail(reason)
        return d.done(reason)
    error = obj.get("error")
    if isinstance(error, dict):
        # OpenRouter's `code` is the HTTP status; OpenAI's is a name ("rate_limit_exceeded").
        d.error(_str(error.get("message")) or _str(error.get("code")) or "error", _http_status(error.get("code")))
    elif isinstance(error, str) and error:
        d.error(error)
    choices = obj.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    if _get(first, "finish_reason") == "error":  # OpenRouter: failed after the response had started
        message = _str(_get(first, "error", "message")) or "the response ended with an error"
        d.error(message, _http_status(_get(first, "error", "code")))
    d.text = _openai_text(obj)
    d.model = _str(obj.get("model"))
    usage = obj.get("usage")
    cost = _money(_get(usage, "cost"))
    upstream = _money(_get(usage, "cost_details", "upstream_inference_cost"))
    if cost is not None and upstream is not None and _get(usage, "is_byok") is True:
        cost = _dsum([cost, upstream])  # BYOK: `cost` is OpenRouter's fee, the provider billed the rest
    d.reported_cost_usd = cost
    try:
        d.usage = _openai_usage(usage)
    except _Bad as e:
        d.fail(str(e))
    return d.done("no usage in the response body")


def _parse_anthropic_json(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    d = _Draft()
    obj, reason = _load_object(stdout)
    if obj is None:
        d.fail(reason)
        return d.done(reason)
    error = obj.get("error")
    if obj.get("type") == "error" or isinstance(error, dict):
        kind, message = _str(_get(error, "type")), _str(_get(error, "message"))
        d.error(f"{kind}: {message}" if kind and message else message or kind or "error")
    content = obj.get("content")
    if isinstance(content, list):
        d.text = "".join(t for b in content if _get(b, "type") == "text" and (t := _str(_get(b, "text")))) or None
    d.model = _str(obj.get("model"))
    try:
        d.usage = _anthropic_usage(obj.get("usage"), "usage")
    except _Bad as e:
        d.fail(str(e))
    return d.done("no usage in the response body")


def _parse_none(stdout: str, files: Mapping[str, str]) -> ParsedOutput:
    return ParsedOutput(None, None, False, None, None, _clip(stdout), None, None)


Parser = Callable[[str, Mapping[str, str]], ParsedOutput]


def parser_name(fmt: str) -> str:
    """The function that reads format `fmt` in this module: `claude-json` -> `_parse_claude_json`."""
    return "_parse_" + fmt.replace("-", "_")


# Built from the one list of names (a name without its function fails here, at import).
FORMATS: Mapping[str, Parser] = {fmt: globals()[parser_name(fmt)] for fmt in USAGE_FORMATS}


def _failed(reason: str) -> ParsedOutput:
    return ParsedOutput(None, None, False, None, None, None, None, PROBLEM_PREFIX + reason)


def parse_output(fmt: str, stdout: str, *, files: Mapping[str, str] | None = None) -> ParsedOutput:
    """Read one run's output in format `fmt` (a key of `FORMATS`). Never raises.

    `files` maps a role to the text of a file the tool wrote (the runner reads it);
    aider's analytics log is ``files["output_file"]``, the tool's stderr ``files["stderr"]``
    (where the Gemini CLI puts its JSON when it fails).
    """
    parser = FORMATS.get(fmt) if isinstance(fmt, str) else None
    if parser is None:
        return _failed(f"unknown format {fmt!r}")
    if isinstance(stdout, bytes | bytearray):
        stdout = bytes(stdout).decode("utf-8", errors="replace")
    elif not isinstance(stdout, str):
        stdout = "" if stdout is None else str(stdout)
    safe_files: dict[str, str] = {}
    if isinstance(files, Mapping):
        safe_files = {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}
    try:
        return parser(stdout, safe_files)
    except Exception as e:  # a parser bug must not take the run down with it (the tests assert it never happens)
        return _failed(f"{_INTERNAL}{type(e).__name__}: {e}"[:_MAX_REASON_CHARS])
