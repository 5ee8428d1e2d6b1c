"""A local, stdlib-only fake of the OpenAI-compatible chat completions API.

The server lets tests of an HTTP provider (OpenAI, OpenRouter, any
OpenAI-compatible gateway) run fully offline: use
:attr:`OpenAIWireServer.base_url` (which ends in ``/v1``, like the real
``https://api.openai.com/v1``) as the provider's base URL and every request
lands here.

What it does:

* ``POST /v1/chat/completions`` (also ``POST /chat/completions``, for a base URL
  configured without ``/v1``, i.e. :attr:`OpenAIWireServer.root_url`) answers with an assistant message
  whose text is ``reply_text`` (or chosen by a ``responder`` callback), either
  as one ``chat.completion`` JSON document or, when the request carries
  ``"stream": true``, as Server-Sent Events: ``data: {chunk}`` lines (role,
  content deltas, ``finish_reason``, then a ``choices: []`` chunk carrying the
  usage) followed by ``data: [DONE]``.
* The token usage it reports is configurable, globally and per model, including
  the OpenRouter extras ``usage.cost`` and
  ``usage.prompt_tokens_details.cache_write_tokens`` (sent only when set).
* Faults can be queued for the next N chat requests, or made permanent:
  HTTP errors in the API's JSON error shape (:class:`ErrorReply`, with an
  optional ``Retry-After``), slow replies (:class:`SlowReply`, to trip client
  timeouts), truncated bodies (:class:`TruncatedReply`), a ``200`` whose body
  is an error object (:class:`InBandError`, as OpenRouter sends for failures
  mid-generation) and malformed JSON (:class:`MalformedReply`).
* ``GET /v1/models`` lists the models named in ``usage_by_model``; any other
  path answers 404 in the API's error shape.
* Every request is recorded (method, path, headers minus credentials, which
  credential header and scheme were used, parsed JSON body, and the status,
  usage and faults it was answered with) for assertions.

:func:`closed_port` and :func:`refused_base_url` give an address that refuses
connections, for connection-error tests.

Example::

    usage = Usage(prompt_tokens=11, completion_tokens=7, cost=0.0003)
    with OpenAIWireServer(usage=usage, reply_text="done", api_key="sk-test") as srv:
        srv.queue_faults(ErrorReply(429, retry_after=0))
        ...  # run the client against srv.base_url with key "sk-test"
        assert [r.status for r in srv.chat_requests()] == [429, 200]
        assert srv.returned_usage() == usage
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from servers._wire import ReplyQueue, RequestLog, ThreadedServer, halves, new_id, usage_for_model

__all__ = [
    "CHAT_PATHS",
    "CREDENTIAL_HEADERS",
    "REDACTED_HEADERS",
    "ZERO_USAGE",
    "ErrorReply",
    "Fault",
    "InBandError",
    "MalformedReply",
    "OpenAIWireServer",
    "RecordedRequest",
    "Responder",
    "SlowReply",
    "StreamUsage",
    "TruncatedReply",
    "Usage",
    "closed_port",
    "refused_base_url",
]

#: Paths answered as chat completions requests.
CHAT_PATHS: frozenset[str] = frozenset({"/v1/chat/completions", "/chat/completions"})

#: Paths answered with the model list.
_MODELS_PATHS: frozenset[str] = frozenset({"/v1/models", "/models"})

#: Header names (lower case) that carry an API key.
CREDENTIAL_HEADERS: tuple[str, ...] = ("authorization", "x-api-key", "api-key")

#: Header names (lower case) never stored in :attr:`RecordedRequest.headers`.
REDACTED_HEADERS: frozenset[str] = frozenset({*CREDENTIAL_HEADERS, "proxy-authorization", "cookie"})

#: ``(error.type, error.code)`` sent by default for each HTTP status.
_ERROR_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_credits"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    408: ("timeout_error", "request_timeout"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    529: ("overloaded_error", "overloaded"),
}

#: When a streamed reply ends with a usage chunk: always (as OpenRouter does),
#: only if the request set ``stream_options.include_usage`` (as OpenAI does),
#: or never.
StreamUsage = Literal["always", "requested", "never"]


# ------------------------------------------------------------------------ usage


@dataclass(frozen=True)
class Usage:
    """Token counts (and optional OpenRouter extras) of a ``usage`` object.

    Attributes:
        prompt_tokens: ``usage.prompt_tokens`` (the whole prompt, cache reads
            included, as the OpenAI convention has it).
        completion_tokens: ``usage.completion_tokens`` (reasoning included).
        cached_tokens: ``usage.prompt_tokens_details.cached_tokens``.
        reasoning_tokens: ``usage.completion_tokens_details.reasoning_tokens``.
        cache_write_tokens: OpenRouter's
            ``usage.prompt_tokens_details.cache_write_tokens``; omitted from
            the JSON when ``None``.
        cost: OpenRouter's ``usage.cost`` in USD credits; omitted when
            ``None``. Sums of costs are plain float sums.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int | None = None
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        """``usage.total_tokens``: prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        """Return the usage as the JSON object the API sends."""
        prompt_details: dict[str, int] = {"cached_tokens": self.cached_tokens}
        if self.cache_write_tokens is not None:
            prompt_details["cache_write_tokens"] = self.cache_write_tokens
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }
        if self.cost is not None:
            out["cost"] = self.cost
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Parse a ``usage`` JSON object (the inverse of :meth:`as_dict`)."""
        prompt_details = data.get("prompt_tokens_details") or {}
        completion_details = data.get("completion_tokens_details") or {}
        cache_write = prompt_details.get("cache_write_tokens")
        cost = data.get("cost")
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
            cache_write_tokens=None if cache_write is None else int(cache_write),
            cost=None if cost is None else float(cost),
        )

    def __add__(self, other: Usage) -> Usage:
        cache_write = (
            None
            if self.cache_write_tokens is None and other.cache_write_tokens is None
            else (self.cache_write_tokens or 0) + (other.cache_write_tokens or 0)
        )
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_write_tokens=cache_write,
            cost=cost,
        )


