"""Exact budgets under concurrency: reserve the worst case before a call, settle after, release on failure.

Each limit (`[budgets]`: a scope, a period, an amount) becomes one counter row
per period (`global|day|2026-11-26`) holding spent and held picodollars. A
reservation adds its worst-case cost to the held column of every counter that
applies to the call, in one transaction, with the check in the UPDATE itself:

    UPDATE budget_counters SET held_pico = held_pico + :amount
    WHERE counter = :key AND spent_pico + held_pico + :amount <= limit_pico

On PostgreSQL a second writer waits for the row lock and the WHERE is
re-evaluated against the new row (READ COMMITTED), so two calls can never both
take the last dollar; on SQLite the transaction is `BEGIN IMMEDIATE`. Counters
are locked in sorted order, so two reservations never deadlock. Settling moves
the hold to spent at the actual cost; releasing drops it. Both are idempotent on
the hold id (the attempt id). A hold is owned by the session (one coordinator
process, `switchyard.ledger.leases`) that made it; only holds of sessions proven
dead (ended, or taken over after their lease expired) are reconciled: settled if
the attempt was recorded, else released. A replayed call whose hold was released
reserves again under the same id, and a replay adopts a held hold as its own.
`exec` holds are owned by its process (`exec_owner`: host, pid and the process's start
time); the next `exec` on that host reconciles those of processes that no longer run
(`reconcile_dead_execs`), so an `exec` killed mid-call does not hold its money for the
rest of the period.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from switchyard._records import record
from switchyard.config import LoadedConfig
from switchyard.config.schema import BudgetLimit, BudgetsConfig
from switchyard.errors import RunError
from switchyard.facts import BudgetView, PeriodFacts, routing_zone
from switchyard.ledger.store import PICO, Ledger, to_pico

__all__ = ["BudgetExceeded", "BudgetLine", "Budgets", "Counter", "Hold", "exec_owner", "period_bounds"]

_EXEC = "exec:"


def _started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), "" where /proc is not there;
    None if no such process runs. A pid reused by a later process has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return ""
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def exec_owner(pid: int | None = None) -> str:
    """The owner of an `exec` process's holds: `exec:HOST:PID:START`."""
    pid = os.getpid() if pid is None else pid
    return f"{_EXEC}{socket.gethostname()}:{pid}:{_started(pid) or ''}"


def _exec_dead(owner: str, host: str) -> bool:
    """Is `owner` an `exec` process on `host` that no longer runs?"""
    rest = owner[len(_EXEC) :]
    owner_host, _, tail = rest.rpartition(":")  # HOST:PID, START
    owner_host, _, pid = owner_host.rpartition(":")
    if owner_host != host or not pid.isdigit():
        return False  # another machine's: we cannot see its processes
    started = _started(int(pid))
    return started is None or (tail != "" and started != "" and started != tail)


