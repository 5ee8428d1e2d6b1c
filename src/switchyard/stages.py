"""The workflow state machine: which stage runs next, review loops, verdicts. Pure: no I/O, no engine.

A task runs the stages of its workflow (`[workflows.NAME]`) in order; a task
without a workflow is one unnamed stage. A review stage with `loop_to` can send
the task back to an earlier stage, at most `max_loops` times:

    plan ─► implement ─► review ──(rejected, loops < max_loops)──► implement ─► review ─► done
                                 └─(approved, or out of loops)──► next stage / done

The coordinator keeps a `Cursor` (stage index, loop count, what each stage
produced) and asks `TaskPlan` what to do; everything here is plain data that the
durable engine checkpoints as it is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from switchyard._records import record
from switchyard.patterns import compile_pattern
from switchyard.prompts import render_prompt
from switchyard.router import Candidate, Route
from switchyard.task import Task

__all__ = ["Cursor", "StageOutput", "StagePlan", "TaskPlan", "rejected", "verify_stages", "with_fixed_model"]


@record
class StagePlan:
    """One stage as the workflow runs it: its template resolved, its review rule if any."""

    name: str | None
    model: str | None = None
    template: str | None = None
    requires: tuple[str, ...] = ()
    timeout_s: float | None = None
    loop_to: str | None = None
    reject_if: str | None = None
    verdict_field: str | None = None
    reject_values: tuple[str, ...] = ()
    verify: bool = False  # the stage that changes the repository: `[verify]` judges its attempts

    @property
    def key(self) -> str:
        """The name its output is kept under (`-` for a task without a workflow)."""
        return self.name or "-"


@record
class StageOutput:
    """What a stage produced: the agent's answer and the file it wrote (empty when none)."""

    text: str = ""
    file: str = ""


@record
class Cursor:
    """Where a task is in its workflow: the stage, how often a review sent it back, the outputs so far."""

    index: int = 0
    loops: int = 0
    outputs: Mapping[str, StageOutput] = field(default_factory=dict)


@record
class TaskPlan:
    """A task and the stages it runs, fixed when it begins (where its agents work, too)."""

    task: Task
    workflow: str | None
    stages: tuple[StagePlan, ...]
    max_loops: int = 0
    workdir: str | None = None
    review_check: bool = False  # `[verify] review`: a review that still rejects after its loops rejects the task
    completes_later: bool = False  # the task completes after its stages (once its change is delivered)

    def stage(self, cursor: Cursor) -> StagePlan:
        return self.stages[cursor.index]

    def completes(self, cursor: Cursor) -> bool:
        """Does success at this stage complete the task? The last stage, unless a review may still send it back."""
        stage = self.stages[cursor.index]
        last = cursor.index == len(self.stages) - 1
        if self.completes_later or (stage.loop_to is not None and self.review_check):
            return False  # delivery comes first; or the review's verdict decides, after it ran
        return last and (stage.loop_to is None or cursor.loops >= self.max_loops)

    def review_rejected(self, cursor: Cursor, output: StageOutput) -> bool:
        """With `review_check`: did this review stage still reject, with no loops left to send the task back?"""
        stage = self.stages[cursor.index]
        return self.review_check and stage.loop_to is not None and rejected(stage, output.text)

    def restart(self, cursor: Cursor, output: StageOutput) -> Cursor:
        """After a review rejected the task for good: back to the stage it reviews, loops counted afresh."""
        stage = self.stages[cursor.index]
        back = next(i for i, s in enumerate(self.stages) if s.name == stage.loop_to)
        return Cursor(back, 0, {**cursor.outputs, stage.key: output})

    def advance(self, cursor: Cursor, output: StageOutput) -> Cursor | None:
        """Where the task goes after this stage produced `output`; None when the workflow is finished."""
        stage = self.stages[cursor.index]
        outputs = {**cursor.outputs, stage.key: output}
        if stage.loop_to is not None and cursor.loops < self.max_loops and rejected(stage, output.text):
            back = next(i for i, s in enumerate(self.stages) if s.name == stage.loop_to)
            return Cursor(back, cursor.loops + 1, outputs)
        if cursor.index + 1 >= len(self.stages) or self.review_rejected(cursor, output):
            return None  # finished (or, under review_check, rejected: the coordinator escalates)
        return Cursor(cursor.index + 1, cursor.loops, outputs)

    def prompt(self, cursor: Cursor, last_rejection: str = "") -> str:
        """The stage's prompt: its template filled from the task and what earlier stages produced.

        `last_rejection` says why the task's last change was rejected (`prompts.rejection_note`), for
        the stage that makes the change.
        """
        stage = self.stages[cursor.index]
        outputs = cursor.outputs
        previous = outputs.get(self.stages[cursor.index - 1].key) if cursor.index > 0 else None
        return render_prompt(
            stage.template,
            self.task,
            stage=stage.name,
            workflow=self.workflow,
            previous_output=previous.text if previous else "",
            previous_output_file=previous.file if previous else "",
            stage_outputs={k: v.text for k, v in outputs.items()},
            stage_output_files={k: v.file for k, v in outputs.items()},
            loop_count=cursor.loops,
            last_rejection=last_rejection if stage.verify else "",
        )


def verify_stages(stages: tuple[tuple[str, str | None, bool | None], ...]) -> tuple[bool, ...]:
    """Which stages `[verify]` judges, from (name, loop_to, verify) per stage: those that say `verify = true`;
    when none says, the last stage that is not a review (the one that makes the change)."""
    if any(v for _, _, v in stages):
        return tuple(bool(v) for _, _, v in stages)
    candidates = [i for i, (_, loop_to, v) in enumerate(stages) if loop_to is None and v is None]
    last = candidates[-1] if candidates else None
    return tuple(i == last for i in range(len(stages)))


def with_fixed_model(route: Route, stage: StagePlan, workflow: str | None, provider: str) -> Route:
    """A stage with a fixed model calls it first; the rules' choices for the stage are its fallbacks."""
    assert stage.model is not None
    fixed = Candidate(stage.model, provider, f"workflows.{workflow}.{stage.name}")
    rest = tuple(c for c in route.candidates if c.model != stage.model)
    reason = f"workflow {workflow}, stage {stage.name}: fixed model"
    return Route(route.task_id, stage.model, provider, reason, None, None, None, (fixed, *rest), stage.name, workflow)


def rejected(stage: StagePlan, text: str) -> bool:
    """Did a review stage send the task back? A regex on its output (RE2: linear time), or a JSON field's value."""
    if stage.reject_if is not None and _pattern(stage.reject_if).search(text):
        return True
    if stage.verdict_field is not None:
        value = _json_field(text, stage.verdict_field)
        if value is not None and str(value).strip().lower() in {v.lower() for v in stage.reject_values}:
            return True
    return False


# Compiled once per pattern (a config has a few); config load already compiled each with RE2, so this never raises.
_pattern = functools.lru_cache(maxsize=64)(compile_pattern)


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
