"""OpenAI-compatible and Anthropic providers against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from servers import anthropic_wire as aw
from servers.openai_wire import (
    ErrorReply,
    InBandError,
    MalformedReply,
    OpenAIWireServer,
    SlowReply,
    TruncatedReply,
    Usage,
    refused_base_url,
)
from switchyard.catalog import Usage as SyUsage
from switchyard.config import LoadedConfig, loads_config
from switchyard.health import Health
from switchyard.ledger import Ledger
from switchyard.providers.http import parse_retry_after
from switchyard.runner import Runner
from switchyard.task import Task

KEY = "sk-or-v1-TESTKEY-abcdefghijklmnop"

CONFIG = """
[providers.router]
kind = "openai"
base_url = "{openai_url}"
api_key_env = "OR_KEY"
headers = {{ "HTTP-Referer" = "https://example.test" }}
timeout_s = {timeout}
max_retries = 2
retry_after_cap_s = 5

[providers.claude]
kind = "anthropic"
base_url = "{anthropic_url}"
api_key_env = "ANT_KEY"
timeout_s = {timeout}
max_retries = 1

[[models]]
name = "deepseek-chat"
provider = "router"
provider_model = "deepseek/deepseek-chat"
cost_per_million_input = 0.27
cost_per_million_output = 1.10
cost_per_million_cached_input = 0.07

[[models]]
name = "sonnet"
provider = "claude"
provider_model = "claude-sonnet-4-5"
cost_per_million_input = 3.0
cost_per_million_output = 15.0
cost_per_million_cached_input = 0.3
cost_per_million_cache_write = 3.75

[routing]
default_model = "deepseek-chat"

[[routing.rules]]
condition = "true"
model = "deepseek-chat"
fallbacks = ["sonnet"]

[runner]
backoff_base_s = 0.01
backoff_max_s = 0.02

