"""A fresh PostgreSQL database per test, on the server at 127.0.0.1:5432 (trust auth).

Tests that take the `ledger_url` fixture run on SQLite and on PostgreSQL. When the
server is not reachable they are skipped, unless SWITCHYARD_REQUIRE_PG=1 (set by
`.ci/run`), which makes them fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ADMIN_URL = os.environ.get("SWITCHYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> object | None:
    try:
        import psycopg

        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception:
        return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    conn = _admin()
    if conn is None:
        if os.environ.get("SWITCHYARD_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}")
    name = f"switchyard_test_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")  # type: ignore[operator]
    return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]
