"""The `simulated` provider: an offline stand-in for demos and tests.

Everything is a function of (seed, task id, attempt number): the same task gets
the same tokens, latency and failures on every run, on every machine. Outage
windows are measured from the provider's first use, so "down for the middle
twenty seconds of the run" means the same thing in a demo and in a test.
"""

from __future__ import annotations

import random
import threading

from switchyard.catalog import Usage
from switchyard.config.schema import SimulatedProvider
from switchyard.facts import stable_hash
from switchyard.failures import Failure, FailureKind
from switchyard.providers.base import Call, ProviderContext, Result

__all__ = ["Simulated"]

_ERRORS: dict[str, tuple[FailureKind, int | None, str]] = {
    "429": (FailureKind.RATE_LIMITED, 429, "rate limited (simulated)"),
    "500": (FailureKind.SERVER_ERROR, 500, "internal server error (simulated)"),
    "529": (FailureKind.OVERLOADED, 529, "overloaded (simulated)"),
    "402": (FailureKind.OUT_OF_CREDITS, 402, "out of credits (simulated)"),
    "401": (FailureKind.AUTH, 401, "invalid API key (simulated)"),
    "400": (FailureKind.BAD_REQUEST, 400, "bad request (simulated)"),
    "timeout": (FailureKind.TIMEOUT, None, "no response in time (simulated)"),
    "connection": (FailureKind.CONNECTION, None, "connection refused (simulated)"),
}


class Simulated:
    """Deterministic fake provider."""

    def __init__(self, config: SimulatedProvider, context: ProviderContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context
        self._started: float | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release."""

    def _elapsed(self) -> float:
        now = self.context.clock()
        with self._lock:
            if self._started is None:
                self._started = now
            return now - self._started

    def _fail(self, error_kind: str, latency_s: float, call: Call) -> Result:
        kind, status, message = _ERRORS[error_kind]
        if kind is FailureKind.TIMEOUT:
            self.context.sleep(min(call.timeout_s, max(latency_s, 0.0)))
        else:
            self.context.sleep(min(latency_s, 0.05))
        retry_after = self.config.retry_after_s if kind is FailureKind.RATE_LIMITED else None
        return Result(failure=Failure(kind, f"{self.name}: {message}", http_status=status, retry_after_s=retry_after))

    def execute(self, call: Call) -> Result:
        cfg = self.config
        elapsed = self._elapsed()
        rng = random.Random(
            stable_hash(f"{cfg.seed}\x00{self.name}\x00{call.task.id}\x00{call.stage}\x00{call.attempt_number}")
        )
        latency_s = (cfg.latency_ms + rng.random() * cfg.latency_jitter_ms) / 1000
        for outage in cfg.outages:
            if outage.after_s <= elapsed < outage.after_s + outage.for_s:
                return self._fail(outage.error_kind, latency_s, call)
        if rng.random() < cfg.failure_rate:
            if cfg.error_kind == "malformed":
                self.context.sleep(latency_s)
                return Result(
                    failure=Failure(FailureKind.MALFORMED, f"{self.name}: output was not valid JSON (simulated)"),
                    usage_problem="unparseable usage: simulated malformed output",
                )
            return self._fail(cfg.error_kind, latency_s, call)
        self.context.sleep(latency_s)
        usage = Usage(
            input_tokens=rng.randint(*cfg.input_tokens),
            output_tokens=rng.randint(*cfg.output_tokens),
            cache_read_tokens=rng.randint(*cfg.cache_read_tokens),
            cache_write_tokens=rng.randint(*cfg.cache_write_tokens),
        )
        if call.max_output_tokens is not None and usage.output_tokens > call.max_output_tokens:
            usage = Usage(usage.input_tokens, call.max_output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
        text = f"[simulated {call.model}] done: {call.task.title or call.task.id}"
        return Result(
            text=text,
            usage=usage,
            model=call.model,
        )
