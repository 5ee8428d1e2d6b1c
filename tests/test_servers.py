"""Direct tests of the fake API servers in ``tests/servers`` (no switchyard code involved)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from servers import gemini_wire as gw
from servers import responses_wire as rw
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


# ------------------------------------------------------------ OpenAI Responses (Codex)

RESPONSES_BODY: dict[str, Any] = {
    "model": "gpt-5.1-codex",
    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
    "tools": [{"type": "function", "name": "exec_command", "parameters": {}}],
    "stream": True,
}


def _sse_events(resp: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of each event of an SSE reply."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in resp.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: ") :])))
            name = ""
    return events


@pytest.fixture(scope="module")
def responses_srv() -> Iterator[rw.ResponsesWireServer]:
    with rw.ResponsesWireServer(reply_text="all done") as server:
        yield server


@pytest.fixture
def responses(responses_srv: rw.ResponsesWireServer) -> rw.ResponsesWireServer:
    """The module's server, reset: no recorded requests, errors, script or key."""
    responses_srv.reset()
    responses_srv.clear_errors()
    responses_srv.script = []
    responses_srv.api_key = None
    responses_srv.models = None
    responses_srv.served_model = {}
    responses_srv.usage = rw.Usage(input_tokens=10, output_tokens=5)
    return responses_srv


def test_responses_stream_events_and_usage(responses: rw.ResponsesWireServer, bare: httpx.Client) -> None:
    responses.usage = rw.Usage(input_tokens=900, output_tokens=70, cached_tokens=600, reasoning_tokens=20)
    with bare.stream("POST", responses.base_url + "/responses", json=RESPONSES_BODY, timeout=2) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["openai-model"] == "gpt-5.1-codex"
        events = _sse_events(resp)
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    assert text == "all done"
    [done] = [d["item"] for n, d in events if n == "response.output_item.done"]
    assert done["type"] == "message" and done["content"][0]["text"] == "all done"
    completed = events[-1][1]["response"]
    assert completed["status"] == "completed" and completed["model"] == "gpt-5.1-codex"
    assert completed["usage"] == {
        "input_tokens": 900,
        "input_tokens_details": {"cached_tokens": 600},
        "output_tokens": 70,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 970,
    }
    [req] = responses.model_requests()
    assert (req.status, req.model, req.usage) == (200, "gpt-5.1-codex", responses.usage)
    assert responses.returned_usage() == responses.usage


