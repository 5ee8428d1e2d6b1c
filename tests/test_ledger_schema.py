"""The ledger's schema: frozen migrations with checksums, old databases upgrade in place, schema matches the code."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from switchyard.ledger import AttemptRecord, Ledger, rollup, store
from switchyard.ledger.db import Database, Migration, SchemaError, connect, schema
from switchyard.report import Window, breakdown

LEGACY = Path(__file__).parent / "data" / "legacy"

# Every migration that ever shipped, with the SHA-256 of its SQL. A shipped migration never changes:
# a failure here means one was edited (restore it and add a new migration instead). When you add a
# migration, add its line here too.
SHIPPED = {
    "0001_attempts": "4a64f12549bae69837871382886a3b406f863a4bb82284fb897b422c671f5d67",
    "0002_breakers": "3c39083727e15e93131778e1a25a7ebea02fa2e6ee1490eddf8707695664b006",
    "0003_tasks": "894f7674916a2c17d9aed5b2253ebf2745790c55e873624060f6a14825ce06d5",
    "0004_budgets": "54c982975327a9288c64943c9b9e0a3b7bde4e03014990a51efea49df2f1fa90",
    "0005_reporting": "bbe49d12788c05a359fc4a916506efd860a8623f1b959665c18c3870045b16d3",
    "0010_verdicts": "6d8f46c728aeaec6500b9d911df8a3315e6326208a8085742f51ab932cb1342c",
    "0011_verdict_rollups": "93b7d7f911a657b868707e90d6bdf726bcb3321c1c3d1f92fb7f1e90104e7551",
    "0012_cost_basis": "595df256258c3b5ecc437c3a9a72e254f10477a893ec953d9a1034c422742181",
    "0013_cost_basis_rollups": "a4675f0d93c1f61c6db38802f502a8180aab7990c4b6fd68e6425ee2f4e1641f",
    "0014_breaker_config": "48c156ea96dfd9eda20a1d73e55ddcbcd977be390816c57840a925423883d931",
    "0020_leases": "313a3d3d4b067ea81765e14e5187a47816f248128e239d647cc9e73767d5f7c3",
    "0030_read_indexes": "d3a4eedad60004cb229bef009d950d29dd770254481e4e4e23c97772605e4824",
    "0031_unlabelled_rollups": "c8005b0582a5997f62cbb1315ce386f2b8b91b92d3d2b76f5e751f56fcc58a8e",
    "0045_exec_totals": "6c20f2a1cd137ba25d7f94e6f18c93f8b30ae2c8d680bb2b8fa46c90643742dd",
    "0046_calls": "87bb505c0c06c065c0eedc90593af37a9e992fbbc47badac099bf2f2d50260a7",
}


def test_shipped_migrations_are_frozen() -> None:
    assert [m.name for m in store.SCHEMA] == list(SHIPPED)
    for m in store.SCHEMA:
        assert m.checksum == m.sha256 == SHIPPED[m.name], m.name


def test_an_edited_migration_is_refused(tmp_path: Path) -> None:
    shipped = Migration("0001_t", "CREATE TABLE t (a TEXT)", sha256=Migration.checksum_of("CREATE TABLE t (a TEXT)"))
    edited = Migration("0001_t", "CREATE TABLE t (a TEXT, b TEXT)", sha256=shipped.sha256)
    db = connect(tmp_path / "x.db")
    with pytest.raises(SchemaError, match=r"migration 0001_t: its SQL no longer matches .* add the change as a new"):
        db.migrate([edited])
    assert db.migrate([shipped]) == ["0001_t"]
    assert db.migrate([shipped]) == []
    new = Migration("0002_u", "CREATE TABLE u (a TEXT)", sha256="")
    with pytest.raises(SchemaError, match=f'migration 0002_u has no checksum: set sha256="{new.checksum}"'):
        db.migrate([shipped, new])


def test_a_database_migrated_with_other_sql_is_refused(ledger_url: str) -> None:
    Ledger.open(ledger_url).close()
    db = connect(ledger_url)
    db.execute("UPDATE _migrations SET checksum = ? WHERE name = ?", ("0" * 64, "0003_tasks"))
    db.close()
    with pytest.raises(SchemaError, match="applied migration 0003_tasks with other SQL") as info:
        Ledger.open(ledger_url)
    assert "000000000000..." in str(info.value)


def test_a_postgres_location_in_messages_has_no_password() -> None:
    db = Database("postgres", None, "postgresql://user:s3cret@db.example:5433/ledger?sslmode=require")
    assert db.where == "postgresql://user@db.example:5433/ledger"


def test_two_migrations_with_one_number_are_refused() -> None:
    a = Migration("0006_a", "SELECT 1", sha256=Migration.checksum_of("SELECT 1"))
    b = Migration("0006_b", "SELECT 2", sha256=Migration.checksum_of("SELECT 2"))
    with pytest.raises(SchemaError, match="0006_a and 0006_b share the number 0006; renumber the newer one to 0007"):
        schema([a], [b])
    c = Migration("0002_c", "SELECT 3", sha256=Migration.checksum_of("SELECT 3"))
    assert schema([b], [c]) == (c, b)  # one history, in number order, whichever module declares them


def _describe(db: Database) -> dict[str, Any]:
    """Tables with their columns (name, type, nullable, default) and indexes, comparable across databases."""
    if db.dialect == "sqlite":
        tables = [r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out: dict[str, Any] = {}
        for t in tables:
            cols = [(r[1], r[2], r[3], r[4], r[5]) for r in db.query(f"PRAGMA table_info({t})")]
            idx = sorted(
                (r[1], tuple(c[2] for c in db.query(f"PRAGMA index_info({r[1]})")))
                for r in db.query(f"PRAGMA index_list({t})")
            )
            out[t] = (cols, idx)
        return out
    rows = db.query(
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )
    out = {}
    for t, *col in rows:
        out.setdefault(t, ([], []))[0].append(tuple(col))
    for t, name, definition, where in db.query(
        "SELECT tablename, indexname, indexdef, schemaname FROM pg_indexes WHERE schemaname = current_schema()"
    ):
        out[t][1].append((name, definition.replace(f" ON {where}.", " ON ")))
    return {t: (cols, sorted(idx)) for t, (cols, idx) in out.items()}


def _load_legacy(url: str, dialect: str) -> None:
    dump = (LEGACY / f"ledger-45f5329.{'pg' if dialect == 'postgres' else 'sqlite'}.sql").read_text()
    if dialect == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(dump)  # type: ignore[call-overload]
    else:
        conn = sqlite3.connect(url)
        conn.executescript(dump)
        conn.close()


def test_a_ledger_made_by_45f5329_opens_and_keeps_working(ledger_url: str, tmp_path: Path) -> None:
    dialect = "postgres" if ledger_url.startswith("postgresql") else "sqlite"
    _load_legacy(ledger_url, dialect)
    before = connect(ledger_url)
    assert before.columns("_migrations") == ["name", "applied_at"]  # made before checksums
    before.close()
    with Ledger.open(ledger_url) as led:
        applied = dict(led.db.query("SELECT name, checksum FROM _migrations"))
        assert applied == SHIPPED  # nothing re-applied; checksums filled in
        # Its rows read back and count as they did.
        old = led.get("att-0")
        assert old is not None and old.labels == ("bug", "security") and old.completed and old.priority == 0
        assert old.cost_usd == Decimal("0.012")
        [total] = breakdown(led.db, Window(), ())
        assert (total.attempts, total.completed_tasks, total.cost_usd) == (5, 2, Decimal("0.0264"))
        assert led.breakers()["b"].failures == 3
        assert led.task("T-0") is not None and led.task("T-0").state == "done"  # type: ignore[union-attr]
        assert led.db.one("SELECT spent_pico FROM budget_counters") == (12_000_000_000,)
        # New attempts are recorded and rolled up as in a new ledger.
        assert led.record(
            AttemptRecord(
                "att-9",
                "T-9",
                "a",
                "big",
                "ok",
                1772366400000,
                1772366401000,
                input_tokens=10,
                cost_usd=Decimal("0.0001"),
            )
        )
        assert led.mark_completed("att-9")
        [total] = breakdown(led.db, Window(), ())
        assert (total.attempts, total.completed_tasks, total.cost_usd) == (6, 3, Decimal("0.0265"))
        legacy = _describe(led.db)
    if dialect == "sqlite":  # (PostgreSQL: test_a_fresh_postgres_ledger_has_the_legacy_schema)
        with Ledger.open(tmp_path / "fresh.db") as fresh:
            assert _describe(fresh.db) == legacy


def test_a_fresh_postgres_ledger_has_the_legacy_schema(pg_url: str) -> None:
    _load_legacy(pg_url, "postgres")
    with Ledger.open(pg_url) as led:
        legacy = _describe(led.db)
        # A fresh ledger in another schema of the same database, for a like-for-like comparison.
        led.db.execute("CREATE SCHEMA fresh")
    with Ledger.open(pg_url + "?options=-csearch_path%3Dfresh") as fresh:
        assert fresh.db.one("SELECT current_schema()") == ("fresh",)
        assert _describe(fresh.db) == legacy


def test_schema_matches_the_code(ledger_url: str) -> None:
    """Each table has the columns the code writes: a field or a sum added without its migration fails here."""
    with Ledger.open(ledger_url) as led:
        assert sorted(led.db.columns("attempts")) == sorted(store._INSERT_COLUMNS)
        assert led.db.columns("rollup_attempts") == [*rollup.KEYS, *rollup.SUMS]
        assert led.db.columns("rollup_labels") == ["day", "label", "model", *rollup.SUMS]
        assert led.db.columns("breakers") == [f for f in store.BreakerRow.__dataclass_fields__]
        assert led.db.columns("tasks") == [f for f in store.TaskRow.__dataclass_fields__]
