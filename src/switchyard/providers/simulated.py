"""The `simulated` provider: an offline stand-in for demos and tests.

Everything is a function of (seed, task id, stage, model, retry count, attempt
number): the same task gets the same tokens, latency, failures and answers on
every run, on every machine, in whatever order a pool of workers reaches it.
Outage windows are the one exception: they are measured from the provider's
first use, so "down for the middle twenty seconds of the run" means the same
thing in a demo and in a test.

## Quality: a world of task difficulty × model skill

With `resolve_rate`, an answer may not resolve its task. The model is a
normal-ogive item-response model (IRT):

    resolved  <=>  skill[model] - difficulty[task] + noise > 0,     noise ~ N(0, 1)

* `difficulty[task] = difficulty_sd * z(task id)`: a standard normal draw from a
  stable hash of the task id and `world_seed`, so every provider sharing the
  world seed sees the same task as equally hard.
* `skill[model] = sqrt(1 + difficulty_sd²) * Φ⁻¹(resolve_rate[model])`: over all
  tasks `skill - difficulty + noise` is normal with variance `1 + difficulty_sd²`,
  so the model resolves exactly `resolve_rate[model]` of them, in expectation.
  Given a task, one attempt resolves it with probability `Φ(skill - difficulty)`.
* `noise = sqrt(persistence) * luck(task, stage, model) + sqrt(1 - persistence)
  * fresh(task, stage, model, retry count, attempt)`: part of a model's luck on a
  task stays with it across its attempts (a model that misread the task tends to
  misread it again), the rest is drawn anew per attempt.

Calibration. The rates are published aggregate figures: the demo's come from
the SWE-bench bash-only leaderboard (one agent scaffold, 25 models, 500 tasks of
SWE-bench Verified; per model, the share of tasks resolved). The default
`difficulty_sd = 2.4` was fitted (least squares, in tasks) to three aggregate
figures of the same leaderboard, given its 25 per-model rates: the tasks no model
resolves (64 of 500), the cascade DeepSeek V3.2 Reasoner → Claude 4.5 Opus
(77.6 % resolved) and DeepSeek V3.2 Reasoner → GPT-5 mini → Claude 4.5 Opus
(79.4 %); this model gives 62, 77.1 % and 78.7 %. `persistence` is an assumption, not a
fit: the leaderboard ran each model once per task, so it cannot say how much of
a failure repeats; 0.5 sits between fresh luck on every attempt (0) and the
fixed per-model outcome an outcomes table records (1). No per-task data is in
this package.

## Who judges an answer: the seam for verification

Every answer carries its verdict: the text ends with one JSON line
`{"simulated": {"task": ..., "model": ..., "stage": ..., "resolved": true}}`
(`verdict(text)` reads it back), and with `verdict = "verify"` the simulated
agent also writes that JSON to `simulated-answer.json` in the task's workdir,
where a verify command can read it. Then:

* `verdict = "provider"` (the default): the provider judges its own answer. An
  unresolved one is a failed attempt of kind `unresolved` (tokens paid), which
  the failure table makes `fatal` for the route: the coordinator escalates the
  task (`retry_count + 1`) and routes it again, like any failed route.
* `verdict = "verify"`: every answer is a successful call; judging it is left to
  a verification step (a `[verify]` check that reads the marker or the file).
"""

from __future__ import annotations

import json
import math
import random
import threading
from statistics import NormalDist

from switchyard.catalog import Usage
from switchyard.config.provider_kinds import scaled
from switchyard.config.schema import SimulatedProvider
from switchyard.facts import stable_hash
from switchyard.failures import Failure, FailureKind
from switchyard.providers.base import Call, ProviderContext, Result

__all__ = ["ANSWER_FILE", "Simulated", "World", "verdict"]

ANSWER_FILE = "simulated-answer.json"  # written to the workdir with verdict = "verify"
_MARK = "simulated"
_SPACE = 2.0**64
_NORMAL = NormalDist()

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


def _z(key: str) -> float:
    """A standard normal draw from a stable hash of `key`."""
    return _NORMAL.inv_cdf((stable_hash(key) + 0.5) / _SPACE)


