"""The coordinator: pull tasks, queue them durably, run each as a workflow of routed attempts.

This is the only module that imports DBOS: it wires the pure parts to the
engine. A task is a DBOS workflow (its id is the task id, so enqueuing twice is a
no-op); the stage machine (`switchyard.stages`) says which stage runs next; each
stage is routed in a step and driven by the one attempt driver
(`switchyard.driver`) with a DBOS step as its attempt and `DBOS.sleep` as its
sleep. Steps are at-least-once: a step cut short by a crash runs again after
recovery with the same attempt id, and `Runner.attempt()` is idempotent on that
id (the ledger's primary key), so an attempt never leaves two rows and an
attempt that was recorded is never called twice.

    task workflow:  begin (plan the stages, make the worktree, route stage one, make its first call)
                    ─► for each stage (review loops may go back):
                         for each escalation level (retry_count + n):
                           route ─► attempt ─► attempt ─► ... (Failover: retries, fallbacks)
                           └─ success: next stage   failure: retrying, routed again (rules see retry_count)
                    ─► done (recorded with the attempt that completes the task), or
                       dead after [coordinator] max_attempts, with the last error

The workflow and its steps are methods of `TaskFlow`, a DBOS configured
instance: DBOS finds the object by its name (`switchyard`) when it dequeues or
recovers a workflow, so there is no module-level "current coordinator". DBOS is
one engine per process, so there is one coordinator per process.

Shutdown: the first SIGINT/SIGTERM stops taking new work (no new dequeues, no
new attempts); running attempts get `grace_s` to finish; then their process
groups are killed and they are recorded as interrupted. Unfinished workflows
stay pending in DBOS and resume on the next start, at the attempt that was
running. A second SIGINT stops at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSConfiguredInstance, EnqueueOptions

from switchyard._records import record
from switchyard.budgets import Budgets
from switchyard.config import LoadedConfig, load_config
from switchyard.config.schema import StageConfig
from switchyard.driver import (
    AttemptOutcome,
    AttemptRequest,
    Failover,
    Job,
    RunResult,
    Skipped,
    drive,
    first_request,
)
from switchyard.errors import ConfigError, RunError
from switchyard.ledger.db import Database, connect
from switchyard.ledger.leases import Identity, Leases, TakeoverInProgress
from switchyard.ledger.store import AttemptRecord, Ledger
from switchyard.outcome import Delivered, Outcomes, Placed
from switchyard.progress import Reporter
from switchyard.prompts import DEFAULT_STAGE_TEMPLATE, check_template, rejection_note
from switchyard.providers.base import ChildProcesses, ProviderContext
from switchyard.redact import Redactor
from switchyard.router import Route
from switchyard.runner import Runner
from switchyard.sources import Source, SourceError
from switchyard.stages import Cursor, StageOutput, StagePlan, TaskPlan, verify_stages, with_fixed_model
from switchyard.task import Task

__all__ = [
    "APP_VERSION",
    "QUEUE",
    "Coordinator",
    "Enqueuer",
    "Machine",
    "RunSummary",
    "TaskFlow",
    "cancel_workflows",
    "default_system_db",
    "recover_executor",
    "requeue_workflows",
]

QUEUE = "switchyard-tasks"
# Pinned: DBOS only recovers workflows recorded under the same version. Bump it only when
# the workflow's sequence of steps (or their names) changes incompatibly.
# 2: the workflow is `switchyard.task` on the TaskFlow configured instance; `begin` makes the first call;
#    steps take and return records; skipped calls get attempt ids of their own.
# 3: verified outcomes: `begin` places the task (worktree, delivery target); `taken`, `review_rejected`,
#    `commit`, `push`, `pull_request`, `report`, `release` steps; `finish` takes a note.
# 4: a blocked stage ends its workflow with a `block` step (no budget sleep inside a workflow); a wake
#    starts a new workflow that replays the recorded attempts by id. Finish or drain (`run --once`)
#    the runs of an older version before upgrading: DBOS leaves their workflows to that version.
APP_VERSION = "switchyard-wf-4"
FLOW_NAME = "switchyard"  # the configured instance's name, recorded with every workflow
WORKFLOW_NAME = "switchyard.task"  # the workflow's registered name (pinned: recorded with every workflow)
ACTIVE_STATES = ("queued", "running", "retrying")


@record
class Routed:
    """A stage routed: the prompt it gets and the candidates it may use."""

    prompt: str
    route: Route


@record
class Begun:
    """What a task's first step did: plan it, route its first stage, and make that stage's first call."""

    plan: TaskPlan
    routed: Routed | None
    made: AttemptOutcome | Skipped | None
    placed: Placed = Placed()


@record
class StageResult:
    """How a stage ended: its output and the attempt that produced it, or the last error."""

    retry_count: int
    output: StageOutput | None = None
    attempt_id: str | None = None
    completed: bool = False  # the successful attempt also completed the task (recorded so, with the task done)
    error: str | None = None
    blocked: str | None = None  # a blocking budget (or no usable provider) refused the call: why


# ------------------------------------------------------------------ the durable part
@DBOS.dbos_class("TaskFlow")
class TaskFlow(DBOSConfiguredInstance):
    """A task's workflow and its steps, bound to the coordinator that runs them.

    It is the driver's host in the durable engine: `attempt` is a step, `sleep` is
    `DBOS.sleep`, so every decision the driver takes replays from checkpoints.
    """

    def __init__(self, co: Coordinator) -> None:
        self.co = co
        super().__init__(FLOW_NAME)

    @DBOS.workflow(name=WORKFLOW_NAME)
    def run(self, task_id: str) -> str:
        """Run every stage of the task, then deliver its change; 'done', 'dead' or 'blocked'."""
        self.co.active(+1)
        try:
            return self._run(task_id)
        finally:
            self.co.active(-1)

    def _run(self, task_id: str) -> str:
        begun = self.begin(task_id)
        plan, placed = begun.plan, begun.placed
        retry_count = plan.task.retry_count
        if placed.error is not None:
            return self.end_dead(task_id, placed, retry_count, placed.error)
        if placed.target.tracks:
            self.taken(task_id, placed)
        routed: Routed | None = begun.routed
        made = begun.made
        cursor: Cursor | None = Cursor()
        stage = StageResult(retry_count)
        reviews = 0
        while cursor is not None:
            stage = self.run_stage(plan, cursor, retry_count, routed, made)
            routed, made = None, None
            retry_count = stage.retry_count
            if stage.blocked is not None:
                # It waits without a worker slot: the workflow ends here, and a later one (woken when the
                # budgets, the config or the providers change, or after a backoff) replays it to this point.
                self.block(task_id, retry_count, stage.blocked, DBOS.workflow_id or task_id)
                return "blocked"
            if stage.output is None:
                return self.end_dead(task_id, placed, retry_count, stage.error)
            step, cursor = cursor, plan.advance(cursor, stage.output)
            if cursor is None and plan.review_rejected(step, stage.output):
                # [verify] review: the review still rejects with no loops left; escalate the change it reviews.
                reviews += 1
                why = f"review rejected the change {reviews} time(s)"
                self.review_rejected(stage.attempt_id or "", stage.output.text)
                if reviews >= self.co.loaded.coordinator.max_attempts:
                    return self.end_dead(task_id, placed, retry_count, why)
                retry_count += 1
                self.finish(task_id, "retrying", retry_count, why)
                cursor = plan.restart(step, stage.output)
        note = None
        if placed.target.mode != "none":
            delivered = self.deliver(task_id, placed)
            if delivered.error is not None:
                return self.end_dead(task_id, placed, retry_count, f"delivery failed: {delivered.error}")
            assert placed.workspace is not None
            note = delivered.summary(placed.target, placed.workspace.branch)
            if placed.target.tracks:
                self.report(task_id, placed, "done", f"Done: {note}.")
            self.release(task_id, placed)
        if not stage.completed:  # delivered, or a review that could have sent it back: the completion is now
            self.finish(task_id, "done", retry_count, None, stage.attempt_id, note)
        return "done"

    def end_dead(self, task_id: str, placed: Placed, retry_count: int, error: str | None) -> str:
        """The task is dead: its source hears why (a comment, the failed label), then the ledger says so."""
        if placed.target.tracks:
            self.report(task_id, placed, "dead", f"switchyard gave up on this task: {error or 'no reason recorded'}")
        self.finish(task_id, "dead", retry_count, error)
        return "dead"

    def deliver(self, task_id: str, placed: Placed) -> Delivered:
        """Commit, push, open the pull request: as far as the source's `delivery` goes, each a step."""
        done = self.commit(task_id, placed)
        if done.error is None and placed.target.goes_to("push"):
            done = self.push(placed, done)
        if done.error is None and placed.target.goes_to("pr"):
            done = self.pull_request(task_id, placed, done)
        return done

    def run_stage(
        self,
        plan: TaskPlan,
        cursor: Cursor,
        retry_count: int,
        routed: Routed | None,
        made: AttemptOutcome | Skipped | None = None,
    ) -> StageResult:
        """Drive one stage, escalating on failure (inside the workflow body: every call is a step)."""
        co = self.co
        max_attempts = co.loaded.coordinator.max_attempts
        error: str | None = None
        for level in range(max_attempts):
            if made is None:
                self.pause()
            if routed is None:
                routed = self.route(plan, cursor, retry_count)
            job, failover = stage_job(co.loaded, plan, cursor, routed, retry_count, level)
            result = drive(job, failover, self, made=made)
            routed, made = None, None
            if result.blocked is not None:
                return StageResult(retry_count, blocked=result.blocked.reason)
            final = result.final
            if result.ok and final is not None:
                path = str(final.output_path) if final.output_path else ""
                return StageResult(
                    retry_count, StageOutput(final.text or "", path), final.record.attempt_id, final.record.completed
                )
            error = _why(result)
            if final is not None and final.record.verdict == "error":
                break  # a check that cannot run fails for every model: no escalation fixes it
            if level + 1 < max_attempts:
                retry_count += 1
                self.finish(job.task.id, "retrying", retry_count, error)
        return StageResult(retry_count, error=error)

    # the steps ---------------------------------------------------------------------------
    @DBOS.step()
    def begin(self, task_id: str) -> Begun:
        return self.co.begin(task_id)

    @DBOS.step()
    def route(self, plan: TaskPlan, cursor: Cursor, retry_count: int) -> Routed:
        return self.co.route_stage(plan, cursor, retry_count)

    @DBOS.step()
    def attempt(self, request: AttemptRequest) -> AttemptOutcome | Skipped:
        return self.co.attempt(request)

    @DBOS.step()
    def block(self, task_id: str, retry_count: int, reason: str, workflow_id: str) -> None:
        self.co.block(task_id, retry_count, reason, workflow_id)

    @DBOS.step()
    def finish(
        self,
        task_id: str,
        state: str,
        retry_count: int,
        last_error: str | None,
        completed_by: str | None = None,
        note: str | None = None,
    ) -> None:
        self.co.finish(task_id, state, retry_count, last_error, completed_by, note)

    # verified outcomes and delivery (switchyard.outcome) -------------------------------------
    @DBOS.step()
    def taken(self, task_id: str, placed: Placed) -> None:
        self.co.tell(task_id, placed, "taken")

    @DBOS.step()
    def review_rejected(self, attempt_id: str, text: str) -> None:
        self.co.ledger.reject(attempt_id, "review", text[-2000:])

    @DBOS.step()
    def commit(self, task_id: str, placed: Placed) -> Delivered:
        return self.co.outcomes.commit(self.co.task(task_id), placed)

    @DBOS.step()
    def push(self, placed: Placed, done: Delivered) -> Delivered:
        return self.co.outcomes.push(placed, done)

    @DBOS.step()
    def pull_request(self, task_id: str, placed: Placed, done: Delivered) -> Delivered:
        return self.co.outcomes.pull_request(self.co.task(task_id), placed, done)

    @DBOS.step()
    def report(self, task_id: str, placed: Placed, outcome: str, message: str) -> None:
        self.co.tell(task_id, placed, outcome, message)

    @DBOS.step()
    def release(self, task_id: str, placed: Placed) -> None:
        problem = self.co.outcomes.release(self.co.task(task_id), placed)
        if problem is not None:
            self.co.reporter.error(f"task {task_id}: {problem}")

    # the rest of the driver's host ---------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        DBOS.sleep(seconds)

    def pause(self) -> None:
        self.co.hold_while_stopping()


