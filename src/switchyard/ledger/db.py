"""A thin database layer: SQLite (default) or PostgreSQL behind one small API.

SQL is written once with `?` placeholders and the SQLite dialect's common
subset; `Database` rewrites placeholders (and the `%` operator) for psycopg. Migrations are ordered,
named, and recorded in `_migrations`, so a database knows which it has.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from switchyard.errors import ConfigError

__all__ = ["Database", "Migration", "connect"]

Row = tuple[Any, ...]


class Migration:
    """A named schema change: SQL per dialect (`sqlite`, `postgres`)."""

    def __init__(self, name: str, sqlite: str, postgres: str | None = None) -> None:
        self.name = name
        self.sql = {"sqlite": sqlite, "postgres": postgres if postgres is not None else sqlite}


class Database:
    """One connection, guarded by a lock so threads can share it."""

    def __init__(self, dialect: str, conn: Any, url: str) -> None:
        self.dialect = dialect
        self.conn = conn
        self.url = url
        self._lock = threading.RLock()
        self._depth = 0

    # queries -----------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        # psycopg reads `%` as the start of a placeholder, even without parameters: `%` the operator is `%%`.
        return sql.replace("%", "%%").replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        with self._lock:
            cur = self.conn.execute(self._sql(sql), tuple(params))
            return int(cur.rowcount or 0)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            if self.dialect == "postgres":
                with self.conn.cursor() as cur:
                    cur.executemany(self._sql(sql), [tuple(r) for r in rows])
            else:
                self.conn.executemany(sql, [tuple(r) for r in rows])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            cur = self.conn.execute(self._sql(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction (`BEGIN IMMEDIATE` on SQLite, so writers queue instead of failing).

        Re-entrant: inside an open transaction it simply joins it.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                with self._begin():
                    yield self
            finally:
                self._depth = 0

    @contextmanager
    def _begin(self) -> Iterator[Database]:
        with self._lock:
            if self.dialect == "sqlite":
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            else:
                with self.conn.transaction():
                    yield self

    # schema ------------------------------------------------------------------
    def migrate(self, migrations: Sequence[Migration]) -> list[str]:
        """Apply the migrations this database has not seen; returns their names."""
        with self._lock:
            with self.transaction():
                if self.dialect == "postgres":  # concurrent CREATE TABLE IF NOT EXISTS can collide there
                    self.execute("SELECT pg_advisory_xact_lock(7265346)")
                self.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {r[0] for r in self.query("SELECT name FROM _migrations")}
            applied = []
            for m in migrations:
                if m.name in done:
                    continue
                with self.transaction():
                    # Another process may be migrating the same database right now: serialise on a lock
                    # (the write lock on SQLite, an advisory lock on PostgreSQL) and look again.
                    if self.dialect == "postgres":
                        self.execute("SELECT pg_advisory_xact_lock(7265346)")
                    if self.one("SELECT name FROM _migrations WHERE name = ?", (m.name,)) is not None:
                        continue
                    for statement in _statements(m.sql[self.dialect]):
                        self.execute(statement)
                    self.execute(
                        "INSERT INTO _migrations (name, applied_at) VALUES (?, "
                        + ("datetime('now')" if self.dialect == "sqlite" else "now()::text")
                        + ")",
                        (m.name,),
                    )
                applied.append(m.name)
            return applied

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _sqlite(path: Path) -> Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    # Switching to WAL needs a moment alone with the file; many processes may open it at once.
    for attempt in range(100):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.05)
    # FULL: a committed attempt survives power loss (WAL+NORMAL may roll the last commits back).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return Database("sqlite", conn, str(path))


def _postgres(url: str) -> Database:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError.single(
            "a postgresql:// ledger needs the psycopg package",
            key_path="ledger.url",
            hint="pip install 'switchyard[postgres]'",
        ) from None
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ConfigError.single(
            f"cannot connect to the ledger database: {str(exc).strip().splitlines()[0]}", key_path="ledger.url"
        ) from None
    return Database("postgres", conn, url)


OPENERS: dict[str, Callable[[str], Database]] = {
    "postgresql": _postgres,
    "postgres": _postgres,
}


def connect(url_or_path: str | Path) -> Database:
    """Open `postgresql://...` with psycopg, anything else as a SQLite file path."""
    text = str(url_or_path)
    scheme, sep, _ = text.partition("://")
    if sep and scheme in OPENERS:
        return OPENERS[scheme](text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") - 1 :] if text.startswith("sqlite:////") else text[len("sqlite:///") :]
    return _sqlite(Path(text))
