"""A thin database layer: SQLite (default) or PostgreSQL behind one small API.

SQL is written once with `?` placeholders and the SQLite dialect's common
subset; `Database` rewrites placeholders (and the `%` operator) for psycopg.

Migrations are ordered, named and frozen. A migration's SQL is a literal that
never changes once shipped (a change is a new migration), and carries the
SHA-256 of that text. `migrate` refuses to run a migration whose text no
longer matches its checksum, records the checksum of each migration it
applies in `_migrations`, and refuses to open a database that applied a
migration of the same name with different SQL: two databases never fork
silently. Migrations recorded before checksums existed get theirs filled in.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from switchyard.errors import ConfigError, RunError

__all__ = ["Database", "Migration", "SchemaError", "connect", "schema"]

Row = tuple[Any, ...]


class SchemaError(RunError):
    """The database's schema history does not match this switchyard's migrations."""


class Migration:
    """A named schema change: SQL per dialect (`sqlite`, `postgres`), frozen once shipped.

    `sha256` is the checksum of the SQL as shipped (`Migration.checksum_of`). Never edit
    a shipped migration's SQL: add a new one, numbered after the last.
    """

    def __init__(self, name: str, sqlite: str, postgres: str | None = None, *, sha256: str) -> None:
        self.name = name
        self.sql = {"sqlite": sqlite, "postgres": postgres if postgres is not None else sqlite}
        self.sha256 = sha256

    @property
    def number(self) -> int:
        """The ordering number: the digits before the first `_` (`0005_reporting` is 5)."""
        return int(self.name.partition("_")[0])

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL as it is now (both dialects)."""
        return self.checksum_of(self.sql["sqlite"], self.sql["postgres"])

    @staticmethod
    def checksum_of(sqlite: str, postgres: str | None = None) -> str:
        digest = hashlib.sha256(sqlite.encode())
        if postgres is not None and postgres != sqlite:
            digest.update(b"\0" + postgres.encode())
        return digest.hexdigest()

    def check(self) -> None:
        """Raise if the SQL was edited after it shipped (or a new migration has no checksum yet)."""
        if not self.sha256:
            raise SchemaError(
                f'migration {self.name} has no checksum: set sha256="{self.checksum}" (its SQL is frozen from then on)'
            )
        if self.checksum != self.sha256:
            raise SchemaError(
                f"migration {self.name}: its SQL no longer matches the checksum it shipped with "
                f"(sha256 {self.sha256[:12]}..., now {self.checksum[:12]}...); a shipped migration never "
                "changes: restore its text and add the change as a new migration"
            )

    def __repr__(self) -> str:
        return f"Migration({self.name!r})"


def schema(*groups: Iterable[Migration]) -> tuple[Migration, ...]:
    """The migrations of several modules as one ordered history; two with one number is an error."""
    merged = sorted((m for group in groups for m in group), key=lambda m: m.number)
    for a, b in itertools.pairwise(merged):
        if a.number == b.number:
            raise SchemaError(
                f"migrations {a.name} and {b.name} share the number {a.number:04d}; "
                f"renumber the newer one to {merged[-1].number + 1:04d}"
            )
    return tuple(merged)


class Database:
    """One connection, guarded by a lock so threads can share it."""

    def __init__(self, dialect: str, conn: Any, url: str) -> None:
        self.dialect = dialect
        self.conn = conn
        self.url = url
        self._lock = threading.RLock()
        self._depth = 0

    @property
    def where(self) -> str:
        """The database's location for messages: its path, or its URL without a password."""
        if self.dialect != "postgres":
            return self.url
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

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
    def columns(self, table: str) -> list[str]:
        """The columns of `table`, in order (empty if there is no such table)."""
        if self.dialect == "sqlite":
            return [r[1] for r in self.query(f"PRAGMA table_info({table})")]
        return [
            r[0]
            for r in self.query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ? ORDER BY ordinal_position",
                (table,),
            )
        ]

    def _lock_schema(self) -> None:
        # Another process may be migrating the same database right now: serialise on a lock (the write
        # lock of BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL, where concurrent
        # CREATE TABLE IF NOT EXISTS can collide) and look again.
        if self.dialect == "postgres":
            self.execute("SELECT pg_advisory_xact_lock(7265346)")

    def migrate(self, migrations: Sequence[Migration]) -> list[str]:
        """Apply the migrations this database has not seen; returns their names.

        Raises `SchemaError` if a migration's SQL was edited after it shipped, or if the
        database applied a migration of the same name with other SQL.
        """
        for m in migrations:
            m.check()
        with self._lock:
            with self.transaction():
                self._lock_schema()
                self.execute(
                    "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL, checksum TEXT)"
                )
                if "checksum" not in self.columns("_migrations"):  # made before checksums were recorded
                    self.execute("ALTER TABLE _migrations ADD COLUMN checksum TEXT")
            done: dict[str, str | None] = {r[0]: r[1] for r in self.query("SELECT name, checksum FROM _migrations")}
            self._verify(migrations, done)
            applied = []
            for m in migrations:
                if m.name in done:
                    continue
                with self.transaction():
                    self._lock_schema()
                    if self.one("SELECT name FROM _migrations WHERE name = ?", (m.name,)) is not None:
                        continue
                    for statement in _statements(m.sql[self.dialect]):
                        self.execute(statement)
                    self.execute(
                        "INSERT INTO _migrations (name, applied_at, checksum) VALUES (?, "
                        + ("datetime('now')" if self.dialect == "sqlite" else "now()::text")
                        + ", ?)",
                        (m.name, m.sha256),
                    )
                applied.append(m.name)
            return applied

    def _verify(self, migrations: Sequence[Migration], done: dict[str, str | None]) -> None:
        """Compare the checksums the database recorded with ours; fill in the ones it never recorded."""
        for m in migrations:
            if m.name not in done:
                continue
            recorded = done[m.name]
            if recorded is None:
                # Applied by a switchyard from before checksums: the text shipped then is the text we have.
                self.execute(
                    "UPDATE _migrations SET checksum = ? WHERE name = ? AND checksum IS NULL", (m.sha256, m.name)
                )
            elif recorded != m.sha256:
                raise SchemaError(
                    f"the ledger at {self.where} applied migration {m.name} with other SQL than this switchyard's "
                    f"(recorded sha256 {recorded[:12]}..., ours {m.sha256[:12]}...): it was made by a different "
                    "build; open it with that build, or start a new ledger"
                )

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