def stage_job(
    loaded: LoadedConfig, plan: TaskPlan, cursor: Cursor, routed: Routed, retry_count: int, level: int
) -> tuple[Job, Failover]:
    """What to drive for a stage at an escalation level: the job and a fresh failover over its route."""
    stage = plan.stage(cursor)
    task = plan.task.with_retry(retry_count)
    job = Job(
        task,
        routed.route,
        routed.prompt,
        task.id,
        f"{task.id}:{stage.key}:l{cursor.loops}:r{retry_count}:a",
        workdir=plan.workdir,
        timeout_s=stage.timeout_s,
        opening=cursor.index == cursor.loops == level == 0,
        completes=plan.completes(cursor),
        verify=stage.verify,
        # every attempt of a changing stage starts where the stage's pass started (on_retry = "reset")
        start_point=f"{stage.key}-l{cursor.loops}" if stage.verify and plan.workdir else None,
    )
    failover = Failover(routed.route, loaded, jitter_key=f"{task.id}:{stage.name}:{cursor.loops}:{retry_count}")
    return job, failover


def _why(result: RunResult) -> str:
    """The task's last error: the last attempt's own message, else why the failover gave up."""
    rec = result.final.record if result.final is not None else None
    if rec is not None and rec.error_message:
        return f"{rec.model}: [{rec.error_class}] {rec.error_message[:300]}"
    return result.why


