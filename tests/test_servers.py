"""Direct tests of the fake API servers in ``tests/servers`` (no switchyard code involved)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from servers.anthropic_wire import AnthropicWireServer
from servers.anthropic_wire import ErrorReply as AnthropicError
from servers.anthropic_wire import Usage as AnthropicUsage
from servers.openai_wire import (
    ErrorReply,
    Fault,
    InBandError,
    MalformedReply,
    OpenAIWireServer,
    RecordedRequest,
    SlowReply,
    TruncatedReply,
    Usage,
    closed_port,
    refused_base_url,
)

pytestmark = pytest.mark.timeout(10)

SECRET = "sk-test-secret-value"
CHAT_BODY: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _sse_data(lines: Iterator[str]) -> list[str]:
    """The payloads of the ``data:`` lines of an SSE stream."""
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def srv() -> Iterator[OpenAIWireServer]:
    with OpenAIWireServer(reply_text="hello there") as server:
        yield server


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """A client sending the test key as a bearer token (one per module: creating clients is slow)."""
    with httpx.Client(timeout=3.0, headers={"authorization": f"Bearer {SECRET}"}) as http:
        yield http


@pytest.fixture(scope="module")
def bare() -> Iterator[httpx.Client]:
    """A client sending no credentials."""
    with httpx.Client(timeout=3.0) as http:
        yield http


@pytest.fixture(scope="module")
def anthropic_srv() -> Iterator[AnthropicWireServer]:
    with AnthropicWireServer(reply_text="hi from claude") as server:
        yield server


@pytest.fixture
def anthropic(anthropic_srv: AnthropicWireServer) -> AnthropicWireServer:
    anthropic_srv.reset()
    anthropic_srv.clear_errors()
    return anthropic_srv


# ------------------------------------------------------------------ OpenAI: success


def test_chat_completion_shape_and_usage(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.usage = Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=100, reasoning_tokens=12)
    resp = client.post(srv.chat_url, json=CHAT_BODY)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    doc = resp.json()
    assert doc["object"] == "chat.completion"
    assert doc["id"].startswith("chatcmpl-")
    assert isinstance(doc["created"], int)
    assert doc["model"] == "gpt-4o-mini"
    assert doc["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "hello there"}, "finish_reason": "stop"}
    ]
    assert doc["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 12},
    }
    assert srv.returned_usage() == srv.usage
    assert Usage.from_dict(doc["usage"]) == srv.usage


def test_openrouter_extras_only_when_configured(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.usage_by_model = {
        "claude": Usage(prompt_tokens=10, completion_tokens=2, cache_write_tokens=8, cost=0.25),
    }
    plain = client.post(srv.chat_url, json=CHAT_BODY).json()["usage"]
    assert "cost" not in plain
    assert "cache_write_tokens" not in plain["prompt_tokens_details"]
    extra = client.post(srv.chat_url, json={**CHAT_BODY, "model": "anthropic/claude-sonnet-4.5"}).json()["usage"]
    assert extra["cost"] == 0.25
    assert extra["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 8}
    client.post(srv.chat_url, json={**CHAT_BODY, "model": "anthropic/claude-sonnet-4.5"})
    total = srv.returned_usage()
    assert (total.prompt_tokens, total.cache_write_tokens, total.cost) == (30, 16, 0.5)
    assert srv.returned_usage("gpt-4o-mini") == srv.usage
    assert [m["id"] for m in client.get(srv.base_url + "/models").json()["data"]] == ["claude"]


def test_path_without_v1_and_unknown_paths(srv: OpenAIWireServer, client: httpx.Client) -> None:
    assert client.post(srv.root_url + "/chat/completions", json=CHAT_BODY).status_code == 200
    missing = client.post(srv.base_url + "/completions", json=CHAT_BODY)
    assert missing.status_code == 404
    assert set(missing.json()["error"]) >= {"message", "type", "code"}
    bad = client.post(srv.chat_url, json={"model": "x"})
    assert bad.status_code == 400
    assert [r.status for r in srv.requests()] == [200, 404, 400]
    assert [r.is_chat for r in srv.requests()] == [True, False, True]
    assert srv.returned_usage() == srv.usage


def test_streaming_reply(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.usage = Usage(prompt_tokens=7, completion_tokens=3, cost=0.001)
    with client.stream("POST", srv.chat_url, json={**CHAT_BODY, "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        data = _sse_data(resp.iter_lines())
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "hello there"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == []
    assert Usage.from_dict(chunks[-1]["usage"]) == srv.usage
    assert srv.chat_requests()[0].stream
    assert srv.returned_usage() == srv.usage


def test_stream_usage_only_when_requested(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.stream_usage = "requested"
    for options in (None, {"include_usage": True}):
        body = {**CHAT_BODY, "stream": True, **({"stream_options": options} if options else {})}
        with client.stream("POST", srv.chat_url, json=body) as resp:
            chunks = [json.loads(d) for d in _sse_data(resp.iter_lines())[:-1]]
        assert any("usage" in c for c in chunks) == (options is not None)
    assert srv.returned_usage() == srv.usage  # only the second reply carried usage


def test_responder_chooses_text_or_fault(srv: OpenAIWireServer, client: httpx.Client) -> None:
    def responder(req: RecordedRequest) -> str | Fault | None:
        if req.model == "down":
            return ErrorReply(503)
        return f"echo {req.body['messages'][-1]['content']}" if req.model == "echo" else None

    srv.responder = responder
    assert client.post(srv.chat_url, json={**CHAT_BODY, "model": "down"}).status_code == 503
    echoed = client.post(srv.chat_url, json={**CHAT_BODY, "model": "echo"}).json()
    assert echoed["choices"][0]["message"]["content"] == "echo hi"
    default = client.post(srv.chat_url, json=CHAT_BODY).json()
    assert default["choices"][0]["message"]["content"] == "hello there"


# ------------------------------------------------------------------- OpenAI: faults


@pytest.mark.parametrize("status", [400, 401, 402, 403, 429, 500, 502, 503, 529])
def test_http_error_statuses(srv: OpenAIWireServer, client: httpx.Client, status: int) -> None:
    srv.queue_faults(ErrorReply(status, message=f"boom {status}", retry_after=2 if status == 429 else None))
    resp = client.post(srv.chat_url, json=CHAT_BODY)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["message"] == f"boom {status}"
    assert isinstance(error["type"], str)
    assert error["code"] is not None
    assert resp.headers.get("retry-after") == ("2" if status == 429 else None)
    assert client.post(srv.chat_url, json=CHAT_BODY).status_code == 200  # the queue moved on
    assert srv.returned_usage() == srv.usage


def test_fault_times_permanent_and_clear(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.queue_faults(ErrorReply(500, times=2), ErrorReply(402, code=402, error_type="payment_required"))
    statuses = [client.post(srv.chat_url, json=CHAT_BODY).status_code for _ in range(4)]
    assert statuses == [500, 500, 402, 200]
    assert client.post(srv.chat_url, json=CHAT_BODY).json()["usage"]["total_tokens"] == 15
    srv.queue_faults(ErrorReply(529, times=None))
    assert [client.post(srv.chat_url, json=CHAT_BODY).status_code for _ in range(3)] == [529] * 3
    srv.clear_faults()
    assert client.post(srv.chat_url, json=CHAT_BODY).status_code == 200
    assert [type(r.faults[0]).__name__ if r.faults else None for r in srv.chat_requests()][:3] == [
        "ErrorReply",
        "ErrorReply",
        "ErrorReply",
    ]


def test_slow_reply_exceeds_client_timeout_without_blocking_others(srv: OpenAIWireServer, bare: httpx.Client) -> None:
    srv.queue_faults(SlowReply(delay=0.3))
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            bare.post(srv.chat_url, json=CHAT_BODY, timeout=0.1)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow_call)
    thread.start()
    while not srv.chat_requests():
        time.sleep(0.01)
    started = time.monotonic()
    assert bare.post(srv.chat_url, json=CHAT_BODY, timeout=2).status_code == 200  # not blocked
    assert time.monotonic() - started < 0.3
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], httpx.ReadTimeout)
    while not srv.chat_requests()[0].faults:  # set once the slow handler woke up and saw the client leave
        time.sleep(0.01)
    first = srv.chat_requests()[0]
    assert first.status is None and first.usage is None
    assert srv.returned_usage() == srv.usage  # only the fast reply counts


def test_slow_reply_within_timeout_succeeds(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.queue_faults(SlowReply(delay=0.1))
    started = time.monotonic()
    assert client.post(srv.chat_url, json=CHAT_BODY).status_code == 200
    assert time.monotonic() - started >= 0.1
    assert srv.returned_usage() == srv.usage


def test_slow_mid_stream_trips_read_timeout(srv: OpenAIWireServer, bare: httpx.Client) -> None:
    srv.queue_faults(SlowReply(delay=2, after_headers=True))
    with bare.stream("POST", srv.chat_url, json={**CHAT_BODY, "stream": True}, timeout=0.1) as resp:
        assert resp.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            list(resp.iter_lines())


def test_stop_does_not_hang_on_sleeping_handler(bare: httpx.Client) -> None:
    server = OpenAIWireServer(faults=[SlowReply(delay=30)]).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            bare.post(server.chat_url, json=CHAT_BODY, timeout=5)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while not server.chat_requests():
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], httpx.TransportError)
    assert server.chat_requests()[0].status is None


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
@pytest.mark.parametrize("stream", [False, True])
def test_truncated_body_raises(srv: OpenAIWireServer, client: httpx.Client, mode: str, stream: bool) -> None:
    srv.queue_faults(TruncatedReply(mode=mode))  # type: ignore[arg-type]
    with pytest.raises(httpx.RemoteProtocolError):
        if stream:
            with client.stream("POST", srv.chat_url, json={**CHAT_BODY, "stream": True}) as resp:
                list(resp.iter_lines())
        else:
            client.post(srv.chat_url, json=CHAT_BODY)
    assert srv.returned_usage().total_tokens == 0
    assert client.post(srv.chat_url, json=CHAT_BODY).status_code == 200  # server still healthy


def test_truncated_eof_gives_cut_json(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.queue_faults(TruncatedReply(mode="eof", keep=0.3))
    resp = client.post(srv.chat_url, json=CHAT_BODY)
    assert resp.status_code == 200
    assert resp.text.startswith('{"id": "chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    assert srv.chat_requests()[0].usage is None


def test_in_band_error_with_status_200(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.queue_faults(InBandError(message="upstream died", code=502), InBandError(partial_text="par"))
    resp = client.post(srv.chat_url, json=CHAT_BODY)
    assert resp.status_code == 200
    assert resp.json() == {"error": {"message": "upstream died", "type": "server_error", "param": None, "code": 502}}
    with client.stream("POST", srv.chat_url, json={**CHAT_BODY, "stream": True}) as streamed:
        assert streamed.status_code == 200
        data = _sse_data(streamed.iter_lines())
    assert "[DONE]" not in data
    chunks = [json.loads(d) for d in data]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "par"
    assert chunks[-1]["error"]["code"] == 502
    assert chunks[-1]["choices"][0]["finish_reason"] == "error"
    assert [r.status for r in srv.chat_requests()] == [200, 200]
    assert srv.returned_usage().total_tokens == 0


def test_malformed_json(srv: OpenAIWireServer, client: httpx.Client) -> None:
    srv.queue_faults(MalformedReply(), MalformedReply(body=b"{not json"))
    resp = client.post(srv.chat_url, json=CHAT_BODY)
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    with client.stream("POST", srv.chat_url, json={**CHAT_BODY, "stream": True}) as streamed:
        data = _sse_data(streamed.iter_lines())
    assert "{not json" in data and data[-1] == "[DONE]"
    assert srv.returned_usage().total_tokens == 0


def test_connection_refused(bare: httpx.Client) -> None:
    with pytest.raises(httpx.ConnectError):
        bare.post(f"http://127.0.0.1:{closed_port()}/v1/chat/completions", json=CHAT_BODY, timeout=2)
    with pytest.raises(httpx.ConnectError):
        bare.get(refused_base_url() + "/models", timeout=2)


# ---------------------------------------------------------------- OpenAI: recording


def test_records_requests_and_redacts_credentials(
    srv: OpenAIWireServer, client: httpx.Client, bare: httpx.Client
) -> None:
    srv.api_key = SECRET
    client.post(srv.chat_url, json=CHAT_BODY, headers={"x-title": "switchyard"})
    bare.post(srv.chat_url, json=CHAT_BODY, headers={"x-api-key": SECRET}, timeout=2)
    wrong = bare.post(srv.chat_url, json=CHAT_BODY, headers={"authorization": "Bearer nope"}, timeout=2)
    anonymous = bare.post(srv.chat_url, json=CHAT_BODY, timeout=2)
    assert (wrong.status_code, anonymous.status_code) == (401, 401)
    reqs = srv.requests()
    assert [r.seq for r in reqs] == [0, 1, 2, 3]
    first = reqs[0]
    assert (first.method, first.path, first.body) == ("POST", "/v1/chat/completions", CHAT_BODY)
    assert first.headers["x-title"] == "switchyard"
    assert first.headers["content-type"] == "application/json"
    assert (first.auth_header, first.auth_scheme, first.key_matches) == ("authorization", "Bearer", True)
    assert (reqs[1].auth_header, reqs[1].auth_scheme, reqs[1].key_matches) == ("x-api-key", None, True)
    assert (reqs[2].has_auth, reqs[2].key_matches, reqs[2].status) == (True, False, 401)
    assert (reqs[3].has_auth, reqs[3].auth_header, reqs[3].status) == (False, None, 401)
    for req in reqs:
        assert "authorization" not in req.headers and "x-api-key" not in req.headers
        assert SECRET not in repr(req) and "nope" not in repr(req)
    assert srv.returned_usage() == srv.usage + srv.usage
    srv.reset()
    assert srv.requests() == []


# ------------------------------------------------------------------ Anthropic server


def test_anthropic_message_usage_and_recording(anthropic: AnthropicWireServer, bare: httpx.Client) -> None:
    anthropic.usage = AnthropicUsage(input_tokens=11, output_tokens=7, cache_read_input_tokens=3)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    resp = bare.post(
        anthropic.base_url + "/v1/messages",
        json=body,
        headers={"x-api-key": SECRET, "authorization": f"Bearer {SECRET}"},
        timeout=2,
    )
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["content"] == [{"type": "text", "text": "hi from claude"}]
    assert doc["usage"]["input_tokens"] == 11 and doc["usage"]["cache_read_input_tokens"] == 3
    (req,) = anthropic.message_requests()
    assert req.body == body and req.model == "claude-sonnet-4-5"
    assert "x-api-key" not in req.headers and "authorization" not in req.headers
    assert SECRET not in repr(req)
    assert anthropic.returned_usage() == anthropic.usage


def test_anthropic_stream(anthropic: AnthropicWireServer, bare: httpx.Client) -> None:
    anthropic.usage = AnthropicUsage(input_tokens=4, output_tokens=9)
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [], "stream": True}
    with bare.stream("POST", anthropic.base_url + "/v1/messages", json=body, timeout=2) as resp:
        events = [json.loads(d) for d in _sse_data(resp.iter_lines())]
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == "hi from claude"
    (delta,) = [e for e in events if e["type"] == "message_delta"]
    assert delta["usage"]["output_tokens"] == 9
    assert anthropic.returned_usage() == anthropic.usage


def test_anthropic_errors_then_success(anthropic: AnthropicWireServer, bare: httpx.Client) -> None:
    anthropic.queue_errors(AnthropicError(429, retry_after=1), AnthropicError(529))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []}
    first = bare.post(anthropic.base_url + "/v1/messages", json=body, timeout=2)
    assert first.status_code == 429 and first.headers["retry-after"] == "1"
    assert first.json()["error"]["type"] == "rate_limit_error"
    second = bare.post(anthropic.base_url + "/v1/messages", json=body, timeout=2)
    assert second.status_code == 529 and second.json()["error"]["type"] == "overloaded_error"
    assert bare.post(anthropic.base_url + "/v1/messages", json=body, timeout=2).status_code == 200
    assert [r.status for r in anthropic.message_requests()] == [429, 529, 200]
    assert anthropic.returned_usage() == anthropic.usage
