"""The one attempt driver, with a scripted host standing in for the runner or the durable workflow."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from switchyard.config import loads_config
from switchyard.driver import (
    AllCandidatesFailed,
    AttemptOutcome,
    AttemptRequest,
    Failover,
    Job,
    RunResult,
    Skipped,
    drive,
    first_request,
)
from switchyard.failures import Failure, FailureKind
from switchyard.ledger import AttemptRecord
from switchyard.router import Candidate, Route
from switchyard.task import Task

CONFIG = """
[providers.a]
kind = "simulated"
max_retries = 1
[providers.b]
kind = "simulated"
max_retries = 0

[[models]]
name = "ma"
provider = "a"
[[models]]
name = "mb"
provider = "b"

[routing]
default_model = "ma"

[runner]
backoff_base_s = 2
"""
LOADED = loads_config(CONFIG)
ROUTE = Route("T-1", "ma", "a", "test", None, None, None, (Candidate("ma", "a", "x"), Candidate("mb", "b", "y")))
JOB = Job(Task("T-1"), ROUTE, "prompt", "run", "run:T-1:-:")

Step = Callable[[AttemptRequest], AttemptOutcome | Skipped]


def ok(request: AttemptRequest) -> AttemptOutcome:
    return _outcome(request, None)


def fails(kind: FailureKind) -> Step:
    return lambda request: _outcome(request, Failure(kind, f"{kind} happened"))


def skipped(reason: str, on_exceed: str | None = None) -> Step:
    return lambda request: Skipped(reason, on_exceed)


def _outcome(request: AttemptRequest, failure: Failure | None) -> AttemptOutcome:
    cand = request.plan.candidate
    status = "ok" if failure is None else "failed"
    rec = AttemptRecord(request.attempt_id, request.job.task.id, cand.provider, cand.model, status, 0, 0)
    return AttemptOutcome(rec, failure, "answer" if failure is None else None)


class ScriptedHost:
    """Answers each call from a script and notes what the driver asked for."""

    def __init__(self, *script: Step) -> None:
        self.script = list(script)
        self.requests: list[AttemptRequest] = []
        self.events: list[str] = []

    def attempt(self, request: AttemptRequest) -> AttemptOutcome | Skipped:
        self.requests.append(request)
        self.events.append(f"call {request.plan.candidate.provider}")
        return self.script.pop(0)(request)

    def sleep(self, seconds: float) -> None:
        self.events.append(f"sleep {seconds:g}")

    def pause(self) -> None:
        self.events.append("pause")


def run(host: ScriptedHost, *, budget_wait_s: float | None = None, job: Job = JOB) -> RunResult:
    result = drive(job, Failover(job.route, LOADED, jitter_key="k"), host, budget_wait_s=budget_wait_s)
    assert host.script == [], "the driver stopped before the script was used up"
    return result


def test_first_candidate_succeeds() -> None:
    host = ScriptedHost(ok)
    result = run(host)
    assert result.ok and result.why == ""
    [req] = host.requests
    assert (req.attempt_id, req.first, req.failover_from, req.waited) == ("run:T-1:-:0", True, None, False)
    assert host.events == ["pause", "call a"]


def test_retry_with_backoff_then_failover_names_the_previous_provider() -> None:
    host = ScriptedHost(fails(FailureKind.OVERLOADED), fails(FailureKind.OVERLOADED), ok)
    result = run(host)
    assert result.ok
    calls = [e for e in host.events if e != "pause"]
    assert calls[0] == calls[2] == "call a" and calls[3] == "call b" and len(calls) == 4
    assert calls[1].startswith("sleep ") and 1.6 <= float(calls[1].split()[1]) <= 2.4  # 2 s, jittered 0.8x-1.2x
    assert [(r.plan.candidate.provider, r.plan.try_index, r.first, r.failover_from) for r in host.requests] == [
        ("a", 0, True, None),
        ("a", 1, False, None),
        ("b", 0, False, "a"),
    ]
    assert [r.attempt_id[-1] for r in host.requests] == ["0", "1", "2"]


def test_open_circuit_is_skipped_without_an_attempt() -> None:
    host = ScriptedHost(skipped("circuit open for a"), ok)
    result = run(host)
    assert result.ok and len(result.attempts) == 1
    second = host.requests[1]
    # Nothing was called before it: it is still the task's first attempt, and not a failover from anything.
    assert (second.plan.candidate.provider, second.first, second.failover_from) == ("b", True, None)
    assert second.attempt_id == "run:T-1:-:1"  # every call gets its own id, skipped ones included


def test_budget_downgrade_moves_on() -> None:
    host = ScriptedHost(skipped("budget model:ma per day would be exceeded", "downgrade"), ok)
    assert run(host).ok
    assert [r.plan.candidate.provider for r in host.requests] == ["a", "b"]


def test_blocking_budget_ends_a_plain_run() -> None:
    host = ScriptedHost(skipped("budget global per day ($1) would be exceeded", "block"))
    result = run(host)
    assert not result.ok and result.attempts == []
    assert result.blocked == Skipped("budget global per day ($1) would be exceeded", "block")
    assert "would be exceeded" in result.why


def test_blocking_budget_waits_and_asks_again_in_a_workflow() -> None:
    block = skipped("budget global per day ($1) would be exceeded", "block")
    host = ScriptedHost(block, block, ok)
    result = run(host, budget_wait_s=30)
    assert result.ok
    assert host.events == ["pause", "call a", "sleep 30", "pause", "call a", "sleep 30", "pause", "call a"]
    assert [(r.plan.candidate.provider, r.plan.attempt_number, r.waited) for r in host.requests] == [
        ("a", 0, False),
        ("a", 0, True),  # waiting is not an attempt: the same call is planned again
        ("a", 0, True),
    ]


def test_interrupted_call_is_made_again_once_the_host_lets_it() -> None:
    host = ScriptedHost(fails(FailureKind.INTERRUPTED), ok)
    result = run(host)
    assert result.ok and len(result.attempts) == 2
    assert host.events == ["pause", "call a", "pause", "pause", "call a"]
    assert [(r.plan.candidate.provider, r.plan.try_index, r.plan.attempt_number) for r in host.requests] == [
        ("a", 0, 0),
        ("a", 0, 1),
    ]


def test_fatal_failure_stops_and_says_why() -> None:
    host = ScriptedHost(fails(FailureKind.BAD_REQUEST))
    result = run(host)
    assert not result.ok and "bad_request" in result.why


def test_every_candidate_failing_is_reported() -> None:
    host = ScriptedHost(fails(FailureKind.NOT_FOUND), fails(FailureKind.NOT_FOUND))
    result = run(host)
    assert not result.ok and len(result.attempts) == 2

    with pytest.raises(AllCandidatesFailed, match="2 attempt"):
        result.raise_for_failure()


def test_a_later_stage_is_not_the_tasks_first_attempt() -> None:
    host = ScriptedHost(ok)
    run(host, job=Job(Task("T-1"), ROUTE, "p", "run", "x:", opening=False))
    assert host.requests[0].first is False


def test_a_first_call_made_before_driving_is_not_made_again() -> None:
    failover = Failover(ROUTE, LOADED, jitter_key="k")
    first = first_request(JOB, Failover(ROUTE, LOADED, jitter_key="k"))
    assert first is not None and first.attempt_id == "run:T-1:-:0" and first.first
    made = fails(FailureKind.NOT_FOUND)(first)
    host = ScriptedHost(ok)
    result = drive(JOB, failover, host, made=made)
    assert result.ok and [a.record.attempt_id for a in result.attempts] == ["run:T-1:-:0", "run:T-1:-:1"]
    [second] = host.requests  # only the second call went to the host
    assert (second.plan.candidate.provider, second.first, second.failover_from) == ("b", False, "a")


def test_interrupted_calls_do_not_use_up_the_routes_attempts() -> None:
    # seen: with a machine killed three times during one task's calls, each takeover's interrupted attempt
    # counted against runner.max_attempts and the task went dead without one real failure
    host = ScriptedHost(
        fails(FailureKind.INTERRUPTED), fails(FailureKind.INTERRUPTED), fails(FailureKind.INTERRUPTED), ok
    )
    failover = Failover(ROUTE, LOADED, max_attempts=1)
    result = drive(JOB, failover, host)
    assert result.ok and len(result.attempts) == 4