#: Zero tokens and no OpenRouter extras.
ZERO_USAGE = Usage()


# ----------------------------------------------------------------------- faults


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error status with the API's JSON error body.

    Attributes:
        status: HTTP status, e.g. 400, 401, 402, 403, 429, 500, 502, 503, 529.
        message: ``error.message``.
        error_type: ``error.type``; defaults to a type fitting ``status``.
        code: ``error.code`` (a string for OpenAI, a number for OpenRouter);
            defaults to a string fitting ``status``.
        retry_after: If set, sent as the ``Retry-After`` header (seconds).
        extra_headers: More response headers, e.g. ``retry-after-ms``.
        times: How many consecutive chat requests get this fault before the
            queue moves on; ``None`` makes it permanent.
    """

    status: int
    message: str = "injected error"
    error_type: str | None = None
    code: str | int | None = None
    retry_after: float | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    times: int | None = 1

    def body(self) -> dict[str, Any]:
        """Return the JSON error document."""
        default_type, default_code = _ERROR_DEFAULTS.get(self.status, ("api_error", "error"))
        return _error_body(
            self.message,
            self.error_type or default_type,
            self.code if self.code is not None else default_code,
        )

    def headers(self) -> dict[str, str]:
        """Return the extra response headers for this error."""
        extra = dict(self.extra_headers)
        if self.retry_after is not None:
            extra["retry-after"] = f"{self.retry_after:g}"
        return extra


@dataclass(frozen=True)
class SlowReply:
    """Sleep before answering normally (or with another fault).

    The sleep runs in the request's own thread, so other requests are served
    meanwhile, and :meth:`OpenAIWireServer.stop` cuts it short. If the client
    has hung up by the time it ends (say it timed out), nothing is sent and the
    request is recorded with ``status=None``.

    Attributes:
        delay: Seconds to sleep.
        after_headers: Sleep after sending the status line and headers (and,
            for a streamed reply, the first event) instead of before them, to
            exercise read timeouts mid-body.
        times: As for :attr:`ErrorReply.times`.
    """

    delay: float
    after_headers: bool = False
    times: int | None = 1


@dataclass(frozen=True)
class TruncatedReply:
    """Send only part of a normal ``200`` reply, then close the connection.

    Attributes:
        mode: ``"content-length"``: a ``Content-Length`` for the whole body but
            only part of it sent (clients raise a protocol error).
            ``"chunked"``: chunked transfer encoding without the final chunk
            (clients raise a protocol error). ``"eof"``: no length at all, the
            body simply ends at the close (clients see a complete response
            whose JSON or SSE stream is cut mid-way).
        keep: Fraction of the body bytes sent (at least one byte, never all).
        times: As for :attr:`ErrorReply.times`.
    """

    mode: Literal["content-length", "chunked", "eof"] = "content-length"
    keep: float = 0.5
    times: int | None = 1


@dataclass(frozen=True)
class InBandError:
    """A ``200`` reply whose body is an error object.

    OpenRouter does this when a failure happens after generation started:
    ``{"error": {...}}`` as the whole JSON body, or, when streaming, a chunk
    with an ``error`` field and ``finish_reason: "error"`` after which the
    stream ends (without ``[DONE]``).

    Attributes:
        message: ``error.message``.
        code: ``error.code``.
        error_type: ``error.type``.
        partial_text: For streams, content sent in deltas before the error.
        times: As for :attr:`ErrorReply.times`.
    """

    message: str = "Provider returned error"
    code: str | int = 502
    error_type: str = "server_error"
    partial_text: str = ""
    times: int | None = 1

    def body(self) -> dict[str, Any]:
        """Return the JSON error document."""
        return _error_body(self.message, self.error_type, self.code)


@dataclass(frozen=True)
class MalformedReply:
    """A ``200`` reply (JSON, or one SSE ``data:`` event) that is not valid JSON.

    Attributes:
        body: The bytes sent as the JSON document, or after ``data: `` in a
            stream (which then continues normally to ``[DONE]``).
        times: As for :attr:`ErrorReply.times`.
    """

    body: bytes = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"index": 0, "mess'
    times: int | None = 1


#: Anything that can be queued with :meth:`OpenAIWireServer.queue_faults`.
Fault = ErrorReply | SlowReply | TruncatedReply | InBandError | MalformedReply


# -------------------------------------------------------------------- recording


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received by the server, and how it was answered.

    A request is recorded when it arrives (``status=None``) and updated when
    its reply has been sent, so slow requests show up while they sleep.

    Attributes:
        seq: Arrival number, from 0.
        method: HTTP method.
        path: URL path without the query string (e.g. ``/v1/chat/completions``).
        query: Raw query string.
        headers: Request headers, lower-cased, minus :data:`REDACTED_HEADERS`.
        auth_header: Which of :data:`CREDENTIAL_HEADERS` carried a credential
            (``"authorization"`` first), or ``None`` if none did.
        auth_scheme: The scheme word of an ``Authorization`` header (e.g.
            ``"Bearer"``), or ``None``.
        key_matches: Whether the credential equals the server's ``api_key``;
            ``None`` when the server has no ``api_key``.
        body: Parsed JSON body, or ``None`` if absent or not JSON.
        raw_body: The body bytes as received.
        status: HTTP status of the reply, or ``None`` if none was sent (not
            yet answered, or abandoned because the client hung up or the
            server stopped).
        usage: Usage in the reply; set only for a ``200`` chat reply that was
            sent in full and carried usage.
        faults: The faults applied to this request, in the order applied.
        received_at: ``time.monotonic()`` when the request was read.
    """

    seq: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    auth_header: str | None
    auth_scheme: str | None
    key_matches: bool | None
    body: Any
    raw_body: bytes = field(repr=False)
    status: int | None = None
    usage: Usage | None = None
    faults: tuple[Fault, ...] = ()
    received_at: float = field(default_factory=time.monotonic)

    @property
    def has_auth(self) -> bool:
        """Whether any credential header was present."""
        return self.auth_header is not None

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
    def is_chat(self) -> bool:
        """Whether this is a ``POST`` to a chat completions path."""
        return self.method == "POST" and self.path.rstrip("/") in CHAT_PATHS


