"""Run one task: walk the decision's candidates with bounded retries, record every attempt.

Two pieces, so the durable coordinator can reuse them step by step:

* `Failover` is a pure state machine: given the decision and each outcome, it
  says which candidate to call next, after what delay, or that we are done. The
  failure table (`switchyard.failures`) decides between retry, failover, fatal
  and disable.
* `Runner.attempt()` makes one call: it asks the breaker, executes, prices the
  usage with the catalog, writes the ledger row and feeds the breaker. It is
  idempotent on the attempt id: if the ledger already has that attempt (a step
  replayed after a crash), it returns the recorded outcome without calling again.

`Runner.run()` is the loop for one task (used by `switchyard exec`).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from switchyard.budgets import BudgetExceeded, Budgets
from switchyard.config import LoadedConfig
from switchyard.config.provider_kinds import CallShape, worst_case
from switchyard.config.schema import CommandProvider, ProviderConfig
from switchyard.errors import RunError
from switchyard.facts import stable_hash
from switchyard.failures import Failure, FailureKind
from switchyard.health import Health
from switchyard.ledger.store import AttemptRecord, Ledger
from switchyard.providers.base import Call, Provider, ProviderContext, Result, make_provider
from switchyard.redact import Redactor, private_dir, write_private
from switchyard.router import Candidate, Route, Router
from switchyard.task import Task

__all__ = ["AllCandidatesFailed", "AttemptOutcome", "Failover", "Plan", "RunResult", "Runner", "safe_name"]


def safe_name(text: str) -> str:
    """A filesystem-safe version of an id."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"
    return cleaned[:80]


@dataclass(frozen=True)
class Plan:
    """The next call to make."""

    candidate: Candidate
    candidate_index: int
    try_index: int
    attempt_number: int
    delay_s: float = 0.0


@dataclass(frozen=True)
class AttemptOutcome:
    """One attempt as recorded, plus what only the caller needs (text, files)."""

    record: AttemptRecord
    failure: Failure | None
    text: str | None = None
    output_path: Path | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None


class AllCandidatesFailed(RunError):
    """Every candidate failed; the message lists each attempt."""

    def __init__(self, task_id: str, attempts: list[AttemptOutcome], why: str) -> None:
        self.task_id = task_id
        self.attempts = attempts
        lines = [f"task {task_id}: {why}; {len(attempts)} attempt(s):"]
        for a in attempts:
            r = a.record
            lines.append(
                f"  {r.attempt_id}: {r.model} via {r.provider}: {r.status}"
                + (f" [{r.error_class}] {r.error_message or ''}" if r.error_class else "")
            )
        super().__init__("\n".join(lines))


@dataclass
class RunResult:
    """The outcome of running one task (one stage)."""

    task: Task
    route: Route
    attempts: list[AttemptOutcome] = field(default_factory=list)
    why: str = ""
    blocked: BudgetExceeded | None = None

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def final(self) -> AttemptOutcome | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def cost_usd(self) -> Decimal:
        return sum((a.record.cost_usd for a in self.attempts), Decimal(0))

    def raise_for_failure(self) -> None:
        """Raise `AllCandidatesFailed` unless the task succeeded."""
        if not self.ok:
            raise AllCandidatesFailed(self.task.id, self.attempts, self.why or "no candidate succeeded")