def period_bounds(period: str, at: datetime) -> tuple[str, datetime]:
    """(period key, end of the period) for `at` (already in the budget time zone)."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day.date().isoformat(), day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return f"{start.date().isoformat()}/W", start + timedelta(days=7)
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), end


@record
class Counter:
    """One limit in its current period."""

    key: str
    scope: str
    period: str
    period_start: str
    period_end: datetime
    limit: BudgetLimit


@record
class Hold:
    """A reservation that went through."""

    hold_id: str
    amount: Decimal
    counters: tuple[str, ...]


@record
class BudgetLine:
    """One limit in its current period, as `switchyard budget` and the dashboard show it."""

    scope: str
    period: str
    period_start: str
    period_end: str  # ISO 8601
    limit_usd: Decimal
    spent_usd: Decimal
    held_usd: Decimal
    remaining_usd: Decimal
    fraction: Decimal  # (spent + held) / limit
    on_exceed: str


class BudgetExceeded(RunError):
    """A call does not fit in what is left of a limit; it was not started."""

    def __init__(self, counter: Counter, amount: Decimal, spent: Decimal, held: Decimal) -> None:
        self.counter = counter
        self.amount = amount
        lim = counter.limit
        self.on_exceed = lim.on_exceed
        left = max(Decimal(0), lim.limit_usd - spent - held)
        super().__init__(
            f"budget {lim.scope} per {lim.period} (${lim.limit_usd}) would be exceeded: this call may cost up to "
            f"${_fmt(amount)} and ${_fmt(left)} is left (spent ${_fmt(spent)}, held ${_fmt(held)}); "
            f"the period ends {counter.period_end.isoformat()}"
        )


def _fmt(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.000001')).normalize():f}"


class _Refused(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class Budgets:
    """The budget limits of one config, kept in the ledger database."""

    def __init__(
        self,
        loaded: LoadedConfig,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        owner: str = "",
    ) -> None:
        self.loaded = loaded
        self.ledger = ledger
        self.db = ledger.db
        self.config = loaded.budgets
        self.limits = self.config.all_limits()
        self.clock = clock
        self.owner = owner
        if tz is None:
            tz = routing_zone(loaded.routing.timezone)
        self.tz = tz

    @property
    def active(self) -> bool:
        return bool(self.limits)

    def use(self, config: BudgetsConfig) -> None:
        """Take new limits (the config file changed while tasks wait); counters and holds stay as they are."""
        self.config = config
        self.limits = config.all_limits()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.tz)

    # which limits apply ----------------------------------------------------------------
    def counters(
        self,
        *,
        provider: str | None = None,
        model: str | None = None,
        labels: Iterable[str] = (),
        workflow: str | None = None,
        at: datetime | None = None,
        everything: bool = False,
    ) -> list[Counter]:
        """The counters a call with these attributes draws on (all of them with `everything`)."""
        at = at or self.now()
        scopes = {"global", f"provider:{provider}", f"model:{model}", f"workflow:{workflow}"}
        scopes.update(f"label:{label}" for label in labels)
        out = []
        for limit in self.limits:
            if not everything and limit.scope not in scopes:
                continue
            start, end = period_bounds(limit.period, at)
            key = f"{limit.scope}|{limit.period}|{start}"
            out.append(Counter(key, limit.scope, limit.period, start, end, limit))
        return out

    # reserve / settle / release ----------------------------------------------------------
    def reserve(self, hold_id: str, task_id: str, amount: Decimal, counters: list[Counter]) -> Hold:
        """Hold `amount` on every counter or on none; raise `BudgetExceeded` naming the limit that refused."""
        keys = sorted({c.key for c in counters})
        by_key = {c.key: c for c in counters}
        pico = to_pico(amount) or 0
        now_ms = int(self.clock() * 1000)
        try:
            with self.db.transaction():
                row = self.db.one(
                    "SELECT amount_pico, counters, state, owner FROM budget_holds WHERE hold_id = ?", (hold_id,)
                )
                if row is not None and row[2] != "released":
                    # A step replayed after a crash (here, or on the machine that took the task over): the
                    # hold is still there; this session owns it now, so only its own death reconciles it.
                    if row[3] != self.owner and row[2] == "held":
                        self.db.execute("UPDATE budget_holds SET owner = ? WHERE hold_id = ?", (self.owner, hold_id))
                    return Hold(hold_id, Decimal(int(row[0])) / PICO, tuple(json.loads(row[1])))
                for key in keys:
                    c = by_key[key]
                    limit_pico = to_pico(c.limit.limit_usd)
                    self.db.execute(
                        "INSERT INTO budget_counters (counter, scope, period, period_start, limit_pico) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (counter) DO NOTHING",
                        (key, c.scope, c.period, c.period_start, limit_pico),
                    )
                    # The config is the source of truth: a raised (or lowered) limit applies at once.
                    self.db.execute("UPDATE budget_counters SET limit_pico = ? WHERE counter = ?", (limit_pico, key))
                for key in keys:
                    changed = self.db.execute(
                        "UPDATE budget_counters SET held_pico = held_pico + ? "
                        "WHERE counter = ? AND spent_pico + held_pico + ? <= limit_pico",
                        (pico, key, pico),
                    )
                    if changed == 0:
                        raise _Refused(key)
                if row is not None:
                    # Released by a reconcile (its call was never recorded), and now the call is made again:
                    # it needs a hold of its own, or it would spend outside the limit.
                    self.db.execute(
                        "UPDATE budget_holds SET amount_pico = ?, actual_pico = NULL, state = 'held', counters = ?, "
                        "owner = ?, updated_ms = ? WHERE hold_id = ?",
                        (pico, json.dumps(keys), self.owner, now_ms, hold_id),
                    )
                else:
                    self.db.execute(
                        "INSERT INTO budget_holds (hold_id, task_id, amount_pico, state, counters, owner, created_ms, "
                        "updated_ms) VALUES (?, ?, ?, 'held', ?, ?, ?, ?)",
                        (hold_id, task_id, pico, json.dumps(keys), self.owner, now_ms, now_ms),
                    )
        except _Refused as refused:
            spent, held = self._usage(refused.key)
            raise BudgetExceeded(by_key[refused.key], amount, spent, held) from None
        return Hold(hold_id, amount, tuple(keys))

    def _usage(self, key: str) -> tuple[Decimal, Decimal]:
        row = self.db.one("SELECT spent_pico, held_pico FROM budget_counters WHERE counter = ?", (key,))
        if row is None:
            return Decimal(0), Decimal(0)
        return Decimal(int(row[0])) / PICO, Decimal(int(row[1])) / PICO

    def _close(self, hold_id: str, state: str, actual: Decimal | None, owner: str | None = None) -> bool:
        actual_pico = to_pico(actual) if actual is not None else 0
        with self.db.transaction():
            row = self.db.one(
                "SELECT amount_pico, counters, state, owner FROM budget_holds WHERE hold_id = ?", (hold_id,)
            )
            if row is None or row[2] != "held" or (owner is not None and row[3] != owner):
                return False  # closed already, or adopted by the live session that replays its call
            changed = self.db.execute(
                "UPDATE budget_holds SET state = ?, actual_pico = ?, updated_ms = ? WHERE hold_id = ? AND state = 'held'",
                (state, actual_pico, int(self.clock() * 1000), hold_id),
            )
            if changed == 0:
                return False
            for key in sorted(json.loads(row[1])):
                self.db.execute(
                    "UPDATE budget_counters SET held_pico = held_pico - ?, spent_pico = spent_pico + ? WHERE counter = ?",
                    (int(row[0]), actual_pico, key),
                )
        return True

    def settle(self, hold_id: str, actual: Decimal) -> bool:
        """The call finished and cost `actual`: move the hold to spent. False if it was already closed."""
        return self._close(hold_id, "settled", actual)

    def release(self, hold_id: str) -> bool:
        """The call spent nothing we know of: drop the hold. False if it was already closed."""
        return self._close(hold_id, "released", None)

    def reconcile(self, owners: Iterable[str] | None = None) -> tuple[int, int]:
        """Close the open holds of owners proven dead: settled if their attempt was recorded, else released.

        `owners` are sessions (`switchyard.ledger.leases`) that ended or were taken over;
        by default this one's own owner id (a single process after its own crash). Live
        owners' holds are never touched: their calls may still be running.
        """
        settled = released = 0
        names = [self.owner] if owners is None else list(owners)
        if not names:
            return 0, 0
        marks = ", ".join("?" for _ in names)
        rows = self.db.query(
            f"SELECT hold_id, owner FROM budget_holds WHERE state = 'held' AND owner IN ({marks})", names
        )
        for hold_id, owner in rows:  # each closed only if still the dead owner's (a replay may adopt it meanwhile)
            rec = self.ledger.get(hold_id)
            if rec is not None:
                settled += self._close(hold_id, "settled", rec.cost_usd, owner)
            else:
                released += self._close(hold_id, "released", None, owner)
        return settled, released

    def reconcile_dead_execs(self) -> tuple[int, int]:
        """Reconcile the holds of `exec` processes on this host that no longer run (killed mid-call)."""
        host = socket.gethostname()
        rows = self.db.query(
            "SELECT DISTINCT owner FROM budget_holds WHERE state = 'held' AND owner LIKE ?", (f"{_EXEC}{host}:%",)
        )
        dead = [r[0] for r in rows if r[0] != self.owner and _exec_dead(r[0], host)]
        return self.reconcile(dead) if dead else (0, 0)

    # what the router and `switchyard budget` see -------------------------------------------
    def _rows(self, counters: list[Counter]) -> dict[str, tuple[Decimal, Decimal]]:
        if not counters:
            return {}
        keys = [c.key for c in counters]
        rows = self.db.query(
            "SELECT counter, spent_pico, held_pico FROM budget_counters WHERE counter IN ("
            + ", ".join("?" for _ in keys)
            + ")",
            keys,
        )
        return {r[0]: (Decimal(int(r[1])) / PICO, Decimal(int(r[2])) / PICO) for r in rows}

    def state(self) -> list[tuple[str, Decimal, Decimal]]:
        """Every limit's counter in its current period: (key, spent, held); a new period is a new key."""
        counters = self.counters(everything=True)
        rows = self._rows(counters)
        return [(c.key, *rows.get(c.key, (Decimal(0), Decimal(0)))) for c in sorted(counters, key=lambda c: c.key)]

    def view(self, at: datetime | None = None) -> BudgetView:
        """Budget facts for rules: `budget.day` / `.week` / `.month` (global) and `budget['scope']`."""
        if not self.limits:
            return BudgetView()
        counters = self.counters(at=at, everything=True)
        rows = self._rows(counters)
        periods: dict[str, PeriodFacts] = {}
        scopes: dict[str, PeriodFacts] = {}
        for c in counters:
            spent, held = rows.get(c.key, (Decimal(0), Decimal(0)))
            facts = PeriodFacts(spent, held, c.limit.limit_usd)
            if c.scope == "global":
                prev = periods.get(c.period)
                if prev is None or (facts.remaining_usd or 0) < (prev.remaining_usd or 0):
                    periods[c.period] = facts
            prev = scopes.get(c.scope)
            if prev is None or facts.fraction > prev.fraction:
                scopes[c.scope] = facts
        return BudgetView(
            day=periods.get("day", PeriodFacts()),
            week=periods.get("week", PeriodFacts()),
            month=periods.get("month", PeriodFacts()),
            scopes=scopes,
        )

    def report(self, at: datetime | None = None) -> list[BudgetLine]:
        """Every limit: spent, held, remaining, period end (for `switchyard budget`)."""
        counters = self.counters(at=at, everything=True)
        rows = self._rows(counters)
        out = []
        for c in counters:
            spent, held = rows.get(c.key, (Decimal(0), Decimal(0)))
            lim = c.limit
            out.append(
                BudgetLine(
                    scope=lim.scope,
                    period=lim.period,
                    period_start=c.period_start,
                    period_end=c.period_end.isoformat(),
                    limit_usd=lim.limit_usd,
                    spent_usd=spent,
                    held_usd=held,
                    remaining_usd=max(Decimal(0), lim.limit_usd - spent - held),
                    fraction=(spent + held) / lim.limit_usd if lim.limit_usd else Decimal(0),
                    on_exceed=lim.on_exceed,
                )
            )
        return out
