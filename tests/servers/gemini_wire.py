"""A local, stdlib-only fake of the Gemini API (``generativelanguage``), as the Gemini CLI speaks it.

Point the CLI at :attr:`GeminiWireServer.base_url` with ``GOOGLE_GEMINI_BASE_URL``
(and any ``GEMINI_API_KEY``) and every request lands here.

What it does:

* ``POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`` answers with
  Server-Sent Events, one ``GenerateContentResponse`` per ``data:`` line: the
  text in two chunks (so clients join them), then the last chunk with
  ``finishReason`` and ``usageMetadata`` (prompt, cached, candidates, thoughts
  and tool-use prompt counts). ``:generateContent`` gets the same response as
  one JSON document, ``:countTokens`` a deterministic estimate.
* What each reply holds is scripted: ``script`` is a list of replies used one
  per model request (a list of parts, e.g. ``[function_call("write_file",
  {...})]`` then ``[text("done")]``, or an :class:`ErrorReply`),
  ``responder`` can choose from the request body, and otherwise the reply is
  ``reply_text``. Requests the CLI makes for itself (its JSON side calls, such
  as the next-speaker check, carry a ``responseSchema``) never consume the
  script: they get ``side_reply`` with ``side_usage``.
* Usage is configurable, globally and per model; ``served_model`` makes the
  reply's ``modelVersion`` name another model than the one asked for.
* Errors in the API's shape (``{"error": {"code", "message", "status",
  "details"}}``; a 429 carries a ``Retry-After`` header and a ``RetryInfo``
  detail) can be queued for the next N model requests or made permanent;
  with ``api_key`` set a wrong key gets a 400 ``API_KEY_INVALID`` (what the
  real API answers), and with ``models`` set an unknown model a 404.
* ``GET /v1beta/models`` lists ``models``; other paths get a 404.
* Every request is recorded (see :class:`servers._wire.RecordedRequest`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servers._wire import Exchange, RecordedRequest, ScriptedServer, TokenCounts, halves, new_id, retry_after_header

__all__ = [
    "ZERO_USAGE",
    "ErrorReply",
    "GeminiWireServer",
    "Part",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Usage",
    "function_call",
    "function_responses",
    "is_side_request",
    "text",
]

#: ``error.status`` (the gRPC code name) the real API sends for each HTTP status.
_STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_MODEL_PATH = re.compile(r"^/v1beta/models/([^/:]+):([A-Za-z]+)$")


@dataclass(frozen=True)
class Usage(TokenCounts):
    """A ``usageMetadata`` object.

    ``prompt_tokens`` includes ``cached_tokens``; ``candidates_tokens``
    excludes ``thoughts_tokens``; ``tool_use_prompt_tokens`` is prompt the
    API added for tool results, on top of ``prompt_tokens``.
    """

    prompt_tokens: int = 0
    candidates_tokens: int = 0
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens + self.tool_use_prompt_tokens

    def as_dict(self) -> dict[str, Any]:
        """Return the usage as the JSON object the API sends (zero details left out, as it does)."""
        out: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.candidates_tokens,
            "totalTokenCount": self.total_tokens,
        }
        if self.cached_tokens:
            out["cachedContentTokenCount"] = self.cached_tokens
        if self.thoughts_tokens:
            out["thoughtsTokenCount"] = self.thoughts_tokens
        if self.tool_use_prompt_tokens:
            out["toolUsePromptTokenCount"] = self.tool_use_prompt_tokens
        return out


ZERO_USAGE = Usage()


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with the Gemini API's JSON error body.

    Attributes:
        status: HTTP status, e.g. 429, 500, 400, 401, 404.
        message: ``error.message``.
        status_name: ``error.status``; defaults to the gRPC name for ``status``.
        retry_after: If set, sent as the ``Retry-After`` header and as a
            ``google.rpc.RetryInfo`` detail (``retryDelay``), as the API does for quota errors.
        reason: If set, an ``ErrorInfo`` detail with this ``reason`` (e.g. ``API_KEY_INVALID``).
        times: How many consecutive model requests get this error before the
            queue moves on; ``None`` makes it permanent.
    """

    status: int
    message: str = "injected error"
    status_name: str | None = None
    retry_after: float | None = None
    reason: str | None = None
    times: int | None = 1

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.reason is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": "googleapis.com",
                }
            )
        if self.retry_after is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{self.retry_after:g}s"}
            )
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": self.status_name or _STATUS_NAMES.get(self.status, "UNKNOWN"),
        }
        if details:
            error["details"] = details
        return {"error": error}

    def headers(self) -> dict[str, str]:
        return retry_after_header(self.retry_after)


#: One part of a model turn: ``{"text": ...}`` or ``{"functionCall": {...}}``.
Part = Mapping[str, Any]
#: A scripted reply: the parts of the model's turn, or an error.
Reply = Sequence[Part] | ErrorReply
#: Chooses the reply to a model request from its JSON body; ``None`` falls through to the script/default.
Responder = Callable[[Mapping[str, Any]], Reply | None]


def text(value: str) -> dict[str, Any]:
    """A text part."""
    return {"text": value}