#: Chooses the reply to a valid chat request: a string is the reply text, a
#: :data:`Fault` is applied (after any queued fault), ``None`` means the
#: default reply. Called for every valid, authorised chat request.
Responder = Callable[[RecordedRequest], str | Fault | None]


# ---------------------------------------------------------------------- helpers


def closed_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The port is bound and released at once, so connecting to it is refused
    (barring the unlikely event that another process grabs it meanwhile).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def refused_base_url(host: str = "127.0.0.1") -> str:
    """Return a ``http://host:port/v1`` base URL whose connections are refused."""
    return f"http://{host}:{closed_port(host)}/v1"


def _error_body(message: str, error_type: str, code: str | int | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _sse(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


_SSE_DONE = b"data: [DONE]\n\n"


def _cut(parts: Sequence[bytes], keep: int) -> list[bytes]:
    """Return the leading parts holding exactly ``keep`` bytes."""
    out: list[bytes] = []
    for part in parts:
        if keep <= 0:
            break
        out.append(part[:keep])
        keep -= len(part)
    return out


class _ChatReply:
    """Builds the JSON documents of one chat completion."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = new_id("chatcmpl-")
        self.created = int(time.time())

    def completion(self, text: str, usage: Usage) -> dict[str, Any]:
        """Return the non-streamed ``chat.completion`` object."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage.as_dict(),
        }

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """Return one ``chat.completion.chunk`` object."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """Return a chunk carrying one delta of choice 0."""
        return self.chunk([{"index": 0, "delta": delta, "finish_reason": finish_reason}])

    def opening(self, text: str) -> list[bytes]:
        """Return the SSE events with the role and the content deltas."""
        events = [self.delta({"role": "assistant", "content": ""})]
        events += [self.delta({"content": part}) for part in halves(text)]
        return [_sse(event) for event in events]

    def stream(self, text: str, usage: Usage | None) -> list[bytes]:
        """Return the SSE events of a complete streamed reply."""
        parts = self.opening(text)
        parts.append(_sse(self.delta({}, "stop")))
        if usage is not None:
            parts.append(_sse(self.chunk([], usage=usage.as_dict())))
        parts.append(_SSE_DONE)
        return parts


# ----------------------------------------------------------------------- server


class OpenAIWireServer(ThreadedServer):
    """A threaded OpenAI chat completions fake on ``127.0.0.1`` and a free port.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    Configuration attributes may be changed while the server runs.

    Args:
        reply_text: Content of the assistant message, unless ``responder``
            chooses another.
        usage: Usage reported for chat requests whose model has no entry in
            ``usage_by_model``.
        usage_by_model: Per-model usage. A key matches a request's model when
            it equals it or is a substring of it (``"mini"`` matches
            ``"openai/gpt-4o-mini"``); an exact key wins.
        faults: Faults consumed in order by chat requests before normal
            replies resume (see :attr:`ErrorReply.times`).
        responder: Optional callback choosing each reply's text or fault.
        api_key: If set, chat requests whose ``Authorization: Bearer`` (or
            ``x-api-key`` / ``api-key``) credential differs get a 401.
        stream_usage: When a streamed reply ends with a usage chunk (see
            :data:`StreamUsage`).
        host: Interface to bind; keep the loopback default.
    """

    def __init__(
        self,
        *,
        reply_text: str = "OK",
        usage: Usage | None = None,
        usage_by_model: Mapping[str, Usage] | None = None,
        faults: Sequence[Fault] | None = None,
        responder: Responder | None = None,
        api_key: str | None = None,
        stream_usage: StreamUsage = "always",
        host: str = "127.0.0.1",
    ) -> None:
        self.reply_text = reply_text
        self.usage = usage if usage is not None else Usage(prompt_tokens=10, completion_tokens=5)
        self.usage_by_model: dict[str, Usage] = dict(usage_by_model or {})
        self.responder = responder
        self.api_key = api_key
        self.stream_usage: StreamUsage = stream_usage
        self.omit_usage = False  # a non-streamed 200 reply without its `usage` object
        super().__init__(host)
        self._lock = threading.Lock()
        self._log: RequestLog[RecordedRequest] = RequestLog()
        self._faults: ReplyQueue[Fault] = ReplyQueue(faults or [])
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()

    thread_name = "openai-wire"
    poll_interval = 0.01

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Bind a free port and serve from a daemon thread; returns ``self``."""
        self._stopping.clear()
        return super().start()

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close every connection.

        Returns promptly even while :class:`SlowReply` handlers sleep. Safe to
        call more than once.
        """
        self._stopping.set()
        super().stop()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    @property
    def base_url(self) -> str:
        """The provider base URL: ``http://host:port/v1``."""
        return self.root_url + "/v1"

    @property
    def chat_url(self) -> str:
        """The full chat completions URL."""
        return self.base_url + "/chat/completions"

    # ------------------------------------------------------------- configuration

    def queue_faults(self, *faults: Fault) -> None:
        """Append faults for upcoming chat requests."""
        self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Drop all pending faults, permanent ones included."""
        self._faults.clear()

    def usage_for(self, model: str | None) -> Usage:
        """Return the usage the server reports for a request for ``model``."""
        return usage_for_model(self.usage_by_model, self.usage, model)

    # ----------------------------------------------------------------- recording

    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        return self._log.all()

    def chat_requests(self) -> list[RecordedRequest]:
        """Only the chat completions requests, in arrival order."""
        return [r for r in self.requests() if r.is_chat]

    def returned_usage(self, model: str | None = None) -> Usage:
        """Sum of the usage in all chat replies sent in full with a 200.

        With ``model``, only replies to requests for exactly that model count.
        """
        total = ZERO_USAGE
        for req in self.chat_requests():
            if req.status == 200 and req.usage is not None and (model is None or req.model == model):
                total = total + req.usage
        return total

    def reset(self) -> None:
        """Forget recorded requests; configuration is kept."""
        self._log.clear()

    def _record(self, **fields: Any) -> RecordedRequest:
        return self._log.add(lambda seq: RecordedRequest(seq=seq, **fields))

    def _update(self, req: RecordedRequest, **changes: Any) -> None:
        self._log.update(lambda r: r.seq == req.seq, lambda r: replace(r, **changes))

    def _next_fault(self) -> Fault | None:
        return self._faults.take()

    def _track(self, conn: socket.socket, active: bool) -> None:
        with self._lock:
            if active:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def _credential(headers: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """Return ``(header name, scheme, secret)`` of the first credential header."""
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if name == "authorization":
            scheme, _, secret = value.strip().partition(" ")
            if secret:
                return name, scheme, secret.strip()
            return name, None, scheme
        return name, None, value.strip()
    return None, None, None


def _make_handler(server: OpenAIWireServer) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class bound to ``server``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "openai-wire/1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default access log on stderr."""

        def setup(self) -> None:
            super().setup()
            server._track(self.connection, True)

        def finish(self) -> None:
            server._track(self.connection, False)
            with contextlib.suppress(OSError):
                super().finish()

        # ------------------------------------------------------------ helpers

        def _read(self) -> RecordedRequest:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    body = None
            lowered = {k.lower(): v for k, v in self.headers.items()}
            auth_header, auth_scheme, secret = _credential(lowered)
            split = urlsplit(self.path)
            return server._record(
                method=self.command,
                path=split.path,
                query=split.query,
                headers={k: v for k, v in lowered.items() if k not in REDACTED_HEADERS},
                auth_header=auth_header,
                auth_scheme=auth_scheme,
                key_matches=None if server.api_key is None else secret == server.api_key,
                body=body,
                raw_body=raw,
            )

        def _peer_gone(self) -> bool:
            """Whether the client has closed its end of the connection."""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _sleep(self, delay: float) -> bool:
            """Sleep ``delay`` seconds; return whether to go on answering."""
            if delay > 0 and server._stopping.wait(delay):
                return False
            return not self._peer_gone()

        def _emit(
            self,
            req: RecordedRequest,
            status: int,
            headers: Mapping[str, str],
            parts: Sequence[bytes],
            *,
            usage: Usage | None = None,
            faults: tuple[Fault, ...] = (),
            chunked: bool = False,
            truncate: TruncatedReply | None = None,
            pause: float = 0.0,
        ) -> None:
            """Write one response and record how ``req`` was answered.

            ``pause`` sleeps after the headers (and the first part, when there
            are several); ``truncate`` sends only part of the body and closes.
            The record gets ``usage`` just before the last bytes go out (so a
            client that has read the reply finds it recorded), and only if
            the whole body is sent.
            """
            server._update(req, status=status, faults=faults)
            total = sum(len(part) for part in parts)
            if truncate is not None:
                keep = max(0, min(total - 1, max(1, int(total * truncate.keep))))
                parts = _cut(parts, keep)
                chunked = truncate.mode == "chunked"
                self.close_connection = True
            frames = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts] if chunked else list(parts)
            if chunked and truncate is None:
                frames.append(b"0\r\n\r\n")
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if chunked:
                self.send_header("transfer-encoding", "chunked")
            elif truncate is None or truncate.mode == "content-length":
                self.send_header("content-length", str(total))
            if truncate is not None:
                self.send_header("connection", "close")
            pause_before = 1 if len(parts) > 1 else 0
            try:
                self.end_headers()
                for index, frame in enumerate(frames):
                    if pause > 0 and index == pause_before and not self._sleep(pause):
                        self.close_connection = True
                        return
                    if index == len(frames) - 1 and truncate is None:
                        server._update(req, usage=usage)
                    self.wfile.write(frame)
            except OSError:  # The client hung up.
                server._update(req, usage=None)
                self.close_connection = True

        def _json_headers(self) -> dict[str, str]:
            return {"content-type": "application/json", "x-request-id": new_id("req_")}

        def _sse_headers(self) -> dict[str, str]:
            return {"content-type": "text/event-stream", "cache-control": "no-cache", "x-request-id": new_id("req_")}

        def _send_error(self, req: RecordedRequest, error: ErrorReply, faults: tuple[Fault, ...] = ()) -> None:
            headers = {**self._json_headers(), **error.headers()}
            self._emit(req, error.status, headers, [json.dumps(error.body()).encode()], faults=faults)

        # ------------------------------------------------------------ methods

        def do_POST(self) -> None:
            req = self._read()
            if req.path.rstrip("/") in CHAT_PATHS:
                self._chat(req)
            else:
                self._send_error(req, ErrorReply(404, f"no route for POST {req.path}"))

        def do_GET(self) -> None:
            req = self._read()
            if req.path.rstrip("/") in _MODELS_PATHS:
                models = [
                    {"id": name, "object": "model", "created": 0, "owned_by": "openai-wire"}
                    for name in server.usage_by_model
                ]
                payload = json.dumps({"object": "list", "data": models}).encode()
                self._emit(req, 200, self._json_headers(), [payload])
            else:
                self._send_error(req, ErrorReply(404, f"no route for GET {req.path}"))

        def _chat(self, req: RecordedRequest) -> None:
            body = req.body
            if (
                not isinstance(body, dict)
                or not isinstance(body.get("model"), str)
                or not isinstance(body.get("messages"), list)
            ):
                self._send_error(req, ErrorReply(400, "body must be a JSON object with a model and messages"))
                return
            if server.api_key is not None and not req.key_matches:
                self._send_error(req, ErrorReply(401, "Incorrect API key provided"))
                return
            queued = server._next_fault()
            responder = server.responder
            chosen = responder(req) if responder is not None else None
            text = chosen if isinstance(chosen, str) else server.reply_text
            faults = tuple(f for f in (queued, chosen) if f is not None and not isinstance(f, str))
            slow = [f for f in faults if isinstance(f, SlowReply)]
            final = next((f for f in faults if not isinstance(f, SlowReply)), None)
            if not self._sleep(sum(f.delay for f in slow if not f.after_headers)):
                self.close_connection = True
                server._update(req, faults=faults)
                return
            pause = sum(f.delay for f in slow if f.after_headers)
            if isinstance(final, ErrorReply):
                self._send_error(req, final, faults)
                return
            model: str = body["model"]
            reply = _ChatReply(model)
            stream = bool(body.get("stream"))
            usage: Usage | None = None  # Stays None unless the reply carries usage.
            if stream:
                headers = self._sse_headers()
                if isinstance(final, InBandError):
                    error_choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
                    parts = [*reply.opening(final.partial_text), _sse(reply.chunk([error_choice], **final.body()))]
                elif isinstance(final, MalformedReply):
                    parts = [*reply.opening(text)[:1], b"data: " + final.body + b"\n\n", _SSE_DONE]
                else:
                    options = body.get("stream_options")
                    requested = isinstance(options, dict) and bool(options.get("include_usage"))
                    mode = server.stream_usage
                    usage = server.usage_for(model) if mode == "always" or (mode == "requested" and requested) else None
                    parts = reply.stream(text, usage)
            else:
                headers = self._json_headers()
                if isinstance(final, InBandError):
                    parts = [json.dumps(final.body()).encode()]
                elif isinstance(final, MalformedReply):
                    parts = [final.body]
                else:
                    usage = server.usage_for(model)
                    completion = reply.completion(text, usage)
                    if server.omit_usage:  # a 200 that says nothing of what it cost
                        del completion["usage"]
                        usage = None
                    parts = [json.dumps(completion).encode()]
            truncate = final if isinstance(final, TruncatedReply) else None
            self._emit(
                req, 200, headers, parts, usage=usage, faults=faults, chunked=stream, truncate=truncate, pause=pause
            )

    return Handler
