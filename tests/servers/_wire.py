"""The skeleton shared by the scripted wire servers (``responses_wire``, ``gemini_wire``), and the parts
the older stand-ins (``anthropic_wire``, ``openai_wire``) share with them: :class:`ThreadedServer` (serving
from a daemon thread on a free port), :class:`ReplyQueue` (queued errors or faults) and :func:`usage_for_model`.

A :class:`WireServer` binds ``127.0.0.1`` on a free port, serves from a daemon
thread, records every request (credentials never stored, only whether the key
matched), and hands out queued error replies in order. A subclass says how to
answer: :meth:`WireServer.answer` gets an :class:`Exchange` (one request being
answered) and replies through :meth:`Exchange.send_json` or
:meth:`Exchange.send_sse`, which record the request with its status, model and
usage just before the body goes out, so a client that has read a reply always
finds it recorded.

Scripted replies: a server's ``script`` is a list of replies consumed one per
model request (an entry may be an error); when it runs out, the server's
default reply is used. Queued errors (``errors=`` / :meth:`queue_errors`) come
first, each repeated ``times`` times (``None``: forever).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "CREDENTIAL_HEADERS",
    "REDACTED_HEADERS",
    "Exchange",
    "RecordedRequest",
    "ReplyQueue",
    "RequestLog",
    "ScriptedError",
    "ScriptedServer",
    "ThreadedServer",
    "TokenCounts",
    "WireServer",
    "halves",
    "new_id",
    "retry_after_header",
    "usage_for_model",
]

#: Header names (lower case) that carry an API key, in the order they are looked at.
CREDENTIAL_HEADERS: tuple[str, ...] = ("authorization", "x-api-key", "x-goog-api-key", "api-key")

#: Header names (lower case) never stored in :attr:`RecordedRequest.headers`.
REDACTED_HEADERS: frozenset[str] = frozenset({*CREDENTIAL_HEADERS, "proxy-authorization", "cookie"})


class ScriptedError(Protocol):
    """An HTTP error reply a server can be told to send."""

    @property
    def status(self) -> int: ...

    @property
    def times(self) -> int | None: ...

    def body(self) -> Any: ...

    def headers(self) -> dict[str, str]: ...


ErrorT = TypeVar("ErrorT", bound=ScriptedError)


class Repeated(Protocol):
    """A queued reply given to ``times`` requests in a row (``None``: to every request from then on)."""

    @property
    def times(self) -> int | None: ...


QueuedT = TypeVar("QueuedT", bound=Repeated)
UsageT = TypeVar("UsageT")


class ReplyQueue(Generic[QueuedT]):
    """Replies (errors, faults) handed out in order, each ``times`` times; thread safe."""

    def __init__(self, items: Iterable[QueuedT] = ()) -> None:
        self._lock = threading.Lock()
        self._items: list[QueuedT] = list(items)
        self._uses = 0

    def extend(self, items: Iterable[QueuedT]) -> None:
        with self._lock:
            self._items.extend(items)

    def clear(self) -> None:
        """Drop every pending reply, permanent ones included."""
        with self._lock:
            self._items.clear()
            self._uses = 0

    def take(self) -> QueuedT | None:
        """The reply the next request gets, if any."""
        with self._lock:
            if not self._items:
                return None
            item = self._items[0]
            if item.times is not None:
                self._uses += 1
                if self._uses >= item.times:
                    self._items.pop(0)
                    self._uses = 0
            return item


RecordT = TypeVar("RecordT")


class RequestLog(Generic[RecordT]):
    """The requests a server answered, in arrival order; thread safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordT] = []
        self._seq = 0

    def add(self, make: Callable[[int], RecordT]) -> RecordT:
        """Record ``make(seq)``, ``seq`` numbering the requests from 0."""
        with self._lock:
            req = make(self._seq)
            self._seq += 1
            self._items.append(req)
            return req

    def all(self) -> list[RecordT]:
        """A copy of every request recorded so far, in order."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def update(self, match: Callable[[RecordT], bool], change: Callable[[RecordT], RecordT]) -> None:
        """Replace the last request that ``match`` picks with ``change`` of it."""
        with self._lock:
            for index in range(len(self._items) - 1, -1, -1):
                if match(self._items[index]):
                    self._items[index] = change(self._items[index])
                    return


def usage_for_model(by_model: Mapping[str, UsageT], default: UsageT, model: str | None) -> UsageT:
    """The usage reported for ``model``: a key of ``by_model`` equal to it, else one contained in it
    (``"haiku"`` matches ``"claude-haiku-4-5-20251001"``), else ``default``."""
    if model is not None:
        if model in by_model:
            return by_model[model]
        for key, value in by_model.items():
            if key in model:
                return value
    return default


def new_id(prefix: str) -> str:
    """A random id with ``prefix``."""
    return prefix + uuid.uuid4().hex[:24]


def halves(text: str) -> list[str]:
    """Split ``text`` in two non-empty parts where possible, so clients
    exercise their delta concatenation."""
    half = len(text) // 2
    return [part for part in (text[:half], text[half:]) if part]


def retry_after_header(retry_after: float | None) -> dict[str, str]:
    """The ``retry-after`` header (seconds) of an error reply, if it has one."""
    return {} if retry_after is None else {"retry-after": f"{retry_after:g}"}


class TokenCounts:
    """A frozen dataclass of token counts whose sum adds them field by field."""

    def __add__(self, other: Self) -> Self:
        sums = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return replace(self, **sums)  # type: ignore[type-var]


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received, and how it was answered.

    Attributes:
        seq: Order in which replies were recorded, from 0.
        method: HTTP method.
        path: URL path without the query string.
        query: Raw query string, minus any ``key=`` credential.
        headers: Request headers, lower-cased, minus :data:`REDACTED_HEADERS`.
        has_key: Whether any credential (header or ``key=`` query) came.
        key_matches: Whether it equals the server's ``api_key``; ``None`` when
            the server has no ``api_key``.
        body: Parsed JSON body, or ``None`` if absent or not JSON.
        raw_body: The body bytes as received.
        status: HTTP status the server answered with.
        model: The model the request asked for (from the body or the path).
        is_model_call: Whether this asked a model for output (the requests
            scripts, errors and usage apply to).
        usage: Usage reported in the reply (``None`` unless a successful model call).
        received_at: ``time.monotonic()`` when the request was read.
    """

    seq: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    has_key: bool
    key_matches: bool | None
    body: Any
    raw_body: bytes = field(repr=False)
    status: int
    model: str | None = None
    is_model_call: bool = False
    usage: Any = None
    received_at: float = field(default_factory=time.monotonic)


