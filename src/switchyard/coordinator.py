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
import os
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSClient, SetWorkflowID

from switchyard._records import record
from switchyard.budgets import BudgetExceeded, Budgets
from switchyard.config import LoadedConfig, load_config
from switchyard.errors import ConfigError, RunError
from switchyard.failures import FailureKind
from switchyard.ledger.store import Ledger
from switchyard.progress import Reporter
from switchyard.prompts import DEFAULT_STAGE_TEMPLATE, check_template, render_prompt
from switchyard.providers.base import ChildProcesses, ProviderContext
from switchyard.redact import Redactor
from switchyard.router import Candidate, Route
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
class StagePlan:
    """One stage as the workflow runs it (plain data: it is checkpointed)."""

    name: str | None
    model: str | None = None
    template: str | None = None
    requires: tuple[str, ...] = ()
    timeout_s: float | None = None
    loop_to: str | None = None
    reject_if: str | None = None
    verdict_field: str | None = None
    reject_values: tuple[str, ...] = ()


@record
class TaskPlan:
    """What a task's first step prepared: the task, its workflow's stages, where the agent works."""

    task_json: str
    workflow: str | None
    stages: tuple[StagePlan, ...]
    max_loops: int
    workdir: str | None


@record
class Routed:
    """A stage routed: the prompt it gets and the candidates it may use."""

    prompt: str
    route: Route


@record
class Blocked:
    """An attempt that was not started because a budget limit would be exceeded."""

    message: str
    on_exceed: str


# ------------------------------------------------------------------ DBOS workflow and steps
@DBOS.step()
def _step_plan(task_id: str) -> tuple[TaskPlan, Routed]:
    return _co().plan(task_id)


@DBOS.step()
def _step_route(
    plan: TaskPlan, index: int, retry_count: int, loops: int, outputs: dict[str, tuple[str, str]]
) -> Routed:
    return _co().route_stage(plan, index, retry_count, loops, outputs)


@DBOS.step()
def _step_attempt(
    task_json: str,
    route: Route,
    plan: Plan,
    attempt_id: str,
    prompt: str,
    workdir: str | None,
    timeout_s: float | None,
    last: bool,
    unblock: bool,
    first: bool = False,
    failover_from: str | None = None,
) -> AttemptOutcome | Blocked | None:
    return _co().attempt(
        task_json,
        route,
        plan,
        attempt_id,
        prompt,
        workdir,
        timeout_s=timeout_s,
        finishes_task=last,
        unblock=unblock,
        first=first,
        failover_from=failover_from,
    )


@DBOS.step()
def _step_finish(
    task_id: str, state: str, retry_count: int, last_error: str | None, completed: str | None = None
) -> None:
    _co().finish(task_id, state, retry_count, last_error, completed)


@DBOS.workflow()
def _task_workflow(task_id: str) -> str:
    co = _co()
    plan, first = _step_plan(task_id)
    retry_count = Task.from_dict(json.loads(plan.task_json)).retry_count
    # A one-stage task finishes inside its successful attempt's step (two checkpoints per task).
    single = len(plan.stages) == 1 and plan.stages[0].loop_to is None
    outputs: dict[str, tuple[str, str]] = {}
    index = loops = 0
    routed: Routed | None = first
    completed: str | None = None
    while index < len(plan.stages):
        stage = plan.stages[index]
        ok, text, output_file, retry_count, error, completed = co.run_stage(
            plan, index, retry_count, loops, outputs, routed, single
        )
        routed = None
        if not ok:
            _step_finish(task_id, "dead", retry_count, error)
            return "dead"
        outputs[stage.name or "-"] = (text, output_file)
        if stage.loop_to is not None and loops < plan.max_loops and rejected(stage, text):
            loops += 1
            index = next(i for i, s in enumerate(plan.stages) if s.name == stage.loop_to)
            continue
        index += 1
    if not single:
        _step_finish(task_id, "done", retry_count, None, completed)
    return "done"


def rejected(stage: StagePlan, text: str) -> bool:
    """Did a review stage send the task back? A regex on its output, or a JSON field's value."""
    if stage.reject_if is not None and re.search(stage.reject_if, text):
        return True
    if stage.verdict_field is not None:
        value = _json_field(text, stage.verdict_field)
        if value is not None and str(value).strip().lower() in {v.lower() for v in stage.reject_values}:
            return True
    return False


