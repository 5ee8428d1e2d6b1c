"""Machines on one ledger: who each coordinator process is, its lease, and the tasks that wait.

Every `switchyard run` process is a *session* of an *executor*. The executor id
is the DBOS executor identity: one per installation (a state directory), kept in
`.switchyard/executor_id`, so a restart of the same installation finds its own
pending workflows. A file lock on `.switchyard/executor.lock` keeps a second
process in the same directory out. The session is one process's lifetime: it
owns the budget holds that process makes, so a dead session's holds can be
reconciled without touching the holds of the same executor's next session.

    leases:  one row per session; the process renews it every renew_s (DB clock)
             live ─► ended (clean exit)
             live ─► taking (a survivor claimed it: not renewed for takeover_s) ─► taken

A session that cannot renew within its `lease_s` fences itself (kills its
agents, exits) before anyone may take it over: a survivor only claims it once
`takeover_s` (> lease_s + a margin) has passed since its last renewal, measured
on the database's clock. Renewal is refused once a session was claimed, so a
stalled process that wakes up learns it lost its lease instead of running on.

    task_waits: per task, how many times it was woken after blocking (its current
                DBOS workflow id), why it waits, the conditions it was refused in
                (a fingerprint) and when to look again without a change.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from switchyard._records import record
from switchyard.errors import RunError
from switchyard.ledger.db import Database, Migration

__all__ = [
    "MIGRATIONS",
    "Identity",
    "IdentityInUse",
    "LeaseRow",
    "Leases",
    "TakeoverInProgress",
    "Wait",
    "workflow_id",
]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0020_leases",
        """
        CREATE TABLE leases (
            session TEXT PRIMARY KEY,
            executor_id TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            state_dir TEXT NOT NULL,
            state TEXT NOT NULL,
            started_ms BIGINT NOT NULL,
            renewed_ms BIGINT NOT NULL,
            lease_ms BIGINT NOT NULL,
            takeover_ms BIGINT NOT NULL,
            taken_by TEXT,
            claimed_ms BIGINT,
            ended_ms BIGINT
        );
        CREATE INDEX leases_state ON leases (state, executor_id);
        CREATE TABLE task_waits (
            task_id TEXT PRIMARY KEY,
            wakes INTEGER NOT NULL DEFAULT 0,
            workflow_id TEXT NOT NULL,
            reason TEXT,
            fingerprint TEXT,
            blocked_ms BIGINT,
            next_ms BIGINT,
            misses INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX task_waits_workflow ON task_waits (workflow_id)
        """,
        sha256="313a3d3d4b067ea81765e14e5187a47816f248128e239d647cc9e73767d5f7c3",
    ),
)

LIVE, TAKING, TAKEN, ENDED = "live", "taking", "taken", "ended"


def workflow_id(task_id: str, wakes: int) -> str:
    """A task's DBOS workflow id: the task id first, then one fresh id per wake after it blocked.

    A workflow that ended blocked is finished in DBOS; waking the task starts a new one,
    which replays the recorded attempts by their ids. The id is derived (not random) so
    enqueuing the same wake twice is a no-op.
    """
    if wakes == 0:
        return task_id
    return f"wake-{uuid.uuid5(uuid.NAMESPACE_URL, f'switchyard:{wakes}:{task_id}')}"


class IdentityInUse(RunError):
    """Another live process holds this executor identity."""


class TakeoverInProgress(IdentityInUse):
    """A survivor is taking over this executor's previous session right now: start again once it is done."""


class Identity:
    """This installation's executor id and the lock that keeps a second process out of its directory."""

    def __init__(self, executor_id: str, session: str, state_dir: Path, lock: IO[str]) -> None:
        self.executor_id = executor_id
        self.session = session
        self.state_dir = state_dir
        self._lock = lock
        self.host = socket.gethostname()
        self.pid = os.getpid()

    @classmethod
    def claim(cls, state_dir: Path, configured: str | None = None) -> Identity:
        """Lock the state directory and read (or make) its executor id; `configured` overrides the id file."""
        state_dir.mkdir(parents=True, exist_ok=True)
        lock_path = state_dir / "executor.lock"
        fh = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise IdentityInUse(
                f"another `switchyard run` ({holder}) is already running in {state_dir.parent}: one coordinator "
                "per directory (each has its own executor identity); give it more --workers, or run the second "
                "one from another directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        id_file = state_dir / "executor_id"
        executor_id = configured
        if executor_id is None:
            try:
                executor_id = id_file.read_text(encoding="utf-8").strip() or None
            except FileNotFoundError:
                executor_id = None
            if executor_id is None:
                host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:40]
                executor_id = f"{host or 'host'}-{secrets.token_hex(4)}"
                tmp = id_file.with_suffix(".tmp")
                tmp.write_text(executor_id + "\n", encoding="utf-8")
                os.replace(tmp, id_file)
        session = f"{executor_id}/{int(time.time() * 1000):x}-{secrets.token_hex(3)}"
        return cls(executor_id, session, state_dir.resolve(), fh)

    def release(self) -> None:
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        finally:
            self._lock.close()


@record
class LeaseRow:
    """One session as `switchyard machines` shows it; times in ms on the database's clock."""

    session: str
    executor_id: str
    host: str
    pid: int
    state_dir: str
    state: str
    started_ms: int
    renewed_ms: int
    lease_ms: int
    takeover_ms: int
    taken_by: str | None
    claimed_ms: int | None
    ended_ms: int | None

    @property
    def expires_ms(self) -> int:
        return self.renewed_ms + self.lease_ms


_COLUMNS = (
    "session, executor_id, host, pid, state_dir, state, started_ms, renewed_ms, lease_ms, takeover_ms, "
    "taken_by, claimed_ms, ended_ms"
)


@record
class Wait:
    """A blocked task: why, and what it was refused under."""

    task_id: str
    wakes: int
    reason: str | None
    fingerprint: str | None
    blocked_ms: int | None
    next_ms: int | None
    misses: int


class Leases:
    """The `leases` and `task_waits` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def now_ms(self) -> int:
        """The database's clock (PostgreSQL's, shared by every machine); this host's for SQLite."""
        if self.db.dialect == "postgres":
            row = self.db.one("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)")
            assert row is not None
            return int(row[0])
        return int(time.time() * 1000)

    def _lock_executor(self, executor_id: str) -> None:
        # Acquire and takeover of one executor's sessions are serialised (SQLite: BEGIN IMMEDIATE does it).
        if self.db.dialect == "postgres":
            self.db.execute("SELECT pg_advisory_xact_lock(7265347, hashtext(?))", (executor_id,))

    # a session's life ----------------------------------------------------------------
    def acquire(self, ident: Identity, *, lease_s: float, takeover_s: float) -> list[LeaseRow]:
        """Start this session's lease; returns the sessions of this installation it found dead (to reconcile).

        Raises `IdentityInUse` if another live session (another machine, or another
        directory with the same configured executor_id) holds the executor id, or if a
        survivor is taking over this executor's last session right now (try again soon).
        """
        with self.db.transaction():
            self._lock_executor(ident.executor_id)
            now = self.now_ms()
            rows = [
                LeaseRow(*r)
                for r in self.db.query(
                    f"SELECT {_COLUMNS} FROM leases WHERE executor_id = ? AND state IN ('live', 'taking')",
                    (ident.executor_id,),
                )
            ]
            mine = [r for r in rows if r.host == ident.host and r.state_dir == str(ident.state_dir)]
            for r in rows:
                if r.state == TAKING:
                    raise TakeoverInProgress(
                        f"executor {ident.executor_id}: another machine is taking over its previous session "
                        f"({r.session}) right now; start again in a few seconds"
                    )
                if r in mine:
                    continue  # this directory's lock is ours: that process is gone
                if now - r.renewed_ms <= r.takeover_ms:
                    ago = max(0, now - r.renewed_ms) / 1000
                    raise IdentityInUse(
                        f"executor id {ident.executor_id!r} is in use by {r.host} pid {r.pid} ({r.state_dir}), "
                        f"lease renewed {ago:.1f}s ago: every machine needs its own; remove [coordinator] "
                        "executor_id from the config and each machine makes one"
                    )
            dead = [r for r in rows if r in mine or now - r.renewed_ms > r.takeover_ms]
            for r in dead:  # this process recovers the executor's workflows itself (DBOS does at launch)
                self.db.execute(
                    "UPDATE leases SET state = 'taken', taken_by = ?, claimed_ms = ?, ended_ms = ? WHERE session = ?",
                    (ident.session, now, now, r.session),
                )
            self.db.execute(
                f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'live', ?, ?, ?, ?, NULL, NULL, NULL)",
                (
                    ident.session,
                    ident.executor_id,
                    ident.host,
                    ident.pid,
                    str(ident.state_dir),
                    now,
                    now,
                    int(lease_s * 1000),
                    int(takeover_s * 1000),
                ),
            )
        return dead

    def renew(self, session: str) -> bool:
        """Renew a live session's lease; False if it is no longer live (taken over, or ended)."""
        now = self.now_ms()
        return (
            self.db.execute("UPDATE leases SET renewed_ms = ? WHERE session = ? AND state = 'live'", (now, session)) > 0
        )

    def cancelled(self, task_ids: Sequence[str]) -> list[str]:
        """Which of `task_ids` (the tasks a machine has calls in flight for) were cancelled: by primary key."""
        if not task_ids:
            return []
        marks = ", ".join("?" for _ in task_ids)
        rows = self.db.query(f"SELECT task_id FROM tasks WHERE task_id IN ({marks}) AND state = 'cancelled'", task_ids)
        return [str(r[0]) for r in rows]

    def end(self, session: str) -> None:
        """A clean exit: nothing of this session is left to take over (its workflows resume on its next start)."""
        now = self.now_ms()
        self.db.execute(
            "UPDATE leases SET state = 'ended', ended_ms = ? WHERE session = ? AND state = 'live'", (now, session)
        )

    def give_up(self, session: str) -> None:
        """Leaving with work unfinished (stopped by a signal): let a survivor take it over at once."""
        self.db.execute("UPDATE leases SET renewed_ms = 0 WHERE session = ? AND state = 'live'", (session,))

    # takeover ------------------------------------------------------------------------
    def claim_dead(self, me: str) -> list[LeaseRow]:
        """Claim the sessions nobody renewed for their takeover delay (or whose claimer died); one claimer each."""
        now = self.now_ms()
        candidates = [
            LeaseRow(*r)
            for r in self.db.query(
                f"SELECT {_COLUMNS} FROM leases WHERE (state = 'live' AND renewed_ms + takeover_ms < ?) "
                "OR (state = 'taking' AND claimed_ms + takeover_ms < ?)",
                (now, now),
            )
        ]
        won = []
        for row in candidates:
            if row.session == me:
                continue
            with self.db.transaction():
                self._lock_executor(row.executor_id)
                now = self.now_ms()
                changed = self.db.execute(
                    "UPDATE leases SET state = 'taking', taken_by = ?, claimed_ms = ? WHERE session = ? AND ("
                    "(state = 'live' AND renewed_ms + takeover_ms < ?) OR (state = 'taking' AND claimed_ms + takeover_ms < ?))",
                    (me, now, row.session, now, now),
                )
            if changed:
                won.append(row)
        return won

    def claim_orphan(self, executor_id: str, me: str) -> bool:
        """Claim an executor that never had a lease (a ledger from before leases): True for the one claimer."""
        with self.db.transaction():
            self._lock_executor(executor_id)
            if self.db.one("SELECT 1 FROM leases WHERE executor_id = ?", (executor_id,)) is not None:
                return False
            now = self.now_ms()
            self.db.execute(
                f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, '', 0, '', 'taking', ?, ?, 0, 0, ?, ?, NULL)",
                (f"{executor_id}/before-leases", executor_id, now, now, me, now),
            )
        return True

    def executor_live(self, executor_id: str) -> bool:
        """Whether a live session (a restart of that installation) runs this executor id now."""
        row = self.db.one("SELECT 1 FROM leases WHERE executor_id = ? AND state = 'live'", (executor_id,))
        return row is not None

    def taken(self, session: str, me: str) -> None:
        """The takeover of `session` is complete."""
        now = self.now_ms()
        self.db.execute(
            "UPDATE leases SET state = 'taken', ended_ms = ? WHERE session = ? AND state = 'taking' AND taken_by = ?",
            (now, session, me),
        )

    def sessions(self, *, states: tuple[str, ...] = (LIVE, TAKING)) -> list[LeaseRow]:
        marks = ", ".join("?" for _ in states)
        return [
            LeaseRow(*r)
            for r in self.db.query(
                f"SELECT {_COLUMNS} FROM leases WHERE state IN ({marks}) ORDER BY started_ms, session", states
            )
        ]

    def dead_owners(self, owners: list[str]) -> list[str]:
        """Of these hold owners (sessions), the ones proven dead: ended, or taken over."""
        if not owners:
            return []
        marks = ", ".join("?" for _ in owners)
        rows = self.db.query(
            f"SELECT session FROM leases WHERE session IN ({marks}) AND state IN ('ended', 'taken', 'taking')",
            owners,
        )
        return [r[0] for r in rows]

    # blocked tasks ---------------------------------------------------------------------
    def workflow_ids(self, task_ids: list[str]) -> dict[str, str]:
        """Each task's current workflow id (the task id unless it was woken after blocking)."""
        out = {t: t for t in task_ids}
        for start in range(0, len(task_ids), 500):
            chunk = task_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for task_id, wf in self.db.query(
                f"SELECT task_id, workflow_id FROM task_waits WHERE task_id IN ({marks})", chunk
            ):
                out[task_id] = wf
        return out

    def task_ids_of(self, workflow_ids: list[str]) -> dict[str, str]:
        """The task each workflow id runs (wake ids mapped back)."""
        out = {w: w for w in workflow_ids}
        wakes = [w for w in workflow_ids if w.startswith("wake-")]
        for start in range(0, len(wakes), 500):
            chunk = wakes[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for task_id, wf in self.db.query(
                f"SELECT task_id, workflow_id FROM task_waits WHERE workflow_id IN ({marks})", chunk
            ):
                out[wf] = task_id
        return out

    def block(self, task_id: str, reason: str, fingerprint: str, now_ms: int, backoff_ms: int) -> None:
        """Note why a task waits (its workflow ends); `misses` counts blocks in a row, for the backoff."""
        self.db.execute(
            "INSERT INTO task_waits (task_id, wakes, workflow_id, reason, fingerprint, blocked_ms, next_ms, misses) "
            "VALUES (?, 0, ?, ?, ?, ?, ?, 1) ON CONFLICT (task_id) DO UPDATE SET reason = excluded.reason, "
            "fingerprint = excluded.fingerprint, blocked_ms = excluded.blocked_ms, "
            "next_ms = excluded.blocked_ms + ? * (CASE WHEN task_waits.misses > 6 THEN 64 "
            "ELSE (1 << task_waits.misses) END), misses = task_waits.misses + 1",
            (task_id, task_id, reason, fingerprint, now_ms, now_ms + backoff_ms, backoff_ms),
        )

    def due(self, fingerprint: str, now_ms: int, limit: int) -> list[Wait]:
        """Blocked tasks worth another try: what they were refused under changed, or their backoff is over.

        `fingerprint` is `SESSION:digest`. A task this session blocked is due when its view changed;
        one a live session blocked, only by its backoff (that session wakes it early when its own view
        changes: machines whose configs differ, even by a comment, would otherwise wake each other's
        tasks for ever); one a session that is no longer live blocked, whenever the views differ (a
        restart with a raised limit takes its tasks at once).
        """
        session = fingerprint.rpartition(":")[0] + ":"
        rows = self.db.query(
            "SELECT w.task_id, w.wakes, w.reason, w.fingerprint, w.blocked_ms, w.next_ms, w.misses "
            "FROM task_waits w JOIN tasks t ON t.task_id = w.task_id WHERE t.state = 'blocked' "
            "AND (w.fingerprint IS NULL OR w.next_ms <= ? OR (w.fingerprint <> ? AND (substr(w.fingerprint, 1, ?) = ? "
            "OR NOT EXISTS (SELECT 1 FROM leases l WHERE l.state = 'live' AND l.session = "
            "CASE WHEN length(w.fingerprint) > 33 THEN substr(w.fingerprint, 1, length(w.fingerprint) - 33) "
            "ELSE '' END)))) ORDER BY w.blocked_ms LIMIT ?",
            (now_ms, fingerprint, len(session), session, limit),
        )
        return [Wait(*r) for r in rows]

    def waiting(self) -> list[Wait]:
        rows = self.db.query(
            "SELECT w.task_id, w.wakes, w.reason, w.fingerprint, w.blocked_ms, w.next_ms, w.misses "
            "FROM task_waits w JOIN tasks t ON t.task_id = w.task_id WHERE t.state = 'blocked' ORDER BY w.blocked_ms"
        )
        return [Wait(*r) for r in rows]

    def wake(self, wait: Wait, now_ms: int) -> str | None:
        """Move a blocked task back to queued under a new workflow id; None if another machine woke it first."""
        try:
            with self.db.transaction():
                changed = self.db.execute(
                    "UPDATE task_waits SET wakes = wakes + 1, workflow_id = ? WHERE task_id = ? AND wakes = ?",
                    (workflow_id(wait.task_id, wait.wakes + 1), wait.task_id, wait.wakes),
                )
                if not changed:
                    return None
                moved = self.db.execute(
                    "UPDATE tasks SET state = 'queued', updated_ms = ? WHERE task_id = ? AND state = 'blocked'",
                    (now_ms, wait.task_id),
                )
                if not moved:
                    raise _Undo  # it is no longer blocked: roll the wake back
        except _Undo:
            return None
        return workflow_id(wait.task_id, wait.wakes + 1)


class _Undo(Exception):
    pass
