"""The workflow state machine, without an engine: next stage, review loops, verdicts, prompts."""

from __future__ import annotations

from switchyard.router import Candidate, Route
from switchyard.stages import Cursor, StageOutput, StagePlan, TaskPlan, rejected, with_fixed_model
from switchyard.task import Task

TASK = Task("T-1", title="add caching", body="the slow path")


def reviewed(max_loops: int = 2) -> TaskPlan:
    return TaskPlan(
        TASK,
        "reviewed",
        (
            StagePlan("plan", template="PLAN {title}"),
            StagePlan(
                "implement", template="IMPLEMENT loop={loop_count} after: {previous_output} ({previous_output_file})"
            ),
            StagePlan(
                "review",
                template="REVIEW {stage_output.implement} / {stage_output_file.plan}",
                loop_to="implement",
                reject_if="^REJECT",
            ),
        ),
        max_loops,
    )


def test_a_task_without_a_workflow_is_one_stage_that_completes_it() -> None:
    plan = TaskPlan(TASK, None, (StagePlan(None),))
    assert plan.completes(Cursor())
    assert plan.advance(Cursor(), StageOutput("done")) is None
    assert plan.prompt(Cursor()) == "add caching\n\nthe slow path\n"


def test_stages_run_in_order_and_only_the_last_completes_the_task() -> None:
    plan = TaskPlan(TASK, "wf", (StagePlan("a"), StagePlan("b"), StagePlan("c")))
    cursor: Cursor | None = Cursor()
    seen = []
    while cursor is not None:
        seen.append((plan.stage(cursor).name, plan.completes(cursor)))
        cursor = plan.advance(cursor, StageOutput(f"out {len(seen)}"))
    assert seen == [("a", False), ("b", False), ("c", True)]


def test_outputs_flow_into_later_prompts() -> None:
    plan = reviewed()
    c1 = plan.advance(Cursor(), StageOutput("the plan", "/runs/plan/output.txt"))
    assert c1 == Cursor(1, 0, {"plan": StageOutput("the plan", "/runs/plan/output.txt")})
    assert plan.prompt(c1) == "IMPLEMENT loop=0 after: the plan (/runs/plan/output.txt)"
    c2 = plan.advance(c1, StageOutput("the change"))
    assert c2 is not None
    assert plan.prompt(c2) == "REVIEW the change / /runs/plan/output.txt"


def test_a_rejecting_review_goes_back_until_max_loops() -> None:
    plan = reviewed(max_loops=2)
    at_review = Cursor(2, 0, {"plan": StageOutput("p"), "implement": StageOutput("i")})
    assert not plan.completes(at_review)  # a review that may still send the task back does not complete it
    back = plan.advance(at_review, StageOutput("REJECT: needs tests"))
    assert back is not None and (back.index, back.loops) == (1, 1)
    assert back.outputs["review"] == StageOutput("REJECT: needs tests")
    assert plan.prompt(back) == "IMPLEMENT loop=1 after: p ()"
    # The second rejection still loops (loops 1 < 2); the third is out of loops and moves on.
    again = plan.advance(Cursor(2, 1, back.outputs), StageOutput("REJECT"))
    assert again is not None and (again.index, again.loops) == (1, 2)
    last = Cursor(2, 2, again.outputs)
    assert plan.completes(last)
    assert plan.advance(last, StageOutput("REJECT again")) is None


def test_an_approving_review_finishes() -> None:
    plan = reviewed()
    assert plan.advance(Cursor(2, 0), StageOutput("APPROVE")) is None


def test_no_loops_allowed_means_the_review_completes() -> None:
    plan = reviewed(max_loops=0)
    assert plan.completes(Cursor(2, 0))
    assert plan.advance(Cursor(2, 0), StageOutput("REJECT")) is None


def test_review_verdicts() -> None:
    regex = StagePlan("review", reject_if="(?m)^REJECT")
    assert rejected(regex, "notes\nREJECT: missing tests")
    assert not rejected(regex, "looks fine, no REJECT here")
    field = StagePlan("review", verdict_field="review.verdict", reject_values=("changes_requested",))
    assert rejected(field, 'summary... {"review": {"verdict": "CHANGES_REQUESTED", "why": "x"}}')
    assert rejected(field, '{"review": {"verdict": " changes_requested "}}')
    assert not rejected(field, '{"review": {"verdict": "approve"}}')
    assert not rejected(field, '{"review": {"verdict": "changes_requested"}} trailing {"review": {"verdict": "ok"}}')
    assert not rejected(field, "no json at all {")
    assert not rejected(StagePlan("review"), "REJECT")  # no rule: never rejected


def test_a_review_pattern_runs_in_linear_time_on_the_agents_output() -> None:
    """Agent output is nobody's to vet: a backtracking engine would take minutes here (the test timeout fails it)."""
    stage = StagePlan("review", reject_if="(a+)+$", loop_to="implement")
    assert not rejected(stage, "a" * 40 + "!")
    assert rejected(stage, "a" * 40)


def test_a_fixed_model_comes_first_and_the_rules_are_its_fallbacks() -> None:
    routed = Route(
        "T-1", "m1", "p1", "rule", 0, None, None, (Candidate("m1", "p1", "rules[0]"), Candidate("judge", "p2", "d"))
    )
    route = with_fixed_model(routed, StagePlan("review", model="judge"), "wf", "p2")
    assert [(c.model, c.source) for c in route.candidates] == [("judge", "workflows.wf.review"), ("m1", "rules[0]")]
    assert (route.model, route.provider, route.stage, route.workflow, route.rule) == (
        "judge",
        "p2",
        "review",
        "wf",
        None,
    )
    assert route.reason == "workflow wf, stage review: fixed model"


def test_the_stage_that_changes_the_repository_is_told_why_the_last_change_was_rejected() -> None:
    from switchyard.prompts import rejection_note

    note = rejection_note("tests", "FAILED test_x - assert 1 == 2")
    plan = TaskPlan(TASK, None, (StagePlan(None, verify=True),))
    prompt = plan.prompt(Cursor(), note)
    assert prompt.endswith(
        "rejected by the check 'tests'. Its output ended with:\nFAILED test_x - assert 1 == 2\n"
        "Make a change that passes it.\n"
    )
    assert plan.prompt(Cursor()) == plan.prompt(Cursor(), "")  # before any rejection: the prompt as it was
    # A template that places it gets it there, once; a stage [verify] does not judge (a review) is not told.
    placed = TaskPlan(TASK, None, (StagePlan(None, template="{last_rejection}\n--\n{title}", verify=True),))
    assert placed.prompt(Cursor(), note).startswith(note + "\n--\n") and placed.prompt(Cursor(), note).count(note) == 1
    review = TaskPlan(TASK, "wf", (StagePlan("review", loop_to="implement"),))
    assert "rejected" not in review.prompt(Cursor(), note)