def function_call(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """A ``functionCall`` part (the CLI runs the tool and sends a ``functionResponse`` back)."""
    return {"functionCall": {"name": name, "args": dict(args)}}


def function_responses(body: Any) -> list[dict[str, Any]]:
    """Every ``functionResponse`` part in a request's ``contents``, in order."""
    found: list[dict[str, Any]] = []
    contents = body.get("contents") if isinstance(body, dict) else None
    for content in contents if isinstance(contents, list) else ():
        for part in content.get("parts") or () if isinstance(content, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                found.append(part["functionResponse"])
    return found


def is_side_request(body: Any) -> bool:
    """Whether a request is one of the CLI's own JSON side calls (next-speaker check, loop check...).

    Those ask for JSON output (``responseMimeType`` / ``responseSchema`` /
    ``responseJsonSchema`` in ``generationConfig``); the agent's own turns never do.
    """
    config = body.get("generationConfig") if isinstance(body, dict) else None
    if not isinstance(config, dict):
        return False
    return bool(
        config.get("responseSchema")
        or config.get("responseJsonSchema")
        or config.get("responseMimeType") == "application/json"
    )


def _chunk(model: str, parts: Sequence[Part], *, finish: bool, usage: Usage | None, response_id: str) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [dict(p) for p in parts]}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
    if usage is not None:
        out["usageMetadata"] = usage.as_dict()
    return out


def _stream(model: str, parts: Sequence[Part], usage: Usage) -> Iterator[tuple[None, dict[str, Any]]]:
    """The SSE chunks of one streamed reply: text split in two, function calls whole, usage on the last."""
    response_id = new_id("")
    pieces: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part.get("text"), str):
            pieces.extend({**part, "text": piece} for piece in halves(part["text"]) or [""])
        else:
            pieces.append(dict(part))
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        yield None, _chunk(model, [piece], finish=last, usage=usage if last else None, response_id=response_id)


class GeminiWireServer(ScriptedServer[ErrorReply, Usage, Reply]):
    """A threaded Gemini API fake on ``127.0.0.1`` and a free port.

    Args:
        reply_text: Text of the reply when neither the responder nor the script chooses it.
        usage: Usage reported for model requests whose model has no entry in ``usage_by_model``.
        usage_by_model: Per-model usage (exact model name).
        script: Replies used one per agent request, in order, before the default.
        responder: Optional callback choosing a reply from the request body
            (consulted before the script; ``None`` falls through).
        side_reply: The JSON text answered to the CLI's own side calls.
        side_usage: The usage reported for them.
        errors: Error replies consumed in order by model requests before anything else.
        models: If set, the only models served; others get a 404.
        served_model: Maps a requested model to the ``modelVersion`` the reply names.
        api_key: If set, a request with another key gets a 400 ``API_KEY_INVALID``.
    """

    thread_name = "gemini-wire"

    def __init__(
        self,
        *,
        side_reply: str = '{"reasoning": "The model finished its turn.", "next_speaker": "user"}',
        side_usage: Usage = ZERO_USAGE,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.side_reply = side_reply
        self.side_usage = side_usage

    def default_usage(self) -> Usage:
        return Usage(prompt_tokens=10, candidates_tokens=5)

    @property
    def base_url(self) -> str:
        """The value for ``GOOGLE_GEMINI_BASE_URL``: ``http://host:port`` (the CLI adds ``/v1beta``)."""
        return self.root_url

    def agent_requests(self) -> list[RecordedRequest]:
        """The model requests of the agent's own turns (side calls left out)."""
        return [r for r in self.model_requests() if not is_side_request(r.body)]

    def returned_usage(self) -> Usage:
        """The sum of the usage of every successful model reply sent (side calls included)."""
        return self._usage_sent(ZERO_USAGE)

    def answer(self, ex: Exchange) -> None:
        path = ex.path.rstrip("/")
        match = _MODEL_PATH.match(path)
        if ex.method in ("GET", "HEAD") and path in ("/v1beta/models", "/v1/models"):
            names = self.models if self.models is not None else sorted(self.usage_by_model)
            ex.send_json(200, {"models": [{"name": f"models/{n}", "displayName": n} for n in names]})
        elif ex.method == "POST" and match is not None:
            model, method = match.group(1), match.group(2)
            if method in ("streamGenerateContent", "generateContent"):
                self._generate(ex, model, stream=method == "streamGenerateContent")
            elif method == "countTokens":
                estimate = max(1, len(ex.raw_body) // 4)
                ex.send_json(200, {"totalTokens": estimate}, model=model)
            else:
                ex.send_error(ErrorReply(404, f"Method {method} not found for models/{model}."))
        else:
            ex.send_error(ErrorReply(404, f"no route for {ex.method} {ex.path}"))

    def _generate(self, ex: Exchange, model: str, *, stream: bool) -> None:
        body = ex.body
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            ex.send_error(ErrorReply(400, "body must be a JSON object with contents"), model=model, model_call=True)
            return
        bad_key = ErrorReply(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")
        message_ = f"models/{model} is not found for API version v1beta, or is not supported for generateContent."
        if self._refused(ex, model, bad_key=bad_key, not_served=ErrorReply(404, message_)):
            return
        if is_side_request(body):
            parts: Sequence[Part] = [text(self.side_reply)]
            usage = self.side_usage
        else:
            reply = self._next_reply(body)
            if isinstance(reply, ErrorReply):
                ex.send_error(reply, model=model, model_call=True)
                return
            parts = list(reply) if reply is not None else [text(self.reply_text)]
            usage = self.usage_for(model)
        served = self.served_model.get(model, model)
        if stream:
            ex.send_sse(_stream(served, parts, usage), model=model, usage=usage)
        else:
            payload = _chunk(served, parts, finish=True, usage=usage, response_id=new_id(""))
            ex.send_json(200, payload, model=model, model_call=True, usage=usage)
