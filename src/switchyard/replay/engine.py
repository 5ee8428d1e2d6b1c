"""Replay a config against an outcomes table: its real Router, the coordinator's escalation.

For each task, as `switchyard run` would: pick the workflow (`Router.pick_workflow`),
then for each stage route it (`Router.decide` with `retry_count`, stage, workflow,
the stage's `requires`, and budget facts), "attempt" the chosen model by reading its
outcome from the table, and let the verifier judge it. A pass ends the stage; a
failure adds one to `retry_count` and routes again, up to `[coordinator] max_attempts`
(the retry count carries over to later stages, as in the coordinator). A task whose
routed model has no outcome in the table stops there and is reported as `missing`:
nothing is guessed.

Budgets are simulated in memory with the config's own limits: the hold for an
attempt is its recorded cost (a live run holds a worst-case estimate, so it is
refused earlier); `block` stops the task (`blocked`), `downgrade` moves to the
route's next candidate, and rules see `budget.*` facts. Workflow stages are
replayed where the table has rows for them; review loops are not replayed.

The verifier stands between an attempt and the coordinator: a real verify command
is not the hidden test suite. With recall r and false-pass rate f, a resolved
attempt passes with probability r (a miss escalates), an unresolved one passes
with probability f (the task ends believed done but not resolved: a false pass).
The draws are a stable hash of (seed, task, stage, table model, attempt number),
so every config sees the same verifier on the same attempt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from switchyard._records import record
from switchyard.budgets import period_bounds
from switchyard.config import LoadedConfig
from switchyard.config.schema import BudgetLimit
from switchyard.errors import InputError, did_you_mean
from switchyard.facts import BudgetView, PeriodFacts, stable_hash
from switchyard.replay.outcomes import Outcome, OutcomeTable
from switchyard.router import Router
from switchyard.task import Task

__all__ = [
    "DEFAULT_NOW",
    "STATUSES",
    "PolicyResult",
    "Replayer",
    "Summary",
    "TaskResult",
    "Verifier",
    "map_models",
    "model_slug",
    "oracle",
    "oracle_frontier",
    "single_model",
    "summarize",
]

# The router's clock when the table gives no `submitted_at`: fixed, so a replay is repeatable.
DEFAULT_NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
RESOLVED, FALSE_PASS, FAILED, MISSING, BLOCKED = "resolved", "false_pass", "failed", "missing", "blocked"
STATUSES = (RESOLVED, FALSE_PASS, FAILED, MISSING, BLOCKED)
_SPACE = 1 << 64


# ----------------------------------------------------------------------------- verifier
class Verifier:
    """How often the verify step agrees with the hidden tests (seeded, deterministic)."""

    __slots__ = ("_fp_at", "_recall_at", "false_pass_rate", "recall", "seed")

    def __init__(self, recall: Decimal | str | float = 1, false_pass_rate: Decimal | str | float = 0, seed: int = 0):
        self.recall = _fraction(recall, "--verifier-recall")
        self.false_pass_rate = _fraction(false_pass_rate, "--false-pass-rate")
        self.seed = seed
        self._recall_at = int(self.recall * _SPACE)
        self._fp_at = int(self.false_pass_rate * _SPACE)

    @property
    def perfect(self) -> bool:
        return self.recall == 1 and self.false_pass_rate == 0

    def draw(self, task_id: str, stage: str, model: str, attempt: int) -> int:
        """The attempt's uniform draw in [0, 2**64)."""
        return stable_hash(f"verify\x00{self.seed}\x00{task_id}\x00{stage}\x00{model}\x00{attempt}")

    def passes(self, resolved: bool, task_id: str, stage: str, model: str, attempt: int) -> bool:
        """Does the verifier accept this attempt? `model` is the table's name (the same draw for every config)."""
        if self.perfect:
            return resolved
        return self.draw(task_id, stage, model, attempt) < (self._recall_at if resolved else self._fp_at)

    def to_dict(self) -> dict[str, object]:
        return {"recall": self.recall, "false_pass_rate": self.false_pass_rate, "seed": self.seed}


