"""Rule-shaped policies scored on bit sets: tune's inner loop, exact and fast.

A task set is a Python int with bit i for task i. Per model we keep the tasks it
resolves, the tasks the verifier passes on attempt k (the same seeded draws as
`engine.Verifier`), and its costs in exact integer units (10**-d dollars, d the
most decimal places in the table) split into bit planes, so the cost of any task
set is a sum of popcounts. A ladder (one model per attempt, `retry_count`
indexing it) is then scored on a task set in a few dozen big-int operations,
and ladders sharing a prefix share its work (a depth-first walk).

The semantics are the engine's for configs that use only `priority`, `labels`,
`bucket` and `retry_count` and no budgets or workflows; `tune` checks every
policy it reports by replaying its printed config with the real router.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from switchyard.errors import InputError
from switchyard.facts import stable_hash
from switchyard.replay.engine import Verifier
from switchyard.replay.outcomes import OutcomeTable

__all__ = ["Estimate", "Matrix", "Score"]

_SEARCH_PLACES = 6


class _Figures:
    """Four running totals; a plain slotted class (the search makes hundreds of thousands)."""

    __slots__ = ("attempts", "cost", "false_pass", "resolved")

    def __init__(self, resolved: Any = 0, false_pass: Any = 0, attempts: Any = 0, cost: Any = 0) -> None:
        self.resolved = resolved
        self.false_pass = false_pass
        self.attempts = attempts
        self.cost = cost

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Figures)
        return (self.resolved, self.false_pass, self.attempts, self.cost) == (
            other.resolved,
            other.false_pass,
            other.attempts,
            other.cost,
        )

    def __hash__(self) -> int:
        return hash((self.resolved, self.false_pass, self.attempts, self.cost))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(resolved={self.resolved!r}, false_pass={self.false_pass!r}, "
            f"attempts={self.attempts!r}, cost={self.cost!r})"
        )


class Score(_Figures):
    """A policy's figures on a task set with the seeded verifier draws; `cost` in integer units
    (exact from `Matrix.score`, micro-dollars in the search)."""

    resolved: int
    false_pass: int
    attempts: int
    cost: int

    def __add__(self, other: Score) -> Score:
        return Score(
            self.resolved + other.resolved,
            self.false_pass + other.false_pass,
            self.attempts + other.attempts,
            self.cost + other.cost,
        )


class Estimate(_Figures):
    """A policy's expected figures over the verifier's noise; `cost` in micro-dollars."""

    resolved: float
    false_pass: float
    attempts: float
    cost: float

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(
            self.resolved + other.resolved,
            self.false_pass + other.false_pass,
            self.attempts + other.attempts,
            self.cost + other.cost,
        )


class Matrix:
    """Bit sets and integer costs of `models` over `task_ids` (the table's whole-task rows)."""

    def __init__(
        self,
        table: OutcomeTable,
        models: Sequence[str],
        *,
        task_ids: Sequence[str] | None = None,
        verifier: Verifier | None = None,
        attempts: int = 1,
    ) -> None:
        self.models = tuple(models)
        ids = list(task_ids) if task_ids is not None else list(table.task_ids)
        missing = [m for m in self.models if m not in table.models]
        if missing:
            raise InputError(f"model '{missing[0]}' is not in the outcomes table")
        self.task_ids = tuple(ids)
        self.n = len(ids)
        self.all = (1 << self.n) - 1
        self.verifier = verifier or Verifier()
        self.attempts = attempts
        outcomes = {m: [table.get(t, m) for t in ids] for m in self.models}
        for m, row in outcomes.items():
            for t, o in zip(ids, row, strict=True):
                if o is None:
                    raise InputError(f"the outcomes table has no row for task '{t}' and model '{m}'")
        places = 0
        for row in outcomes.values():
            for o in row:
                assert o is not None
                exp = o.cost_usd.as_tuple().exponent
                if isinstance(exp, int) and -exp > places:
                    places = -exp
        self.places = places
        self.unit = Decimal(1).scaleb(-places)
        self.resolved: dict[str, int] = {}
        self.passes: dict[str, list[int]] = {}
        self.planes: dict[str, list[tuple[int, int]]] = {}
        self.search_planes: dict[str, list[tuple[int, int]]] = {}
        self.search_places = min(places, _SEARCH_PLACES)
        for m, row in outcomes.items():
            res = 0
            units: list[int] = []
            for i, o in enumerate(row):
                assert o is not None
                if o.resolved:
                    res |= 1 << i
                units.append(int(o.cost_usd.scaleb(places)))
            self.resolved[m] = res
            self.planes[m] = _planes(units)
            # The search ranks by cost rounded to a micro-dollar: a third of the bit planes.
            shift = Decimal(10) ** (places - _SEARCH_PLACES) if places > _SEARCH_PLACES else None
            coarse = [int((Decimal(u) / shift).to_integral_value()) for u in units] if shift else units
            self.search_planes[m] = _planes(coarse)
            self.passes[m] = [self._passes(m, row_res=res, k=k) for k in range(attempts)]
        self._recall = float(self.verifier.recall)
        self._fp = float(self.verifier.false_pass_rate)
        self._miss = 1 - self._recall
        self._keep = 1 - self._fp
        self.buckets = [stable_hash(t) % 100 for t in ids]
        self.tasks = {t.id: t for t in table.tasks}

    def _passes(self, m: str, *, row_res: int, k: int) -> int:
        v = self.verifier
        if v.perfect:
            return row_res
        out = 0
        for i, t in enumerate(self.task_ids):
            if v.passes(bool(row_res >> i & 1), t, "", m, k):
                out |= 1 << i
        return out

    # -- task sets -------------------------------------------------------------------
    def mask(self, task_ids: Iterable[str]) -> int:
        index = {t: i for i, t in enumerate(self.task_ids)}
        out = 0
        for t in task_ids:
            out |= 1 << index[t]
        return out

    def where(self, test: Callable[[int], bool]) -> int:
        """Tasks (by index) for which `test(i)` holds."""
        out = 0
        for i in range(self.n):
            if test(i):
                out |= 1 << i
        return out

    def bucket_below(self, threshold: int) -> int:
        return self.where(lambda i: self.buckets[i] < threshold)

    def ids(self, mask: int) -> list[str]:
        return [t for i, t in enumerate(self.task_ids) if mask >> i & 1]

    def dollars(self, units: int) -> Decimal:
        """Exact dollars of a `Score`'s cost."""
        return Decimal(units).scaleb(-self.places)

    def search_dollars(self, units: float) -> Decimal:
        """Dollars of a search figure's cost (rounded to a micro-dollar)."""
        return (Decimal(units) if isinstance(units, int) else Decimal(repr(units))).scaleb(-self.search_places)

    # -- scoring -----------------------------------------------------------------------
    def cost(self, model: str, mask: int) -> int:
        """Exact cost, in units, of one attempt of `model` on every task in `mask`."""
        return sum((mask & plane).bit_count() << bit for bit, plane in self.planes[model])

    def score(self, ladder: Sequence[str], mask: int, *, exact: bool = True) -> Score:
        """A ladder (the model for each attempt, `len(ladder)` = max_attempts) on the tasks in `mask`,
        with the seeded verifier draws; cost in exact units (`dollars`), or search units (`search_dollars`)."""
        resolved = false_pass = attempts = cost = 0
        alive = mask
        planes = self.planes if exact else self.search_planes
        for k, m in enumerate(ladder):
            if not alive:
                break
            attempts += alive.bit_count()
            cost += sum((alive & plane).bit_count() << bit for bit, plane in planes[m])
            passed = alive & self.passes[m][k]
            good = (passed & self.resolved[m]).bit_count()
            resolved += good
            false_pass += passed.bit_count() - good
            alive &= ~passed
        return Score(resolved, false_pass, attempts, cost)

    def expect(self, ladder: Sequence[str], mask: int) -> Estimate:
        """A ladder's expected figures on `mask` over the verifier's noise (exact for a perfect verifier)."""
        total = Estimate()
        state = self._start(mask, expected=True)
        for k, m in enumerate(ladder):
            if not self._alive(state):
                break
            state, delta = self._step(state, m, k, expected=True)
            total = total + delta  # type: ignore[operator]
        return total

    # -- walking ladders -----------------------------------------------------------------
    # A walk's state is the set of tasks still running: one mask for realized draws; for
    # expected figures, masks by how many earlier attempts resolved the task (a task that
    # got a attempts that resolved it and k - a that did not is still running with
    # probability (1 - recall)**a * (1 - false_pass_rate)**(k - a)).
    def _start(self, mask: int, *, expected: bool) -> Any:
        return (mask,) if expected else mask

    @staticmethod
    def _alive(state: Any) -> bool:
        return any(state) if isinstance(state, tuple) else bool(state)

    def _step(self, state: Any, m: str, k: int, *, expected: bool) -> tuple[Any, Score | Estimate]:
        planes = self.search_planes[m]
        resolved = self.resolved[m]
        if not expected:
            alive: int = state
            c = 0
            for bit, plane in planes:
                c += (alive & plane).bit_count() << bit
            passed = alive & self.passes[m][k]
            good = (passed & resolved).bit_count()
            return alive & ~passed, Score(good, passed.bit_count() - good, alive.bit_count(), c)
        miss, keep = self._miss, self._keep
        res = fp = att = cost = 0.0
        nxt = [0] * (len(state) + 1)
        for a, group in enumerate(state):
            if not group:
                continue
            p = miss**a * keep ** (k - a)
            c = 0
            for bit, plane in planes:
                c += (group & plane).bit_count() << bit
            good = group & resolved
            bad = group & ~resolved
            att += p * group.bit_count()
            cost += p * c
            res += p * self._recall * good.bit_count()
            fp += p * self._fp * bad.bit_count()
            if self._recall < 1:  # a miss: the task goes on
                nxt[a + 1] |= good
            if self._fp < 1:
                nxt[a] |= bad
        return tuple(nxt), Estimate(res, fp, att, cost)

    def beam(
        self, mask: int, models: Sequence[str], length: int, *, repeats: bool, width: int, expected: bool = False
    ) -> list[tuple[tuple[str, ...], Score | Estimate]]:
        """Ladders of `length` attempts found by a beam search: after each attempt keep up to `width`
        prefixes from the cost/resolved frontier of prefixes, then extend each by every model."""
        out: list[tuple[tuple[str, ...], Score | Estimate]] = []
        zero: Score | Estimate = Estimate() if expected else Score()
        level: list[tuple[tuple[str, ...], Any, Any]] = [((), self._start(mask, expected=expected), zero)]
        for k in range(length):
            grown: list[tuple[tuple[str, ...], Any, Any]] = []
            for prefix, state, s in level:
                for m in models:
                    if not repeats and m in prefix:
                        continue
                    nxt, delta = self._step(state, m, k, expected=expected)
                    grown.append(((*prefix, m), nxt, s + delta))
            level = []
            for prefix, state, s in grown:
                if k + 1 == length or not self._alive(state):
                    out.append((prefix + (prefix[-1],) * (length - k - 1), s))
                else:
                    level.append((prefix, state, s))
            level = _thin(level, width)
        return out

    def ladders(
        self, mask: int, models: Sequence[str], length: int, *, repeats: bool, expected: bool = False
    ) -> list[tuple[tuple[str, ...], Score | Estimate]]:
        """Every ladder of `length` attempts over `models` scored on `mask`, sharing work between prefixes.

        Without `repeats` a model appears at most once per ladder (with a perfect verifier
        retrying the same model only repeats its recorded failure). A ladder whose tasks
        have all passed before its last attempt is listed once, with its unused attempts
        filled with its last model.
        """
        out: list[tuple[tuple[str, ...], Score | Estimate]] = []
        step = self._step
        alive = self._alive

        def walk(k: int, state: Any, prefix: tuple[str, ...], s: Any) -> None:
            if k == length or not alive(state):
                out.append((prefix + (prefix[-1],) * (length - k) if prefix else prefix, s))
                return
            for m in models:
                if not repeats and m in prefix:
                    continue
                nxt, delta = step(state, m, k, expected=expected)
                walk(k + 1, nxt, (*prefix, m), s + delta)

        walk(0, self._start(mask, expected=expected), (), Estimate() if expected else Score())
        return out


def _thin(prefixes: list[tuple[tuple[str, ...], Any, Any]], width: int) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Up to `width` prefixes: the cost/resolved frontier first (spread evenly), then the next layers."""
    ordered = sorted(prefixes, key=lambda p: (p[2].cost, -p[2].resolved, p[0]))
    kept: list[tuple[tuple[str, ...], Any, Any]] = []
    rest = ordered
    while rest and len(kept) < width:
        front, later = [], []
        best = -1
        for p in rest:
            if p[2].resolved > best:
                front.append(p)
                best = p[2].resolved
            else:
                later.append(p)
        room = width - len(kept)
        if len(front) > room:
            step = (len(front) - 1) / max(1, room - 1)
            front = [front[round(i * step)] for i in range(room)]
        kept += front
        rest = later
    return kept


def _planes(units: list[int]) -> list[tuple[int, int]]:
    """Bit planes of per-task costs: (bit, set of tasks whose cost has that bit)."""
    top = max(units, default=0).bit_length()
    if not top:
        return []
    # Transpose the costs' binary digits: column `bit` read across tasks is that plane.
    rows = [format(u, f"0{top}b") for u in units]
    out = []
    for j, column in enumerate(zip(*rows, strict=True)):
        plane = int("".join(reversed(column)), 2)  # task i is bit i
        if plane:
            out.append((top - 1 - j, plane))
    return out
