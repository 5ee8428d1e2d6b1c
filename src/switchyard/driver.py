"""One attempt driver: walk a route's candidates through one attempt callable and one sleep.

Both `switchyard exec` and the durable coordinator run a route the same way:

    drive(job, failover, host)
        Failover.next() ─► host.sleep(delay) ─► host.pause() ─► host.attempt(request)
              ▲                                                        │
              └── observe(failure) / skip(reason) / again() ◄──────────┘

* `Failover` is pure: given the route and each outcome it says which candidate to
  call next, after what delay, or that we are done. The failure table
  (`switchyard.failures`) decides between retry, failover, fatal and disable.
* The host makes the call. For `exec` that is `Runner.attempt` and `time.sleep`;
  for the coordinator the attempt is a DBOS step and the sleep is `DBOS.sleep`, so
  every decision the loop takes is replayed from checkpoints after a crash.
* An attempt that was not started comes back as `Skipped`: its circuit is open or
  a budget refused it. A budget that says `downgrade` moves on to the next
  candidate; one that says `block` either ends the drive (`exec`) or waits
  `budget_wait_s` and asks again (the coordinator: the limit may be raised, or
  the period roll over).

* A host may make the route's first call itself before driving (`first_request`
  builds exactly the request `drive` would) and hand its outcome in as `made`: the
  coordinator makes it in the step that begins a task, one checkpoint instead of two.

Records go in and out (`Job`, `AttemptRequest`, `AttemptOutcome`, `Skipped`), so
the durable engine checkpoints them as they are. An attempt id is the job's
`id_prefix` and the number of the call on the route, skipped calls included, so
every call a host is asked to make has an id of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from switchyard._records import record
from switchyard.config import LoadedConfig
from switchyard.errors import RunError
from switchyard.facts import stable_hash
from switchyard.failures import Failure, FailureKind
from switchyard.ledger.store import AttemptRecord
from switchyard.router import Candidate, Route
from switchyard.task import Task

__all__ = [
    "AllCandidatesFailed",
    "AttemptOutcome",
    "AttemptRequest",
    "Failover",
    "Host",
    "Job",
    "Plan",
    "RunResult",
    "Skipped",
    "drive",
    "first_request",
]


@record
class Plan:
    """The next call to make."""

    candidate: Candidate
    candidate_index: int
    try_index: int
    attempt_number: int
    delay_s: float = 0.0


@record
class Job:
    """One route of one task to drive (for a workflow: one stage at one escalation level)."""

    task: Task
    route: Route
    prompt: str
    run_id: str
    id_prefix: str  # attempt ids are id_prefix + the number of the call on this route
    workdir: str | None = None
    timeout_s: float | None = None
    opening: bool = True  # this route's first attempt is the task's very first attempt
    completes: bool = True  # success on this route completes the task
    verify: bool = False  # this stage changes the repository: `[verify]` judges its attempts
    start_point: str | None = None  # the workspace snapshot each of its attempts starts from (on_retry = reset)


@record
class AttemptRequest:
    """One call the driver asks the host to make (or to replay, if its id was recorded)."""

    job: Job
    plan: Plan
    attempt_id: str
    first: bool = False  # the task's very first attempt: reports count tasks by it
    failover_from: str | None = None  # the provider tried before this one, when this is a failover
    waited: bool = False  # the previous try of this call waited on a budget


@record
class Skipped:
    """A call that was not started: its circuit is open (`on_exceed` None) or a budget refused it."""

    reason: str
    on_exceed: str | None = None  # the refusing limit's policy: "block" or "downgrade"


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
    """The outcome of driving one route."""

    task: Task
    route: Route
    attempts: list[AttemptOutcome] = field(default_factory=list)
    why: str = ""
    blocked: Skipped | None = None  # a budget with on_exceed = "block" stopped the drive

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
        """Raise `AllCandidatesFailed` unless the route succeeded."""
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
        self.interruptions = 0  # calls cut short by a shutdown or a machine's death: not the provider's doing
        self.delay_s = 0.0
        self.done = False
        self.why = ""
        self._dead_providers: set[str] = set()

    def next(self) -> Plan | None:
        """The next call, or None when there is nothing left to try."""
        if self.done:
            return None
        if self.attempts - self.interruptions >= self.max_attempts:
            self.why = f"gave up after {self.attempts - self.interruptions} attempts (runner.max_attempts)"
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

    def again(self) -> None:
        """The planned call was interrupted (a shutdown, or its machine died and another took the task over):
        plan the same candidate again. It is numbered as an attempt but not counted against max_attempts: a
        task killed with its machine again and again must not run out of attempts for it."""
        self.attempts += 1
        self.interruptions += 1

    def skip(self, reason: str) -> None:
        """The planned candidate cannot be called (circuit open, budget downgrade): move on without an attempt."""
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


class Host(Protocol):
    """Where the driver's calls go: `Runner` for `exec`, the DBOS workflow for the coordinator."""

    def attempt(self, request: AttemptRequest) -> AttemptOutcome | Skipped:
        """Make (or replay) one call and record it; `Skipped` if it could not start."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait before the next call (a backoff, or a budget re-check)."""
        ...

    def pause(self) -> None:
        """Called before every call: a host that is shutting down parks here instead of returning."""
        ...


def first_request(job: Job, failover: Failover) -> AttemptRequest | None:
    """The request `drive` makes first on this route (None if there is nothing to call).

    A host may make that call before driving (the coordinator makes it in the step
    that begins a task, one checkpoint instead of two) and pass its outcome to `drive`.
    """
    plan = failover.next()
    return None if plan is None else _request(job, plan, 0, None, waited=False)


def _request(job: Job, plan: Plan, calls: int, previous: str | None, *, waited: bool) -> AttemptRequest:
    return AttemptRequest(
        job,
        plan,
        f"{job.id_prefix}{calls}",
        first=job.opening and previous is None,
        failover_from=previous if plan.candidate_index else None,
        waited=waited,
    )


def drive(
    job: Job,
    failover: Failover,
    host: Host,
    *,
    budget_wait_s: float | None = None,
    made: AttemptOutcome | Skipped | None = None,
) -> RunResult:
    """Try the route's candidates until one succeeds or the failover policy gives up.

    With `budget_wait_s`, a call a blocking budget refused is asked again after that
    long (waiting is not an attempt); without it, the drive ends there with `blocked` set.
    `made` is the outcome of `first_request(job, failover)` when the host already made it.
    """
    result = RunResult(job.task, job.route)
    previous: str | None = None  # the provider of the last real attempt on this route
    waited = False
    calls = 0
    while (plan := failover.next()) is not None:
        request = _request(job, plan, calls, previous, waited=waited)
        calls += 1
        if made is not None:
            outcome, made = made, None
        else:
            if plan.delay_s > 0:
                host.sleep(plan.delay_s)
            host.pause()
            outcome = host.attempt(request)
        if isinstance(outcome, Skipped):
            if outcome.on_exceed == "block":
                if budget_wait_s is None:
                    result.why = outcome.reason
                    result.blocked = outcome
                    return result
                waited = True
                host.sleep(budget_wait_s)
                continue  # the same call is planned again: next() did not move
            failover.skip(outcome.reason)
            continue
        waited = False
        previous = plan.candidate.provider
        result.attempts.append(outcome)
        if outcome.failure is not None and outcome.failure.kind is FailureKind.INTERRUPTED:
            # Not the provider's fault: once the host lets us go on (a later run), call it again.
            host.pause()
            failover.again()
            continue
        failover.observe(outcome.failure)
    result.why = failover.why
    return result