def test_responses_script_function_call_then_message(responses: rw.ResponsesWireServer, bare: httpx.Client) -> None:
    responses.script = [[rw.reasoning("thinking"), rw.ShellCall("touch x", workdir="/w")], [rw.message("made x")]]
    with bare.stream("POST", responses.base_url + "/responses", json=RESPONSES_BODY, timeout=2) as resp:
        events = _sse_events(resp)
    items = [d["item"] for n, d in events if n == "response.output_item.done"]
    assert [i["type"] for i in items] == ["reasoning", "function_call"]
    call = items[1]
    assert call["name"] == "exec_command"  # the shell tool this request offered
    assert json.loads(call["arguments"]) == {"cmd": "touch x", "workdir": "/w"}
    args = "".join(d["delta"] for n, d in events if n == "response.function_call_arguments.delta")
    assert args == call["arguments"]
    follow_up = {
        **RESPONSES_BODY,
        "input": [
            *RESPONSES_BODY["input"],
            call,
            {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"},
        ],
    }
    with bare.stream("POST", responses.base_url + "/responses", json=follow_up, timeout=2) as resp:
        events = _sse_events(resp)
    assert [d["item"]["content"][0]["text"] for n, d in events if n == "response.output_item.done"] == ["made x"]
    assert rw.tool_outputs(responses.model_requests()[1].body) == ["ok"]
    # The script is used up: the default reply again.
    plain = bare.post(responses.base_url + "/responses", json={**RESPONSES_BODY, "stream": False}, timeout=2).json()
    assert plain["output"][0]["content"][0]["text"] == "all done"
    assert responses.returned_usage() == rw.Usage(30, 15)


@pytest.mark.parametrize(
    ("tools", "name", "args"),
    [
        (["shell_command"], "shell_command", {"command": "ls"}),
        (["shell"], "shell", {"command": ["bash", "-lc", "ls"]}),
    ],
)
def test_shell_call_fits_the_offered_tool(tools: list[str], name: str, args: dict[str, Any]) -> None:
    body = {"tools": [{"type": "function", "name": t} for t in tools]}
    call = rw.shell_call(body, "ls")
    assert (call["name"], json.loads(call["arguments"])) == (name, args)
    with pytest.raises(LookupError, match="no shell tool"):
        rw.shell_call({"tools": []}, "ls")


def test_responses_errors_key_and_unknown_model(responses: rw.ResponsesWireServer, bare: httpx.Client) -> None:
    url = responses.base_url + "/responses"
    responses.queue_errors(rw.ErrorReply(429, "slow down", retry_after=7), rw.ErrorReply(500, times=2))
    first = bare.post(url, json=RESPONSES_BODY, timeout=2)
    assert first.status_code == 429 and first.headers["retry-after"] == "7"
    assert first.json()["error"] == {
        "message": "slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert [bare.post(url, json=RESPONSES_BODY, timeout=2).status_code for _ in range(3)] == [500, 500, 200]
    responses.api_key = SECRET
    denied = bare.post(url, json=RESPONSES_BODY, timeout=2)
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    allowed = bare.post(url, json=RESPONSES_BODY, headers={"authorization": f"Bearer {SECRET}"}, timeout=2)
    assert allowed.status_code == 200
    responses.models = ["gpt-other"]
    unknown = bare.post(url, json=RESPONSES_BODY, headers={"authorization": f"Bearer {SECRET}"}, timeout=2)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert "`gpt-5.1-codex` does not exist" in unknown.json()["error"]["message"]
    listed = bare.get(responses.base_url + "/models", timeout=2).json()
    assert [m["id"] for m in listed["data"]] == ["gpt-other"] and listed["models"] == []
    reqs = responses.model_requests()
    assert [r.status for r in reqs] == [429, 500, 500, 200, 401, 200, 404]
    assert [r.key_matches for r in reqs][-3:] == [False, True, True]
    assert all("authorization" not in r.headers and SECRET.encode() not in r.raw_body for r in responses.requests())


def test_responses_served_model(responses: rw.ResponsesWireServer, bare: httpx.Client) -> None:
    responses.served_model = {"gpt-5.1-codex": "gpt-5.1-codex-2026-01-01"}
    with bare.stream("POST", responses.base_url + "/responses", json=RESPONSES_BODY, timeout=2) as resp:
        assert resp.headers["openai-model"] == "gpt-5.1-codex-2026-01-01"
        events = _sse_events(resp)
    assert events[-1][1]["response"]["model"] == "gpt-5.1-codex-2026-01-01"
    assert responses.model_requests()[0].model == "gpt-5.1-codex"  # what was asked for


# --------------------------------------------------------------------- Gemini API

GEMINI_BODY: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.fixture(scope="module")
def gemini_srv() -> Iterator[gw.GeminiWireServer]:
    with gw.GeminiWireServer(reply_text="hello gemini") as server:
        yield server


@pytest.fixture
def gemini(gemini_srv: gw.GeminiWireServer) -> gw.GeminiWireServer:
    """The module's server, reset: no recorded requests, errors, script or key."""
    gemini_srv.reset()
    gemini_srv.clear_errors()
    gemini_srv.script = []
    gemini_srv.api_key = None
    gemini_srv.models = None
    gemini_srv.served_model = {}
    gemini_srv.usage = gw.Usage(prompt_tokens=10, candidates_tokens=5)
    return gemini_srv


def _gemini_url(srv: gw.GeminiWireServer, model: str = "gemini-2.5-pro", method: str = "streamGenerateContent") -> str:
    return f"{srv.base_url}/v1beta/models/{model}:{method}" + ("?alt=sse" if method.startswith("stream") else "")


def test_gemini_stream_text_and_usage(gemini: gw.GeminiWireServer, bare: httpx.Client) -> None:
    gemini.usage = gw.Usage(
        prompt_tokens=800, candidates_tokens=60, cached_tokens=500, thoughts_tokens=40, tool_use_prompt_tokens=9
    )
    gemini.served_model = {"gemini-2.5-pro": "gemini-2.5-pro-002"}
    with bare.stream("POST", _gemini_url(gemini), json=GEMINI_BODY, timeout=2) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"] == "text/event-stream"
        chunks = [json.loads(d) for d in _sse_data(resp.iter_lines())]
    assert len(chunks) == 2  # the text comes in two pieces
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "hello gemini"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, "STOP"]
    assert "usageMetadata" not in chunks[0]
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": 800,
        "candidatesTokenCount": 60,
        "totalTokenCount": 909,
        "cachedContentTokenCount": 500,
        "thoughtsTokenCount": 40,
        "toolUsePromptTokenCount": 9,
    }
    assert {c["modelVersion"] for c in chunks} == {"gemini-2.5-pro-002"}
    [req] = gemini.model_requests()
    assert (req.model, req.query, req.usage) == ("gemini-2.5-pro", "alt=sse", gemini.usage)
    assert gemini.returned_usage() == gemini.usage