[health]
consecutive_failures = 50
"""


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, s: float) -> None:
        self.calls.append(s)


def make_runner(
    tmp_path: Path, openai_url: str, anthropic_url: str = "http://127.0.0.1:9/v1", timeout: float = 5
) -> tuple[Runner, Ledger, Sleeps]:
    loaded = loads_config(CONFIG.format(openai_url=openai_url, anthropic_url=anthropic_url, timeout=timeout))
    ledger = Ledger.open(tmp_path / "ledger.db")
    env = {"OR_KEY": KEY, "ANT_KEY": "sk-ant-TESTKEY-0123456789"}
    from switchyard.providers.base import ProviderContext
    from switchyard.redact import Redactor

    ctx = ProviderContext(redactor=Redactor.from_env(["OR_KEY", "ANT_KEY"], env), env=env)
    sleeps = Sleeps()
    runner = Runner(
        loaded, ledger, health=Health(loaded, ledger, env=env), context=ctx, sleep=sleeps, runs_dir=tmp_path / "runs"
    )
    return runner, ledger, sleeps


def test_openai_success_usage_cost_and_request(tmp_path: Path) -> None:
    usage = Usage(prompt_tokens=10_000, completion_tokens=300, cached_tokens=8000, reasoning_tokens=100, cost=0.00123)
    with OpenAIWireServer(usage=usage, reply_text="patched") as srv:
        runner, ledger, _ = make_runner(tmp_path, srv.base_url)
        result = runner.run(Task("T-1", title="fix"), prompt="fix the bug", run_id="r")
        [req] = srv.chat_requests()
    assert result.ok and result.final and result.final.text == "patched"
    assert req.model == "deepseek/deepseek-chat"  # the provider's id, not the catalog name
    assert req.body["messages"] == [{"role": "user", "content": "fix the bug"}]
    assert (req.auth_scheme == "Bearer" and req.key_matches is None) or req.has_auth
    assert req.headers.get("http-referer") == "https://example.test"
    [row] = ledger.attempts()
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens, row.reasoning_tokens) == (2000, 8000, 300, 100)
    assert row.cost_usd == runner.loaded.catalog.cost("deepseek-chat", SyUsage(10_000, 300, 8000, 0, 100, "openai"))
    assert row.cost_usd == Decimal("0.00143")
    assert row.reported_cost_usd == Decimal("0.00123")  # OpenRouter's own figure, kept beside ours


def test_429_retry_after_is_honoured(tmp_path: Path) -> None:
    with OpenAIWireServer(faults=[ErrorReply(429, retry_after=3, code="rate_limit_exceeded")]) as srv:
        runner, ledger, sleeps = make_runner(tmp_path, srv.base_url)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    assert sleeps.calls == [3.0]
    assert [r.error_class for r in ledger.attempts()] == ["rate_limited", None]
    assert ledger.attempts()[0].http_status == 429


def test_retry_after_is_capped(tmp_path: Path) -> None:
    with OpenAIWireServer(faults=[ErrorReply(429, retry_after=3600)]) as srv:
        runner, _, sleeps = make_runner(tmp_path, srv.base_url)
        runner.run(Task("T-1"), prompt="p", run_id="r")
    assert sleeps.calls == [5.0]


@pytest.mark.parametrize(
    ("status", "kind"), [(500, "server_error"), (529, "overloaded"), (502, "overloaded"), (503, "overloaded")]
)
def test_5xx_retried_then_failover(tmp_path: Path, status: int, kind: str) -> None:
    with (
        OpenAIWireServer(faults=[ErrorReply(status, times=None)]) as srv,
        aw.AnthropicWireServer(usage=aw.Usage(input_tokens=100, output_tokens=20)) as ant,
    ):
        runner, ledger, sleeps = make_runner(tmp_path, srv.base_url, ant.base_url)
        result = runner.run(Task("T-1"), prompt="p", run_id="r")
        assert len(srv.chat_requests()) == 3  # first try + max_retries 2
        assert [r.model for r in ant.message_requests()] == ["claude-sonnet-4-5"]
    assert result.ok and result.final and result.final.record.model == "sonnet"
    assert [r.error_class for r in ledger.attempts()] == [kind, kind, kind, None]
    assert len(sleeps.calls) == 2


def test_in_band_error_in_a_200_is_a_failure(tmp_path: Path) -> None:
    with OpenAIWireServer(faults=[InBandError("provider crashed mid-answer", code=502)]) as srv:
        runner, ledger, _ = make_runner(tmp_path, srv.base_url)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    first = ledger.attempts()[0]
    assert first.status == "failed" and "crashed mid-answer" in (first.error_message or "")


def test_slow_response_times_out(tmp_path: Path) -> None:
    with OpenAIWireServer(faults=[SlowReply(3.0)]) as srv:
        runner, ledger, _ = make_runner(tmp_path, srv.base_url, timeout=0.5)
        t0 = time.monotonic()
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
        assert time.monotonic() - t0 < 3.0
    assert [r.status for r in ledger.attempts()] == ["timeout", "ok"]


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_truncated_body(tmp_path: Path, mode: str) -> None:
    with OpenAIWireServer(faults=[TruncatedReply(mode=mode)]) as srv:  # type: ignore[arg-type]
        runner, ledger, _ = make_runner(tmp_path, srv.base_url)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    assert ledger.attempts()[0].error_class == "truncated"


def test_cut_json_and_malformed_json(tmp_path: Path) -> None:
    with OpenAIWireServer(faults=[TruncatedReply(mode="eof"), MalformedReply()]) as srv:
        runner, ledger, _ = make_runner(tmp_path, srv.base_url)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    rows = ledger.attempts()
    assert [r.error_class for r in rows] == ["malformed", "malformed", None]
    assert rows[0].usage_problem is not None and rows[0].usage_problem.startswith("unparseable usage")


def test_connection_refused_fails_over(tmp_path: Path) -> None:
    with aw.AnthropicWireServer() as ant:
        runner, ledger, _ = make_runner(tmp_path, refused_base_url(), ant.base_url)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    assert [r.error_class for r in ledger.attempts()] == ["connection", "connection", "connection", None]


def test_402_fails_over_at_once(tmp_path: Path) -> None:
    with (
        OpenAIWireServer(faults=[ErrorReply(402, message="Insufficient credits", times=None)]) as srv,
        aw.AnthropicWireServer() as ant,
    ):
        runner, ledger, sleeps = make_runner(tmp_path, srv.base_url, ant.base_url)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    assert [r.error_class for r in ledger.attempts()] == ["out_of_credits", None]
    assert sleeps.calls == []


def test_insufficient_quota_429_is_out_of_credits(tmp_path: Path) -> None:
    with (
        OpenAIWireServer(faults=[ErrorReply(429, code="insufficient_quota", times=None)]) as srv,
        aw.AnthropicWireServer() as ant,
    ):
        runner, ledger, _ = make_runner(tmp_path, srv.base_url, ant.base_url)
        runner.run(Task("T-1"), prompt="p", run_id="r")
    assert ledger.attempts()[0].error_class == "out_of_credits"


def test_400_is_fatal(tmp_path: Path) -> None:
    with OpenAIWireServer(faults=[ErrorReply(400, message="context too long", times=None)]) as srv:
        runner, ledger, _ = make_runner(tmp_path, srv.base_url)
        result = runner.run(Task("T-1"), prompt="p", run_id="r")
    assert not result.ok
    assert [r.error_class for r in ledger.attempts()] == ["bad_request"]


def test_401_disables_and_never_leaks_the_key(tmp_path: Path) -> None:
    with OpenAIWireServer(api_key="a-different-key") as srv, aw.AnthropicWireServer() as ant:
        runner, ledger, _ = make_runner(tmp_path, srv.base_url, ant.base_url)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    assert runner.health.status()["router"] == "disabled"
    assert KEY not in (ledger.attempts()[0].error_message or "")


def test_anthropic_usage_with_cache_tokens(tmp_path: Path) -> None:
    served = aw.Usage(
        input_tokens=1000, output_tokens=500, cache_creation_input_tokens=2000, cache_read_input_tokens=4000
    )
    with aw.AnthropicWireServer(usage=served, reply_text="hi") as ant:
        loaded_text = CONFIG.replace('model = "deepseek-chat"\nfallbacks = ["sonnet"]', 'model = "sonnet"')
        loaded = loads_config(loaded_text.format(openai_url="http://x", anthropic_url=ant.base_url, timeout=5))
        ledger = Ledger.open(tmp_path / "l.db")
        env = {"ANT_KEY": "sk-ant-TESTKEY-0123456789"}
        from switchyard.providers.base import ProviderContext

        runner = Runner(
            loaded, ledger, health=Health(loaded, ledger, env=env), context=ProviderContext(env=env), runs_dir=tmp_path
        )
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
        [req] = ant.message_requests()
        assert req.headers.get("anthropic-version") == "2023-06-01"
    [row] = ledger.attempts()
    assert (row.input_tokens, row.cache_write_tokens, row.cache_read_tokens, row.output_tokens) == (
        1000,
        2000,
        4000,
        500,
    )
    assert row.cost_usd == Decimal("0.0192")


def test_anthropic_529_and_429(tmp_path: Path) -> None:
    errors = [aw.ErrorReply(529), aw.ErrorReply(429, retry_after=2)]
    with aw.AnthropicWireServer(errors=errors) as ant:
        text = CONFIG.replace('model = "deepseek-chat"\nfallbacks = ["sonnet"]', 'model = "sonnet"').replace(
            "max_retries = 1", "max_retries = 3"
        )
        loaded = loads_config(text.format(openai_url="http://x", anthropic_url=ant.base_url, timeout=5))
        ledger = Ledger.open(tmp_path / "l.db")
        from switchyard.providers.base import ProviderContext

        sleeps = Sleeps()
        env = {"ANT_KEY": "k" * 20}
        runner = Runner(
            loaded,
            ledger,
            health=Health(loaded, ledger, env=env),
            context=ProviderContext(env=env),
            sleep=sleeps,
            runs_dir=tmp_path,
        )
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    assert [r.error_class for r in ledger.attempts()] == ["overloaded", "rate_limited", None]
    assert sleeps.calls[1] == 2.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- a 200 whose usage cannot be read is charged its worst case, never $0 (issue 11) -------------
@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_200_without_usage_is_unpriced_and_charged_its_hold(tmp_path: Path, wire: str) -> None:
    # seen: an HTTP 200 with no `usage` was recorded ok at $0 and the budget charged nothing
    with OpenAIWireServer() as srv, aw.AnthropicWireServer(reply_text="hi") as ant:
        srv.omit_usage = ant.omit_usage = True
        text = CONFIG + "\n[budgets]\ndaily_usd = 10\n"
        if wire == "anthropic":
            text = text.replace('model = "deepseek-chat"\nfallbacks = ["sonnet"]', 'model = "sonnet"')
        loaded = loads_config(text.format(openai_url=srv.base_url, anthropic_url=ant.base_url, timeout=5))
        ledger = Ledger.open(tmp_path / "l.db")
        env = {"OR_KEY": KEY, "ANT_KEY": "sk-ant-TESTKEY-0123456789"}
        from switchyard.providers.base import ProviderContext

        runner = Runner(
            loaded, ledger, health=Health(loaded, ledger, env=env), context=ProviderContext(env=env), runs_dir=tmp_path
        )
        result = runner.run(Task("T-1"), prompt="p", run_id="r")
        assert len(srv.chat_requests()) + len(ant.message_requests()) == 1
    assert result.ok  # the work came back: the call succeeded, its price is what is unknown
    [row] = ledger.attempts()
    assert row.status == "ok" and row.cost_basis == "unknown"
    assert row.reported_model == {"openai": "deepseek/deepseek-chat", "anthropic": "claude-sonnet-4-5"}[wire]
    assert row.usage_problem is not None and "charged its worst case" in row.usage_problem
    [(state, amount, actual)] = ledger.db.query("SELECT state, amount_pico, actual_pico FROM budget_holds")
    assert state == "settled" and actual == amount == row.cost_pico > 0  # the budget is charged the hold
    spent = ledger.db.one("SELECT spent_pico FROM budget_counters")[0]  # type: ignore[index]
    assert spent == row.cost_pico


def keyed_runner(loaded: LoadedConfig, tmp_path: Path) -> tuple[Runner, Ledger]:
    """A runner with both providers' keys, no sleeping between retries, and its ledger."""
    from switchyard.providers.base import ProviderContext

    ledger = Ledger.open(tmp_path / "l.db")
    env = {"OR_KEY": KEY, "ANT_KEY": "sk-ant-TESTKEY-0123456789"}
    runner = Runner(
        loaded,
        ledger,
        health=Health(loaded, ledger, env=env),
        context=ProviderContext(env=env),
        sleep=lambda s: None,
        runs_dir=tmp_path,
    )
    return runner, ledger