def _fraction(value: Decimal | str | float, option: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        raise InputError(f"{option} {value}: expected a number between 0 and 1") from None
    if not d.is_finite() or not 0 <= d <= 1:
        raise InputError(f"{option} {value}: expected a number between 0 and 1")
    return d


# ----------------------------------------------------------------------------- results
@record
class TaskResult:
    """What happened to one task in a replay."""

    task_id: str
    priority: int
    labels: tuple[str, ...]
    status: str
    attempts: int
    cost_usd: Decimal
    tokens: int
    latency_ms: int
    models: tuple[str, ...]
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "task": self.task_id,
            "status": self.status,
            "attempts": self.attempts,
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "latency_ms": self.latency_ms,
            "models": list(self.models),
            "note": self.note,
        }


@record
class Summary:
    """Totals over a set of tasks."""

    tasks: int = 0
    resolved: int = 0
    false_pass: int = 0
    failed: int = 0
    missing: int = 0
    blocked: int = 0
    attempts: int = 0
    cost_usd: Decimal = Decimal(0)
    tokens: int = 0
    latency_ms: int = 0

    @property
    def share(self) -> float:
        """Resolved share of all tasks (missing and blocked tasks count as not resolved)."""
        return self.resolved / self.tasks if self.tasks else 0.0

    @property
    def cost_per_task(self) -> Decimal:
        return self.cost_usd / self.tasks if self.tasks else Decimal(0)

    def to_dict(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "resolved": self.resolved,
            "resolved_share": round(self.share, 6),
            "false_pass": self.false_pass,
            "failed": self.failed,
            "missing": self.missing,
            "blocked": self.blocked,
            "attempts": self.attempts,
            "cost_usd": self.cost_usd,
            "cost_per_task_usd": self.cost_per_task,
            "tokens": self.tokens,
            "latency_ms": self.latency_ms,
        }


def summarize(results: Iterable[TaskResult]) -> Summary:
    """Add up task results."""
    counts = dict.fromkeys(STATUSES, 0)
    n = attempts = tokens = latency = 0
    cost = Decimal(0)
    for r in results:
        n += 1
        counts[r.status] += 1
        attempts += r.attempts
        cost += r.cost_usd
        tokens += r.tokens
        latency += r.latency_ms
    return Summary(
        n,
        counts[RESOLVED],
        counts[FALSE_PASS],
        counts[FAILED],
        counts[MISSING],
        counts[BLOCKED],
        attempts,
        cost,
        tokens,
        latency,
    )


@record
class PolicyResult:
    """One policy (a config, a single model, the oracle) replayed over a set of tasks."""

    name: str
    kind: str  # config | model | oracle
    summary: Summary
    groups: dict[str, Summary]
    tasks: tuple[TaskResult, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self, *, with_tasks: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            **self.summary.to_dict(),
            "groups": {k: v.to_dict() for k, v in self.groups.items()},
            "notes": list(self.notes),
        }
        if with_tasks:
            out["tasks"] = [t.to_dict() for t in self.tasks]
        return out


def _groups(results: Sequence[TaskResult], *, by_priority: bool, by_label: bool) -> dict[str, Summary]:
    buckets: dict[str, list[TaskResult]] = {}
    for r in results:
        if by_priority:
            buckets.setdefault(f"priority:{r.priority}", []).append(r)
        if by_label:
            for label in r.labels:
                buckets.setdefault(f"label:{label}", []).append(r)
    return {k: summarize(v) for k, v in sorted(buckets.items(), key=lambda kv: _group_order(kv[0]))}


def _group_order(key: str) -> tuple[int, str]:
    return (0 if key.startswith("priority:") else 1, key)


def _result(
    name: str, kind: str, table: OutcomeTable, results: list[TaskResult], notes: Iterable[str] = ()
) -> PolicyResult:
    return PolicyResult(
        name,
        kind,
        summarize(results),
        _groups(results, by_priority=table.has_priority, by_label=table.has_labels),
        tuple(results),
        tuple(notes),
    )


# ----------------------------------------------------------------------------- model names
_SLUG = re.compile(r"[^a-z0-9]+")


def model_slug(name: str) -> str:
    """`Claude 4.5 Opus (2025)` -> `claude-4-5-opus-2025`: how replay matches names that differ in case and punctuation."""
    return _SLUG.sub("-", name.lower()).strip("-")


