"""HTTP providers: OpenAI-compatible chat completions and the Anthropic Messages API, over httpx.

We are the only retry loop: httpx makes one request per `execute()`. Library
exceptions are translated at this boundary into our failure kinds (timeouts,
refused connections, bodies cut short), and error bodies are read for the
codes that change what to do (`insufficient_quota`, spend limits, overload).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from switchyard.config.provider_kinds import AnthropicProvider, HTTPProvider, OpenAIProvider
from switchyard.failures import Failure, FailureKind, classify_http
from switchyard.providers.base import Call, ProviderContext, Result
from switchyard.usage_parsers import parse_output

__all__ = ["AnthropicMessages", "OpenAIChat", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Transportish(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@contextmanager
def _map_errors(name: str, timeout_s: float) -> Iterator[None]:
    """Translate httpx exceptions into failures (the boundary, as httpx maps httpcore's)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise _Transportish(
            Failure(FailureKind.TIMEOUT, f"{name}: no response within {timeout_s:g}s ({type(exc).__name__})")
        ) from exc
    except httpx.ConnectError as exc:
        raise _Transportish(Failure(FailureKind.CONNECTION, f"{name}: cannot connect: {exc}")) from exc
    except httpx.DecodingError as exc:  # an answer came: the call may have spent
        raise _Transportish(Failure(FailureKind.MALFORMED, f"{name}: response not decodable: {exc}")) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise _Transportish(Failure(FailureKind.TRUNCATED, f"{name}: response cut short: {exc}")) from exc
    except httpx.HTTPError as exc:
        raise _Transportish(Failure(FailureKind.CONNECTION, f"{name}: {type(exc).__name__}: {exc}")) from exc


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(message, code, type) from an OpenAI-, OpenRouter- or Anthropic-style error body."""
    if not isinstance(body, dict):
        return None, None, None
    err = body.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        details = err.get("details")
        if isinstance(details, dict) and isinstance(details.get("error_code"), str):
            code = details["error_code"]
        return (
            str(err.get("message")) if err.get("message") is not None else None,
            str(code) if code is not None else None,
            str(err.get("type")) if err.get("type") is not None else None,
        )
    if isinstance(err, str):
        return err, None, None
    return None, None, None


class _HTTPProvider:
    """Shared request/response handling; subclasses say where and what to send."""

    usage_format = "none"

    def __init__(self, config: HTTPProvider, context: ProviderContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context
        self._client = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s or 600.0, connect=config.connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def _key(self) -> str | None:
        env_name = self.config.api_key_env
        return self.context.env.get(env_name) if env_name else None

    def request(self, call: Call) -> tuple[str, dict[str, str], dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} must say what to send")

    def execute(self, call: Call) -> Result:
        url, headers, body = self.request(call)
        redact = self.context.redactor.redact
        timeout = httpx.Timeout(call.timeout_s, connect=self.config.connect_timeout_s)
        try:
            with _map_errors(self.name, call.timeout_s):
                response = self._client.post(url, json=body, headers=headers, timeout=timeout)
                raw = response.text  # reads the whole body: a cut-off body raises here
        except _Transportish as exc:
            return Result(failure=Failure(exc.failure.kind, redact(exc.failure.message)))
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status >= 400:
            try:
                payload: Any = json.loads(raw)
            except ValueError:
                payload = None
            message, code, etype = _error_fields(payload)
            text = message or raw[:500] or response.reason_phrase
            return Result(
                failure=Failure(
                    classify_http(status, code, etype),
                    redact(f"HTTP {status}: {text}")[:2000],
                    http_status=status,
                    retry_after_s=retry_after,
                )
            )
        parsed = parse_output(self.usage_format, raw)
        if parsed.is_error:
            # An error delivered in a 200 body (OpenRouter does this once output has started).
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            _, code, etype = _error_fields(payload)
            kind = classify_http(parsed.error_status or 500, code, etype)
            return Result(
                usage=parsed.usage,
                failure=Failure(
                    kind, redact(parsed.error_message or "error in a 200 response")[:2000], http_status=status
                ),
            )
        if parsed.usage is None and parsed.text is None:
            return Result(
                failure=Failure(
                    FailureKind.MALFORMED, redact(parsed.problem or "unreadable response")[:2000], http_status=status
                ),
                usage_problem=parsed.problem,
            )
        return Result(
            text=parsed.text,
            usage=parsed.usage,
            reported_cost_usd=parsed.reported_cost_usd,
            usage_problem=parsed.problem,
            model=parsed.model,
        )


class OpenAIChat(_HTTPProvider):
    """`POST {base_url}/chat/completions` (OpenAI, OpenRouter, xAI, DeepSeek, Groq, Together, Ollama, vLLM)."""

    usage_format = "openai-json"

    def __init__(self, config: OpenAIProvider, context: ProviderContext) -> None:
        super().__init__(config, context)
        self.openai = config

    def request(self, call: Call) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = dict(self.openai.headers)
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body: dict[str, Any] = {
            "model": call.provider_model,
            "messages": [{"role": "user", "content": call.prompt}],
        }
        max_tokens = call.max_output_tokens or self.openai.max_output_tokens
        if max_tokens:
            body["max_tokens"] = max_tokens
        return self.openai.base_url.rstrip("/") + "/chat/completions", headers, body


class AnthropicMessages(_HTTPProvider):
    """`POST {base_url}/v1/messages`."""

    usage_format = "anthropic-json"

    def __init__(self, config: AnthropicProvider, context: ProviderContext) -> None:
        super().__init__(config, context)
        self.anthropic = config

    def request(self, call: Call) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {"anthropic-version": self.anthropic.anthropic_version, **self.anthropic.headers}
        key = self._key()
        if key:
            headers["x-api-key"] = key
        body = {
            "model": call.provider_model,
            "max_tokens": call.max_output_tokens or self.anthropic.max_output_tokens,
            "messages": [{"role": "user", "content": call.prompt}],
        }
        base = self.anthropic.base_url.rstrip("/")
        return (base if base.endswith("/v1") else base + "/v1") + "/messages", headers, body
