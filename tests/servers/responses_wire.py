"""A local, stdlib-only fake of the OpenAI Responses API, as the Codex CLI speaks it.

Point a Codex model provider at :attr:`ResponsesWireServer.base_url` (it ends
in ``/v1``, like ``https://api.openai.com/v1``) with ``wire_api="responses"``
and every request lands here.

What it does:

* ``POST /v1/responses`` answers with Server-Sent Events, as the real API does
  for ``"stream": true`` (Codex always streams): ``response.created``, then for
  each output item ``response.output_item.added``, its deltas
  (``response.output_text.delta`` for a message,
  ``response.function_call_arguments.delta`` for a function call) and
  ``response.output_item.done``, then ``response.completed`` whose
  ``response.usage`` carries the token counts (cached and reasoning details
  included). A request without ``"stream": true`` gets the ``response`` object
  as one JSON document.
* What each reply holds is scripted: ``script`` is a list of replies used one
  per request (a list of output items, e.g. ``[function_call(...)]`` then
  ``[message("done")]``, or an :class:`ErrorReply`), ``responder`` can choose
  from the request body, and otherwise the reply is one message with
  ``reply_text``. :func:`shell_call` builds a call of whichever shell tool the
  client offered, so a test can have the CLI run a command for real.
* Usage is configurable, globally and per model; ``served_model`` makes the
  reply name another model than the one asked for (as a router would).
* Errors in the API's JSON shape (429 with ``Retry-After``, 500, 401, ...) can
  be queued for the next N requests or made permanent; with ``api_key`` set a
  wrong key gets a 401, and with ``models`` set an unknown model a 404
  ``model_not_found``.
* ``GET /v1/models`` answers both list shapes (``data`` for the public API,
  ``models`` for Codex's own catalogue request); other paths get a 404.
* Every request is recorded (see :class:`servers._wire.RecordedRequest`).

Example::

    with ResponsesWireServer(script=[[ShellCall("touch x")], [message("done")]]) as srv:
        ...  # run codex with base_url=srv.base_url
        assert [r.status for r in srv.model_requests()] == [200, 200]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servers._wire import Exchange, RecordedRequest, ScriptedServer, TokenCounts, halves, new_id, retry_after_header

__all__ = [
    "ZERO_USAGE",
    "ErrorReply",
    "Item",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ResponsesWireServer",
    "ShellCall",
    "Usage",
    "function_call",
    "message",
    "reasoning",
    "shell_call",
    "tool_outputs",
]

#: ``(error.type, error.code)`` sent by default for each HTTP status.
_ERROR_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    503: ("server_error", "service_unavailable"),
}


@dataclass(frozen=True)
class Usage(TokenCounts):
    """A Responses API ``usage`` object.

    ``input_tokens`` is the whole prompt, cache reads included; ``output_tokens``
    includes reasoning (the OpenAI convention).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        """Return the usage as the JSON object the API sends."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }


ZERO_USAGE = Usage()


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with the API's JSON error body.

    Attributes:
        status: HTTP status, e.g. 429, 500, 401, 404.
        message: ``error.message``.
        code: ``error.code``; defaults to one fitting ``status``
            (``rate_limit_exceeded``, ``invalid_api_key``, ``model_not_found``...).
        error_type: ``error.type``; defaults to one fitting ``status``.
        retry_after: If set, sent as the ``Retry-After`` header (seconds).
        times: How many consecutive model requests get this error before the
            queue moves on; ``None`` makes it permanent.
    """

    status: int
    message: str = "injected error"
    code: str | None = None
    error_type: str | None = None
    retry_after: float | None = None
    times: int | None = 1

    def body(self) -> dict[str, Any]:
        default_type, default_code = _ERROR_DEFAULTS.get(self.status, ("server_error", "server_error"))
        return {
            "error": {
                "message": self.message,
                "type": self.error_type or default_type,
                "param": None,
                "code": self.code or default_code,
            }
        }

    def headers(self) -> dict[str, str]:
        return retry_after_header(self.retry_after)


