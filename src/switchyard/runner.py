"""Make one call: ask the breaker, reserve the budget, execute, price, record; and `exec`'s loop.

`Runner.attempt()` makes one call for the driver (`switchyard.driver`): it asks
the breaker, reserves the worst case on the budgets, executes, prices the usage
with the catalog and writes the ledger row (with the budget settlement, in one
transaction) and feeds the breaker. It is idempotent on the attempt id: if the
ledger already has that attempt (a step replayed after a crash), it returns the
recorded outcome without calling again.

`Runner.run()` routes one task and drives its candidates (`switchyard exec`);
the coordinator drives the same loop from a DBOS workflow.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from switchyard.budgets import BudgetExceeded, Budgets, exec_owner
from switchyard.config import LoadedConfig
from switchyard.config.provider_kinds import CallShape, worst_case
from switchyard.config.schema import CommandProvider, ProviderConfig
from switchyard.driver import AttemptOutcome, AttemptRequest, Failover, Job, RunResult, Skipped, drive
from switchyard.failures import Failure, FailureKind, may_have_spent
from switchyard.health import Health
from switchyard.ledger.store import AttemptRecord, Ledger
from switchyard.money import usd
from switchyard.providers.base import Call, Provider, ProviderContext, Result, make_provider
from switchyard.redact import Redactor, private_dir, write_private
from switchyard.router import UNAVAILABLE, Candidate, Route, Router
from switchyard.task import Task
from switchyard.verify import Verdict
from switchyard.worktree import path_name

__all__ = ["Runner", "safe_name"]


def safe_name(text: str) -> str:
    """An id as one file name: readable where it can be, and two ids never share one (`worktree.path_name`)."""
    return path_name(text)


def _unpriced(result: Result) -> bool:
    """The call may have spent, and what it spent cannot be read: no usage and no reported cost.

    A success without usage (an HTTP 200 with no `usage`, a CLI with `usage_format = "none"` or no
    usage line, usage lost), and a failure after which model work may have been done (a timeout, a
    CLI that exited non-zero, a cut-off or unreadable answer): `failures.may_have_spent` decides.
    """
    if result.usage is not None or result.reported_cost_usd is not None:
        return False
    return may_have_spent(result.failure)


class Runner:
    """Executes calls for one config: providers, breaker, budgets, catalog, ledger.

    Optional hooks let a host follow along: `on_start(request)` just before a call
    executes (the breaker and the budgets let it through), `verify(request, call)` after
    a call that succeeded (its `Verdict` is the attempt's outcome: a rejected change is
    recorded `rejected` and fails the attempt), and `on_complete(record)` for an attempt
    that completed its task, inside the transaction that writes it (the coordinator marks
    the task done there, so the attempt and the task's state commit together).
    """

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
        on_start: Callable[[AttemptRequest], None] | None = None,
        on_complete: Callable[[AttemptRecord], None] | None = None,
        verify: Callable[[AttemptRequest, Call], Verdict | None] | None = None,
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
            budgets = Budgets(loaded, ledger, clock=wall_clock, tz=self.router.tz, owner=exec_owner())
            budgets.reconcile_dead_execs()  # holds an earlier `exec` on this host was killed with
        self.budgets = budgets
        self.on_start = on_start
        self.on_complete = on_complete
        self.verify = verify
        # The session whose calls are marked in flight (`Ledger.call_started`): set by the coordinator, so a
        # survivor taking this machine over records a call it was killed in as an interrupted attempt.
        self.call_owner: str | None = None

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
        last_outcome: str = "",
        rejected_count: int = 0,
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
            last_outcome=last_outcome,
            rejected_count=rejected_count,
        ).route()

    def hold_amount(self, call: Call, provider: ProviderConfig, at: float | None = None) -> Decimal:
        """The worst case a call can cost, to reserve before it starts (each kind's, from its registry entry).

        It is also what a call whose usage cannot be read is charged.
        """
        when = datetime.fromtimestamp(self.wall_clock() if at is None else at, UTC)
        model = self.loaded.catalog[call.model]
        return worst_case(provider, CallShape(model, call.prompt, call.max_output_tokens, when, self.loaded.budgets))

    # the driver's host --------------------------------------------------------------
    def pause(self) -> None:
        """Nothing holds a plain run back."""

    def attempt(self, request: AttemptRequest) -> AttemptOutcome | Skipped:
        """Make (or replay) one call and record it; `Skipped` if its circuit is open or a budget refuses it."""
        job, plan = request.job, request.plan
        task, cand = job.task, plan.candidate
        run_dir = self.runs_dir / safe_name(task.id) / safe_name(request.attempt_id)
        existing = self.ledger.get(request.attempt_id)
        if existing is not None:
            return self._replayed(existing, run_dir)
        disabled, allowed, probe = self.health.gate(cand.provider)
        if not allowed:
            return self._unavailable(job.route, cand, disabled)
        model = self.loaded.catalog[cand.model]
        pcfg = self.loaded.providers[cand.provider]
        budgeted = self.budgets is not None and self.budgets.active
        max_output = model.max_output_tokens
        if budgeted and max_output is None and not isinstance(pcfg, CommandProvider):
            # With a budget the output must have a ceiling, or the worst case is unbounded.
            max_output = getattr(pcfg, "max_output_tokens", None) or self.loaded.budgets.default_max_output_tokens
        call = Call(
            attempt_id=request.attempt_id,
            task=task,
            model=cand.model,
            provider_model=model.provider_model or cand.model,
            prompt=job.prompt,
            run_dir=run_dir,
            timeout_s=job.timeout_s or pcfg.timeout_s or self.loaded.runner.default_timeout_s,
            stage=job.route.stage,
            workdir=Path(job.workdir) if job.workdir else None,
            max_output_tokens=max_output,
            max_cost_usd=pcfg.max_cost_usd,
            attempt_number=plan.attempt_number,
        )
        hold_id: str | None = None
        hold: Decimal | None = None
        if budgeted:
            assert self.budgets is not None
            counters = self.budgets.counters(
                provider=cand.provider, model=cand.model, labels=task.labels, workflow=job.route.workflow
            )
            if counters:
                hold = self.hold_amount(call, pcfg)
                try:
                    hold_id = self.budgets.reserve(request.attempt_id, task.id, hold, counters).hold_id
                except BudgetExceeded as exc:  # a call that does not fit is not started
                    self.health.free_probe(cand.provider, probe)  # nor does it probe the circuit
                    return Skipped(str(exc), exc.on_exceed)
        try:
            if self.on_start is not None:
                self.on_start(request)
            if self.call_owner is not None:
                self._mark_in_flight(request, call, pcfg, hold_id, hold)
            started = self.wall_clock()
            t0 = time.perf_counter()
            result = self.provider(cand.provider).execute(call)
        except BaseException:
            if hold_id is not None:
                assert self.budgets is not None
                self.budgets.release(hold_id)
            self.health.free_probe(cand.provider, probe)  # no outcome: the next call probes
            raise
        latency_ms = int((time.perf_counter() - t0) * 1000)
        verdict = self.verify(request, call) if result.ok and self.verify is not None else None
        if hold is None and _unpriced(result):
            hold = self.hold_amount(call, pcfg, at=started)
        record = self._record(request, call, result, started, latency_ms, hold_id, verdict, hold)
        failure = result.failure
        if verdict is not None and not verdict.verified:
            kind = FailureKind.REJECTED if verdict.outcome == "rejected" else FailureKind.VERIFY_ERROR
            failure = Failure(kind, record.error_message or "")
        if result.ok and result.text is not None:
            private_dir(run_dir)
            write_private(run_dir / "result.txt", self.context.redactor.redact(result.text).encode("utf-8"))
        # One transaction: the row, the budget settlement and (through on_complete) the task's new
        # state are durable together, or not at all (then a crash before the commit means the call
        # is made again: attempts are at least once, and recorded at most once).
        with self.ledger.db.transaction():
            if self.call_owner is not None:
                self.ledger.call_done(record.attempt_id)
            self.ledger.record(record)
            if hold_id is not None:
                assert self.budgets is not None
                if result.usage is not None or record.cost_basis != "catalog":
                    self.budgets.settle(hold_id, record.cost_usd)  # unreadable usage: settled at the hold
                else:  # nothing can have been spent (refused before any work, failed to start)
                    self.budgets.release(hold_id)
            if record.completed and self.on_complete is not None:
                self.on_complete(record)
        self.health.record(cand.provider, result.failure)  # a rejected change is not the provider failing
        return AttemptOutcome(record, failure, result.text, result.output_path)

    def _mark_in_flight(
        self, request: AttemptRequest, call: Call, pcfg: ProviderConfig, hold_id: str | None, hold: Decimal | None
    ) -> None:
        """Mark the call in flight, with the attempt it is if this session dies during it: interrupted, and
        (a killed call may have spent: failures.may_have_spent) charged its hold."""
        assert self.call_owner is not None
        died = Result(failure=Failure(FailureKind.INTERRUPTED, "its machine died during the call; taken over"))
        worst = hold if hold is not None else self.hold_amount(call, pcfg)
        rec = self._record(request, call, died, self.wall_clock(), 0, hold_id, None, worst)
        self.ledger.call_started(rec, self.call_owner)

    def _unavailable(self, route: Route, cand: Candidate, disabled: str | None) -> Skipped:
        """A candidate that may not be called now: move on, or, when no candidate of the route may, wait.

        A disabled provider is never called. When every candidate is unavailable (disabled, or its
        circuit open) the call blocks, like a blocking budget: `exec` stops with the reason, the
        coordinator marks the task `blocked` and asks again later, so the task spends no attempts
        and resumes once the config, the environment or the provider is fixed.
        """
        health = self.health.explain()
        gone: list[str] = []
        for c in dict.fromkeys(route.candidates):
            h = health.get(c.provider)
            if h is None or h.status not in UNAVAILABLE:
                gone = []
                break
            gone.append(f"{c.model} via {c.provider} is {h.status} ({h.reason})")
        if gone:
            return Skipped("every candidate is unavailable: " + "; ".join(gone), "block")
        if disabled is not None:
            return Skipped(f"{cand.provider} is disabled: {disabled}")
        return Skipped(f"circuit open for {cand.provider}")

    def _replayed(self, rec: AttemptRecord, run_dir: Path) -> AttemptOutcome:
        """The outcome of an attempt the ledger already has, rebuilt from its row and its run directory."""
        failure = None
        if not rec.ok:
            known = {k.value for k in FailureKind}
            kind = FailureKind(rec.error_class) if rec.error_class in known else FailureKind.CLI_ERROR
            failure = Failure(kind, rec.error_message or "", rec.http_status, None, rec.exit_code)
        text_file = run_dir / "result.txt"
        text = text_file.read_text(encoding="utf-8") if text_file.exists() else None
        output = self._output_file(rec.provider, run_dir)
        return AttemptOutcome(rec, failure, text, output, replayed=True)

    def _output_file(self, provider: str, run_dir: Path) -> Path | None:
        """The file the provider's CLI wrote its answer to in `run_dir` (its `output_file`), if it is there."""
        pcfg = self.loaded.providers.get(provider)
        if not isinstance(pcfg, CommandProvider):
            return None
        path = run_dir / pcfg.output_file
        return path if path.exists() else None

    def _record(
        self,
        request: AttemptRequest,
        call: Call,
        result: Result,
        started: float,
        latency_ms: int,
        hold_id: str | None,
        verdict: Verdict | None = None,
        hold: Decimal | None = None,
    ) -> AttemptRecord:
        job, plan = request.job, request.plan
        task, route, cand = job.task, job.route, plan.candidate
        usage = result.usage
        reported = result.reported_cost_usd
        cost, basis, flagged, usage_problem = Decimal(0), "catalog", False, result.usage_problem
        if usage is not None:
            cost = self.loaded.catalog.cost(cand.model, usage, at=datetime.fromtimestamp(started, UTC))
            if reported is not None:
                flagged = abs(reported - cost) > self.loaded.runner.reported_cost_gap * cost
        elif reported is not None:
            cost, basis = reported, "reported"
        elif _unpriced(result):
            assert hold is not None
            cost, basis = hold, "unknown"
            usage_problem = (usage_problem or "no usage reported") + f"; charged its worst case, {usd(hold, 2)}"
        failure = result.failure
        status = "ok"
        if failure is not None:
            status = {FailureKind.TIMEOUT: "timeout", FailureKind.INTERRUPTED: "interrupted"}.get(
                failure.kind, "failed"
            )
        error_class = str(failure.kind) if failure else None
        redact = self.context.redactor.redact
        error_message = redact(failure.message)[:2000] if failure else None
        if verdict is not None and not verdict.verified:
            status = "rejected" if verdict.outcome == "rejected" else "failed"
            error_class = str(FailureKind.REJECTED if verdict.outcome == "rejected" else FailureKind.VERIFY_ERROR)
            error_message = redact(f"{verdict.check}: {verdict.detail}")[:2000]
        encoded = job.prompt.encode("utf-8")
        return AttemptRecord(
            attempt_id=call.attempt_id,
            task_id=task.id,
            provider=cand.provider,
            model=cand.model,
            status=status,
            started_ms=int(started * 1000),
            ended_ms=int(started * 1000) + latency_ms,
            stage=route.stage,
            workflow=route.workflow,
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
            reported_cost_usd=reported,
            latency_ms=latency_ms,
            error_class=error_class,
            error_message=error_message,
            http_status=failure.http_status if failure else None,
            exit_code=result.exit_code,
            usage_problem=usage_problem,
            prompt_bytes=len(encoded),
            prompt_sha256=hashlib.sha256(encoded).hexdigest(),
            run_id=job.run_id,
            hold_id=hold_id,
            first=request.first,
            completed=job.completes and result.ok and (verdict is None or verdict.verified),
            failover_from=request.failover_from,
            verdict=verdict.outcome if verdict is not None else None,
            verify_check=verdict.check if verdict is not None else None,
            verify_detail=redact(verdict.detail)[:4000] if verdict is not None and verdict.detail else None,
            verify_ms=verdict.ms if verdict is not None else 0,
            cost_basis=basis,
            reported_model=result.model,
            cost_flagged=flagged,
        )

    # exec ------------------------------------------------------------------------------
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
        job = Job(
            task,
            route,
            prompt,
            run_id,
            f"{run_id}:{safe_name(task.id)}:{route.stage or '-'}:",
            workdir=str(workdir) if workdir else None,
        )
        return drive(job, Failover(route, self.loaded, jitter_key=run_id), self)