def map_models(
    config_models: Iterable[str],
    table_models: Iterable[str],
    explicit: Mapping[str, str] | None = None,
    named: Mapping[str, str] | None = None,
    *,
    config: str = "the config",
) -> dict[str, str | None]:
    """Which table model each config model stands for.

    In order: an explicit `--map CONFIG=TABLE` entry; the model's own `outcome_model`
    in the config (`named`); the identical name; the one table model whose slug
    (`model_slug`) equals the config model's slug. A config model that matches
    nothing maps to None: routing a task to it is reported as a missing outcome.
    """
    table = list(table_models)
    known = set(table)
    by_slug: dict[str, list[str]] = {}
    for t in table:
        by_slug.setdefault(model_slug(t), []).append(t)
    explicit = dict(explicit or {})
    for target in explicit.values():
        if target not in known:
            raise InputError(f"--map: '{target}' is not a model in the outcomes table" + did_you_mean(target, known))
    named = {k: v for k, v in (named or {}).items() if k not in explicit}
    for name, target in named.items():
        if target not in known:
            raise InputError(
                f"{config}: model '{name}' has outcome_model = '{target}', which is not a model in the outcomes table"
                + did_you_mean(target, known)
                + f"; fix it, or override it with --map {name}=TABLE_MODEL"
            )
    out: dict[str, str | None] = {}
    for name in config_models:
        if name in explicit:
            out[name] = explicit[name]
        elif name in named:
            out[name] = named[name]
        elif name in known:
            out[name] = name
        else:
            same = by_slug.get(model_slug(name), [])
            if len(same) > 1:
                raise InputError(
                    f"config model '{name}' matches several table models by name ({', '.join(same)}); "
                    f"say which with --map {name}=TABLE_MODEL"
                )
            out[name] = same[0] if same else None
    return out


# ----------------------------------------------------------------------------- budgets
class _BudgetSim:
    """The config's budget limits, held in memory: spend per counter, refusals, the `budget.*` facts."""

    def __init__(self, limits: Sequence[BudgetLimit], tz: object) -> None:
        self.limits = tuple(limits)
        self.tz = tz
        self.spent: dict[str, Decimal] = {}

    def _counters(self, at: datetime, scopes: set[str] | None) -> list[tuple[str, BudgetLimit]]:
        local = at.astimezone(self.tz) if self.tz is not None else at.astimezone()  # type: ignore[arg-type]
        out = []
        for limit in self.limits:
            if scopes is not None and limit.scope not in scopes:
                continue
            start, _end = period_bounds(limit.period, local)
            out.append((f"{limit.scope}|{limit.period}|{start}", limit))
        return out

    def refusal(
        self,
        amount: Decimal,
        *,
        at: datetime,
        provider: str,
        model: str,
        labels: Iterable[str],
        workflow: str | None,
    ) -> tuple[BudgetLimit | None, list[str]]:
        """(the limit that refuses `amount`, or None; the counters it would draw on), like `Budgets.reserve`."""
        scopes = {"global", f"provider:{provider}", f"model:{model}", f"workflow:{workflow}"}
        scopes.update(f"label:{label}" for label in labels)
        counters = sorted(self._counters(at, scopes), key=lambda c: c[0])
        for key, limit in counters:
            if self.spent.get(key, Decimal(0)) + amount > limit.limit_usd:
                return limit, []
        return None, [key for key, _ in counters]

    def spend(self, keys: Iterable[str], amount: Decimal) -> None:
        for key in keys:
            self.spent[key] = self.spent.get(key, Decimal(0)) + amount

    def view(self, at: datetime) -> BudgetView:
        """What `Budgets.view` would show, with nothing held."""
        periods: dict[str, PeriodFacts] = {}
        scopes: dict[str, PeriodFacts] = {}
        for key, limit in self._counters(at, None):
            facts = PeriodFacts(self.spent.get(key, Decimal(0)), Decimal(0), limit.limit_usd)
            if limit.scope == "global":
                prev = periods.get(limit.period)
                if prev is None or (facts.remaining_usd or 0) < (prev.remaining_usd or 0):
                    periods[limit.period] = facts
            prev = scopes.get(limit.scope)
            if prev is None or facts.fraction > prev.fraction:
                scopes[limit.scope] = facts
        none = PeriodFacts()
        return BudgetView(
            day=periods.get("day", none),
            week=periods.get("week", none),
            month=periods.get("month", none),
            scopes=scopes,
        )


# ----------------------------------------------------------------------------- the replay
@record
class _Stage:
    name: str | None
    model: str | None
    requires: tuple[str, ...]