#: One output item of a response (``message``, ``function_call``, ``reasoning``).
Item = Mapping[str, Any]


@dataclass(frozen=True)
class ShellCall:
    """A call of the client's shell tool, built from the request that offered it (see :func:`shell_call`)."""

    command: str
    workdir: str | None = None


#: A scripted reply: output items, a shell call to fit to the request, or an error.
Reply = Sequence[Item | ShellCall] | ErrorReply
#: Chooses the reply to a request from its JSON body; ``None`` falls through to the script/default.
Responder = Callable[[Mapping[str, Any]], Reply | None]


def message(text: str) -> dict[str, Any]:
    """An assistant ``message`` item with one ``output_text`` part."""
    return {
        "type": "message",
        "id": new_id("msg_"),
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(name: str, arguments: Mapping[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    """A ``function_call`` item; ``arguments`` is sent as a JSON string, as the API does."""
    return {
        "type": "function_call",
        "id": new_id("fc_"),
        "status": "completed",
        "call_id": call_id or new_id("call_"),
        "name": name,
        "arguments": arguments if isinstance(arguments, str) else json.dumps(dict(arguments)),
    }


def reasoning(summary: str) -> dict[str, Any]:
    """A ``reasoning`` item with one summary part."""
    return {
        "type": "reasoning",
        "id": new_id("rs_"),
        "summary": [{"type": "summary_text", "text": summary}],
    }


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            name = tool.get("name") or (tool.get("function") or {}).get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def shell_call(body: Mapping[str, Any], command: str, workdir: str | None = None) -> dict[str, Any]:
    """A ``function_call`` of the shell tool that the request ``body`` offered, running ``command``.

    Codex offers ``exec_command`` (``cmd``: a string), ``shell_command``
    (``command``: a string) or ``shell`` (``command``: an argv list) depending
    on the model's family; the call is built for whichever came.

    Raises:
        LookupError: the request offered no shell tool.
    """
    names = _tool_names(body)
    if "exec_command" in names:
        args: dict[str, Any] = {"cmd": command}
        if workdir:
            args["workdir"] = workdir
        return function_call("exec_command", args)
    if "shell_command" in names:
        args = {"command": command}
        if workdir:
            args["workdir"] = workdir
        return function_call("shell_command", args)
    if "shell" in names:
        args = {"command": ["bash", "-lc", command]}
        if workdir:
            args["workdir"] = workdir
        return function_call("shell", args)
    raise LookupError(f"the request offered no shell tool (tools: {names})")


def tool_outputs(body: Any) -> list[str]:
    """The ``output`` of every ``function_call_output`` item in a request's ``input``."""
    outputs: list[str] = []
    items = body.get("input") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            output = item.get("output")
            if isinstance(output, dict):  # {"content": ..., "success": ...} in some versions
                output = output.get("content")
            if isinstance(output, list):
                output = "".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
            outputs.append(str(output))
    return outputs


def _response(resp_id: str, model: str, status: str, output: Sequence[Item], usage: Usage | None) -> dict[str, Any]:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": [dict(item) for item in output],
        "usage": usage.as_dict() if usage is not None else None,
        "error": None,
        "incomplete_details": None,
    }


def _events(model: str, items: Sequence[Item], usage: Usage) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events of one streamed response, in the order the real API sends them."""
    resp_id = new_id("resp_")
    seq = 0

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        nonlocal seq
        seq += 1
        return kind, {"type": kind, "sequence_number": seq - 1, **fields}

    yield event("response.created", response=_response(resp_id, model, "in_progress", [], None))
    yield event("response.in_progress", response=_response(resp_id, model, "in_progress", [], None))
    for index, item in enumerate(items):
        kind = item.get("type")
        item_id = item.get("id")
        if kind == "message":
            yield event("response.output_item.added", output_index=index, item={**item, "content": []})
            for part_index, part in enumerate(item.get("content") or ()):
                text = str(part.get("text", ""))
                empty = {**part, "text": ""}
                ids = {"item_id": item_id, "output_index": index, "content_index": part_index}
                yield event("response.content_part.added", **ids, part=empty)
                for delta in halves(text):
                    yield event("response.output_text.delta", **ids, delta=delta)
                yield event("response.output_text.done", **ids, text=text)
                yield event("response.content_part.done", **ids, part=dict(part))
        elif kind == "function_call":
            yield event("response.output_item.added", output_index=index, item={**item, "arguments": ""})
            ids = {"item_id": item_id, "output_index": index}
            for delta in halves(str(item.get("arguments", ""))):
                yield event("response.function_call_arguments.delta", **ids, delta=delta)
            yield event("response.function_call_arguments.done", **ids, arguments=item.get("arguments", ""))
        else:
            yield event("response.output_item.added", output_index=index, item=dict(item))
        yield event("response.output_item.done", output_index=index, item=dict(item))
    yield event("response.completed", response=_response(resp_id, model, "completed", items, usage))


class ResponsesWireServer(ScriptedServer[ErrorReply, Usage, Reply]):
    """A threaded OpenAI Responses API fake on ``127.0.0.1`` and a free port.

    Args:
        reply_text: Text of the message sent when neither the responder nor
            the script chooses the reply.
        usage: Usage reported for requests whose model has no entry in ``usage_by_model``.
        usage_by_model: Per-model usage (exact model name).
        script: Replies used one per request, in order, before the default.
        responder: Optional callback choosing a reply from the request body
            (consulted before the script; ``None`` falls through).
        errors: Error replies consumed in order before anything else.
        models: If set, the only models served; others get a 404 ``model_not_found``.
        served_model: Maps a requested model to the one the reply names.
        api_key: If set, a request with another key gets a 401.
    """

    thread_name = "responses-wire"

    def default_usage(self) -> Usage:
        return Usage(input_tokens=10, output_tokens=5)

    @property
    def base_url(self) -> str:
        """The provider base URL: ``http://host:port/v1``."""
        return self.root_url + "/v1"

    def returned_usage(self) -> Usage:
        """The sum of the usage of every successful response sent."""
        return self._usage_sent(ZERO_USAGE)

    def answer(self, ex: Exchange) -> None:
        path = ex.path.rstrip("/")
        if ex.method in ("GET", "HEAD") and path in ("/v1/models", "/models"):
            names = self.models if self.models is not None else sorted(self.usage_by_model)
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "responses-wire"} for n in names]
            ex.send_json(200, {"object": "list", "data": data, "models": []})
        elif ex.method == "POST" and path in ("/v1/responses", "/responses"):
            self._respond(ex)
        else:
            ex.send_error(ErrorReply(404, f"no route for {ex.method} {ex.path}", code="not_found"))

    def _respond(self, ex: Exchange) -> None:
        body = ex.body
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            ex.send_error(ErrorReply(400, "body must be a JSON object with a model"), model_call=True)
            return
        model: str = body["model"]
        message_ = (
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
        )
        text = f"The model `{model}` does not exist or you do not have access to it."
        if self._refused(ex, model, bad_key=ErrorReply(401, message_), not_served=ErrorReply(404, text)):
            return
        reply = self._next_reply(body)
        if isinstance(reply, ErrorReply):
            ex.send_error(reply, model=model, model_call=True)
            return
        items: list[Item] = []
        for entry in reply if reply is not None else [message(self.reply_text)]:
            items.append(shell_call(body, entry.command, entry.workdir) if isinstance(entry, ShellCall) else entry)
        usage = self.usage_for(model)
        served = self.served_model.get(model, model)
        if body.get("stream"):
            # The real API names the model that served the request in this header too.
            ex.send_sse(_events(served, items, usage), model=model, usage=usage, headers={"openai-model": served})
        else:
            payload = _response(new_id("resp_"), served, "completed", items, usage)
            ex.send_json(200, payload, model=model, model_call=True, usage=usage)
