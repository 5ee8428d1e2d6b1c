"""Search routing policies on an outcomes table, cross-validated, and print the winner as TOML rules.

The policies are the ones switchyard's rules express directly:

- an escalation ladder: one model per attempt, `retry_count >= k` rules choosing the k-th
  (`[coordinator] max_attempts` is the ladder's length);
- per group: a ladder per priority (`priority == p`) or per label (`labels contains 'x'`),
  first matching group wins, the last group is everything else;
- splits: within a group, tasks with `bucket < t` (a stable hash of the task id) take one
  ladder, the rest another.

The tasks are split at random (seeded) into a fitting part and a held-out part. The
search runs on the fitting part only; the winner is the cheapest policy that reaches
the target resolved share there (or the most resolving under the budget). Its figures
are then measured on the held-out part by replaying the printed config with the real
router (`engine.Replayer`), and checked against the fast scorer to the cent and task.
Fitting figures are never the result.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import partial
from typing import TypeVar

from switchyard._records import record
from switchyard.config import loads_config
from switchyard.errors import InputError, RunError, did_you_mean
from switchyard.replay.engine import PolicyResult, Replayer, Verifier, model_slug, single_model
from switchyard.replay.fast import Estimate, Matrix, Score
from switchyard.replay.outcomes import OutcomeTable

__all__ = [
    "Arm",
    "Group",
    "Policy",
    "SplitResult",
    "TuneSettings",
    "policy_toml",
    "resolve_models",
    "split_tasks",
    "tune",
    "tune_split",
]

_THRESHOLDS = tuple(range(5, 100, 5))  # bucket split points tried
_SPLIT_REACH = 3  # split a frontier ladder with the next few ones only
_SPLIT_BASES = 40  # ... and only that many ladders spread along the frontier
_MAX_LABEL_GROUPS = 8
PROVIDER = "outcomes"


# ----------------------------------------------------------------------------- policies
@record
class Group:
    """Which tasks a part of the policy covers: a priority, a label, or the rest."""

    kind: str  # priority | label | rest
    value: str = ""

    @property
    def condition(self) -> str | None:
        if self.kind == "priority":
            return f"priority == {int(self.value)}"
        if self.kind == "label":
            escaped = self.value.replace("\\", "\\\\").replace("'", "\\'")
            return f"labels contains '{escaped}'"
        return None

    def describe(self) -> str:
        return {"priority": f"P{self.value}", "label": f"label {self.value}"}.get(self.kind, "rest")


@record
class Arm:
    """A ladder for the tasks of a group below a bucket threshold (None: the group's remaining tasks)."""

    below: int | None
    ladder: tuple[str, ...]


@record
class Policy:
    """A whole policy: max attempts, and for each group in order its arms."""

    attempts: int
    parts: tuple[tuple[Group, tuple[Arm, ...]], ...]

    def models(self) -> list[str]:
        seen: dict[str, None] = {}
        for _g, arms in self.parts:
            for arm in arms:
                for m in arm.ladder:
                    seen.setdefault(m)
        return list(seen)

    def describe(self) -> str:
        out = []
        for group, arms in self.parts:
            text = " | ".join(
                (f"bucket<{a.below}: " if a.below is not None else "") + " → ".join(_collapse(a.ladder)) for a in arms
            )
            out.append(text if len(self.parts) == 1 else f"{group.describe()}: {text}")
        return "; ".join(out)

    def to_dict(self) -> dict[str, object]:
        return {
            "max_attempts": self.attempts,
            "groups": [
                {
                    "group": g.describe(),
                    "condition": g.condition,
                    "arms": [{"bucket_below": a.below, "ladder": list(a.ladder)} for a in arms],
                }
                for g, arms in self.parts
            ],
        }


def _collapse(ladder: Sequence[str]) -> list[str]:
    out: list[str] = []
    for m in ladder:
        if not out or out[-1] != m:
            out.append(m)
    return out


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def policy_toml(policy: Policy, *, header: Sequence[str] = ()) -> str:
    """A complete config that expresses `policy`; models are named by `model_slug` of the table's names."""
    lines = [f"# {h}" if h else "#" for h in header]
    if lines:
        lines.append("")
    lines += [
        "# Paste [coordinator] max_attempts and the [routing] part into your config, renaming the",
        "# models to yours. The provider below only stands in for yours: replay reads results",
        "# from the outcomes table, whose model names these slugs match.",
        f"[providers.{PROVIDER}]",
        'kind = "simulated"',
        "",
    ]
    for m in policy.models():
        lines += ["[[models]]", f"name = {_toml_str(model_slug(m))}  # {m}", f'provider = "{PROVIDER}"', ""]
    lines += ["[coordinator]", f"max_attempts = {policy.attempts}", ""]
    rules: list[tuple[str, str, str]] = []
    default: str | None = None
    for group, arms in policy.parts:
        for arm in arms:
            base = [c for c in (group.condition, f"bucket < {arm.below}" if arm.below is not None else None) if c]
            where = group.describe() + (f", bucket < {arm.below}" if arm.below is not None else "")
            ladder = arm.ladder
            for r in range(len(ladder) - 1, 0, -1):
                if ladder[r] != ladder[r - 1]:
                    rules.append(
                        (" and ".join([*base, f"retry_count >= {r}"]), ladder[r], f"tuned: {where}, attempt {r + 1}")
                    )
            if base:
                rules.append((" and ".join(base), ladder[0], f"tuned: {where}, first attempt"))
            else:
                default = ladder[0]
    assert default is not None, "the last group of a policy is the rest, with an unconditional arm"
    lines += ["[routing]", f"default_model = {_toml_str(model_slug(default))}"]
    for cond, model, reason in rules:
        lines += [
            "",
            "[[routing.rules]]",
            f"condition = {_toml_str(cond)}",
            f"model = {_toml_str(model_slug(model))}",
            f"reason = {_toml_str(reason)}",
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- inputs
def resolve_models(table: OutcomeTable, names: Iterable[str]) -> list[str]:
    """`--models` entries to table names: exact, slug-equal, or a unique case-insensitive substring."""
    out: list[str] = []
    models = list(table.models)
    for name in names:
        if name in models:
            hit = [name]
        else:
            hit = [m for m in models if model_slug(m) == model_slug(name)] or [
                m for m in models if name.lower() in m.lower()
            ]
        if not hit:
            raise InputError(
                f"--models {name}: no such model in the outcomes table"
                + (did_you_mean(name, models) or f"; models: {', '.join(models)}")
            )
        if len(hit) > 1:
            raise InputError(f"--models {name}: matches several models ({'; '.join(hit)}); give more of the name")
        if hit[0] not in out:
            out.append(hit[0])
    slugs: dict[str, str] = {}
    for m in out:
        other = slugs.setdefault(model_slug(m), m)
        if other != m:
            raise InputError(f"models '{other}' and '{m}' have the same name in config form ({model_slug(m)})")
    return out


def split_tasks(task_ids: Sequence[str], seed: int, holdout: float) -> tuple[list[str], list[str]]:
    """(fitting ids, held-out ids): a seeded shuffle; `holdout` of the tasks are held out."""
    if not 0 < holdout < 1:
        raise InputError(f"--holdout {holdout}: must be between 0 and 1 (fitting figures are never the result)")
    ids = sorted(task_ids)
    random.Random(seed).shuffle(ids)
    n_hold = round(len(ids) * holdout)
    if n_hold == 0 or n_hold == len(ids):
        raise InputError(f"--holdout {holdout}: {len(ids)} task(s) cannot be split into two non-empty parts")
    held = set(ids[:n_hold])
    return [t for t in task_ids if t not in held], [t for t in task_ids if t in held]


@record
class TuneSettings:
    """What to search and what to aim for."""

    models: tuple[str, ...]
    max_attempts: int = 3
    target: Decimal | None = None  # resolved share; None with `budget`
    target_best: bool = False  # the best single model's share on the fitting tasks
    margin: Decimal = Decimal(0)
    budget_usd: Decimal | None = None  # for the whole table; each part gets its share
    by: str = "none"  # none | priority | label
    splits: bool = True
    holdout: float = 0.5
    verifier: Verifier | None = None
    exhaustive: int = 20_000  # score every ladder when there are at most this many, else beam search
    beam: int = 100  # prefixes kept per attempt in the beam search


@record
class FrontierPoint:
    """A policy on the fitting frontier: what the search saw (expected figures under a noisy verifier), and held-out."""

    policy: Policy
    fit: Score | Estimate
    held: Score
    fit_cost_usd: Decimal  # rounded to the search's micro-dollar
    held_cost_usd: Decimal  # exact


@record
class SplitResult:
    """One fitting/held-out split: the winner, checked by the real router on held-out tasks."""

    seed: int
    fit_ids: tuple[str, ...]
    held_ids: tuple[str, ...]
    policy: Policy
    toml: str
    target_resolved: int | None  # on the fitting tasks
    aim: Score | Estimate  # the winner's figures as the search saw them on the fitting tasks
    fit: Score  # ... and replayed there with the seeded verifier draws (never the result)
    held: PolicyResult  # the router's replay of the printed config on held-out tasks
    best_single: PolicyResult  # the single model that is best on the fitting tasks, on the held-out tasks
    best_single_held: PolicyResult  # the single model that is best on the held-out tasks themselves
    frontier: tuple[FrontierPoint, ...]
    candidates: int
    seconds: float
    unit_places: int
    reached: bool


# ----------------------------------------------------------------------------- search
Figures = Score | Estimate
_T = TypeVar("_T")


def _pareto(items: Iterable[tuple[Figures, _T]]) -> list[tuple[Figures, _T]]:
    """Non-dominated (cheapest for each resolved count) points, cheapest first."""
    ordered = sorted(items, key=lambda it: (it[0].cost, -it[0].resolved, it[0].attempts))
    out: list[tuple[Figures, _T]] = []
    best: float = -1
    for item in ordered:
        if item[0].resolved > best:
            out.append(item)
            best = item[0].resolved
    return out


def _mask(flags: Iterable[bool]) -> int:
    out = 0
    for i, flag in enumerate(flags):
        if flag:
            out |= 1 << i
    return out


def _groups(table: OutcomeTable, mx: Matrix, by: str, fit_mask: int) -> list[tuple[Group, int]]:
    """Groups in rule order with their tasks (first match wins); the last is the rest."""
    if by == "none":
        return [(Group("rest"), mx.all)]
    tasks = [mx.tasks[t] for t in mx.task_ids]
    matches: list[tuple[Group, int]] = []
    if by == "priority":
        if not table.has_priority:
            raise InputError("--by priority: the outcomes table has no priority column")
        for p in sorted({t.priority for t in tasks}):
            matches.append((Group("priority", str(p)), _mask(t.priority == p for t in tasks)))
    elif by == "label":
        if not table.has_labels:
            raise InputError("--by label: the outcomes table has no labels column")
        counts: dict[str, int] = {}
        for i, t in enumerate(tasks):
            if fit_mask >> i & 1:
                for label in t.labels:
                    counts[label] = counts.get(label, 0) + 1
        top = sorted(counts, key=lambda k: (-counts[k], k))[:_MAX_LABEL_GROUPS]
        for label in top:
            matches.append((Group("label", label), _mask(label in t.labels for t in tasks)))
    else:
        raise InputError(f"--by {by}: choose none, priority or label")
    out: list[tuple[Group, int]] = []
    taken = 0
    for group, m in matches:
        own = m & ~taken
        if own & fit_mask:
            out.append((group, own))
            taken |= own
    rest = mx.all & ~taken
    if rest & fit_mask or not out:
        out.append((Group("rest"), rest))
    else:  # nothing outside the groups while fitting: the last group becomes the rest
        out[-1] = (Group("rest"), out[-1][1] | rest)
    return out


_Plain = tuple[tuple[int | None, tuple[str, ...]], ...]  # a group's arms as plain data while searching


def _search(
    mx: Matrix, groups: list[tuple[Group, int]], fit: int, settings: TuneSettings
) -> tuple[list[tuple[Figures, Policy]], int]:
    """The fitting frontier over every attempts count, cheapest first, and how many candidates were scored."""
    noisy = not mx.verifier.perfect  # choose on expected figures over the verifier's noise, not on one draw
    repeats = noisy
    evaluated = 0
    frontier: list[tuple[Figures, Policy]] = []
    cut = [mx.bucket_below(t) for t in _THRESHOLDS]
    score = mx.expect if noisy else partial(mx.score, exact=False)
    zero: Figures = Estimate() if noisy else Score()
    for attempts in range(1, settings.max_attempts + 1):
        if not repeats and attempts > len(settings.models):
            break
        merged: list[tuple[Figures, tuple[_Plain, ...]]] = [(zero, ())]
        for _group, gmask in groups:
            mask = gmask & fit
            if _space(len(settings.models), attempts, repeats) <= settings.exhaustive:
                found = mx.ladders(mask, settings.models, attempts, repeats=repeats, expected=noisy)
            else:
                found = mx.beam(mask, settings.models, attempts, repeats=repeats, width=settings.beam, expected=noisy)
            evaluated += len(found)
            options: list[tuple[Figures, _Plain]] = _pareto((s, ((None, lad),)) for lad, s in found)
            if settings.splits:
                ladders = [arms[0][1] for _s, arms in _spread(options, _SPLIT_BASES)]
                extra: list[tuple[Figures, _Plain]] = []
                for i, low in enumerate(ladders):
                    for high in ladders[i + 1 : i + 1 + _SPLIT_REACH]:
                        for t, below in zip(_THRESHOLDS, cut, strict=True):
                            s = score(low, mask & below) + score(high, mask & ~below)  # type: ignore[operator]
                            extra.append((s, ((t, low), (None, high))))
                evaluated += len(extra)
                options = _pareto(options + extra)
            combined = [(a + b, (*pa, pb)) for a, pa in merged for b, pb in options]  # type: ignore[operator]
            evaluated += len(combined)
            merged = _pareto(combined)
        for s, parts in merged:
            policy = Policy(
                attempts,
                tuple(
                    (g, tuple(Arm(below, lad) for below, lad in arms))
                    for (g, _m), arms in zip(groups, parts, strict=True)
                ),
            )
            frontier.append((s, policy))
    return _pareto(frontier), evaluated


def _space(n: int, length: int, repeats: bool) -> int:
    """How many ladders an exhaustive walk would score."""
    return n**length if repeats else math.perm(n, length)


def _policy_score(mx: Matrix, policy: Policy, groups: list[tuple[Group, int]], mask: int) -> Score:
    total = Score()
    for (_g, gmask), (_g2, arms) in zip(groups, policy.parts, strict=True):
        left = gmask & mask
        for arm in arms:
            part = left & mx.bucket_below(arm.below) if arm.below is not None else left
            total = total + mx.score(arm.ladder, part)
            left &= ~part
    return total


def _best_single(table: OutcomeTable, ids: Sequence[str]) -> PolicyResult:
    results = [single_model(table, m, ids) for m in table.models]
    return max(results, key=lambda r: (r.summary.resolved, -r.summary.cost_usd))


def tune_split(table: OutcomeTable, settings: TuneSettings, seed: int) -> SplitResult:
    """Fit on one seeded split, check the winner with the real router on both parts, report held-out."""
    started = time.perf_counter()
    verifier = settings.verifier or Verifier()
    usable = [t for t in table.task_ids if all(table.get(t, m) is not None for m in settings.models)]
    if len(usable) < 2:
        raise InputError("the chosen models have outcomes together for fewer than 2 tasks; nothing to tune on")
    fit_ids, held_ids = split_tasks(usable, seed, settings.holdout)
    mx = Matrix(table, settings.models, task_ids=usable, verifier=verifier, attempts=settings.max_attempts)
    fit, held = mx.mask(fit_ids), mx.mask(held_ids)
    groups = _groups(table, mx, settings.by, fit)
    frontier, evaluated = _search(mx, groups, fit, settings)
    n_fit = len(fit_ids)
    best_fit = _best_single(table, fit_ids)

    target_resolved: int | None = None
    chosen: tuple[Figures, Policy] | None = None
    if settings.budget_usd is not None:
        cap = int((settings.budget_usd * n_fit / len(usable)).scaleb(mx.search_places))
        within = [it for it in frontier if it[0].cost <= cap]
        if within:
            chosen = max(within, key=lambda it: (it[0].resolved, -it[0].cost))
    else:
        share = settings.target
        if settings.target_best:
            share = Decimal(best_fit.summary.resolved) / n_fit
        assert share is not None
        target_resolved = math.ceil((share + settings.margin) * n_fit)
        reaching = [it for it in frontier if it[0].resolved >= target_resolved]
        if reaching:
            chosen = reaching[0]  # the frontier is cheapest first
    reached = chosen is not None
    if chosen is None:  # report the closest instead, flagged as not reaching the aim
        chosen = frontier[-1] if settings.budget_usd is None else frontier[0]
    aim, policy = chosen
    fit_score = _policy_score(mx, policy, groups, fit)  # with the seeded verifier draws, as the replay sees them

    points = _spread(frontier, 12)
    front = []
    for s, p in points:
        h = _policy_score(mx, p, groups, held)
        front.append(FrontierPoint(p, s, h, mx.search_dollars(s.cost), mx.dollars(h.cost)))
    held_fast = _policy_score(mx, policy, groups, held)
    toml = policy_toml(policy)
    replayer = Replayer(loads_config(toml, "<tuned policy>"), table, name="tuned policy", verifier=verifier)
    fit_replay = replayer.run(fit_ids)
    held_replay = replayer.run(held_ids)
    _agree("fitting", fit_score, fit_replay, mx)
    _agree("held-out", held_fast, held_replay, mx)
    got = held_replay.summary
    v = verifier
    noise = "a perfect verifier" if v.perfect else f"verifier recall {v.recall}, false-pass rate {v.false_pass_rate}"
    toml = policy_toml(  # the same config with its provenance in comments
        policy,
        header=[
            f"switchyard tune on {table.source}: fitted on {len(fit_ids)} tasks, {len(held_ids)} held out "
            f"(split seed {seed}), {noise}.",
            f"Held out, replayed by the router: {got.resolved}/{got.tasks} resolved ({got.share * 100:.1f}%), "
            f"${got.cost_usd.quantize(Decimal('0.01'))} (${got.cost_per_task.quantize(Decimal('0.0001'))} a task), "
            f"{got.attempts} attempts.",
        ],
    )
    return SplitResult(
        seed=seed,
        fit_ids=tuple(fit_ids),
        held_ids=tuple(held_ids),
        policy=policy,
        toml=toml,
        target_resolved=target_resolved,
        aim=aim,
        fit=fit_score,
        held=held_replay,
        best_single=single_model(table, best_fit.name, held_ids),
        best_single_held=_best_single(table, held_ids),
        frontier=tuple(front),
        candidates=evaluated,
        seconds=time.perf_counter() - started,
        unit_places=mx.places,
        reached=reached,
    )


def _agree(part: str, fast: Score, slow: PolicyResult, mx: Matrix) -> None:
    """The fast scorer and the router's replay of the printed config must give the same figures."""
    s = slow.summary
    got = (s.resolved, s.false_pass, s.attempts, s.cost_usd)
    want = (fast.resolved, fast.false_pass, fast.attempts, mx.dollars(fast.cost))
    if got != want or s.missing or s.blocked:
        raise RunError(
            f"tune: on the {part} tasks the router's replay of the printed config gives "
            f"(resolved, false passes, attempts, cost) = {got} but the search scored {want}; this is a bug in "
            "switchyard's fast scorer, please report it"
        )


def _spread(frontier: list[tuple[Figures, _T]], n: int) -> list[tuple[Figures, _T]]:
    """Up to `n` points spread evenly along the frontier, both ends included."""
    if len(frontier) <= n:
        return frontier
    step = (len(frontier) - 1) / (n - 1)
    picks = sorted({round(i * step) for i in range(n)})
    return [frontier[i] for i in picks]


def tune(table: OutcomeTable, settings: TuneSettings, *, seed: int, repeat: int = 1) -> list[SplitResult]:
    """`repeat` splits with seeds seed, seed+1, ...; the first one's winner is the one to print."""
    if repeat < 1:
        raise InputError("--repeat must be at least 1")
    if not settings.models:
        raise InputError("--models: give at least one model")
    if settings.max_attempts < 1:
        raise InputError("--max-attempts must be at least 1")
    return [tune_split(table, settings, seed + i) for i in range(repeat)]