class Replayer:
    """Replays one loaded config over an outcomes table."""

    def __init__(
        self,
        loaded: LoadedConfig,
        table: OutcomeTable,
        *,
        name: str | None = None,
        model_map: Mapping[str, str] | None = None,
        verifier: Verifier | None = None,
        now: datetime | None = None,
        workflows: bool = True,
    ) -> None:
        self.loaded = loaded
        self.table = table
        self.name = name or loaded.path or "config"
        self.router = Router(loaded)
        self.verifier = verifier or Verifier()
        self.now = now or DEFAULT_NOW
        self.use_workflows = workflows
        self.max_attempts = loaded.coordinator.max_attempts
        self.outcome_of = map_models(
            (m.name for m in loaded.config.models),
            table.models,
            model_map,
            {m.name: m.outcome_model for m in loaded.config.models if m.outcome_model is not None},
            config=loaded.path or "the config",
        )
        self.provider_of = {m.name: m.provider for m in loaded.config.models}
        self.limits = loaded.budgets.all_limits()
        self._stages: dict[str | None, tuple[_Stage, ...]] = {None: (_Stage(None, None, ()),)}
        for wf_name, wf in loaded.workflows.items():
            self._stages[wf_name] = tuple(_Stage(s.name, s.model, s.requires) for s in wf.stages)
        self._missing: dict[str, int] = {}  # what was missing -> how many tasks (per run)
        self._skipped: dict[str, int] = {}

    def run(self, task_ids: Iterable[str] | None = None) -> PolicyResult:
        """Replay the tasks (all, or these ids in the table's order) in order of arrival."""
        tasks = list(self.table.tasks)
        if task_ids is not None:
            keep = set(task_ids)
            tasks = [t for t in tasks if t.id in keep]
        submitted = self.table.submitted
        if submitted:
            order = {t.id: i for i, t in enumerate(tasks)}
            tasks.sort(key=lambda t: (submitted.get(t.id, self.now), order[t.id]))
        budgets = _BudgetSim(self.limits, self.router.tz) if self.limits else None
        self._missing = {}
        self._skipped = {}
        results = [self._task(task, submitted.get(task.id, self.now), budgets) for task in tasks]
        if submitted:
            index = {tid: i for i, tid in enumerate(self.table.task_ids)}
            results.sort(key=lambda r: index[r.task_id])
        notes = [f"{what}: {n} task(s)" for what, n in sorted(self._missing.items())]
        notes += [f"{what} (skipped in {n} task(s))" for what, n in sorted(self._skipped.items())]
        return _result(self.name, "config", self.table, results, notes)

    def _task(self, task: Task, at: datetime, budgets: _BudgetSim | None) -> TaskResult:
        router = self.router
        table = self.table
        view = budgets.view(at) if budgets is not None else None
        workflow = router.pick_workflow(task, now=at, budget=view) if self.use_workflows else None
        stages = self._stages[workflow]
        retry = task.retry_count
        attempts = tokens = latency = 0
        cost = Decimal(0)
        models: list[str] = []
        wrong = False
        replayed = 0

        def result(status: str, note: str | None = None) -> TaskResult:
            return TaskResult(
                task.id, task.priority, task.labels, status, attempts, cost, tokens, latency, tuple(models), note
            )

        for stage in stages:
            key = stage.name or ""
            if workflow is not None and key not in table.stages:
                what = f"workflow {workflow}: stage '{key}' has no rows in the table"
                self._skipped[what] = self._skipped.get(what, 0) + 1
                continue
            replayed += 1
            passed = False
            n = 0  # attempts at this stage: the verifier's draw index
            for level in range(self.max_attempts):
                t = task.with_retry(retry)
                if budgets is not None:
                    view = budgets.view(at)
                decision = router.decide(
                    t, stage=stage.name, workflow=workflow, requires=stage.requires, now=at, budget=view
                )
                chain: list[str] = [stage.model] if stage.model is not None else [decision.model]
                if budgets is not None or stage.model is not None:
                    chain += [c.model for c in decision.candidates if c.model not in chain]
                usable = decision.available or stage.model is not None
                chosen: tuple[str, Outcome] | None = None
                keys: list[str] = []
                for model in chain if usable else ():
                    table_model = self.outcome_of.get(model)
                    outcome = table.get(task.id, table_model, key) if table_model is not None else None
                    if outcome is None:
                        what = (
                            f"config model '{model}' matches no table model (use --map {model}=TABLE_MODEL)"
                            if table_model is None
                            else f"no outcome for '{table_model}'" + (f" at stage '{key}'" if key else "")
                        )
                        self._missing[what] = self._missing.get(what, 0) + 1
                        return result(MISSING, f"{what} (task {task.id})")
                    if budgets is not None:
                        refusing, keys = budgets.refusal(
                            outcome.cost_usd,
                            at=at,
                            provider=self.provider_of[model],
                            model=model,
                            labels=task.labels,
                            workflow=workflow,
                        )
                        if refusing is not None:
                            if refusing.on_exceed == "block":
                                return result(BLOCKED, f"budget {refusing.scope} per {refusing.period} blocked it")
                            continue  # downgrade: the route's next candidate
                    chosen = (model, outcome)
                    break
                if chosen is not None:
                    model, outcome = chosen
                    attempts += 1
                    cost += outcome.cost_usd
                    tokens += outcome.total_tokens
                    latency += outcome.latency_ms or 0
                    models.append(model)
                    if budgets is not None:
                        budgets.spend(keys, outcome.cost_usd)
                    ok = self.verifier.passes(outcome.resolved, task.id, key, outcome.model, n)
                    n += 1
                    if ok:
                        wrong = wrong or not outcome.resolved
                        passed = True
                        break
                if level + 1 < self.max_attempts:
                    retry += 1
            if not passed:
                return result(FAILED)
        if replayed == 0:
            names = ", ".join(s.name or "-" for s in stages)
            what = f"workflow {workflow}: none of its stages ({names}) is in the table; try --no-workflows"
            self._missing[what] = self._missing.get(what, 0) + 1
            return result(MISSING, what)
        return result(FALSE_PASS if wrong else RESOLVED)