class World:
    """Who resolves what: task difficulty × model skill (see the module's docstring)."""

    def __init__(
        self, rates: dict[str, float], *, difficulty_sd: float = 2.4, persistence: float = 0.5, seed: int = 0
    ) -> None:
        self.difficulty_sd = difficulty_sd
        self.seed = seed
        spread = math.sqrt(1 + difficulty_sd * difficulty_sd)
        self.skill = {model: spread * _NORMAL.inv_cdf(rate) for model, rate in rates.items()}
        self._kept = math.sqrt(persistence)
        self._fresh = math.sqrt(1 - persistence)

    @classmethod
    def of(cls, config: SimulatedProvider) -> World:
        return cls(
            config.resolve_rate,
            difficulty_sd=config.difficulty_sd,
            persistence=config.persistence,
            seed=config.world_seed,
        )

    def difficulty(self, task_id: str) -> float:
        return self.difficulty_sd * _z(f"difficulty\x00{self.seed}\x00{task_id}")

    def chance(self, task_id: str, model: str) -> float:
        """The probability that one attempt of `model` resolves the task."""
        return _NORMAL.cdf(self.skill[model] - self.difficulty(task_id))

    def resolves(self, task_id: str, stage: str | None, model: str, retry_count: int, attempt: int) -> bool:
        """Does this attempt of `model` resolve the task? A pure function of its arguments and the world."""
        where = f"{self.seed}\x00{task_id}\x00{stage or ''}\x00{model}"
        noise = self._kept * _z(f"luck\x00{where}") + self._fresh * _z(
            f"attempt\x00{where}\x00{retry_count}\x00{attempt}"
        )
        return self.skill[model] - self.difficulty(task_id) + noise > 0


def verdict(text: str | None) -> bool | None:
    """The verdict a simulated answer carries (its last line), or None for any other text."""
    if not text:
        return None
    last = text.rstrip("\n").rpartition("\n")[2]
    try:
        data = json.loads(last)
    except ValueError:
        return None
    mark = data.get(_MARK) if isinstance(data, dict) else None
    resolved = mark.get("resolved") if isinstance(mark, dict) else None
    return resolved if isinstance(resolved, bool) else None


class Simulated:
    """Deterministic fake provider."""

    def __init__(self, config: SimulatedProvider, context: ProviderContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context
        self.world = World.of(config) if config.resolve_rate else None
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
        task = call.task
        rng = random.Random(
            stable_hash(
                f"{cfg.seed}\x00{self.name}\x00{task.id}\x00{call.stage}\x00{call.model}"
                f"\x00{task.retry_count}\x00{call.attempt_number}"
            )
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
        scale = cfg.token_scale.get(call.model, 1.0)
        usage = Usage(
            input_tokens=scaled(rng.randint(*cfg.input_tokens), scale),
            output_tokens=scaled(rng.randint(*cfg.output_tokens), scale),
            cache_read_tokens=scaled(rng.randint(*cfg.cache_read_tokens), scale),
            cache_write_tokens=scaled(rng.randint(*cfg.cache_write_tokens), scale),
        )
        if call.max_output_tokens is not None and usage.output_tokens > call.max_output_tokens:
            usage = Usage(usage.input_tokens, call.max_output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
        resolved = self.world is None or self.world.resolves(
            task.id, call.stage, call.model, task.retry_count, call.attempt_number
        )
        answer = {_MARK: {"task": task.id, "model": call.model, "stage": call.stage, "resolved": resolved}}
        marker = json.dumps(answer, sort_keys=True)
        what = "resolved" if resolved else "not resolved"
        text = f"[simulated {call.model}] {task.title or task.id}: {what}\n{marker}\n"
        if cfg.verdict == "verify" and call.workdir is not None:
            # Like an agent, it leaves its work in the workdir (the task's worktree), for a verify command.
            call.workdir.mkdir(parents=True, exist_ok=True)
            (call.workdir / ANSWER_FILE).write_text(marker + "\n", encoding="utf-8")
        if not resolved and cfg.verdict == "provider":
            message = f"{self.name}: {call.model} answered, but the answer did not resolve the task (simulated)"
            return Result(text=text, usage=usage, model=call.model, failure=Failure(FailureKind.UNRESOLVED, message))
        return Result(text=text, usage=usage, model=call.model)
