"""The coordinator: pull tasks, queue them durably, run each as a workflow of routed attempts.

This is the only module that imports DBOS. A task is a DBOS workflow (its id is
the task id, so enqueuing twice is a no-op); each provider attempt is a DBOS
step. Steps are at-least-once: a step cut short by a crash runs again after
recovery with the same attempt id, and `Runner.attempt()` is idempotent on that
id (the ledger's primary key), so an attempt never leaves two rows and an
attempt that was recorded is never called twice.

    task workflow:  begin ─► for each escalation level (retry_count + n):
                               route ─► attempt ─► attempt ─► ... (Failover: retries, fallbacks)
                               └─ success: done   failure: retrying, routed again (rules see retry_count)
                             ─► dead after [coordinator] max_attempts, with the last error

Shutdown: the first SIGINT/SIGTERM stops taking new work (no new dequeues, no
new attempts); running attempts get `grace_s` to finish; then their process
groups are killed and they are recorded as interrupted. Unfinished workflows
stay pending in DBOS and resume on the next start, at the attempt that was
running. A second SIGINT stops at once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from dbos import DBOS, DBOSClient, SetWorkflowID

from switchyard._records import record
from switchyard.config import LoadedConfig
from switchyard.errors import ConfigError, RunError
from switchyard.failures import FailureKind
from switchyard.ledger.store import Ledger
from switchyard.progress import Reporter
from switchyard.prompts import check_template, render_prompt
from switchyard.providers.base import ChildProcesses, ProviderContext
from switchyard.redact import Redactor
from switchyard.router import Route
from switchyard.runner import AttemptOutcome, Failover, Plan, Runner, safe_name
from switchyard.sources import Source, SourceError
from switchyard.task import Task

__all__ = ["APP_VERSION", "QUEUE", "Coordinator"]

QUEUE = "switchyard-tasks"
# Pinned: DBOS only recovers workflows recorded under the same version. Bump it only when
# the workflow's sequence of steps changes incompatibly.
APP_VERSION = "switchyard-wf-1"
ACTIVE_STATES = ("queued", "running", "retrying")

_active: Coordinator | None = None


def _co() -> Coordinator:
    if _active is None:  # pragma: no cover - DBOS only runs workflows after start()
        raise RunError("no coordinator is running in this process")
    return _active


@record
class Begun:
    """What a task's first step prepared: the task, its prompt, and where the agent works."""

    task_json: str
    prompt: str
    workdir: str | None


# ------------------------------------------------------------------ DBOS workflow and steps
@DBOS.step()
def _step_route(task_id: str, level: int) -> tuple[Begun, Route]:
    return _co().prepare(task_id, level)


@DBOS.step()
def _step_attempt(
    task_json: str, route: Route, plan: Plan, attempt_id: str, prompt: str, workdir: str | None, last: bool
) -> AttemptOutcome | None:
    return _co().attempt(task_json, route, plan, attempt_id, prompt, workdir, finishes_task=last)


@DBOS.step()
def _step_finish(task_id: str, state: str, retry_count: int, last_error: str | None) -> None:
    _co().finish(task_id, state, retry_count, last_error)