def _secret(headers: Mapping[str, str], query: Mapping[str, list[str]]) -> str | None:
    """The API key a request carried: a credential header (``Bearer`` stripped) or ``?key=``."""
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        _scheme, _, rest = value.strip().partition(" ")
        return rest.strip() if name == "authorization" and rest else value.strip()
    keys = query.get("key")
    return keys[0] if keys else None


class Exchange:
    """One request being answered: what came, and the means to reply."""

    def __init__(self, handler: BaseHTTPRequestHandler, server: WireServer[Any]) -> None:
        self._handler = handler
        self._server = server
        self.received_at = time.monotonic()
        length = int(handler.headers.get("content-length") or 0)
        self.raw_body = handler.rfile.read(length) if length > 0 else b""
        self.body: Any = None
        if self.raw_body:
            try:
                self.body = json.loads(self.raw_body)
            except (ValueError, UnicodeDecodeError):
                self.body = None
        split = urlsplit(handler.path)
        self.method = handler.command
        self.path = split.path
        params = parse_qs(split.query, keep_blank_values=True)
        self.query = "&".join(part for part in split.query.split("&") if part and not part.startswith("key="))
        self.params = {k: v[-1] for k, v in params.items() if k != "key"}
        lowered = {k.lower(): v for k, v in handler.headers.items()}
        self.headers = {k: v for k, v in lowered.items() if k not in REDACTED_HEADERS}
        secret = _secret(lowered, params)
        self.has_key = secret is not None
        self.key_matches = None if server.api_key is None else secret == server.api_key

    def record(
        self, status: int, *, model: str | None = None, model_call: bool = False, usage: Any = None
    ) -> RecordedRequest:
        """Record this request as answered with `status` (done by the send methods)."""
        return self._server._record(
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            has_key=self.has_key,
            key_matches=self.key_matches,
            body=self.body,
            raw_body=self.raw_body,
            status=status,
            model=model,
            is_model_call=model_call,
            usage=usage,
            received_at=self.received_at,
        )

    def send_json(
        self,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        *,
        model: str | None = None,
        model_call: bool = False,
        usage: Any = None,
    ) -> RecordedRequest:
        """Reply with one JSON document."""
        data = json.dumps(payload).encode()
        h = self._handler
        req = self.record(status, model=model, model_call=model_call, usage=usage)
        try:
            h.send_response(status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(data)))
            h.send_header("x-request-id", new_id("req_"))
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.end_headers()
            if self.method != "HEAD":
                h.wfile.write(data)
        except OSError:  # the client hung up
            h.close_connection = True
        return req

    def send_error(
        self, error: ScriptedError, *, model: str | None = None, model_call: bool = False
    ) -> RecordedRequest:
        """Reply with a scripted error."""
        return self.send_json(error.status, error.body(), error.headers(), model=model, model_call=model_call)

    def send_sse(
        self,
        events: Iterable[tuple[str | None, Any]],
        *,
        model: str | None = None,
        usage: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> RecordedRequest:
        """Reply ``200`` with Server-Sent Events: ``(event name or None, JSON data)`` pairs.

        No content-length: the stream ends when the connection closes.
        """
        h = self._handler
        req = self.record(200, model=model, model_call=True, usage=usage)
        try:
            h.send_response(200)
            h.send_header("content-type", "text/event-stream")
            h.send_header("cache-control", "no-cache")
            h.send_header("x-request-id", new_id("req_"))
            h.send_header("connection", "close")
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.end_headers()
            h.close_connection = True
            for name, data in events:
                head = f"event: {name}\n" if name else ""
                h.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
                h.wfile.flush()
        except OSError:
            h.close_connection = True
        return req


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that ignores clients hanging up mid-reply."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class ThreadedServer:
    """An HTTP server on ``host`` and a free port, serving from a daemon thread: a context manager, or
    :meth:`start` and :meth:`stop`. A subclass gives :meth:`handler_class`."""

    thread_name = "wire"
    poll_interval = 0.05

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:  # pragma: no cover - subclasses give one
        """The request handler class, bound to this server."""
        raise NotImplementedError

    def start(self) -> Self:
        """Bind a free port and serve from a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        httpd = _HTTPServer((self._host, 0), self.handler_class())
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call more than once."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://host:port`` (no path, no trailing slash)."""
        return f"http://{self._host}:{self.port}"


class WireServer(ThreadedServer, Generic[ErrorT]):
    """Lifecycle, recording and the error queue; subclasses implement :meth:`answer`.

    Args:
        errors: Error replies consumed in order by model requests before
            scripted and default replies (see ``times`` on each).
        api_key: If set, model requests whose credential differs get the
            subclass's 401.
        host: Interface to bind; keep the loopback default.
    """

    thread_name = "wire"

    def __init__(self, *, errors: Sequence[ErrorT] | None = None, api_key: str | None = None, host: str = "127.0.0.1"):
        super().__init__(host)
        self.api_key = api_key
        self._lock = threading.Lock()
        self._log: RequestLog[RecordedRequest] = RequestLog()
        self._errors: ReplyQueue[ErrorT] = ReplyQueue(errors or [])

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    # ------------------------------------------------------------- configuration

    def queue_errors(self, *errors: ErrorT) -> None:
        """Append error replies for upcoming model requests."""
        self._errors.extend(errors)

    def clear_errors(self) -> None:
        """Drop all pending error replies, permanent ones included."""
        self._errors.clear()

    def next_error(self) -> ErrorT | None:
        """Take the error the next model request gets, if any."""
        return self._errors.take()

    # ----------------------------------------------------------------- recording

    def requests(self) -> list[RecordedRequest]:
        """A copy of every request answered so far, in order."""
        return self._log.all()

    def model_requests(self) -> list[RecordedRequest]:
        """Only the requests that asked a model for output, in order."""
        return [r for r in self.requests() if r.is_model_call]

    def reset(self) -> None:
        """Forget recorded requests; configuration is kept."""
        self._log.clear()

    def _record(self, **fields: Any) -> RecordedRequest:
        return self._log.add(lambda seq: RecordedRequest(seq=seq, **fields))

    # ------------------------------------------------------------------ answering

    def answer(self, exchange: Exchange) -> None:  # pragma: no cover - subclasses answer
        """Answer one request (any method)."""
        raise NotImplementedError


def _make_handler(server: WireServer[Any]) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class bound to ``server``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"{server.thread_name}/1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default access log on stderr."""

        def finish(self) -> None:
            with contextlib.suppress(OSError):
                super().finish()

        def _answer(self) -> None:
            with contextlib.suppress(ConnectionError):
                server.answer(Exchange(self, server))

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _answer

    return Handler


CountsT = TypeVar("CountsT", bound=TokenCounts)
ReplyT = TypeVar("ReplyT")


class ScriptedServer(WireServer[ErrorT], Generic[ErrorT, CountsT, ReplyT]):
    """A :class:`WireServer` answering model requests with scripted replies (``responses_wire``, ``gemini_wire``).

    A subclass gives :meth:`default_usage` (the usage when ``usage`` is not given) and answers.

    Args:
        reply_text: Text of the reply when neither the responder nor the script chooses it.
        usage: Usage reported for model requests whose model has no entry in ``usage_by_model``.
        usage_by_model: Per-model usage (exact model name).
        script: Replies used one per request, in order, before the default.
        responder: Optional callback choosing a reply from the request body
            (consulted before the script; ``None`` falls through).
        errors: Error replies consumed in order by model requests before anything else.
        models: If set, the only models served; others get the subclass's 404.
        served_model: Maps a requested model to the one the reply names.
        api_key: If set, a request with another key gets the subclass's error.
    """

    def __init__(
        self,
        *,
        reply_text: str = "OK",
        usage: CountsT | None = None,
        usage_by_model: Mapping[str, CountsT] | None = None,
        script: Sequence[ReplyT] | None = None,
        responder: Callable[[Mapping[str, Any]], ReplyT | None] | None = None,
        errors: Sequence[ErrorT] | None = None,
        models: Sequence[str] | None = None,
        served_model: Mapping[str, str] | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(errors=errors, api_key=api_key, host=host)
        self.reply_text = reply_text
        self.usage = usage if usage is not None else self.default_usage()
        self.usage_by_model = dict(usage_by_model or {})
        self.script: list[ReplyT] = list(script or [])
        self.responder = responder
        self.models = None if models is None else list(models)
        self.served_model = dict(served_model or {})

    def default_usage(self) -> CountsT:  # pragma: no cover - subclasses give one
        raise NotImplementedError

    def usage_for(self, model: str) -> CountsT:
        return self.usage_by_model.get(model, self.usage)

    def _usage_sent(self, zero: CountsT) -> CountsT:
        """The sum of the usage of every successful model reply sent."""
        total = zero
        for req in self.model_requests():
            if req.status == 200 and isinstance(req.usage, type(zero)):
                total = total + req.usage
        return total

    def _next_reply(self, body: Mapping[str, Any]) -> ReplyT | None:
        responder = self.responder
        chosen = responder(body) if responder is not None else None
        if chosen is not None:
            return chosen
        with self._lock:
            return self.script.pop(0) if self.script else None

    def _refused(self, ex: Exchange, model: str, *, bad_key: ErrorT, not_served: ErrorT) -> bool:
        """Send the error a model request gets before any reply (a wrong key, a model not served, a queued
        error), if it gets one; whether it did."""
        error: ErrorT | None
        if self.api_key is not None and not ex.key_matches:
            error = bad_key
        elif self.models is not None and model not in self.models:
            error = not_served
        else:
            error = self.next_error()
        if error is None:
            return False
        ex.send_error(error, model=model, model_call=True)
        return True
