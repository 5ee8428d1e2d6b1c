"""Usage parsers: recorded outputs per format, truncation and garbage, and property tests."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.catalog import Usage
from switchyard.usage_formats import USAGE_FORMATS
from switchyard.usage_parsers import FORMATS, INTERNAL_ERROR, PROBLEM_PREFIX, ParsedOutput, parse_output, parser_name

DATA = Path(__file__).parent / "data" / "usage"


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def check_invariants(p: ParsedOutput) -> None:
    """What every result must satisfy, whatever the input."""
    assert isinstance(p, ParsedOutput)
    # parse_output turns a parser that raised into a problem, so the run goes on; that is a bug all the same.
    assert not (p.problem or "").startswith(INTERNAL_ERROR), p.problem
    if p.usage is not None:
        u = p.usage
        for n in (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens):
            assert type(n) is int
            assert n >= 0
        assert u.reasoning_tokens <= u.output_tokens
        assert u.convention in ("anthropic", "openai")
    if p.reported_cost_usd is not None:
        assert isinstance(p.reported_cost_usd, Decimal)
        assert p.reported_cost_usd.is_finite()
        assert p.reported_cost_usd >= 0
    assert isinstance(p.is_error, bool)
    if p.error_status is not None:
        assert type(p.error_status) is int
        assert 400 <= p.error_status <= 599
    if p.error_message is not None:
        assert isinstance(p.error_message, str)
        assert len(p.error_message) <= 2001
    for s in (p.text, p.model):
        assert s is None or isinstance(s, str)
    if p.problem is not None:
        assert p.problem.startswith(PROBLEM_PREFIX)
    if p.retry_after_s is not None:
        assert isinstance(p.retry_after_s, float)
        assert p.retry_after_s >= 0


# --- recorded samples: exact expectations ---------------------------------------------------------------------------

CASES: list[tuple[str, str, dict[str, object]]] = [
    (
        "claude-json",
        "claude_json_success.json",
        {
            "usage": Usage(1234, 56, 90, 78, 0, "anthropic"),
            "reported_cost_usd": Decimal("0.004861500000000001"),
            "is_error": False,
            "text": "Hello from the offline fake API.",
            "model": "claude-sonnet-4-5",
            "problem": None,
        },
    ),
    (
        "claude-json",
        "claude_json_error_529.json",
        {
            "usage": Usage(0, 0, 0, 0, 0, "anthropic"),
            "reported_cost_usd": Decimal(0),
            "is_error": True,
            "error_status": 529,
            "text": None,
            "problem": None,
        },
    ),
    (
        "claude-json",
        "claude_json_budget_exceeded.json",
        {
            # top-level usage is all zeros (CLI quirk): modelUsage carries the real numbers
            "usage": Usage(2100, 310, 1500, 400, 120, "anthropic"),
            "reported_cost_usd": Decimal("0.0129"),
            "is_error": True,
            "error_status": None,
            "error_message": "Reached maximum budget ($0.001)",
            "model": "claude-sonnet-4-5",
            "problem": None,
        },
    ),
    (
        "claude-stream-json",
        "claude_stream.jsonl",
        {
            "usage": Usage(1760, 137, 2048, 2168, 18, "anthropic"),
            "reported_cost_usd": Decimal("0.0160794"),
            "is_error": False,
            "text": "The script prints `hi`.",
            "model": "claude-sonnet-4-5",
            "problem": None,
        },
    ),
    (
        "codex-jsonl",
        "codex_exec.jsonl",
        {
            "usage": Usage(24763, 1122, 24448, 0, 0, "openai"),
            "reported_cost_usd": None,
            "is_error": False,
            "text": "Added `--dry-run` to `src/cli.py`; all 4 tests pass.",
            "model": None,
            "problem": None,
        },
    ),
    (
        "codex-jsonl",
        "codex_multi_turn.jsonl",
        {
            # turn.completed.usage is cumulative for the thread: the last one is the total
            "usage": Usage(26950, 982, 22016, 0, 0, "openai"),
            "is_error": False,
            "text": "Fixed `load()` to honour `path`.",
            "problem": None,
        },
    ),
    (
        "codex-jsonl",
        "codex_turn_failed.jsonl",
        {
            "usage": None,
            "is_error": True,
            "error_status": 429,  # "exceeded retry limit, last status: 429 ...": codex's only sign of the status
            "retry_after_s": 2.786,
            "problem": None,
        },
    ),
    (
        "codex-jsonl",
        "codex_recovered.jsonl",
        {
            "usage": Usage(5120, 64, 0, 0, 0, "openai"),
            "is_error": False,
            "error_message": None,
            "text": "Done.",
            "problem": None,
        },
    ),
    (
        "gemini-json",
        "gemini_two_models.json",
        {
            # prompt includes cached (OpenAI convention); output = candidates + thoughts
            "usage": Usage(41234 + 1402, 1875 + 2300 + 18, 31358, 0, 2300, "openai"),
            "reported_cost_usd": None,
            "is_error": False,
            "text": "I renamed `fetchUser` to `loadUser` in 3 files and updated the tests.",
            "model": "gemini-2.5-pro",
            "problem": None,
        },
    ),
    (
        "gemini-json",
        "gemini_error_auth.json",
        {"usage": None, "is_error": True, "error_status": None, "problem": None},  # code 41 is an exit code
    ),
    (
        "gemini-json",
        "gemini_error_429.json",
        {"usage": None, "is_error": True, "error_status": 429, "retry_after_s": 27.522533416, "problem": None},
    ),
    (
        "opencode-jsonl",
        "opencode_multi_step.jsonl",
        {
            # input excludes cache (Anthropic convention); reasoning is added to output
            "usage": Usage(1830 + 412 + 220, 142 + 96 + 230 + 58, 11250 + 12880, 11250 + 1630, 230, "anthropic"),
            "reported_cost_usd": Decimal("0.0498075") + Decimal("0.0156135") + Decimal("0.005394"),
            "is_error": False,
            "text": "Changed `x` to 2 in `src/app.ts`.",
            "problem": None,
        },
    ),
    (
        "opencode-jsonl",
        "opencode_error.jsonl",
        {
            "usage": None,
            "is_error": True,
            "error_status": 429,
            "error_message": "Rate limit exceeded: too many requests for anthropic/claude-sonnet-4-5",
            "retry_after_s": 17.0,
            "problem": None,
        },
    ),
    (
        "aider",
        "aider_stdout.txt",
        {
            # two Tokens lines (one per message), rounded by aider's format_tokens
            "usage": Usage(12000 + 8500, 498 + 312, 3000 + 7200, 1200, 0, "openai"),
            "reported_cost_usd": Decimal("0.05"),
            "is_error": False,
            "model": "anthropic/claude-sonnet-4-5",
            "problem": None,
        },
    ),
    (
        "openai-json",
        "openai_chat.json",
        {
            "usage": Usage(2843, 611, 2560, 0, 448, "openai"),
            "reported_cost_usd": None,
            "is_error": False,
            "text": "The function returns early when `items` is empty.",
            "model": "gpt-5-mini-2025-08-07",
            "problem": None,
        },
    ),
    (
        "openai-json",
        "openrouter_chat.json",
        {
            "usage": Usage(5210, 188, 3072, 1024, 0, "openai"),
            "reported_cost_usd": Decimal("0.0071637"),
            "is_error": False,
            "text": "Renamed `cfg` to `config` throughout.",
            "model": "anthropic/claude-sonnet-4.5",
            "problem": None,
        },
    ),
    (
        "openai-json",
        "openrouter_error_402.json",
        {"usage": None, "is_error": True, "error_status": 402, "problem": None},
    ),
    (
        "openai-json",
        "openai_error_429.json",
        {"usage": None, "is_error": True, "error_status": None, "retry_after_s": 0.558, "problem": None},
    ),
    (
        "anthropic-json",
        "anthropic_message.json",
        {
            "usage": Usage(412, 203, 8192, 1536, 0, "anthropic"),
            "reported_cost_usd": None,
            "is_error": False,
            "text": "The patch adds retry with exponential backoff.",
            "model": "claude-sonnet-4-5-20250929",
            "problem": None,
        },
    ),
    (
        "anthropic-json",
        "anthropic_error_529.json",
        {
            "usage": None,
            "is_error": True,
            "error_status": None,
            "error_message": "overloaded_error: Overloaded",
            "problem": None,
        },
    ),
]


@pytest.mark.parametrize(("fmt", "name", "expected"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_recorded_sample(fmt: str, name: str, expected: dict[str, object]) -> None:
    p = parse_output(fmt, sample(name))
    check_invariants(p)
    for field, want in expected.items():
        assert getattr(p, field) == want, field


def test_claude_error_message_is_the_result_text() -> None:
    p = parse_output("claude-json", sample("claude_json_error_529.json"))
    assert p.error_message is not None
    assert p.error_message.startswith("API Error: 529 ")


def test_codex_turn_failed_message() -> None:
    p = parse_output("codex-jsonl", sample("codex_turn_failed.jsonl"))
    assert p.error_message is not None
    assert p.error_message.startswith("exceeded retry limit, last status: 429")


def test_codex_error_without_completion_is_fatal() -> None:
    lines = sample("codex_recovered.jsonl").splitlines()[:3]  # thread.started, turn.started, error
    p = parse_output("codex-jsonl", "\n".join(lines))
    assert p.is_error
    assert p.error_message is not None
    assert p.error_message.startswith("Reconnecting... 1/5")
    assert p.usage is None


def test_gemini_error_auth_message() -> None:
    p = parse_output("gemini-json", sample("gemini_error_auth.json"))
    assert p.error_message is not None
    assert p.error_message.startswith("Please set an Auth method")


def test_aider_analytics_preferred_and_cache_split_from_stdout() -> None:
    files = {"output_file": sample("aider_analytics.jsonl")}
    p = parse_output("aider", sample("aider_stdout.txt"), files=files)
    check_invariants(p)
    # exact prompt/completion counts and costs from the log; cache split from the Tokens lines (rounded)
    assert p.usage == Usage(12034 + 8512, 498 + 312, 3000 + 7200, 1200, 0, "openai")
    assert p.reported_cost_usd == Decimal("0.039123") + Decimal("0.014217")
    assert p.model == "anthropic/claude-sonnet-4-5"
    assert p.problem is None


def test_aider_analytics_alone_has_no_cache_split() -> None:
    p = parse_output("aider", "", files={"output_file": sample("aider_analytics.jsonl")})
    assert p.usage == Usage(20546, 810, 0, 0, 0, "openai")
    assert p.reported_cost_usd == Decimal("0.053340")
    assert p.problem is None


def test_aider_empty_analytics_falls_back_to_stdout() -> None:
    p = parse_output("aider", sample("aider_stdout.txt"), files={"output_file": '{"event":"launched"}\n'})
    assert p.usage == Usage(20500, 810, 10200, 1200, 0, "openai")


@pytest.mark.parametrize(
    ("line", "usage", "cost"),
    [
        ("Tokens: 1,234 sent, 56 received. Cost: $0.01 request, $0.02 session.", Usage(1234, 56, convention="openai"),
         Decimal("0.02")),
        ("Tokens: 2.5M sent, 12k received.", Usage(2_500_000, 12_000, convention="openai"), None),
        ("Tokens: 116 sent, 30 received.", Usage(116, 30, convention="openai"), None),
        ("Tokens: 15k sent, 2.1k cache write, 8.2k cache read; 4.5k Total (1.2k thinking, 3.3k returned)",
         Usage(15_000, 4_500, 8_200, 2_100, 1_200, "openai"), None),
        ("Tokens: 3.4k sent, 96 received. Cost: $0.0012 message, $0.0012 session.", Usage(3400, 96, convention="openai"),
         Decimal("0.0012")),
    ],
)  # fmt: skip
def test_aider_tokens_line_forms(line: str, usage: Usage, cost: Decimal | None) -> None:
    p = parse_output("aider", f"Aider v0.86.1\nModel: gpt-4o with diff edit format\n{line}\n")
    assert p.usage == usage
    assert p.reported_cost_usd == cost
    assert p.model == "gpt-4o"


def test_aider_without_any_usage_is_a_problem() -> None:
    p = parse_output("aider", "Aider v0.86.1\nsomething went wrong\n")
    assert p.usage is None
    assert p.problem is not None


def test_none_format() -> None:
    p = parse_output("none", "  hello\nworld \n")
    assert p == ParsedOutput(None, None, False, None, None, "hello\nworld", None, None)
    assert parse_output("none", "").text is None


# --- tolerance: leading warnings, truncation, garbage ---------------------------------------------------------------

JSON_FORMATS = ["claude-json", "gemini-json", "openai-json", "anthropic-json"]
SINGLE_JSON_SAMPLES = [
    ("claude-json", "claude_json_success.json"),
    ("claude-json", "claude_json_error_529.json"),
    ("gemini-json", "gemini_two_models.json"),
    ("openai-json", "openai_chat.json"),
    ("openai-json", "openrouter_chat.json"),
    ("anthropic-json", "anthropic_message.json"),
]


@pytest.mark.parametrize(("fmt", "name"), SINGLE_JSON_SAMPLES)
def test_json_after_warning_lines(fmt: str, name: str) -> None:
    clean = parse_output(fmt, sample(name))
    body = sample(name)
    noisy = "WARNING: something odd\n[info] {not json}\n" + body + "\n(node:1234) DeprecationWarning\n"
    compact = "Loaded cached credentials.\n" + json.dumps(
        json.loads(body.split("\n", 1)[-1] if body[0] != "{" else body)
    )
    for text in (noisy, compact):
        p = parse_output(fmt, text)
        check_invariants(p)
        assert p.usage == clean.usage
        assert p.reported_cost_usd == clean.reported_cost_usd
        assert p.text == clean.text


ALL_SAMPLES = [(fmt, name) for fmt, name, _ in CASES]


def cut_points(n: int) -> list[int]:
    return sorted({0, 1, 2, n // 7, n // 4, n // 3, n // 2, 2 * n // 3, 3 * n // 4, n - 30, n - 3, n - 2, n - 1} - {n})


@pytest.mark.parametrize(("fmt", "name"), ALL_SAMPLES, ids=[f"{f}:{n}" for f, n in ALL_SAMPLES])
def test_truncated_samples_never_raise(fmt: str, name: str) -> None:
    full = sample(name)
    complete = parse_output(fmt, full)
    for cut in cut_points(len(full)):
        if cut < 0:
            continue
        part = full[:cut]
        p = parse_output(fmt, part)
        check_invariants(p)
        if fmt in JSON_FORMATS and part.strip() != full.strip():
            # a single JSON object cut short cannot be read
            assert p.problem is not None or p.usage is None, (cut, p)
        if p.problem is not None:
            assert p.usage is None
        elif p.usage is not None and complete.usage is not None:
            # a prefix cut between two steps or turns cannot be told from a shorter run: never more than the whole
            a, b = p.usage, complete.usage
            assert a.convention == b.convention
            assert a.input_tokens <= b.input_tokens and a.output_tokens <= b.output_tokens, (cut, p)
            assert a.cache_read_tokens <= b.cache_read_tokens and a.cache_write_tokens <= b.cache_write_tokens


def test_truncated_stream_json_keeps_text() -> None:
    lines = sample("claude_stream.jsonl").splitlines()
    p = parse_output("claude-stream-json", "\n".join(lines[:-1]) + "\n" + lines[-1][:50])
    check_invariants(p)
    assert p.problem == PROBLEM_PREFIX + "no result line"
    assert p.usage is None  # per-message usage repeats per content block: never summed
    assert p.text == "The script prints `hi`."
    assert p.model == "claude-sonnet-4-5"


def test_codex_without_turn_completed_is_a_problem() -> None:
    lines = sample("codex_exec.jsonl").splitlines()[:-1]
    p = parse_output("codex-jsonl", "\n".join(lines))
    assert p.usage is None
    assert p.problem == PROBLEM_PREFIX + "the last turn has no turn.completed event"
    assert p.text == "Added `--dry-run` to `src/cli.py`; all 4 tests pass."


def test_codex_cut_during_a_later_turn_is_a_problem() -> None:
    lines = sample("codex_multi_turn.jsonl").splitlines()
    assert parse_output("codex-jsonl", "\n".join(lines[:4])).usage == Usage(11200, 410, 8960, 0, 0, "openai")
    p = parse_output("codex-jsonl", "\n".join(lines[:6]))  # second turn started, never completed
    assert p.usage is None
    assert p.problem == PROBLEM_PREFIX + "the last turn has no turn.completed event"


def test_opencode_cut_during_a_step_is_a_problem() -> None:
    lines = sample("opencode_multi_step.jsonl").splitlines()
    p = parse_output("opencode-jsonl", "\n".join(lines[:-3]))  # third step started, never finished
    assert p.usage is None
    assert p.problem == PROBLEM_PREFIX + "the last step has no step_finish event"


GARBAGE = [
    "",
    "   \n\n",
    "not json at all",
    "\x00\x01\x02\xff\xfe binary \udcff junk",
    "{",
    "}",
    "[1, 2, 3]",
    "42",
    '"a string"',
    "null",
    "true",
    "{}",
    "[]",
    '{"usage": [1, 2]}',
    '{"usage": "lots"}',
    '{"usage": {"input_tokens": -5, "prompt_tokens": -5}}',
    '{"usage": {"input_tokens": 1.5, "prompt_tokens": 1.5}}',
    '{"usage": {"input_tokens": true, "prompt_tokens": true}}',
    '{"usage": {"input_tokens": NaN, "prompt_tokens": Infinity}}',
    '{"usage": {"input_tokens": 1e400, "prompt_tokens": 1e400}}',
    '{"usage": {"input_tokens": 99999999999999999999999999, "prompt_tokens": 99999999999999999999999999}}',
    '{"usage": {"input_tokens": "12", "prompt_tokens": "12"}}',
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    "1" * 10_000,
    '{"type":"turn.completed","usage":{"input_tokens":' + "9" * 5000 + "}}",
    "Tokens: " + "9" * 100_000 + " sent",
    "Tokens: 99999999999999999999999999999999999999M sent, 1 received.",
    "Cost: $" + "1" * 50_000,
    '{"type":"result","usage":{"input_tokens":1},"modelUsage":[]}',
    '{"type":"assistant","message":{"content":"x"}}',
    '{"type":"step_finish","part":{"tokens":{"input":1,"cache":5}}}',
    '{"type":"step_finish","part":{"tokens":null}}',
    '{"type":"error","error":12}',
    '{"error": 5}',
    '{"error": {"code": true, "message": 7}}',
    '{"stats": {"models": {"m": {"tokens": {"prompt": -1}}}}}',
    '{"stats": {"models": []}}',
    '{"choices": [{"message": {"content": [1, {"text": 2}]}}], "usage": {}}',
    '{"type":"error","error":{"type":"x"}}',
    '{"usage":{"input_tokens":1e999999999}}',
]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_garbage_never_raises(fmt: str) -> None:
    for text in GARBAGE:
        for variant in (text, "warning line\n" + text, text + "\n" + text):
            p = parse_output(fmt, variant)
            check_invariants(p)
            if fmt != "none" and p.usage is None and not p.is_error:
                assert p.problem is not None, (fmt, variant[:80])


@pytest.mark.parametrize("fmt", [f for f in sorted(FORMATS) if f != "none"])
def test_wrong_shape_json_is_a_problem(fmt: str) -> None:
    for text in ("[1, 2]", "3", '"x"', "null", ""):
        p = parse_output(fmt, text)
        check_invariants(p)
        assert p.usage is None
        assert p.problem is not None and p.problem.startswith(PROBLEM_PREFIX)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("claude-json", '{"type":"result","usage":{"input_tokens":-1,"output_tokens":2}}'),
        ("claude-json", '{"type":"result","usage":{"input_tokens":1.5,"output_tokens":2}}'),
        ("claude-json", '{"type":"result","usage":{"input_tokens":true,"output_tokens":2}}'),
        ("codex-jsonl", '{"type":"turn.completed","usage":{"input_tokens":-3,"cached_input_tokens":0,"output_tokens":1}}'),
        ("codex-jsonl", '{"type":"turn.completed","usage":null}'),
        ("gemini-json", '{"stats":{"models":{"m":{"tokens":{"prompt":"10"}}}}}'),
        ("opencode-jsonl", '{"type":"step_finish","part":{"type":"step-finish","tokens":{"input":-1,"output":0}}}'),
        ("openai-json", '{"usage":{"prompt_tokens":5,"completion_tokens":-1}}'),
        ("openai-json", '{"usage":{"prompt_tokens":92233720368547758080,"completion_tokens":1}}'),
        ("anthropic-json", '{"usage":{"input_tokens":5,"output_tokens":2.25}}'),
        ("aider", '{"event":"x"}'),
    ],
)  # fmt: skip
def test_bad_token_counts_are_problems(fmt: str, text: str) -> None:
    p = parse_output(fmt, text)
    check_invariants(p)
    assert p.usage is None
    assert p.problem is not None and p.problem.startswith(PROBLEM_PREFIX)


def test_aider_unreadable_tokens_line_is_a_problem_only_when_it_is_the_usage() -> None:
    # Once, a count too large in a Tokens line escaped the parser and was caught as an "internal error".
    line = "Tokens: " + "9" * 40 + " sent, 1 received.\n"
    p = parse_output("aider", line)
    check_invariants(p)
    assert p.usage is None and p.problem is not None and "is too large" in p.problem
    log = '{"event": "message_send", "properties": {"prompt_tokens": 12, "completion_tokens": 3}}'
    p = parse_output("aider", line, files={"output_file": log})
    check_invariants(p)
    assert p.problem is None and p.usage == Usage(12, 3, convention="openai")


def test_a_parser_that_raises_is_reported_as_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(stdout: str, files: object) -> ParsedOutput:
        raise IndexError("parser bug")

    monkeypatch.setitem(FORMATS, "broken", broken)  # type: ignore[index]
    p = parse_output("broken", "{}")
    assert p.problem == INTERNAL_ERROR + "IndexError: parser bug" and p.usage is None
    with pytest.raises(AssertionError, match="internal error"):
        check_invariants(p)


def test_the_parser_table_is_built_from_the_list_of_formats() -> None:
    import switchyard.usage_parsers as module

    assert tuple(FORMATS) == USAGE_FORMATS
    # a parser whose format is missing from the list would never be called
    assert {name for name in vars(module) if name.startswith("_parse_")} == {parser_name(f) for f in USAGE_FORMATS}


def test_integral_float_counts_are_accepted() -> None:
    p = parse_output("openai-json", '{"usage":{"prompt_tokens":12.0,"completion_tokens":3}}')
    assert p.usage == Usage(12, 3, convention="openai")


def test_unknown_format_and_odd_arguments() -> None:
    p = parse_output("nope", "{}")
    assert p.problem == PROBLEM_PREFIX + "unknown format 'nope'"
    p = parse_output("openai-json", b'{"usage":{"prompt_tokens":1}}')  # type: ignore[arg-type]
    assert p.usage == Usage(1, 0, convention="openai")
    p = parse_output("aider", "", files={"output_file": 3})  # type: ignore[dict-item]
    check_invariants(p)


def test_reasoning_is_clamped_to_output() -> None:
    # Kimi K2.6 through an OpenAI-compatible API reported reasoning 78 > completion 77
    body = '{"usage":{"prompt_tokens":22,"completion_tokens":77,"completion_tokens_details":{"reasoning_tokens":78}}}'
    assert parse_output("openai-json", body).usage == Usage(22, 77, 0, 0, 77, "openai")


def test_opencode_old_versions_with_reasoning_inside_output() -> None:
    # total = input + output + cache: reasoning was already counted in output
    step = {"type": "step-finish", "cost": 0.5, "tokens": {"total": 160, "input": 100, "output": 40, "reasoning": 30,
                                                           "cache": {"read": 20, "write": 0}}}  # fmt: skip
    p = parse_output("opencode-jsonl", json.dumps({"type": "step_finish", "part": step}))
    assert p.usage == Usage(100, 40, 20, 0, 30, "anthropic")
    assert p.reported_cost_usd == Decimal("0.5")


def test_opencode_text_with_raw_line_separator() -> None:
    # JSON.stringify leaves U+2028 raw: it must not split the JSONL line
    lines = [
        json.dumps({"type": "text", "part": {"type": "text", "text": "a\u2028b"}}, ensure_ascii=False),
        json.dumps({"type": "step_finish", "part": {"type": "step-finish", "cost": 0, "tokens": {"input": 1}}}),
    ]
    p = parse_output("opencode-jsonl", "\n".join(lines))
    assert p.text == "a\u2028b"
    assert p.usage == Usage(1, 0, convention="anthropic")


def test_openrouter_byok_adds_upstream_cost() -> None:
    body = {"usage": {"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.0001, "is_byok": True,
                      "cost_details": {"upstream_inference_cost": 0.002}}}  # fmt: skip
    assert parse_output("openai-json", json.dumps(body)).reported_cost_usd == Decimal("0.0021")


def test_openrouter_error_after_start_of_response() -> None:
    body = {"choices": [{"finish_reason": "error", "error": {"code": 502, "message": "Provider returned error"},
                         "message": {"content": "partial"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2}}  # fmt: skip
    p = parse_output("openai-json", json.dumps(body))
    assert p.is_error
    assert p.error_status == 502
    assert p.usage == Usage(10, 2, convention="openai")


def test_openai_responses_api_body() -> None:
    body = {
        "model": "gpt-5",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
        "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60}, "output_tokens": 50,
                  "output_tokens_details": {"reasoning_tokens": 20}},
    }  # fmt: skip
    p = parse_output("openai-json", json.dumps(body))
    assert p.usage == Usage(100, 50, 60, 0, 20, "openai")
    assert p.text == "hi"


def test_long_error_message_is_truncated() -> None:
    body = json.dumps({"error": {"message": "x" * 10_000}})
    p = parse_output("openai-json", body)
    assert p.error_message is not None
    assert len(p.error_message) <= 2001


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Please try again in 20s.", 20.0),
        ("Please try again in 6m0s.", 360.0),
        ("Please try again in 1.386s", 1.386),
        ("try again in 120ms", 0.12),
        ("Please retry in 27.5s.", 27.5),
        ("nothing here", None),
    ],
)
def test_retry_after_from_error_text(message: str, seconds: float | None) -> None:
    p = parse_output("openai-json", json.dumps({"error": {"message": message}}))
    assert p.retry_after_s == (pytest.approx(seconds) if seconds is not None else None)


# --- property tests -------------------------------------------------------------------------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
KEYS = [
    "type", "usage", "input_tokens", "output_tokens", "cached_input_tokens", "prompt_tokens", "completion_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens", "modelUsage", "result", "is_error", "total_cost_usd",
    "api_error_status", "error", "message", "code", "stats", "models", "tokens", "prompt", "candidates", "cached",
    "thoughts", "part", "cost", "reasoning", "cache", "read", "write", "total", "choices", "content", "event",
    "properties", "item", "text", "subtype", "prompt_tokens_details", "completion_tokens_details", "data",
]  # fmt: skip
TYPES = ["result", "assistant", "system", "turn.completed", "turn.failed", "error", "item.completed", "step_finish",
         "text", "message_send", "step-finish", "agent_message", "message"]  # fmt: skip
shaped: st.SearchStrategy[object] = st.recursive(
    json_leaf | st.sampled_from(TYPES),
    lambda children: st.dictionaries(st.sampled_from(KEYS), children, max_size=6) | st.lists(children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(FORMATS)), text=st.text(max_size=400))
def test_random_text_never_raises(fmt: str, text: str) -> None:
    check_invariants(parse_output(fmt, text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(FORMATS)), values=st.lists(json_value | shaped, min_size=1, max_size=4))
def test_random_json_never_raises(fmt: str, values: list[object]) -> None:
    lines = [json.dumps(v) for v in values]
    for text in (lines[0], "\n".join(lines), json.dumps(values, indent=2)):
        check_invariants(parse_output(fmt, text))
        check_invariants(parse_output(fmt, text, files={"output_file": "\n".join(lines)}))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    name=st.sampled_from([name for _, name, _ in CASES]),
    data=st.data(),
)
def test_mutated_samples_never_raise(fmt: str, name: str, data: st.DataObject) -> None:
    text = sample(name)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    junk = data.draw(st.text(max_size=30))
    check_invariants(parse_output(fmt, text[:start] + junk + text[end:]))


# --- a CLI that rejects its command line (issue 11): what each real CLI printed ------------------
def test_usage_errors_of_the_real_clis_are_configuration_errors() -> None:
    from switchyard.failures import FailureKind, classify_exit, usage_error

    claude = "error: unknown option '--bogus-opt'\n"  # Claude Code 2.x, exit 1
    codex = (  # codex-cli, exit 2
        "WARNING: proceeding, even though we could not create PATH aliases\n"
        "error: unexpected argument '--bogus-opt' found\n\n  tip: to pass '--bogus-opt' as a value, use "
        "'-- --bogus-opt'\n\nUsage: codex [OPTIONS] [PROMPT]\n"
    )
    gemini = "Unknown arguments: bogus-opt, bogusOpt\nUsage: gemini [options] [command]\n"  # exit 1
    argparse = "usage: agent [-h] [-p]\nagent: error: the following arguments are required: -p\n"  # exit 2
    assert usage_error(1, claude) == "error: unknown option '--bogus-opt'"
    assert usage_error(2, codex) == "error: unexpected argument '--bogus-opt' found"
    assert usage_error(1, gemini) == "Unknown arguments: bogus-opt, bogusOpt"
    assert usage_error(2, argparse) == "it printed its usage text"
    for code, text in ((1, claude), (2, codex), (1, gemini), (2, argparse)):
        assert classify_exit(code, text) is FailureKind.CONFIG_ERROR
    # An agent that ran and failed is the CLI's own failure: retried as before.
    assert classify_exit(1, "Error: the model is overloaded, try again later\n") is FailureKind.CLI_ERROR
    assert classify_exit(1, "usage: see the docs\n") is FailureKind.CLI_ERROR  # usage text alone, exit 1
    assert classify_exit(0, claude) is FailureKind.CLI_ERROR