@DBOS.workflow()
def _task_workflow(task_id: str) -> str:
    co = _co()
    max_attempts = co.loaded.coordinator.max_attempts
    last_error: str | None = None
    retry_count = 0
    for level in range(max_attempts):
        co.hold_while_stopping()
        # One step prepares and routes (rules see retry_count = the task's own + level); a
        # successful attempt marks the task done in its own step: two checkpoints per task.
        begun, route = _step_route(task_id, level)
        task = Task.from_dict(json.loads(begun.task_json))
        retry_count = task.retry_count
        ok, error = co.run_route(task, route, begun, level)
        if ok:
            return "done"
        last_error = error
        if level + 1 < max_attempts:
            _step_finish(task_id, "retrying", retry_count + 1, last_error)
    _step_finish(task_id, "dead", retry_count, last_error)
    return "dead"


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
    ) -> None:
        self.loaded = loaded
        cfg = loaded.coordinator
        self.workers = workers or cfg.max_workers
        self.reporter = reporter or Reporter()
        state = loaded.resolve(".switchyard")
        state.mkdir(parents=True, exist_ok=True)
        self.state_dir = state
        self.system_db = system_db or cfg.system_db or self._default_system_db()
        self.template = self._load_template()
        self.ledger = Ledger.open(loaded.ledger_location())
        names = [p.api_key_env for p in loaded.providers.values() if p.api_key_env]
        self.context = ProviderContext(redactor=Redactor.from_env(names), children=ChildProcesses(state / "children"))
        self.runner = Runner(loaded, self.ledger, context=self.context)
        self.draining = threading.Event()
        self._never = threading.Event()
        self._inflight = 0
        self._lock = threading.Lock()
        self.started = False

    # setup -------------------------------------------------------------------------
    def _default_system_db(self) -> str:
        location = self.loaded.ledger_location()
        if location.startswith(("postgresql://", "postgres://")):
            return location  # one PostgreSQL for the ledger and the queue: many machines share both
        return "sqlite:///" + str(self.loaded.resolve(".switchyard/dbos.sqlite"))

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

    def start(self) -> None:
        """Kill agents a crashed run left behind, launch DBOS (recovering pending workflows), re-queue lost enqueues."""
        global _active
        reaped = self.context.children.reap_stale()
        if reaped:
            self.reporter.note(f"killed {reaped} agent process group(s) left by a previous run")
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
        _active = self
        DBOS(
            config={
                "name": "switchyard",
                "system_database_url": self.system_db,
                "application_version": APP_VERSION,
                "executor_id": self.loaded.coordinator.executor_id,
                "log_level": "WARNING",
                "notification_listener_polling_interval_sec": 0.1,
            }
        )
        DBOS.launch()
        self.started = True
        for row in self.ledger.tasks(states=["queued"]):
            self._enqueue_workflow(row.task_id)

    def close(self) -> None:
        """Stop DBOS (after every workflow is done) and release resources."""
        global _active
        if self.started:
            DBOS.destroy(workflow_completion_timeout_sec=0)
            self.started = False
        self.runner.close()
        self.ledger.close()
        _active = None

    # intake ----------------------------------------------------------------------------
    def _enqueue_workflow(self, task_id: str) -> None:
        with SetWorkflowID(task_id):
            DBOS.enqueue_workflow(QUEUE, _task_workflow, task_id)

    def submit(self, tasks: Iterable[Task], source: str | None = None) -> int:
        """Queue tasks not seen before; returns how many were new (re-reading a source adds nothing)."""
        added = 0
        now = int(time.time() * 1000)
        for task in tasks:
            if self.draining.is_set():
                break
            if self.ledger.add_task(task.id, json.dumps(task.to_dict()), source or task.source, now):
                self._enqueue_workflow(task.id)
                self.reporter.event("queued", task.id)
                added += 1
        return added

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
    def prepare(self, task_id: str, level: int) -> tuple[Begun, Route]:
        """Mark the task running at escalation `level`, fill its prompt, make its worktree, route it."""
        row = self.ledger.task(task_id)
        if row is None:
            raise RunError(f"task {task_id} is not in the ledger")
        original = Task.from_dict(json.loads(row.task_json))
        task = original.with_retry(original.retry_count + level)
        workdir = self._worktree(task) if self.loaded.coordinator.worktree else None
        prompt = render_prompt(self.template, task)
        self.ledger.set_task(task_id, "running", _now_ms(), retry_count=task.retry_count)
        self.reporter.event("begin", task_id, level=level)
        begun = Begun(json.dumps(task.to_dict()), prompt, str(workdir) if workdir else None)
        return begun, self.runner.decide(task)

    def _worktree(self, task: Task) -> Path:
        cfg = self.loaded.coordinator
        repo = self.loaded.resolve(cfg.repo)
        path = self.loaded.resolve(cfg.worktree_dir) / safe_name(task.id)
        if path.exists():
            return path
        branch = cfg.branch_prefix + safe_name(task.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        for argv in (
            ["git", "-C", str(repo), "worktree", "add", "-b", branch, str(path)],
            ["git", "-C", str(repo), "worktree", "add", str(path), branch],  # the branch exists already
        ):
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                return path
        raise RunError(f"task {task.id}: git worktree add failed: {proc.stderr.strip()[-300:]}")

    def attempt(
        self,
        task_json: str,
        route: Route,
        plan: Plan,
        attempt_id: str,
        prompt: str,
        workdir: str | None,
        *,
        finishes_task: bool = False,
    ) -> AttemptOutcome | None:
        task = Task.from_dict(json.loads(task_json))
        provider = plan.candidate.provider
        if self.ledger.get(attempt_id) is None and not self.runner.health.allow(provider):
            return None
        with self._lock:
            self._inflight += 1
        self.reporter.event("start", task.id, model=plan.candidate.model, provider=provider)
        try:
            out = self.runner.attempt(
                task,
                plan,
                route,
                prompt=prompt,
                attempt_id=attempt_id,
                workflow=route.workflow,
                stage=route.stage,
                run_id=task.id,
                workdir=Path(workdir) if workdir else None,
            )
        finally:
            with self._lock:
                self._inflight -= 1
        rec = out.record
        self.reporter.event(
            "attempt", task.id, model=rec.model, status=rec.status, cost=rec.cost_usd, error=rec.error_class
        )
        if out.ok and finishes_task:
            self.finish(task.id, "done", task.retry_count, None)
        return out

    def run_route(self, task: Task, route: Route, begun: Begun, level: int) -> tuple[bool, str | None]:
        """Walk one route's candidates (inside the workflow body: every call is a step)."""
        failover = Failover(route, self.loaded, jitter_key=f"{task.id}:{level}")
        n = 0
        last: AttemptOutcome | None = None
        task_json = begun.task_json
        while (plan := failover.next()) is not None:
            if plan.delay_s > 0:
                DBOS.sleep(plan.delay_s)
            self.hold_while_stopping()
            attempt_id = f"{task.id}:r{task.retry_count}:a{n}"
            out = _step_attempt(task_json, route, plan, attempt_id, begun.prompt, begun.workdir, True)
            n += 1
            if out is None:
                failover.skip(f"circuit open for {plan.candidate.provider}")
                continue
            last = out
            if out.failure is not None and out.failure.kind is FailureKind.INTERRUPTED:
                self.hold_while_stopping()
                failover.again()
                continue
            failover.observe(out.failure)
        if last is not None and last.ok:
            return True, None
        why = failover.why
        if last is not None and last.record.error_message:
            why = f"{last.record.model}: [{last.record.error_class}] {last.record.error_message[:300]}"
        return False, why

    def finish(self, task_id: str, state: str, retry_count: int, last_error: str | None) -> None:
        self.ledger.set_task(task_id, state, _now_ms(), retry_count=retry_count, last_error=last_error)
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

    def kill_running(self) -> int:
        """Kill every running agent's process group; their attempts end as interrupted."""
        self.context.hard_stop.set()
        import signal

        n = self.context.children.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + 2
        while self.context.children.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.context.children.kill_all(signal.SIGKILL)
        return n

    def wait_idle(self, stop: threading.Event, poll_s: float = 0.2) -> bool:
        """Wait until no task is queued or running; False if `stop` was set first."""
        while not stop.is_set():
            if not self.ledger.tasks(states=list(ACTIVE_STATES)):
                return True
            stop.wait(poll_s)
        return False


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