class Enqueuer:
    """Hands submitted tasks to the durable queue in batches, on a thread of its own.

    A submitted task is its ledger row, written first in one transaction for the whole
    submit; making its workflow costs DBOS a row insert, so thousands of them would keep
    a submit waiting for seconds. Here they go in batches of `BATCH` per system-database
    transaction while the workers already run the first ones. A row that never reached
    the queue (a crash, a stop) is enqueued by the next start; enqueuing is idempotent
    on the task id.
    """

    BATCH = 500

    def __init__(self, system_db: str, stop: threading.Event, reporter: Reporter) -> None:
        self.engine = _system_engine(system_db)
        self.client = DBOSClient(system_database_engine=self.engine, application_name="switchyard")
        self.stop = stop
        self.reporter = reporter
        self._pending: deque[tuple[str, str]] = deque()
        self._inflight = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="switchyard-enqueue", daemon=True)
        self._thread.start()

    def put(self, items: Iterable[tuple[str, str]]) -> None:
        """Queue (workflow id, task id) pairs."""
        with self._cond:
            self._pending.extend(items)
            self._cond.notify_all()

    def busy(self) -> bool:
        """Whether some put task has not reached the durable queue yet."""
        with self._cond:
            return bool(self._pending) or self._inflight > 0

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                if self._closed or self.stop.is_set():
                    return  # what is left stays queued in the ledger: the next start enqueues it
                batch = [self._pending.popleft() for _ in range(min(self.BATCH, len(self._pending)))]
                self._inflight = len(batch)
            try:
                with self.engine.begin() as conn:
                    for wf_id, task_id in batch:
                        self.client.enqueue_in_transaction(conn, _enqueue_options(wf_id), task_id)
            except Exception as exc:  # the database is unreachable or locked for long: try again soon
                self.reporter.error(f"could not queue {len(batch)} task(s) yet: {exc}")
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                self.stop.wait(1.0)
            finally:
                with self._cond:
                    self._inflight = 0

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self.client.destroy()
        self.engine.dispose()


def _enqueue_options(workflow_id: str) -> EnqueueOptions:
    return {
        "workflow_name": WORKFLOW_NAME,
        "queue_name": QUEUE,
        "workflow_id": workflow_id,
        "class_name": "TaskFlow",
        "instance_name": FLOW_NAME,
        "app_version": APP_VERSION,
    }


def _system_engine(url: str) -> sa.Engine:
    """An SQLAlchemy engine on DBOS's system database, set up as DBOS sets up its own."""
    if url.startswith("sqlite:///"):
        engine = sa.create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _setup(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = "IMMEDIATE"  # writers queue up instead of failing
            dbapi_conn.execute("PRAGMA busy_timeout=30000")

        return engine
    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), pool_size=1)