class Failover:
    """Which candidate to call next. Pure: no I/O, no clock."""

    def __init__(
        self,
        route: Route,
        loaded: LoadedConfig,
        *,
        max_attempts: int | None = None,
        jitter_key: str = "",
    ) -> None:
        self.candidates = list(route.candidates)
        self.loaded = loaded
        self.max_attempts = max_attempts or loaded.runner.max_attempts
        self.jitter_key = jitter_key or route.task_id
        self.index = 0
        self.tries = 0
        self.attempts = 0
        self.delay_s = 0.0
        self.done = False
        self.why = ""
        self._dead_providers: set[str] = set()

    def next(self) -> Plan | None:
        """The next call, or None when there is nothing left to try."""
        if self.done:
            return None
        if self.attempts >= self.max_attempts:
            self.why = f"gave up after {self.attempts} attempts (runner.max_attempts)"
            self.done = True
            return None
        while self.index < len(self.candidates) and self.candidates[self.index].provider in self._dead_providers:
            self.index += 1
            self.tries = 0
        if self.index >= len(self.candidates):
            self.why = self.why or "every candidate failed"
            self.done = True
            return None
        plan = Plan(self.candidates[self.index], self.index, self.tries, self.attempts, self.delay_s)
        self.delay_s = 0.0
        return plan

    def wait(self) -> None:
        """The planned call could not start yet (budget): plan it again later; not an attempt."""

    def again(self) -> None:
        """The planned call was interrupted (shutdown): plan the same candidate again; it counts as an attempt."""
        self.attempts += 1

    def skip(self, reason: str) -> None:
        """The planned candidate cannot be called (its circuit is open): move on without an attempt."""
        self.why = reason
        self._advance()

    def observe(self, failure: Failure | None) -> None:
        """Feed the outcome of the planned call."""
        self.attempts += 1
        if failure is None:
            self.done = True
            self.why = ""
            return
        provider = self.candidates[self.index].provider
        policy = failure.policy
        self.why = f"last failure: {failure.kind}"
        if policy.action == "fatal":
            self.why = f"{failure.kind}: {policy.hint}"
            self.done = True
        elif policy.action == "retry":
            max_retries = self.loaded.providers[provider].max_retries
            if self.tries < max_retries:
                self.tries += 1
                self.delay_s = self._backoff(failure)
            else:
                self._advance()
        else:  # failover, disable: this provider's account is unusable for now
            if policy.action == "disable" or failure.kind is FailureKind.OUT_OF_CREDITS:
                self._dead_providers.add(provider)
            self._advance()

    def _advance(self) -> None:
        self.index += 1
        self.tries = 0
        self.delay_s = 0.0

    def _backoff(self, failure: Failure) -> float:
        runner = self.loaded.runner
        provider = self.loaded.providers[self.candidates[self.index].provider]
        if failure.retry_after_s is not None:
            return min(failure.retry_after_s, provider.retry_after_cap_s)
        base = runner.backoff_base_s * (2 ** (self.tries - 1))
        # Deterministic jitter (0.8x-1.2x) so replays wait the same and tests are repeatable.
        jitter = 0.8 + (stable_hash(f"{self.jitter_key}:{self.attempts}") % 1000) / 2500
        return float(min(runner.backoff_max_s, base * jitter))


