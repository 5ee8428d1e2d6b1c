"""A local, stdlib-only fake of the Anthropic Messages API wire protocol.

The server lets integration tests run real agent CLIs (Claude Code in
particular) fully offline: point ``ANTHROPIC_BASE_URL`` at
:attr:`AnthropicWireServer.base_url` and every API request lands here.

What it does:

* ``POST /v1/messages`` answers with a text reply (or content blocks chosen by
  a ``responder`` callback), either as one JSON document or, when the request
  carries ``"stream": true``, as the Server-Sent Events sequence the real API
  emits: ``message_start``, ``content_block_start``, ``content_block_delta``,
  ``content_block_stop``, ``message_delta`` (with the final usage),
  ``message_stop``.
* The token usage it reports is configurable, globally and per model, so a
  test can assert that a client recorded exactly what the server returned.
* ``POST /v1/messages/count_tokens`` answers with a deterministic estimate,
  ``GET /v1/models`` with an empty list, any other ``GET``/``HEAD`` (such as
  Claude Code's ``HEAD /api/hello`` reachability probe) with ``200 {}``, and
  any other ``POST`` with a 404 in the API's error shape.
* Error replies (429 with ``retry-after``, 500, 529, 401, ...) can be queued
  for the next N message requests, or made permanent.
* Every request is recorded (method, path, headers minus credentials, parsed
  JSON body, the status and usage it was answered with) for assertions.

Example::

    usage = Usage(input_tokens=11, output_tokens=7)
    with AnthropicWireServer(usage=usage, reply_text="done") as srv:
        env = {"ANTHROPIC_BASE_URL": srv.base_url, "ANTHROPIC_API_KEY": "dummy"}
        ...  # run the client
        assert [r.model for r in srv.message_requests()] == ["claude-sonnet-4-5"]
        assert srv.returned_usage() == usage
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from servers._wire import ReplyQueue, RequestLog, ThreadedServer, TokenCounts, halves, new_id, usage_for_model

__all__ = [
    "REDACTED_HEADERS",
    "ZERO_USAGE",
    "AnthropicWireServer",
    "ContentBlock",
    "ErrorReply",
    "RecordedRequest",
    "Responder",
    "Usage",
    "text_block",
    "tool_use_block",
]

#: Header names (lower case) never stored in :attr:`RecordedRequest.headers`.
REDACTED_HEADERS: frozenset[str] = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})

#: ``error.type`` the real API uses for each HTTP status.
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

#: One content block of an assistant message, e.g. ``{"type": "text", ...}``.
ContentBlock = Mapping[str, Any]


@dataclass(frozen=True)
class Usage(TokenCounts):
    """Token counts reported in a Messages API ``usage`` object."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the usage as the JSON object the API sends."""
        return asdict(self)


#: Zero tokens; e.g. for side requests whose usage a test wants to ignore.
ZERO_USAGE = Usage()


@dataclass(frozen=True)
class ErrorReply:
    """An error the server answers ``POST /v1/messages`` with.

    Attributes:
        status: HTTP status, e.g. 429, 500, 529, 401.
        message: ``error.message`` of the JSON error body.
        error_type: ``error.type``; defaults to the API's type for ``status``.
        retry_after: If set, sent as the ``retry-after`` header (seconds).
        should_retry: If set, sent as the ``x-should-retry`` header, which the
            official SDKs obey over their status-based retry rules.
        times: How many consecutive message requests get this error before
            the queue moves on; ``None`` makes it permanent.
    """

    status: int
    message: str = "injected error"
    error_type: str | None = None
    retry_after: float | None = None
    should_retry: bool | None = None
    times: int | None = 1

    def body(self) -> dict[str, Any]:
        """Return the JSON error document the real API would send."""
        return {
            "type": "error",
            "error": {
                "type": self.error_type or _ERROR_TYPES.get(self.status, "api_error"),
                "message": self.message,
            },
        }

    def headers(self) -> dict[str, str]:
        """Return the extra response headers for this error."""
        extra: dict[str, str] = {}
        if self.retry_after is not None:
            extra["retry-after"] = f"{self.retry_after:g}"
        if self.should_retry is not None:
            extra["x-should-retry"] = "true" if self.should_retry else "false"
        return extra


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received by the server, and how it was answered.

    Attributes:
        method: HTTP method.
        path: URL path without the query string (e.g. ``/v1/messages``).
        query: Raw query string (Claude Code sends ``beta=true``).
        headers: Request headers, lower-cased, minus :data:`REDACTED_HEADERS`.
        body: Parsed JSON body, or ``None`` if absent or not JSON.
        raw_body: The body bytes as received.
        status: HTTP status the server answered with.
        usage: Usage reported in the reply (``None`` unless a 200 message).
        received_at: ``time.monotonic()`` when the request was read.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes = field(repr=False)
    status: int
    usage: Usage | None = None
    received_at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str | None:
        """The ``model`` field of a JSON body, if any."""
        if isinstance(self.body, dict):
            value = self.body.get("model")
            return value if isinstance(value, str) else None
        return None

    @property
    def stream(self) -> bool:
        """Whether the body asked for a streamed (SSE) reply."""
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def is_message(self) -> bool:
        """Whether this is a ``POST /v1/messages`` (not ``count_tokens``)."""
        return self.method == "POST" and self.path == "/v1/messages"


