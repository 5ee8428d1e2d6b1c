"""Pick a model for a task: rules in order, first match wins, no I/O.

`Router.decide()` evaluates rules until one matches, takes its model (or its
split arm, sticky per task id), and checks the provider's status: when it is
`down` or `disabled` the router walks the rule's fallbacks, then the later
matching rules, then the default model, noting each skip in the trace.

The full candidate chain and the per-rule trace are computed on first access
from the same immutable facts, so they are exactly what an eager computation
would give; a plain `decide()` pays only for the rules it needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from switchyard._records import record
from switchyard.catalog import Catalog
from switchyard.config import LoadedConfig
from switchyard.errors import RunError
from switchyard.facts import BudgetView, Facts, routing_zone, stable_hash
from switchyard.rules.compile import Condition
from switchyard.task import Task

__all__ = ["UNAVAILABLE", "Candidate", "Decision", "Router", "RuleTrace"]

UNAVAILABLE = frozenset({"down", "disabled"})
_DEFAULT_REASON = "no rule matched; default model"
_HASH_SPACE = 1 << 64


@record
class Candidate:
    """A model to try, its provider, and where in the config it came from."""

    model: str
    provider: str
    source: str  # "rules[0]", "rules[0].fallbacks[1]", "default", "split"

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "provider": self.provider, "source": self.source}


@record
class Route:
    """A decision reduced to plain, picklable data: what the runner and the durable engine carry."""

    task_id: str
    model: str
    provider: str
    reason: str
    rule: int | None
    experiment: str | None
    arm: str | None
    candidates: tuple[Candidate, ...]
    stage: str | None = None
    workflow: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "model": self.model,
            "provider": self.provider,
            "reason": self.reason,
            "rule": self.rule,
            "experiment": self.experiment,
            "arm": self.arm,
            "candidates": [c.to_dict() for c in self.candidates],
            "stage": self.stage,
            "workflow": self.workflow,
        }


@record
class RuleTrace:
    """One rule as evaluated for a decision."""

    index: int
    condition: str
    matched: bool
    facts: dict[str, Any]
    target: str | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.index,
            "condition": self.condition,
            "matched": self.matched,
            "facts": _jsonable(self.facts),
            "target": self.target,
            "reason": self.reason,
        }


@record
class _Rule:
    index: int
    condition: Condition
    model: str | None
    split: tuple[tuple[str, int], ...]  # (model, cumulative threshold in hash space)
    fallbacks: tuple[str, ...]
    reason: str | None
    experiment: str | None
    workflow: str | None

    @property
    def source(self) -> str:
        return f"rules[{self.index}]"

    @property
    def reason_text(self) -> str:
        return self.reason or f"rules[{self.index}] matched: {self.condition.source}"

    def target(self, task_id: str) -> tuple[str | None, str | None]:
        """(model, split arm) for this task."""
        if not self.split:
            return self.model, None
        point = stable_hash(f"{self.experiment}\x00{task_id}")
        for model, threshold in self.split:
            if point < threshold:
                return model, model
        return self.split[-1][0], self.split[-1][0]  # pragma: no cover - thresholds end at 2**64

    def describe_target(self) -> str | None:
        if self.split:
            return "split " + ", ".join(m for m, _ in self.split)
        return self.model


class Decision:
    """The router's answer for one task (and stage). Cheap to make; chain and trace are lazy."""

    __slots__ = (
        "_candidates",
        "_router",
        "_trace",
        "arm",
        "available",
        "experiment",
        "facts",
        "model",
        "passed_over",
        "provider",
        "reason",
        "rule",
        "skipped",
    )

    def __init__(
        self,
        router: Router,
        facts: Facts,
        model: str,
        provider: str,
        reason: str,
        rule: int | None,
        experiment: str | None,
        arm: str | None,
        skipped: tuple[str, ...],
        available: bool,
        passed_over: tuple[tuple[int, str], ...] = (),
    ) -> None:
        self._router = router
        self.facts = facts
        self.model = model
        self.provider = provider
        self.reason = reason
        self.rule = rule
        self.experiment = experiment
        self.arm = arm
        self.skipped = skipped
        self.available = available
        # Rules that matched before the chosen candidate but were not used, with why: (rule index, notes).
        self.passed_over = passed_over
        self._candidates: tuple[Candidate, ...] | None = None
        self._trace: tuple[RuleTrace, ...] | None = None

    @property
    def task(self) -> Task:
        return self.facts.task

    @property
    def stage(self) -> str | None:
        return self.facts.stage

    @property
    def workflow(self) -> str | None:
        return self.facts.workflow

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """The failover chain: the chosen model first, then every other usable candidate in order."""
        if self._candidates is None:
            self._candidates = self._router._chain(self.facts, first=self.model)
        return self._candidates

    @property
    def trace(self) -> tuple[RuleTrace, ...]:
        """Every rule, whether it matched, and the facts it read."""
        if self._trace is None:
            self._trace = self._router._trace(self.facts)
        return self._trace

    def route(self) -> Route:
        """The plain-data form (candidates computed)."""
        return Route(
            self.task.id,
            self.model,
            self.provider,
            self.reason,
            self.rule,
            self.experiment,
            self.arm,
            self.candidates,
            self.stage,
            self.workflow,
        )

    def to_dict(self) -> dict[str, Any]:
        """The `route --json` object."""
        return {
            "task": self.task.id,
            "model": self.model,
            "provider": self.provider,
            "reason": self.reason,
            "rule": self.rule,
            "candidates": [c.to_dict() for c in self.candidates],
            "experiment": self.experiment,
            "arm": self.arm,
            "stage": self.stage,
            "workflow": self.workflow,
            "available": self.available,
            "skipped": list(self.skipped),
            "passed_over": [{"rule": i, "why": why} for i, why in self.passed_over],
            "facts": _jsonable(self.facts.snapshot()),
            "trace": [t.to_dict() for t in self.trace],
        }

    def __repr__(self) -> str:
        return f"Decision(model={self.model!r}, provider={self.provider!r}, rule={self.rule!r}, arm={self.arm!r})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class Router:
    """Routes tasks by the rules of one loaded config."""

    def __init__(self, loaded: LoadedConfig) -> None:
        routing = loaded.routing
        self.catalog: Catalog = loaded.catalog
        self.default_model = routing.default_model
        self.tz = routing_zone(routing.timezone)
        self.default_workflow = routing.default_workflow
        self._provider_of = {m.name: m.provider for m in self.catalog}
        self._caps = {m.name: m.capabilities for m in self.catalog}
        self._disabled = {name for name, p in loaded.providers.items() if not p.enabled}
        rules: list[_Rule] = []
        for i, (rc, cond) in enumerate(zip(routing.rules, loaded.conditions, strict=True)):
            if not rc.enabled:
                continue
            experiment = rc.experiment or (f"rules[{i}]" if rc.split else None)
            split: list[tuple[str, int]] = []
            if rc.split:
                total = sum(rc.split.values())
                acc = Decimal(0)
                for model, weight in rc.split.items():
                    acc += weight
                    split.append((model, int(acc * _HASH_SPACE / total)))
                split[-1] = (split[-1][0], _HASH_SPACE)
            rules.append(_Rule(i, cond, rc.model, tuple(split), rc.fallbacks, rc.reason, experiment, rc.workflow))
        self.rules = tuple(rules)
        self._target_rules = tuple(r for r in rules if r.model is not None or r.split)
        self._default_candidate = Candidate(self.default_model, self._provider_of[self.default_model], "default")

    # public API ---------------------------------------------------------------
    def decide(
        self,
        task: Task,
        *,
        stage: str | None = None,
        now: datetime | None = None,
        provider_status: Mapping[str, str] | None = None,
        budget: BudgetView | None = None,
        workflow: str | None = None,
        loop_count: int = 0,
        requires: tuple[str, ...] | frozenset[str] = (),
        last_outcome: str = "",
        rejected_count: int = 0,
    ) -> Decision:
        """Choose a model for `task`. Pure: the same arguments always give the same decision.

        `requires` keeps only models with those capabilities (a workflow stage's `requires`);
        `last_outcome` and `rejected_count` say how the task's earlier attempts ended (facts of those names).
        """
        status = self._status(provider_status)
        facts = Facts(
            task,
            now=now if now is not None else datetime.now(UTC),
            tz=self.tz,
            stage=stage,
            workflow=workflow,
            provider_status=status,
            budget=budget,
            loop_count=loop_count,
            last_outcome=last_outcome,
            rejected_count=rejected_count,
        )
        if requires:
            return self._walk(facts, status, frozenset(requires))
        # Fast path: the first matching rule's own target (or the default) is usable.
        for rule in self._target_rules:
            if rule.condition.test(facts):
                model, arm = rule.target(task.id)
                assert model is not None
                provider = self._provider_of[model]
                if status.get(provider, "up") not in UNAVAILABLE:
                    experiment = rule.experiment if arm else None
                    return Decision(
                        self, facts, model, provider, rule.reason_text, rule.index, experiment, arm, (), True
                    )
                break
        else:
            provider = self._default_candidate.provider
            if status.get(provider, "up") not in UNAVAILABLE:
                return Decision(self, facts, self.default_model, provider, _DEFAULT_REASON, None, None, None, (), True)
        return self._walk(facts, status)

    def _walk(self, facts: Facts, status: Mapping[str, str], requires: frozenset[str] = frozenset()) -> Decision:
        """The slow path: walk every candidate in order until one's provider is usable."""
        skipped: list[str] = []
        by_rule: dict[int, list[str]] = {}  # what was skipped, per matched rule
        first: tuple[Candidate, _Rule | None, str | None] | None = None
        for cand, rule, arm in self._candidates(facts):
            note = None
            if requires and not requires <= self._caps[cand.model]:
                note = f"{cand.model}: lacks {', '.join(sorted(requires - self._caps[cand.model]))}"
            else:
                if first is None:
                    first = (cand, rule, arm)
                st = status.get(cand.provider, "up")
                if st in UNAVAILABLE:
                    note = f"{cand.model}: provider {cand.provider} is {st}"
            if note is None:
                mine = rule.index if rule is not None else None
                passed = tuple((i, "; ".join(notes)) for i, notes in by_rule.items() if i != mine)
                own = by_rule.get(mine, []) if mine is not None else []  # the default comes last: nothing of its own
                return self._decision(facts, cand, rule, arm, skipped, available=True, passed_over=passed, own=own)
            skipped.append(note)
            if rule is not None:
                by_rule.setdefault(rule.index, []).append(note)
        if first is None:
            need = ", ".join(sorted(requires))
            raise RunError(
                f"task {facts.task.id}: no candidate model has the capabilities {need}; add them to a model or a rule"
            )
        cand, rule, arm = first
        skipped.append(f"every candidate's provider is unavailable; keeping {cand.model}")
        return self._decision(facts, cand, rule, arm, skipped, available=False)

    def select_model(self, task: Task, **kwargs: Any) -> str:
        """The model name only, as the seed's `ModelRouter.select_model` returns it."""
        return self.decide(task, **kwargs).model

    def pick_workflow(self, task: Task, **kwargs: Any) -> str | None:
        """The workflow for `task`: the first matching rule that names one, else the default."""
        facts = Facts(
            task,
            now=kwargs.get("now") or datetime.now(UTC),
            tz=self.tz,
            provider_status=self._status(kwargs.get("provider_status")),
            budget=kwargs.get("budget"),
        )
        for rule in self.rules:
            if rule.workflow is not None and rule.condition.test(facts):
                return rule.workflow
        return self.default_workflow

    # internals ------------------------------------------------------------------
    def _status(self, given: Mapping[str, str] | None) -> Mapping[str, str]:
        if not self._disabled:
            return given if given is not None else {}
        merged = {name: "disabled" for name in self._disabled}
        if given:
            merged.update(given)
        return merged

    def _decision(
        self,
        facts: Facts,
        cand: Candidate,
        rule: _Rule | None,
        arm: str | None,
        skipped: list[str],
        *,
        available: bool,
        passed_over: tuple[tuple[int, str], ...] = (),
        own: list[str] | None = None,
    ) -> Decision:
        """`own`: the chosen rule's own skipped candidates (its model, for a fallback); the rest is `passed_over`."""
        # One story with the trace: a rule that matched but was passed over is named, never denied.
        own = skipped if own is None else own
        if passed_over:
            names = " and ".join(f"rules[{i}]" for i, _ in passed_over)
            verb = "was" if len(passed_over) == 1 else "were"
            why = "; ".join(w for _, w in passed_over)
        if rule is None:
            reason = (
                f"{names} matched but {verb} passed over ({why}); default model" if passed_over else _DEFAULT_REASON
            )
        else:
            reason = rule.reason_text
            if cand.source.startswith(f"rules[{rule.index}].fallbacks"):
                reason += f"; using its fallback {cand.model}"
            if passed_over:
                reason += f" ({names} matched but {verb} passed over: {why})"
        if own and available:
            reason += " (skipped " + "; ".join(own) + ")"
        return Decision(
            self,
            facts,
            cand.model,
            cand.provider,
            reason,
            rule.index if rule else None,
            rule.experiment if rule and rule.split and arm else None,
            arm,
            tuple(skipped),
            available,
            passed_over,
        )

    def _candidates(self, facts: Facts) -> Iterator[tuple[Candidate, _Rule | None, str | None]]:
        """Every candidate in order: each matching rule's target and fallbacks, then the default."""
        seen: set[str] = set()
        provider_of = self._provider_of
        for rule in self.rules:
            if rule.model is None and not rule.split:
                continue  # a workflow-only rule
            if not rule.condition.test(facts):
                continue
            model, arm = rule.target(facts.task.id)
            assert model is not None
            if model not in seen:
                seen.add(model)
                yield Candidate(model, provider_of[model], f"rules[{rule.index}]"), rule, arm
            for j, fb in enumerate(rule.fallbacks):
                if fb not in seen:
                    seen.add(fb)
                    yield Candidate(fb, provider_of[fb], f"rules[{rule.index}].fallbacks[{j}]"), rule, arm
        if self.default_model not in seen:
            yield Candidate(self.default_model, provider_of[self.default_model], "default"), None, None

    def _chain(self, facts: Facts, *, first: str) -> tuple[Candidate, ...]:
        status = facts.provider_status
        chosen: list[Candidate] = []
        rest: list[Candidate] = []
        for cand, _rule, _arm in self._candidates(facts):
            if cand.model == first:
                chosen.append(cand)
            elif status.get(cand.provider, "up") not in UNAVAILABLE:
                rest.append(cand)
        return tuple(chosen + rest)

    def _trace(self, facts: Facts) -> tuple[RuleTrace, ...]:
        out = []
        for rule in self.rules:
            matched = rule.condition.test(facts)
            out.append(
                RuleTrace(
                    rule.index,
                    rule.condition.source,
                    matched,
                    rule.condition.read_values(facts),
                    rule.describe_target() if rule.model or rule.split else f"workflow {rule.workflow}",
                    rule.reason,
                )
            )
        return tuple(out)