def test_a_failure_is_unpriced_unless_the_provider_refused_it_with_its_status(tmp_path: Path) -> None:
    # An error in a 200 body or an unreadable 200 came after the model worked: charged its worst case.
    # A 529 or 429 status, or a request that never got through, spent nothing: $0, the hold released.
    faults = [InBandError("crashed mid-answer", code=502), ErrorReply(529), ErrorReply(429), MalformedReply()]
    with OpenAIWireServer(faults=faults) as srv, aw.AnthropicWireServer() as ant:
        text = CONFIG.replace("max_retries = 2", "max_retries = 3") + "\n[budgets]\ndaily_usd = 10\n"
        loaded = loads_config(text.format(openai_url=srv.base_url, anthropic_url=ant.base_url, timeout=5))
        runner, ledger = keyed_runner(loaded, tmp_path)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    rows = ledger.attempts()
    got = [(r.error_class, r.cost_basis, r.cost_pico > 0) for r in rows]
    assert got == [
        ("overloaded", "unknown", True),  # a 502 in a 200 body: the answer had started
        ("overloaded", "catalog", False),
        ("rate_limited", "catalog", False),
        ("malformed", "unknown", True),
        (None, "catalog", True),
    ]
    states = [s for (s,) in ledger.db.query("SELECT state FROM budget_holds ORDER BY created_ms, hold_id")]
    assert sorted(states) == sorted(["settled", "released", "released", "settled", "settled"])


def test_a_refused_connection_is_0(tmp_path: Path) -> None:
    with aw.AnthropicWireServer() as ant:
        text = CONFIG + "\n[budgets]\ndaily_usd = 10\n"
        loaded = loads_config(text.format(openai_url=refused_base_url(), anthropic_url=ant.base_url, timeout=5))
        runner, ledger = keyed_runner(loaded, tmp_path)
        assert runner.run(Task("T-1"), prompt="p", run_id="r").ok
    rows = ledger.attempts()
    assert [(r.error_class, r.cost_basis, r.cost_pico) for r in rows[:-1]] == [("connection", "catalog", 0)] * 3