#: Chooses the content blocks of the reply to a message request; returning
#: ``None`` falls back to a single text block with the server's ``reply_text``.
Responder = Callable[[RecordedRequest], Sequence[ContentBlock] | None]


def text_block(text: str) -> dict[str, Any]:
    """Return a ``text`` content block."""
    return {"type": "text", "text": text}


def tool_use_block(name: str, tool_input: Mapping[str, Any], block_id: str | None = None) -> dict[str, Any]:
    """Return a ``tool_use`` content block (the reply's ``stop_reason`` becomes
    ``tool_use``)."""
    return {
        "type": "tool_use",
        "id": block_id or "toolu_" + uuid.uuid4().hex[:24],
        "name": name,
        "input": dict(tool_input),
    }


class AnthropicWireServer(ThreadedServer):
    """A threaded Anthropic Messages API fake on ``127.0.0.1`` and a free port.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    Configuration attributes may be changed while the server runs.

    Args:
        reply_text: Text of the single text block each reply carries, unless
            ``responder`` chooses other content.
        usage: Usage reported for message requests whose model has no entry
            in ``usage_by_model``.
        usage_by_model: Per-model usage. A key matches a request's model when
            it equals it or is a substring of it (``"haiku"`` matches
            ``"claude-haiku-4-5-20251001"``); an exact key wins.
        errors: Error replies consumed in order by message requests before
            normal replies resume (see :attr:`ErrorReply.times`).
        responder: Optional callback choosing each reply's content blocks.
        host: Interface to bind; keep the loopback default.
    """

    def __init__(
        self,
        *,
        reply_text: str = "OK",
        usage: Usage | None = None,
        usage_by_model: Mapping[str, Usage] | None = None,
        errors: Sequence[ErrorReply] | None = None,
        responder: Responder | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.reply_text = reply_text
        self.usage = usage if usage is not None else Usage(input_tokens=10, output_tokens=5)
        self.usage_by_model: dict[str, Usage] = dict(usage_by_model or {})
        self.responder = responder
        self.omit_usage = False  # a non-streamed 200 message without its `usage` object
        super().__init__(host)
        self._log: RequestLog[RecordedRequest] = RequestLog()
        self._errors: ReplyQueue[ErrorReply] = ReplyQueue(errors or [])

    thread_name = "anthropic-wire"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    @property
    def base_url(self) -> str:
        """The value for ``ANTHROPIC_BASE_URL`` (no ``/v1``, no trailing slash)."""
        return self.root_url

    # ------------------------------------------------------------- configuration

    def queue_errors(self, *errors: ErrorReply) -> None:
        """Append error replies for upcoming message requests."""
        self._errors.extend(errors)

    def clear_errors(self) -> None:
        """Drop all pending error replies."""
        self._errors.clear()

    def usage_for(self, model: str | None) -> Usage:
        """Return the usage the server reports for a request for ``model``."""
        return usage_for_model(self.usage_by_model, self.usage, model)

    # ----------------------------------------------------------------- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        return self._log.all()

    def message_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /v1/messages`` requests, in arrival order."""
        return [r for r in self.requests if r.is_message]

    def returned_usage(self, model: str | None = None) -> Usage:
        """Sum of the usage in all successful message replies so far.

        With ``model``, only replies to requests for exactly that model count.
        """
        total = ZERO_USAGE
        for req in self.message_requests():
            if req.usage is not None and (model is None or req.model == model):
                total = total + req.usage
        return total

    def reset(self) -> None:
        """Forget recorded requests; configuration is kept."""
        self._log.clear()

    def _record(self, req: RecordedRequest) -> None:
        self._log.add(lambda _seq: req)

    def _next_error(self) -> ErrorReply | None:
        return self._errors.take()


# --------------------------------------------------------------------- wire bits


def _stop_reason(blocks: Sequence[ContentBlock]) -> str:
    return "tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn"


def _message(model: str, blocks: Sequence[ContentBlock], usage: Usage) -> dict[str, Any]:
    """Return a complete (non-streamed) ``message`` object."""
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [dict(b) for b in blocks],
        "stop_reason": _stop_reason(blocks),
        "stop_sequence": None,
        "usage": usage.as_dict(),
    }


def _block_events(index: int, block: ContentBlock) -> Iterator[dict[str, Any]]:
    """Yield the start/delta/stop events streaming one content block."""
    kind = block.get("type")
    if kind == "tool_use":
        start: dict[str, Any] = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": part} for part in halves(json.dumps(block.get("input", {})))
        ]
    elif kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": part} for part in halves(str(block.get("text", "")))]
    else:  # Anything else is sent whole in its start event.
        start, deltas = dict(block), []
    yield {"type": "content_block_start", "index": index, "content_block": start}
    for delta in deltas:
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def _sse_events(model: str, blocks: Sequence[ContentBlock], usage: Usage) -> Iterator[dict[str, Any]]:
    """Yield the events of one streamed reply, in order.

    As the real API does, ``message_start`` carries the input-side usage with
    ``output_tokens`` of at most 1, and ``message_delta`` carries the final,
    cumulative usage that clients treat as authoritative.
    """
    start_usage = Usage(
        input_tokens=usage.input_tokens,
        output_tokens=min(1, usage.output_tokens),
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
    )
    message = _message(model, [], start_usage)
    message["stop_reason"] = None
    yield {"type": "message_start", "message": message}
    yield {"type": "ping"}
    for index, block in enumerate(blocks):
        yield from _block_events(index, block)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(blocks), "stop_sequence": None},
        "usage": usage.as_dict(),
    }
    yield {"type": "message_stop"}


def _estimate_tokens(body: Any) -> int:
    """A crude, deterministic token estimate: four characters per token."""
    return max(1, len(json.dumps(body, sort_keys=True)) // 4)


def _make_handler(server: AnthropicWireServer) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class bound to ``server``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "anthropic-wire/1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default access log on stderr."""

        # ------------------------------------------------------------ helpers

        def _read_body(self) -> tuple[bytes, Any]:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            if not raw:
                return raw, None
            try:
                return raw, json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return raw, None

        def _record(self, raw: bytes, body: Any, status: int, usage: Usage | None = None) -> RecordedRequest:
            split = urlsplit(self.path)
            req = RecordedRequest(
                method=self.command,
                path=split.path,
                query=split.query,
                headers={k.lower(): v for k, v in self.headers.items() if k.lower() not in REDACTED_HEADERS},
                body=body,
                raw_body=raw,
                status=status,
                usage=usage,
            )
            server._record(req)
            return req

        def _send_json(
            self,
            status: int,
            payload: Any,
            extra_headers: Mapping[str, str] | None = None,
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", new_id("req_"))
            for key, value in (extra_headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _send_sse(self, model: str, blocks: Sequence[ContentBlock], usage: Usage) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("request-id", new_id("req_"))
            # No content-length: the stream ends when the connection closes.
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            for event in _sse_events(model, blocks, usage):
                line = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
                self.wfile.write(line.encode())
                self.wfile.flush()

        # ------------------------------------------------------------ methods

        def do_POST(self) -> None:
            raw, body = self._read_body()
            path = urlsplit(self.path).path.rstrip("/")
            if path == "/v1/messages":
                self._messages(raw, body)
            elif path == "/v1/messages/count_tokens":
                self._record(raw, body, 200)
                self._send_json(200, {"input_tokens": _estimate_tokens(body)})
            else:
                self._record(raw, body, 404)
                err = ErrorReply(404, f"no route for POST {path}")
                self._send_json(404, err.body())

        def _messages(self, raw: bytes, body: Any) -> None:
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                self._record(raw, body, 400)
                err = ErrorReply(400, "body must be a JSON object with a model")
                self._send_json(400, err.body())
                return
            error = server._next_error()
            if error is not None:
                self._record(raw, body, error.status)
                self._send_json(error.status, error.body(), error.headers())
                return
            model: str = body["model"]
            usage = server.usage_for(model)
            req = self._record(raw, body, 200, usage)
            responder = server.responder
            chosen = responder(req) if responder is not None else None
            blocks = list(chosen) if chosen is not None else [text_block(server.reply_text)]
            if body.get("stream"):
                self._send_sse(model, blocks, usage)
            else:
                message = _message(model, blocks, usage)
                if server.omit_usage:  # a 200 that says nothing of what it cost
                    del message["usage"]
                self._send_json(200, message)

        def do_GET(self) -> None:
            self._probe()

        def do_HEAD(self) -> None:
            self._probe()

        def _probe(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            self._record(b"", None, 200)
            if path == "/v1/models":
                payload: dict[str, Any] = {
                    "data": [],
                    "has_more": False,
                    "first_id": None,
                    "last_id": None,
                }
            else:
                payload = {}
            self._send_json(200, payload)

    return Handler