class Runner:
    """Executes calls for one config: providers, breaker, catalog, ledger."""

    def __init__(
        self,
        loaded: LoadedConfig,
        ledger: Ledger,
        *,
        health: Health | None = None,
        context: ProviderContext | None = None,
        providers: Mapping[str, Provider] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        runs_dir: Path | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.loaded = loaded
        self.ledger = ledger
        self.router = Router(loaded)
        if context is None:
            names = [p.api_key_env for p in loaded.providers.values() if p.api_key_env]
            context = ProviderContext(redactor=Redactor.from_env(names))
        self.context = context
        self.health = health or Health(loaded, ledger, env=context.env)
        self._providers: dict[str, Provider] = dict(providers or {})
        self.sleep = sleep
        self.wall_clock = wall_clock
        self.runs_dir = runs_dir or loaded.resolve(loaded.runner.runs_dir)
        if budgets is None and loaded.budgets.all_limits():
            budgets = Budgets(loaded, ledger, clock=wall_clock, tz=self.router.tz)
        self.budgets = budgets

    def close(self) -> None:
        for p in self._providers.values():
            p.close()

    def provider(self, name: str) -> Provider:
        """The provider object for `name`, built on first use."""
        p = self._providers.get(name)
        if p is None:
            p = make_provider(self.loaded.providers[name], self.context)
            self._providers[name] = p
        return p

    def decide(
        self,
        task: Task,
        *,
        stage: str | None = None,
        workflow: str | None = None,
        requires: tuple[str, ...] = (),
        loop_count: int = 0,
    ) -> Route:
        """Route `task` with the providers' current health and the budget facts."""
        budget = self.budgets.view() if self.budgets is not None else None
        now = datetime.fromtimestamp(self.wall_clock(), UTC)
        return self.router.decide(
            task,
            stage=stage,
            workflow=workflow,
            provider_status=self.health.status(),
            budget=budget,
            now=now,
            requires=requires,
            loop_count=loop_count,
        ).route()

    def hold_amount(self, call: Call, provider: ProviderConfig) -> Decimal:
        """The worst case a call can cost, to reserve before it starts (each kind's, from its registry entry)."""
        assert self.budgets is not None
        at = datetime.fromtimestamp(self.wall_clock(), UTC)
        shape = CallShape(self.loaded.catalog[call.model], call.prompt, call.max_output_tokens, at, self.budgets.config)
        return worst_case(provider, shape)

    # one attempt --------------------------------------------------------------------
    def attempt(
        self,
        task: Task,
        plan: Plan,
        route: Route,
        *,
        prompt: str,
        attempt_id: str,
        stage: str | None = None,
        workflow: str | None = None,
        run_id: str | None = None,
        workdir: Path | None = None,
        timeout_s: float | None = None,
        max_cost_usd: Decimal | None = None,
        hold_id: str | None = None,
        first: bool = False,
        failover_from: str | None = None,
        completes: bool = False,
        known_new: bool = False,
    ) -> AttemptOutcome:
        """Make (or replay) one call and record it.

        `first` marks the task's very first attempt; `completes` says that success finishes the
        task; `known_new` skips the replay lookup when the caller has just done it.
        """
        existing = None if known_new else self.ledger.get(attempt_id)
        run_dir = self.runs_dir / safe_name(task.id) / safe_name(attempt_id)
        if existing is not None:
            return self._replayed(existing, run_dir)
        cand = plan.candidate
        model = self.loaded.catalog[cand.model]
        pcfg = self.loaded.providers[cand.provider]
        budgeted = self.budgets is not None and self.budgets.active
        max_output = model.max_output_tokens
        if budgeted and max_output is None and not isinstance(pcfg, CommandProvider):
            # With a budget the output must have a ceiling, or the worst case is unbounded.
            max_output = getattr(pcfg, "max_output_tokens", None) or self.loaded.budgets.default_max_output_tokens
        call = Call(
            attempt_id=attempt_id,
            task=task,
            model=cand.model,
            provider_model=model.provider_model or cand.model,
            prompt=prompt,
            run_dir=run_dir,
            timeout_s=timeout_s or pcfg.timeout_s or self.loaded.runner.default_timeout_s,
            stage=stage,
            workdir=workdir,
            max_output_tokens=max_output,
            max_cost_usd=max_cost_usd if max_cost_usd is not None else pcfg.max_cost_usd,
            attempt_number=plan.attempt_number,
        )
        hold = None
        if budgeted:
            assert self.budgets is not None
            counters = self.budgets.counters(
                provider=cand.provider, model=cand.model, labels=task.labels, workflow=workflow
            )
            if counters:
                # Raises BudgetExceeded: a call that does not fit is not started.
                hold = self.budgets.reserve(attempt_id, task.id, self.hold_amount(call, pcfg), counters)
                hold_id = hold.hold_id
        started = self.wall_clock()
        t0 = time.perf_counter()
        try:
            result = self.provider(cand.provider).execute(call)
        except BaseException:
            if hold is not None:
                assert self.budgets is not None
                self.budgets.release(hold.hold_id)
            raise
        latency_ms = int((time.perf_counter() - t0) * 1000)
        record = self._record(
            task, plan, route, call, result, started, latency_ms, stage, workflow, run_id, prompt, hold_id
        )
        record = replace(
            record,
            first=first,
            failover_from=failover_from if plan.candidate_index else None,
            completed=completes and result.ok,
        )
        if result.ok and result.text is not None:
            private_dir(run_dir)
            write_private(run_dir / "result.txt", self.context.redactor.redact(result.text).encode("utf-8"))
        self.ledger.record(record)
        if hold is not None:
            assert self.budgets is not None
            if result.usage is not None:
                self.budgets.settle(hold.hold_id, record.cost_usd)
            else:  # nothing known to have been spent (killed, refused, unreadable output)
                self.budgets.release(hold.hold_id)
        self.health.record(cand.provider, result.failure)
        return AttemptOutcome(record, result.failure, result.text, result.output_path)

    def _replayed(self, rec: AttemptRecord, run_dir: Path) -> AttemptOutcome:
        failure = None
        if not rec.ok:
            known = {k.value for k in FailureKind}
            kind = FailureKind(rec.error_class) if rec.error_class in known else FailureKind.CLI_ERROR
            failure = Failure(kind, rec.error_message or "", rec.http_status, None, rec.exit_code)
        text_file = run_dir / "result.txt"
        text = text_file.read_text(encoding="utf-8") if text_file.exists() else None
        out = run_dir / "output.txt"
        return AttemptOutcome(rec, failure, text, out if out.exists() else None, replayed=True)

    def _record(
        self,
        task: Task,
        plan: Plan,
        route: Route,
        call: Call,
        result: Result,
        started: float,
        latency_ms: int,
        stage: str | None,
        workflow: str | None,
        run_id: str | None,
        prompt: str,
        hold_id: str | None,
    ) -> AttemptRecord:
        cand = plan.candidate
        usage = result.usage
        cost = Decimal(0)
        if usage is not None:
            cost = self.loaded.catalog.cost(cand.model, usage, at=datetime.fromtimestamp(started, UTC))
        failure = result.failure
        status = "ok"
        if failure is not None:
            status = {FailureKind.TIMEOUT: "timeout", FailureKind.INTERRUPTED: "interrupted"}.get(
                failure.kind, "failed"
            )
        encoded = prompt.encode("utf-8")
        redact = self.context.redactor.redact
        return AttemptRecord(
            attempt_id=call.attempt_id,
            task_id=task.id,
            provider=cand.provider,
            model=cand.model,
            status=status,
            started_ms=int(started * 1000),
            ended_ms=int(started * 1000) + latency_ms,
            stage=stage,
            workflow=workflow,
            rule=route.rule,
            reason=route.reason,
            experiment=route.experiment,
            arm=route.arm,
            candidate_index=plan.candidate_index,
            try_index=plan.try_index,
            task_retry=task.retry_count,
            priority=task.priority,
            labels=task.labels,
            input_tokens=usage.uncached_input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cache_read_tokens=usage.cache_read_tokens if usage else 0,
            cache_write_tokens=usage.cache_write_tokens if usage else 0,
            reasoning_tokens=usage.reasoning_tokens if usage else 0,
            cost_usd=cost,
            reported_cost_usd=result.reported_cost_usd,
            latency_ms=latency_ms,
            error_class=str(failure.kind) if failure else None,
            error_message=redact(failure.message)[:2000] if failure else None,
            http_status=failure.http_status if failure else None,
            exit_code=result.exit_code,
            usage_problem=result.usage_problem,
            prompt_bytes=len(encoded),
            prompt_sha256=hashlib.sha256(encoded).hexdigest(),
            run_id=run_id,
            hold_id=hold_id,
        )

    # the loop ---------------------------------------------------------------------------
    def run(
        self,
        task: Task,
        *,
        prompt: str,
        stage: str | None = None,
        workflow: str | None = None,
        run_id: str | None = None,
        route: Route | None = None,
        workdir: Path | None = None,
    ) -> RunResult:
        """Route `task` (unless `route` is given) and try candidates until one succeeds."""
        if route is None:
            route = self.decide(task, stage=stage, workflow=workflow)
        run_id = run_id or uuid.uuid4().hex[:12]
        failover = Failover(route, self.loaded, jitter_key=run_id)
        result = RunResult(task, route)
        previous: str | None = None
        while (plan := failover.next()) is not None:
            if not self.health.allow(plan.candidate.provider):
                failover.skip(f"circuit open for {plan.candidate.provider}")
                continue
            if plan.delay_s > 0:
                self.sleep(plan.delay_s)
            attempt_id = f"{run_id}:{safe_name(task.id)}:{stage or '-'}:{plan.attempt_number}"
            try:
                outcome = self.attempt(
                    task,
                    plan,
                    route,
                    prompt=prompt,
                    attempt_id=attempt_id,
                    stage=stage,
                    workflow=workflow,
                    run_id=run_id,
                    workdir=workdir,
                    first=plan.attempt_number == 0,
                    failover_from=previous,
                )
            except BudgetExceeded as exc:
                if exc.on_exceed == "downgrade":
                    failover.skip(str(exc))
                    continue
                result.why = str(exc)
                result.blocked = exc
                return result
            result.attempts.append(outcome)
            previous = plan.candidate.provider
            failover.observe(outcome.failure)
        if result.ok and result.final is not None:
            self.ledger.mark_completed(result.final.record.attempt_id)
        result.why = failover.why
        return result