# ----------------------------------------------------------------------------- reference policies
def _tasks(table: OutcomeTable, task_ids: Iterable[str] | None) -> list[Task]:
    if task_ids is None:
        return list(table.tasks)
    keep = set(task_ids)
    return [t for t in table.tasks if t.id in keep]


def single_model(table: OutcomeTable, model: str, task_ids: Iterable[str] | None = None) -> PolicyResult:
    """Every task sent to `model` once, as the table recorded it (no verifier, no retry)."""
    results = []
    for t in _tasks(table, task_ids):
        o = table.get(t.id, model)
        if o is None:
            results.append(TaskResult(t.id, t.priority, t.labels, MISSING, 0, Decimal(0), 0, 0, ()))
            continue
        results.append(
            TaskResult(
                t.id,
                t.priority,
                t.labels,
                RESOLVED if o.resolved else FAILED,
                1,
                o.cost_usd,
                o.total_tokens,
                o.latency_ms or 0,
                (model,),
            )
        )
    missing = sum(r.status == MISSING for r in results)
    notes = [f"no outcome for {missing} task(s)"] if missing else []
    return _result(model, "model", table, results, notes)


def _cheapest_resolver(table: OutcomeTable, task_id: str, models: Sequence[str]) -> Outcome | None:
    best: Outcome | None = None
    for m in models:
        o = table.get(task_id, m)
        if o is not None and o.resolved and (best is None or o.cost_usd < best.cost_usd):
            best = o
    return best


def oracle(
    table: OutcomeTable, task_ids: Iterable[str] | None = None, models: Sequence[str] | None = None
) -> PolicyResult:
    """The cheapest model that resolves each task, known in advance; tasks no model resolves cost nothing."""
    models = list(models or table.models)
    results = []
    for t in _tasks(table, task_ids):
        o = _cheapest_resolver(table, t.id, models)
        if o is None:
            results.append(TaskResult(t.id, t.priority, t.labels, FAILED, 0, Decimal(0), 0, 0, ()))
        else:
            results.append(
                TaskResult(
                    t.id, t.priority, t.labels, RESOLVED, 1, o.cost_usd, o.total_tokens, o.latency_ms or 0, (o.model,)
                )
            )
    return _result("oracle (cheapest resolver)", "oracle", table, results)


def oracle_frontier(
    table: OutcomeTable, task_ids: Iterable[str] | None = None, models: Sequence[str] | None = None
) -> list[tuple[Decimal, int]]:
    """(cost, resolved) points of the oracle's frontier: the k cheapest-to-resolve tasks, k = 0..max."""
    models = list(models or table.models)
    costs = sorted(
        o.cost_usd
        for t in _tasks(table, task_ids)
        if (o := _cheapest_resolver(table, t.id, models)) is not None  # noqa: RUF100
    )
    points = [(Decimal(0), 0)]
    total = Decimal(0)
    for i, c in enumerate(costs, 1):
        total += c
        points.append((total, i))
    return points