# ------------------------------------------------------------------ the coordinator
class Coordinator:
    """Owns DBOS, the runner and the ledger for one `switchyard run` process."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        workers: int | None = None,
        reporter: Reporter | None = None,
        system_db: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`wall_clock` is what routing (`hour`, `weekday`), prices and budget periods read (the demo fixes it)."""
        self.loaded = loaded
        cfg = loaded.coordinator
        self.workers = workers or cfg.max_workers
        self.reporter = reporter or Reporter()
        state = loaded.resolve(".switchyard")
        state.mkdir(parents=True, exist_ok=True)
        ignore = state / ".gitignore"
        if not ignore.exists():  # the state (worktrees too) stays out of the repository it may sit in
            ignore.write_text("*\n", encoding="utf-8")
        self.state_dir = state
        self.system_db = system_db or cfg.system_db or self._default_system_db()
        self.template = self._load_template()
        self.stage_plans = {name: self._stage_plans(wf.stages) for name, wf in loaded.workflows.items()}
        self.ledger = Ledger.open(loaded.ledger_location())
        names = [p.api_key_env for p in loaded.providers.values() if p.api_key_env]
        self.context = ProviderContext(redactor=Redactor.from_env(names), children=ChildProcesses(state / "children"))
        self.outcomes = Outcomes(loaded, self.ledger, self.context)
        budgets = Budgets(loaded, self.ledger, clock=wall_clock) if loaded.budgets.all_limits() else None
        self.runner = Runner(
            loaded,
            self.ledger,
            context=self.context,
            budgets=budgets,
            wall_clock=wall_clock,
            on_start=self._started,
            on_complete=self._completed,
            verify=self.outcomes.verify,
        )
        self.draining = threading.Event()
        self._never = threading.Event()
        self._inflight = 0
        self._calling: dict[str, int] = {}  # task id -> calls in flight for it (`stop_cancelled` reads it)
        self._stopped: set[str] = set()  # cancelled tasks whose agent `stop_cancelled` killed
        self._lock = threading.Lock()
        self.flow: TaskFlow | None = None
        self.enqueuer: Enqueuer | None = None
        self.started = False
        self.identity: Identity | None = None
        self.others_working: dict[str, int] = {}  # live sessions running queue work (`takeable`): last renewal
        self.machine: Machine | None = None
        self.leases = Leases(self.ledger.db)
        self._active = 0  # task workflows executing in this process
        self.ran: dict[str, str] = {}  # this run: each task it moved to done, dead or blocked, last state
        self.ran_attempts = 0
        self.ran_cost = Decimal(0)
        self._config_mtime = os.stat(loaded.path).st_mtime if loaded.path and os.path.exists(loaded.path) else None

    # setup -------------------------------------------------------------------------
    def _default_system_db(self) -> str:
        return system_db_of(self.loaded)

    def _load_template(self) -> str | None:
        path = self.loaded.coordinator.prompt_template
        if path is None:
            return None
        file = self.loaded.resolve(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError.single(
                f"cannot read the prompt template {file}: {exc.strerror}",
                key_path="coordinator.prompt_template",
                file=self.loaded.path,
            ) from None
        try:
            check_template(text, "coordinator.prompt_template")
        except ConfigError as exc:
            raise ConfigError([p.__class__(**{**p.__dict__, "file": str(file)}) for p in exc.problems]) from None
        return text

    def _stage_plans(self, stages: tuple[StageConfig, ...]) -> tuple[StagePlan, ...]:
        judged = verify_stages(tuple((st.name, st.loop_to, st.verify) for st in stages))
        return tuple(self._stage_plan(st, verify) for st, verify in zip(stages, judged, strict=True))

    def _stage_plan(self, stage: StageConfig, verify: bool) -> StagePlan:
        template = stage.prompt
        if stage.prompt_file is not None:
            file = self.loaded.resolve(stage.prompt_file)
            try:
                template = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError.single(
                    f"cannot read the prompt file {file}: {exc.strerror}", key_path=f"stage {stage.name}.prompt_file"
                ) from None
        if template is not None:
            check_template(template, f"stage {stage.name} prompt")
        return StagePlan(
            stage.name,
            stage.model,
            template if template is not None else (self.template or DEFAULT_STAGE_TEMPLATE),
            stage.requires,
            stage.timeout_s,
            stage.loop_to,
            stage.reject_if,
            stage.verdict_field,
            stage.reject_values,
            verify,
        )

    @property
    def shared(self) -> bool:
        """Whether other machines may share this queue (a PostgreSQL system database): leases fence and take over."""
        return self.system_db.startswith(("postgresql://", "postgres://"))

    def start(self) -> None:
        """Take this directory's identity and a lease, kill agents a crashed run left behind, reconcile its
        budget holds, launch DBOS (recovering this executor's pending workflows), re-queue lost enqueues."""
        self.outcomes.check()
        cfg = self.loaded.coordinator
        self.identity = Identity.claim(self.state_dir, cfg.executor_id)
        try:
            deadline = time.monotonic() + cfg.takeover_s + cfg.lease_s
            while True:
                try:
                    dead = self.leases.acquire(self.identity, lease_s=cfg.lease_s, takeover_s=cfg.takeover_s)
                    break
                except TakeoverInProgress:  # a survivor finishes this installation's last session first
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        except BaseException:
            self.identity.release()
            self.identity = None
            raise
        reaped = self.context.children.reap_stale()
        if reaped:
            self.reporter.note(f"killed {reaped} agent process group(s) left by a previous run")
        if self.ledger.db.dialect == "postgres":  # many machines: a survivor records the calls a dead one was in
            self.runner.call_owner = self.identity.session
        # The calls this installation's earlier sessions were killed in, as interrupted attempts (before their
        # holds are reconciled and their workflows replay: those call again under new attempt ids).
        cut = self.ledger.record_interrupted([r.session for r in dead])
        if cut:
            self.reporter.note(f"{len(cut)} call(s) a previous run was killed in recorded interrupted")
        if self.runner.budgets is not None:
            self.runner.budgets.owner = self.identity.session
            # This installation's earlier sessions (dead: this process holds the directory's lock), and the
            # pre-lease owner id (the executor id itself) of a ledger made before sessions existed.
            owners = [r.session for r in dead] + [self.identity.executor_id, cfg.executor_id or "local"]
            settled, released = self.runner.budgets.reconcile(owners)
            if settled or released:
                self.reporter.note(f"budget holds left by a previous run: {settled} settled, {released} released")
        log = logging.getLogger("dbos")
        if not log.handlers:  # DBOS's own logs go to a file, not the terminal
            handler = logging.FileHandler(self.state_dir / "dbos.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
        DBOS.migrate(self.system_db)
        if self.system_db.startswith("sqlite:///"):
            with sqlite3.connect(self.system_db[len("sqlite:///") :]) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        client = DBOSClient(system_database_url=self.system_db, application_name="switchyard")
        try:
            client.register_queue(
                QUEUE, worker_concurrency=self.workers, polling_interval_sec=self.loaded.coordinator.poll_interval_s
            )
        finally:
            client.destroy()
        try:
            # Registered before launch, so recovery finds it; DBOS refuses a second one in a process.
            self.flow = TaskFlow(self)
        except Exception as exc:
            raise RunError(f"cannot start a second coordinator in this process: {exc}") from None
        DBOS(
            config={
                "name": "switchyard",
                "system_database_url": self.system_db,
                "application_version": APP_VERSION,
                "executor_id": self.identity.executor_id,
                "log_level": "WARNING",
                "notification_listener_polling_interval_sec": 0.1,
            }
        )
        DBOS.launch()
        self.started = True
        if not self.shared:
            # This directory's own system database: every pending workflow in it is this installation's,
            # whatever executor id it ran under before (an id set in the config, then removed; "local").
            mine = self.identity.executor_id
            for other in {wf.executor_id for wf in self.queue_workflows(("PENDING",))} - {mine, None}:
                recover_executor(other)
        self.enqueuer = Enqueuer(self.system_db, self.draining, self.reporter)
        self.requeue()
        self.machine = Machine(self)
        self.machine.start()

    def requeue(self) -> int:
        """Hand every task the ledger has as queued to the durable queue (idempotent: a lost enqueue, a woken task)."""
        queued = [row.task_id for row in self.ledger.tasks(states=["queued"])]
        ids = self.leases.workflow_ids(queued)
        assert self.enqueuer is not None
        self.enqueuer.put((ids[t], t) for t in queued)
        return len(queued)

    def leave(self) -> None:
        """Stopped by a signal, about to exit: end the lease, or hand unfinished tasks to the other machines."""
        if self.machine is not None:
            self.machine.stop()
        if self.identity is None:
            return
        try:
            # Parked workflows, or tasks not yet handed to the queue: a survivor takes them now, not after a delay.
            if self.running_here() or (self.enqueuer is not None and self.enqueuer.busy()):
                self.leases.give_up(self.identity.session)
            else:
                self.leases.end(self.identity.session)
        except Exception as exc:  # the database is away: the lease simply expires
            self.reporter.error(f"could not end this machine's lease: {str(exc).strip()[:200]}")

    def close(self) -> None:
        """Stop DBOS (after every workflow is done), end the lease and release resources."""
        if self.machine is not None:
            self.machine.stop()
        if self.enqueuer is not None:
            self.enqueuer.close()
            self.enqueuer = None
        if self.started:
            DBOS.destroy(workflow_completion_timeout_sec=0)
            self.started = False
        if self.identity is not None:
            self.leases.end(self.identity.session)
            self.identity.release()
            self.identity = None
        if self.machine is not None:
            self.machine.close()
            self.machine = None
        self.runner.close()
        self.ledger.close()

    # intake ----------------------------------------------------------------------------
    def submit(self, tasks: Iterable[Task], source: str | None = None) -> int:
        """Queue tasks not seen before; returns how many were new (re-reading a source adds nothing).

        The tasks are in the ledger, queued, when this returns (one transaction for all of
        them); their workflows are made by the enqueuer, in batches, as the workers run.
        """
        if self.draining.is_set():
            return 0
        rows = [(task.id, json.dumps(task.to_dict()), source or task.source) for task in tasks]
        new = self.ledger.add_tasks(rows, _now_ms())
        for task_id in new:
            self.reporter.event("queued", task_id)
        assert self.enqueuer is not None, "start() the coordinator before submitting"
        self.enqueuer.put((task_id, task_id) for task_id in new)
        return len(new)

    def pull(self, sources: Iterable[Source]) -> int:
        """Read every source once; a failing source is reported and the others still run."""
        added = 0
        for source in sources:
            try:
                fetched = source.fetch()
            except SourceError as exc:
                self.reporter.error(str(exc))
                continue
            for why in fetched.skipped:
                self.reporter.error(f"skipped: {why}")
            added += self.submit(fetched.tasks, source.name)
        return added

    # workflow parts (called from DBOS steps) --------------------------------------------
    def begin(self, task_id: str) -> Begun:
        """Plan the task (its workflow and stages, its worktree), mark it running, route stage one and call it.

        One step does all of it, so a one-stage task that succeeds at once costs one
        checkpoint. If the step runs again after a crash, the workflow chosen the first
        time is kept (it is in the ledger), and the call is replayed if it was recorded.
        """
        row = self.ledger.task(task_id)
        if row is None:
            raise RunError(f"task {task_id} is not in the ledger")
        task = Task.from_dict(json.loads(row.task_json))
        # Never begun: pick its workflow. A task woken after blocking was begun (a wake moves it back to queued,
        # which changes its updated time): it keeps its workflow, and replays the attempts it recorded.
        if row.state == "queued" and row.updated_ms == row.enqueued_ms:
            budget = self.runner.budgets.view() if self.runner.budgets is not None else None
            health = self.runner.health.status()
            workflow = self.runner.router.pick_workflow(task, provider_status=health, budget=budget)
        else:  # begun before (cut short, or woken): keep its workflow
            workflow = row.workflow
        if workflow is None:
            stages: tuple[StagePlan, ...] = (StagePlan(None, template=self.template, verify=True),)
            max_loops = 0
        elif workflow in self.stage_plans:
            stages = self.stage_plans[workflow]
            max_loops = self.loaded.workflows[workflow].max_loops
        else:
            raise RunError(f"task {task_id}: its workflow {workflow!r} is no longer in the config")
        placed = self.outcomes.place(task, row.source)
        ws = placed.workspace
        plan = TaskPlan(
            task,
            workflow,
            stages,
            max_loops,
            ws.path if ws is not None else None,
            review_check=self.loaded.verify.enabled and self.loaded.verify.review,
            completes_later=placed.target.mode != "none",
        )
        if placed.error is not None:  # the workflow ends it dead, with the reason
            return Begun(plan, None, None, placed)
        self.ledger.set_task(task_id, "running", _now_ms(), retry_count=task.retry_count, workflow=workflow)
        self.reporter.event("begin", task_id)
        routed = self.route_stage(plan, Cursor(), task.retry_count)
        request = first_request(*stage_job(self.loaded, plan, Cursor(), routed, task.retry_count, 0))
        return Begun(plan, routed, self.attempt(request) if request is not None else None, placed)

    def task(self, task_id: str) -> Task:
        """The task as the ledger has it."""
        row = self.ledger.task(task_id)
        if row is None:
            raise RunError(f"task {task_id} is not in the ledger")
        return Task.from_dict(json.loads(row.task_json))

    def tell(self, task_id: str, placed: Placed, outcome: str, message: str = "") -> None:
        """Tell the task's source that it was taken, or how it ended; a failure to tell is reported, not fatal."""
        task = self.task(task_id)
        if outcome == "taken":
            problem = self.outcomes.taken(task, placed)
        else:
            problem = self.outcomes.report(task, placed, outcome, message)
        if problem is not None:
            self.reporter.error(f"task {task_id}: {problem}")

    def route_stage(self, plan: TaskPlan, cursor: Cursor, retry_count: int) -> Routed:
        """The prompt and candidates of the cursor's stage, as the task stands now."""
        stage = plan.stage(cursor)
        task = plan.task.with_retry(retry_count)
        last_outcome, rejected = self.ledger.outcome_facts(task.id) if retry_count or cursor.loops else ("", 0)
        route = self.runner.decide(
            task,
            stage=stage.name,
            workflow=plan.workflow,
            requires=stage.requires,
            loop_count=cursor.loops,
            last_outcome=last_outcome,
            rejected_count=rejected,
        )
        if stage.model is not None:
            route = with_fixed_model(route, stage, plan.workflow, self.loaded.catalog[stage.model].provider)
        rejection = self.ledger.last_rejection(task.id) if rejected else None
        return Routed(plan.prompt(cursor, rejection_note(*rejection) if rejection else ""), route)

    def attempt(self, request: AttemptRequest) -> AttemptOutcome | Skipped:
        """One call for a workflow (a step): the runner's attempt, plus the task's state and progress events."""
        self.hold_while_stopping()
        task = request.job.task
        if task.id in self._stopped:  # its agent was killed because the task was cancelled: call nothing more
            row = self.ledger.task(task.id)
            if row is not None and row.state == "cancelled":
                # `cancel` marks the ledger first, then cancels the workflow: give it the time to, so the next step stops it.
                self.draining.wait(self.loaded.coordinator.renew_s)
                return Skipped(f"task {task.id} was cancelled")
            with self._lock:
                self._stopped.discard(task.id)  # retried since
        with self._lock:
            self._inflight += 1
            self._calling[task.id] = self._calling.get(task.id, 0) + 1
        try:
            out = self.runner.attempt(request)
        finally:
            with self._lock:
                self._inflight -= 1
                if self._calling[task.id] == 1:
                    del self._calling[task.id]
                else:
                    self._calling[task.id] -= 1
        if isinstance(out, Skipped):
            if out.on_exceed is not None:  # a budget refused it: the limit may have been raised since
                self.reload_budgets()
            return out
        rec = out.record
        if not out.replayed:
            with self._lock:
                self.ran_attempts += 1
                self.ran_cost += rec.cost_usd
        self.reporter.event(
            "attempt", task.id, model=rec.model, status=rec.status, cost=rec.cost_usd, error=rec.error_class
        )
        if rec.completed:
            if out.replayed:  # committed together with the attempt; writing it again is harmless
                self.ledger.set_task(task.id, "done", _now_ms(), retry_count=rec.task_retry)
            self.ran[task.id] = "done"
            self.reporter.event("done", task.id)
        return out

    def block(self, task_id: str, retry_count: int, reason: str, workflow_id: str) -> None:
        """The task waits (its workflow ends, freeing the worker): why, and under which conditions it was refused.

        Only the task's current workflow may say so: a workflow recovered after its machine died
        in this very step may replay it after the task was woken and runs again elsewhere.
        """
        now = _now_ms()
        with self.ledger.db.transaction():
            if self.leases.workflow_ids([task_id])[task_id] != workflow_id:
                return  # a stale run of the task: the current one decides its state
            self.ledger.set_task(task_id, "blocked", now, retry_count=retry_count, note=reason)
            backoff_ms = int(self.loaded.budgets.recheck_s * 1000)
            self.leases.block(task_id, reason, self.fingerprint(), now, backoff_ms)
        self.ran[task_id] = "blocked"
        self.reporter.event("blocked", task_id, error=reason)

    def fingerprint(self) -> str:
        """What a blocked task was refused under, as this session saw it: `SESSION:digest` of the config's
        text, the budget counters and the providers' status.

        When this session's view differs from the one it blocked a task under, the task is worth
        another try; while it is the same, only time (its backoff, or a period rolling over: a new
        counter) can change the answer. A task another machine blocked waits for that machine's
        view to change, or for its backoff: machines whose configs differ (a comment, a key) would
        otherwise wake each other's blocked tasks for ever.
        """
        digest = hashlib.sha256()
        path = self.loaded.path
        if path is not None:
            with contextlib.suppress(OSError):
                digest.update(Path(path).read_bytes())
        budgets = self.runner.budgets
        if budgets is not None:
            for key, spent, held in budgets.state():
                digest.update(f"\n{key}={spent}/{held}".encode())
        for name, state in sorted(self.runner.health.status().items()):
            digest.update(f"\n{name}:{state}".encode())
        session = self.identity.session if self.identity is not None else "-"
        return f"{session}:{digest.hexdigest()[:32]}"

    def wake(self, *, limit: int, changed_only: bool = False) -> int:
        """Re-queue up to `limit` blocked tasks whose conditions changed (or whose backoff is over)."""
        if limit <= 0 or self.draining.is_set():
            return 0
        fp = self.fingerprint()
        now = _now_ms()
        due = self.leases.due(fp, 0 if changed_only else now, limit)
        woken = 0
        for wait in due:
            if changed_only and wait.fingerprint == fp:
                continue
            wf = self.leases.wake(wait, now)
            if wf is None:
                continue
            woken += 1
            self.reporter.event("queued", wait.task_id)
            assert self.enqueuer is not None
            self.enqueuer.put([(wf, wait.task_id)])
        return woken

    def active(self, delta: int) -> None:
        with self._lock:
            self._active += delta

    def running_here(self) -> int:
        with self._lock:
            return self._active

    def _started(self, request: AttemptRequest) -> None:
        """The runner is about to call (the breaker and the budgets let it)."""
        task = request.job.task
        if request.waited:  # it was blocked on a budget; the state says so until now
            self.ledger.set_task(task.id, "running", _now_ms())
        self.outcomes.prepare(request)
        cand = request.plan.candidate
        self.reporter.event("start", task.id, model=cand.model, provider=cand.provider)

    def _completed(self, rec: AttemptRecord) -> None:
        """Inside the transaction that records the attempt completing its task: the task is done."""
        self.ledger.set_task(rec.task_id, "done", _now_ms(), retry_count=rec.task_retry)

    def reload_budgets(self) -> None:
        """Pick up raised (or lowered) limits from the config file while tasks wait."""
        try:
            mtime = os.stat(self.loaded.path).st_mtime
        except OSError:
            return
        if mtime == self._config_mtime:
            return
        self._config_mtime = mtime
        try:
            fresh = load_config(self.loaded.path)
        except ConfigError as exc:
            self.reporter.error(f"config changed but is invalid; keeping the old budgets: {exc}")
            return
        if self.runner.budgets is not None:
            self.runner.budgets.use(fresh.budgets)

    def finish(
        self,
        task_id: str,
        state: str,
        retry_count: int,
        last_error: str | None,
        completed_by: str | None = None,
        note: str | None = None,
    ) -> None:
        """Move the task to `state`; `completed_by` is the attempt that completed it, marked so in the same commit."""
        with self.ledger.db.transaction():
            if completed_by is not None:
                self.ledger.mark_completed(completed_by)
            self.ledger.set_task(task_id, state, _now_ms(), retry_count=retry_count, last_error=last_error, note=note)
        if state in ("done", "dead"):
            self.ran[task_id] = state
        self.reporter.event(state, task_id, error=last_error)

    # stopping ----------------------------------------------------------------------------
    def hold_while_stopping(self) -> None:
        """Inside a workflow: once we are draining, start nothing new; the workflow resumes next run."""
        if self.draining.is_set():
            self._never.wait()

    def begin_drain(self) -> None:
        """Stop taking new work: no new dequeues, no new attempts."""
        if not self.draining.is_set():
            self.draining.set()
            self.reporter.note("stopping: no new tasks; waiting for running attempts (Ctrl-C again to stop at once)")
            threading.Thread(target=_stop_queue, daemon=True).start()

    def inflight(self) -> int:
        with self._lock:
            return self._inflight

    def calling_for(self) -> list[str]:
        """The tasks this process has a call in flight for."""
        with self._lock:
            return sorted(self._calling)

    def stop_cancelled(self, leases: Leases) -> int:
        """Kill the agents of calls in flight for tasks cancelled meanwhile (`switchyard cancel`); one indexed
        query. Their calls end as interrupted (charged as `may_have_spent` says), and the cancelled workflow
        runs no step after them. Returns how many agents were killed."""
        cancelled = leases.cancelled(self.calling_for())
        if not cancelled:
            return 0
        with self._lock:
            self._stopped.update(cancelled)
        n = self.context.children.stop(cancelled)
        if n:
            self.reporter.note(f"killed {n} agent(s) of cancelled task(s) {', '.join(cancelled)}")
        return n

    def kill_running(self) -> int:
        """Kill every running agent's process group; their attempts end as interrupted."""
        self.context.hard_stop.set()
        n = self.context.children.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + 2
        while self.context.children.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.context.children.kill_all(signal.SIGKILL)
        return n

    def wait_idle(self, stop: threading.Event, poll_s: float = 0.2) -> bool:
        """`run --once`: wait until nothing is left that this machine can take; False if stopped.

        Left alone: tasks another live machine is running, and blocked tasks whose
        conditions (budgets, config, providers) did not change since they were refused:
        only time or a config change can help them. A dead machine's tasks are waited
        for: they are taken over (by this machine or another) after its takeover delay.
        """
        quiet = 0
        proof: dict[str, int] | None = None  # the live machines holding work, and their last renewal when we decided
        while not stop.is_set():
            if self.takeable() or self.wake(limit=1 << 30, changed_only=True):
                quiet = 0
                proof = None
            else:
                quiet += 1
                if quiet >= 2:  # twice in a row, a poll apart: no enqueue or wake was in flight
                    # A machine killed a moment ago still looks live until its lease runs out: leave its work to
                    # it only once it has renewed since (a dead one never does; it is then taken over).
                    if proof is None:
                        proof = dict(self.others_working)
                    if all(self.others_working.get(s, 1 << 62) > renewed for s, renewed in proof.items()):
                        return True
            stop.wait(poll_s)
        return False

    def takeable(self) -> bool:
        """Whether some work is running here, queued, or held by a machine that is not alive."""
        if self.running_here() or self.inflight():  # a call in flight (its task cancelled meanwhile) is recorded first
            return True
        if self.enqueuer is not None and self.enqueuer.busy():
            return True
        if self.ledger.count_tasks(["queued"]):
            return True
        now = self.leases.now_ms()
        # A machine that missed its renewals (a lease renewed every renew_s, not for 3 of them) may be dead: its
        # lease runs out and it is taken over (here or elsewhere), so its tasks are ours to wait for; if it renews
        # again it was alive and they are its own. Only machines renewing on time are left to finish their work.
        fresh = int(3 * self.loaded.coordinator.renew_s * 1000)
        sessions = [r for r in self.leases.sessions(states=("live",)) if now - r.renewed_ms <= min(r.lease_ms, fresh)]
        live = {r.executor_id for r in sessions}
        workflows = self.queue_workflows(("ENQUEUED", "PENDING"))
        busy = {wf.executor_id for wf in workflows}
        mine = self.identity.executor_id if self.identity is not None else None
        self.others_working = {r.session: r.renewed_ms for r in sessions if r.executor_id in busy - {mine}}
        return any(wf.status == "ENQUEUED" or wf.executor_id not in live for wf in workflows)

    def queue_workflows(self, statuses: tuple[str, ...]) -> list[Any]:
        """The task workflows on the queue in these DBOS states (public API: `DBOS.list_workflows`)."""
        return list(DBOS.list_workflows(status=list(statuses), queue_name=QUEUE, load_input=False, load_output=False))

    def summary(self) -> RunSummary:
        """What this run did (not the ledger's totals): tasks it ended, by their state now; its attempts and cost."""
        states: dict[str, int] = {}
        now = {row.task_id: row for row in self.ledger.tasks(states=["done", "dead", "blocked"])} if self.ran else {}
        waiting: list[tuple[str, str]] = []
        for task_id, state in self.ran.items():
            row = now.get(task_id)
            final = row.state if row is not None else state
            states[final] = states.get(final, 0) + 1
            if final == "blocked" and row is not None:
                waiting.append((task_id, row.note or ""))
        return RunSummary(states, self.ran_attempts, self.ran_cost, tuple(sorted(waiting)))


@record
class RunSummary:
    """One `switchyard run`'s own work: tasks it ended (by state), its attempts and their cost, who waits and why."""

    states: dict[str, int]
    attempts: int
    cost_usd: Decimal
    waiting: tuple[tuple[str, str], ...] = ()

    @property
    def dead(self) -> int:
        return self.states.get("dead", 0)


def system_db_of(loaded: LoadedConfig) -> str:
    """The DBOS system database a coordinator on this config uses ([coordinator] system_db, else the default)."""
    return loaded.coordinator.system_db or default_system_db(loaded)


def running_by_executor(system_db: str, leases: Leases) -> dict[str, list[str]]:
    """The tasks each executor is running now (its pending task workflows), by DBOS's public client."""
    if system_db.startswith("sqlite:///") and not os.path.exists(system_db[len("sqlite:///") :]):
        return {}
    client = DBOSClient(system_database_url=system_db, application_name="switchyard")
    try:
        pending = client.list_workflows(status="PENDING", queue_name=QUEUE, load_input=False, load_output=False)
    finally:
        client.destroy()
    tasks = leases.task_ids_of([wf.workflow_id for wf in pending])
    out: dict[str, list[str]] = {}
    for wf in pending:
        out.setdefault(wf.executor_id or "", []).append(tasks[wf.workflow_id])
    return out


def recover_executor(executor_id: str) -> int:
    """Return a dead executor's pending task workflows to the queue; how many (DBOS's recovery for given ids).

    DBOS offers this through its admin API (`/dbos-workflow-recovery`), which calls
    `DBOS._recover_pending_workflows`: the one place switchyard reaches past the public
    API. Each workflow goes back to ENQUEUED only if it is still PENDING under that
    executor id, so a second recovery of the same executor changes nothing.
    `tests/test_machines.py::test_recover_executor` fails if that call changes.
    """
    return len(DBOS._recover_pending_workflows([executor_id]))


class Machine:
    """This process among the machines: renews its lease, fences itself, takes dead machines' work over.

    Three daemon threads. `renew` renews the lease every renew_s on a connection of its
    own. `watch` fences the process when no renewal succeeded for lease_s (the database
    stalled or unreachable, or the lease was taken): it kills every agent's process
    group and exits, before anyone may take over (takeover_s > lease_s + margin).
    `tend` claims sessions whose lease expired past their takeover delay (one survivor
    each, by a conditional UPDATE), recovers their workflows, reconciles their budget
    holds and re-queues tasks that never reached the queue; and wakes blocked tasks.
    """

    FENCED_EXIT = 75  # EX_TEMPFAIL: restart it to rejoin

    def __init__(self, co: Coordinator) -> None:
        self.co = co
        cfg = co.loaded.coordinator
        self.lease_s = cfg.lease_s
        self.renew_s = cfg.renew_s
        assert co.identity is not None
        self.identity = co.identity
        self.stop_event = threading.Event()
        self.last_renewed = time.monotonic()
        self._db: Database | None = None
        self._threads = [
            threading.Thread(target=self._renew, name="switchyard-lease", daemon=True),
            threading.Thread(target=self._tend, name="switchyard-tend", daemon=True),
        ]
        if co.shared:
            self._threads.append(threading.Thread(target=self._watch, name="switchyard-fence", daemon=True))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=5)

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None

    def _renew(self) -> None:
        while not self.stop_event.wait(self.renew_s):
            sent = time.monotonic()
            try:
                if self._db is None:
                    self._db = connect(self.co.loaded.ledger_location())
                leases = Leases(self._db)
                still = leases.renew(self.identity.session)
            except Exception as exc:  # unreachable: try again; the watch fences if it lasts
                self.close()
                self.co.reporter.error(f"could not renew this machine's lease: {str(exc).strip()[:200]}")
                continue
            if not still:
                self.fence("its lease was taken over by another machine")
            self.last_renewed = sent
            try:  # on the same connection: the calls in flight whose task was cancelled meanwhile
                self.co.stop_cancelled(leases)
            except Exception as exc:  # the next renewal asks again
                self.co.reporter.error(f"could not check for cancelled tasks: {str(exc).strip()[:200]}")

    def _watch(self) -> None:
        while not self.stop_event.wait(min(0.2, self.lease_s / 10)):
            silent = time.monotonic() - self.last_renewed
            if silent > self.lease_s:
                self.fence(f"no lease renewal for {silent:.1f}s (lease_s {self.lease_s:g})")

    def fence(self, why: str) -> None:
        """Stop at once: kill every agent's process group, take nothing more, exit; another machine takes over."""
        co = self.co
        co.draining.set()
        co.context.hard_stop.set()
        killed = co.context.children.kill_all(signal.SIGKILL)
        try:
            sys.stderr.write(
                f"switchyard: this machine ({self.identity.executor_id}) fenced itself: {why}; killed {killed} "
                "agent process group(s); another machine takes its tasks over once its lease has run out (or this one, "
                "restarted: restart it to rejoin)\n"
            )
            sys.stderr.flush()
        finally:
            os._exit(self.FENCED_EXIT)

    def _tend(self) -> None:
        co = self.co
        while not self.stop_event.wait(self.renew_s):
            try:
                if co.shared:
                    self.take_over()
                free = co.workers - co.running_here()
                co.wake(limit=free)
            except Exception as exc:  # the database is away: the next round tries again
                co.reporter.error(f"machine upkeep failed: {str(exc).strip()[:200]}")

    def take_over(self) -> int:
        """Claim dead machines' sessions and finish their business; returns how many were taken over."""
        co = self.co
        me = self.identity.session
        taken = 0
        for row in co.leases.claim_dead(me):
            settled = released = 0
            # The calls it was killed in become interrupted attempts (charged their hold) before its holds are
            # reconciled and its workflows resume: each replays that outcome and calls again under a new id.
            interrupted = len(co.ledger.record_interrupted([row.session]))
            if co.runner.budgets is not None:  # before its workflows resume anywhere: no replay has adopted a hold
                settled, released = co.runner.budgets.reconcile([row.session])
            recovered = 0
            if not co.leases.executor_live(row.executor_id):  # a restart of it recovers its own at launch
                recovered = recover_executor(row.executor_id)
            requeued = co.requeue()
            co.leases.taken(row.session, me)
            taken += 1
            co.reporter.note(
                f"took over {row.executor_id} ({row.host} pid {row.pid}): {recovered} workflow(s) recovered, "
                f"{interrupted} call(s) it was killed in recorded interrupted, budget holds {settled} settled / "
                f"{released} released, {requeued} queued task(s) re-queued"
            )
        # Executors that never held a lease (a ledger made before leases): nobody else will ever recover them.
        known = {r.executor_id for r in co.leases.sessions(states=("live", "taking", "taken", "ended"))}
        for executor_id in {wf.executor_id for wf in co.queue_workflows(("PENDING",))} - known - {None}:
            if co.leases.claim_orphan(executor_id, me):
                if co.runner.budgets is not None:
                    co.runner.budgets.reconcile([executor_id])
                recovered = recover_executor(executor_id)
                co.requeue()
                co.leases.taken(f"{executor_id}/before-leases", me)
                taken += 1
                co.reporter.note(f"took over {executor_id} (from before leases): {recovered} workflow(s) recovered")
        return taken


def default_system_db(loaded: LoadedConfig) -> str:
    """Where the durable queue lives when [coordinator] system_db does not say."""
    location = loaded.ledger_location()
    if location.startswith(("postgresql://", "postgres://")):
        return location  # one PostgreSQL for the ledger and the queue: many machines share both
    return "sqlite:///" + str(loaded.resolve(".switchyard/dbos.sqlite"))


def _client(loaded: LoadedConfig) -> DBOSClient | None:
    """A client on the queue's database; None where no coordinator ever made one (the ledger is all there is)."""
    url = loaded.coordinator.system_db or default_system_db(loaded)
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///") :]):
        return None
    return DBOSClient(system_database_url=url, application_name="switchyard")


_LIVE = ["ENQUEUED", "PENDING"]


def cancel_workflows(loaded: LoadedConfig, task_ids: list[str]) -> int:
    """Cancel the durable workflows of these tasks (the first, and any a retry forked): a queued one never
    starts, a running one stops before its next step. Their ledger rows say `cancelled` first, so a
    coordinator's last step cannot undo it. Returns how many workflows were cancelled."""
    client = _client(loaded) if task_ids else None  # an empty id list filters nothing: never pass one
    if client is None:
        return 0
    try:
        found = client.list_workflows(workflow_ids=task_ids, status=_LIVE, load_input=False, load_output=False)
        found += client.list_workflows(forked_from=task_ids, status=_LIVE, load_input=False, load_output=False)
        ids = [w.workflow_id for w in found]
        if ids:
            client.cancel_workflows(ids)
        return len(ids)
    finally:
        client.destroy()


def requeue_workflows(loaded: LoadedConfig, task_ids: list[str]) -> int:
    """Run these tasks (back to `queued` in the ledger) again: each a fresh workflow on the queue, forked from
    its first (a task's workflow id is its id, and an ended workflow never runs twice). A task that never had
    a workflow is queued by the next `switchyard run`. Returns how many were forked."""
    client = _client(loaded) if task_ids else None  # an empty id list filters nothing: never pass one
    if client is None:
        return 0
    try:
        known = {
            w.workflow_id for w in client.list_workflows(workflow_ids=task_ids, load_input=False, load_output=False)
        }
        for task_id in task_ids:
            if task_id in known:
                client.fork_workflow(task_id, 0, application_version=APP_VERSION, queue_name=QUEUE)
        return len(known)
    finally:
        client.destroy()


def _stop_queue() -> None:
    """Stop DBOS's background threads, the queue poller among them, so nothing new is dequeued.

    This is the first thing `DBOS.destroy()` does; we cannot call destroy() itself yet
    because running workflows still need the system database. It reaches into DBOS
    internals (the version is pinned in pyproject.toml); `hold_while_stopping()` is the
    guard that holds even if this does nothing.
    """
    try:
        from dbos._dbos import _get_dbos_instance

        for event in getattr(_get_dbos_instance(), "background_thread_stop_events", []):
            event.set()
    except Exception:
        pass


def _now_ms() -> int:
    return int(time.time() * 1000)