def _json_field(text: str, dotted: str) -> Any:
    """`dotted` (e.g. `review.verdict`) from the whole text as JSON, else from its last JSON object."""
    candidates = [text.strip()]
    start = text.rfind("{")
    while start != -1 and len(candidates) <= 50:  # the verdict is near the end; do not try every brace
        candidates.append(text[start:])
        start = text.rfind("{", 0, start)
    for chunk in candidates:
        try:
            data: Any = json.loads(chunk)
        except ValueError:
            continue
        for part in dotted.split("."):
            data = data.get(part) if isinstance(data, dict) else None
        if data is not None:
            return data
    return None


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
        budgets = Budgets(loaded, self.ledger, owner=cfg.executor_id) if loaded.budgets.all_limits() else None
        self.runner = Runner(loaded, self.ledger, context=self.context, budgets=budgets)
        self.draining = threading.Event()
        self._never = threading.Event()
        self._inflight = 0
        self._lock = threading.Lock()
        self.blocked_seen: set[str] = set()
        self.started = False
        self._config_mtime = os.stat(loaded.path).st_mtime if loaded.path and os.path.exists(loaded.path) else None

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
        if self.runner.budgets is not None:
            settled, released = self.runner.budgets.reconcile()
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
    def plan(self, task_id: str) -> tuple[TaskPlan, Routed]:
        """Pick the task's workflow, resolve its stages, make its worktree, mark it running, route stage one."""
        row = self.ledger.task(task_id)
        if row is None:
            raise RunError(f"task {task_id} is not in the ledger")
        task = Task.from_dict(json.loads(row.task_json))
        budget = self.runner.budgets.view() if self.runner.budgets is not None else None
        workflow = self.runner.router.pick_workflow(task, provider_status=self.runner.health.status(), budget=budget)
        stages: tuple[StagePlan, ...]
        if workflow is None:
            stages = (StagePlan(None, template=self.template),)
            max_loops = 0
        else:
            wf = self.loaded.workflows[workflow]
            stages = tuple(self._stage_plan(s) for s in wf.stages)
            max_loops = wf.max_loops
        workdir = self._worktree(task) if self.loaded.coordinator.worktree else None
        self.ledger.set_task(task_id, "running", _now_ms(), retry_count=task.retry_count, workflow=workflow)
        self.reporter.event("begin", task_id)
        plan = TaskPlan(row.task_json, workflow, stages, max_loops, str(workdir) if workdir else None)
        return plan, self.route_stage(plan, 0, task.retry_count, 0, {})

    def _stage_plan(self, stage: Any) -> StagePlan:
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
        )

    def route_stage(
        self, plan: TaskPlan, index: int, retry_count: int, loops: int, outputs: dict[str, tuple[str, str]]
    ) -> Routed:
        """The prompt and candidates of stage `index`, as the task stands now."""
        stage = plan.stages[index]
        task = Task.from_dict(json.loads(plan.task_json)).with_retry(retry_count)
        previous = (plan.stages[index - 1].name or "-") if index > 0 else None
        prev_text, prev_file = outputs.get(previous, ("", "")) if previous else ("", "")
        prompt = render_prompt(
            stage.template,
            task,
            stage=stage.name,
            workflow=plan.workflow,
            previous_output=prev_text,
            previous_output_file=prev_file,
            stage_outputs={k: v[0] for k, v in outputs.items()},
            stage_output_files={k: v[1] for k, v in outputs.items()},
            loop_count=loops,
        )
        route = self.runner.decide(
            task, stage=stage.name, workflow=plan.workflow, requires=stage.requires, loop_count=loops
        )
        if stage.model is not None:
            # A fixed model comes first; the rules' choices for this stage are its fallbacks.
            provider = self.loaded.catalog[stage.model].provider
            fixed = Candidate(stage.model, provider, f"workflows.{plan.workflow}.{stage.name}")
            rest = tuple(c for c in route.candidates if c.model != stage.model)
            reason = f"workflow {plan.workflow}, stage {stage.name}: fixed model"
            route = Route(
                task.id, stage.model, provider, reason, None, None, None, (fixed, *rest), stage.name, plan.workflow
            )
        return Routed(prompt, route)

    def run_stage(
        self,
        plan: TaskPlan,
        index: int,
        retry_count: int,
        loops: int,
        outputs: dict[str, tuple[str, str]],
        routed: Routed | None,
        single: bool,
    ) -> tuple[bool, str, str, int, str | None, str | None]:
        """Run one stage, escalating on failure: (ok, output text, output file, retry_count, last error, attempt id)."""
        stage = plan.stages[index]
        max_attempts = self.loaded.coordinator.max_attempts
        error: str | None = None
        for level in range(max_attempts):
            self.hold_while_stopping()
            if routed is None:
                routed = _step_route(plan, index, retry_count, loops, outputs)
            task = Task.from_dict(json.loads(plan.task_json)).with_retry(retry_count)
            out, error = self.run_route(task, routed, plan, stage, loops, single, index == loops == level == 0)
            routed = None
            if out is not None:
                path = str(out.output_path) if out.output_path else ""
                return True, out.text or "", path, retry_count, None, out.record.attempt_id
            if level + 1 < max_attempts:
                retry_count += 1
                _step_finish(task.id, "retrying", retry_count, error)
        return False, "", "", retry_count, error, None

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
        timeout_s: float | None = None,
        finishes_task: bool = False,
        unblock: bool = False,
        first: bool = False,
        failover_from: str | None = None,
    ) -> AttemptOutcome | Blocked | None:
        task = Task.from_dict(json.loads(task_json))
        provider = plan.candidate.provider
        known_new = self.ledger.get(attempt_id) is None
        if known_new and not self.runner.health.allow(provider):
            return None
        with self._lock:
            self._inflight += 1
        if unblock:  # it was waiting on a budget; the check happens again just below
            self.ledger.set_task(task.id, "running", _now_ms())
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
                timeout_s=timeout_s,
                first=first,
                failover_from=failover_from,
                completes=finishes_task,
                known_new=known_new,
            )
        except BudgetExceeded as exc:
            self.reload_budgets()
            with self._lock:
                self.blocked_seen.add(task.id)
            if exc.on_exceed == "block":
                self.ledger.set_task(task.id, "blocked", _now_ms(), note=str(exc))
                self.reporter.event("blocked", task.id, error=str(exc))
            return Blocked(str(exc), exc.on_exceed)
        finally:
            with self._lock:
                self._inflight -= 1
        rec = out.record
        self.reporter.event(
            "attempt", task.id, model=rec.model, status=rec.status, cost=rec.cost_usd, error=rec.error_class
        )
        if out.ok and finishes_task:  # the attempt was recorded as the one that completed the task
            self.finish(task.id, "done", task.retry_count, None)
        return out

    def run_route(
        self, task: Task, routed: Routed, plan: TaskPlan, stage: StagePlan, loops: int, single: bool, opening: bool
    ) -> tuple[AttemptOutcome | None, str | None]:
        """Walk one route's candidates (inside the workflow body: every call is a step)."""
        route = routed.route
        failover = Failover(route, self.loaded, jitter_key=f"{task.id}:{stage.name}:{loops}:{task.retry_count}")
        n = 0
        last: AttemptOutcome | None = None
        task_json = json.dumps(task.to_dict())
        blocked = False
        previous: str | None = None  # the provider of the last real attempt on this route
        while (p := failover.next()) is not None:
            if p.delay_s > 0:
                DBOS.sleep(p.delay_s)
            self.hold_while_stopping()
            attempt_id = f"{task.id}:{stage.name or '-'}:l{loops}:r{task.retry_count}:a{n}"
            out = _step_attempt(
                task_json,
                route,
                p,
                attempt_id,
                routed.prompt,
                plan.workdir,
                stage.timeout_s,
                single,
                blocked,
                opening and previous is None,
                previous,
            )
            n += 1
            if out is None:
                failover.skip(f"circuit open for {p.candidate.provider}")
                continue
            if isinstance(out, Blocked):
                if out.on_exceed == "downgrade":
                    failover.skip(out.message)
                    continue
                blocked = True
                DBOS.sleep(self.loaded.budgets.recheck_s)
                failover.wait()  # waiting for budget is not an attempt: plan the same call again
                continue
            blocked = False
            previous = p.candidate.provider
            last = out
            if out.failure is not None and out.failure.kind is FailureKind.INTERRUPTED:
                self.hold_while_stopping()
                failover.again()
                continue
            failover.observe(out.failure)
        if last is not None and last.ok:
            return last, None
        why = failover.why
        if last is not None and last.record.error_message:
            why = f"{last.record.model}: [{last.record.error_class}] {last.record.error_message[:300]}"
        return None, why

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
            self.runner.budgets.config = fresh.budgets
            self.runner.budgets.limits = fresh.budgets.all_limits()

    def finish(
        self, task_id: str, state: str, retry_count: int, last_error: str | None, completed: str | None = None
    ) -> None:
        if completed is not None:
            self.ledger.mark_completed(completed)
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
        """Wait until no task is queued or running and every blocked one was re-checked here; False if stopped."""
        while not stop.is_set():
            if not self.ledger.count_tasks(ACTIVE_STATES):
                blocked = {t.task_id for t in self.ledger.tasks(states=["blocked"])}
                with self._lock:
                    if blocked <= self.blocked_seen:
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