def test_gemini_function_call_script_and_side_requests(gemini: gw.GeminiWireServer, bare: httpx.Client) -> None:
    gemini.script = [[gw.function_call("write_file", {"file_path": "a.txt", "content": "x"})], [gw.text("wrote it")]]
    side = {**GEMINI_BODY, "generationConfig": {"responseMimeType": "application/json", "responseSchema": {}}}
    side_reply = bare.post(_gemini_url(gemini, "gemini-2.5-flash", "generateContent"), json=side, timeout=2).json()
    assert json.loads(side_reply["candidates"][0]["content"]["parts"][0]["text"])["next_speaker"] == "user"
    with bare.stream("POST", _gemini_url(gemini), json=GEMINI_BODY, timeout=2) as resp:
        [chunk] = [json.loads(d) for d in _sse_data(resp.iter_lines())]
    assert chunk["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "write_file", "args": {"file_path": "a.txt", "content": "x"}}}
    ]
    answered = {
        "contents": [
            *GEMINI_BODY["contents"],
            chunk["candidates"][0]["content"],
            {"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {"output": "ok"}}}]},
        ]
    }
    second = bare.post(_gemini_url(gemini, method="generateContent"), json=answered, timeout=2).json()
    assert second["candidates"][0]["content"]["parts"] == [{"text": "wrote it"}]
    assert gw.function_responses(gemini.model_requests()[-1].body) == [
        {"name": "write_file", "response": {"output": "ok"}}
    ]
    assert len(gemini.agent_requests()) == 2 and len(gemini.model_requests()) == 3
    assert gemini.returned_usage() == gemini.usage + gemini.usage  # side calls report zero usage
    count = bare.post(_gemini_url(gemini, method="countTokens"), json=GEMINI_BODY, timeout=2)
    assert count.status_code == 200 and count.json()["totalTokens"] > 0


def test_gemini_errors_key_and_unknown_model(gemini: gw.GeminiWireServer, bare: httpx.Client) -> None:
    url = _gemini_url(gemini, method="generateContent")
    gemini.queue_errors(gw.ErrorReply(429, "Resource has been exhausted", retry_after=7), gw.ErrorReply(500))
    limited = bare.post(url, json=GEMINI_BODY, timeout=2)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    error = limited.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
    assert bare.post(url, json=GEMINI_BODY, timeout=2).json()["error"]["status"] == "INTERNAL"
    gemini.api_key = SECRET
    bad = bare.post(url, json=GEMINI_BODY, headers={"x-goog-api-key": "wrong-key-value"}, timeout=2)
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert bare.post(url, json=GEMINI_BODY, headers={"x-goog-api-key": SECRET}, timeout=2).status_code == 200
    assert bare.post(url + f"?key={SECRET}", json=GEMINI_BODY, timeout=2).status_code == 200
    gemini.models = ["gemini-other"]
    missing = bare.post(url, json=GEMINI_BODY, headers={"x-goog-api-key": SECRET}, timeout=2)
    assert missing.status_code == 404
    assert "models/gemini-2.5-pro is not found for API version v1beta" in missing.json()["error"]["message"]
    assert bare.get(gemini.base_url + "/v1beta/models", timeout=2).json()["models"][0]["name"] == "models/gemini-other"
    reqs = gemini.model_requests()
    assert [r.status for r in reqs] == [429, 500, 400, 200, 200, 404]
    assert [r.key_matches for r in reqs][2:] == [False, True, True, True]
    assert all(SECRET not in r.query and "x-goog-api-key" not in r.headers for r in gemini.requests())
