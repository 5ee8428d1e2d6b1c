"""Write dumps of a small ledger made by an *older* switchyard, for the upgrade test (tests/test_ledger_schema.py).

    python tests/data/legacy/make_legacy_ledger.py OLD_SRC_DIR COMMIT [--pg postgresql://postgres@127.0.0.1:5432/postgres]

OLD_SRC_DIR is the `src` directory of that older checkout (e.g. `git archive 45f5329 | tar -x -C /tmp/old`).
It records a few attempts (labels, a failover, an experiment, a completed task), a task row, a
breaker and a breaker event, and a settled budget hold, then writes `ledger-COMMIT.sqlite.sql`
(sqlite3 iterdump) and `ledger-COMMIT.pg.sql` (pg_dump --inserts) next to this file. The dumps
are frozen artifacts: regenerate them only for a new commit, never over an existing one.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/, for report_ledger (no switchyard imports of its own)

from report_ledger import D1, MODELS, providers, rec  # noqa: E402

CONFIG = (
    providers()
    + MODELS
    + """
[routing]
default_model = "big"
timezone = "UTC"

[ledger]
url = "{url}"

[budgets]
daily_usd = 10
"""
)


def fill(url: str) -> None:
    from datetime import UTC, datetime

    from switchyard.budgets import Budgets
    from switchyard.config import loads_config
    from switchyard.ledger import BreakerRow, Ledger

    loaded = loads_config(CONFIG.format(url=url))
    with Ledger.open(url) as led:
        for r in [
            rec(0, D1, "big", with_completed=False, priority=0, labels=("bug", "security")),
            rec(1, D1 + 1000, "small", with_completed=False, labels=("documentation",)),
            rec(2, D1 + 86_400_000, "small", status="failed", with_completed=False, error_class="overloaded"),
            rec(3, D1 + 86_405_000, "big", with_completed=False, candidate_index=1, failover_from="b", first=False),
            rec(4, D1 + 2 * 86_400_000, "small", with_completed=False, experiment="ab", arm="small", priority=4),
        ]:
            led.record(r)
        led.mark_completed("att-0")
        led.mark_completed("att-3")
        led.add_task("T-0", '{"id": "T-0", "prompt": "fix it"}', "file", D1)
        led.set_task("T-0", "done", D1 + 2000, retry_count=0)
        led.put_breaker(BreakerRow("b", "open", failures=3, opened_ms=D1, updated_ms=D1, reason="3 failures"))
        led.breaker_event("b", D1, "open", "3 consecutive failures")
        budgets = Budgets(loaded, led, clock=lambda: D1 / 1000)
        counters = budgets.counters(provider="a", model="big", at=datetime.fromtimestamp(D1 / 1000, UTC))
        budgets.reserve("att-0", "T-0", Decimal("0.05"), counters)
        budgets.settle("att-0", Decimal("0.012"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", type=Path)
    ap.add_argument("commit")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    sys.path.insert(0, str(args.src.resolve()))
    import switchyard

    assert Path(switchyard.__file__).resolve().is_relative_to(args.src.resolve()), switchyard.__file__

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        fill(str(path))
        conn = sqlite3.connect(path)
        (HERE / f"ledger-{args.commit}.sqlite.sql").write_text("\n".join(conn.iterdump()) + "\n")
        conn.close()

    import psycopg

    name = f"switchyard_legacy_{uuid.uuid4().hex[:8]}"
    base = args.pg.rsplit("/", 1)[0]
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            fill(f"{base}/{name}")
            dump = subprocess.run(
                ["pg_dump", "--no-owner", "--no-privileges", "--inserts", f"{base}/{name}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            # Newer pg_dump brackets the dump in psql-only `\\restrict` lines; keep plain SQL.
            dump = "".join(line for line in dump.splitlines(keepends=True) if not line.startswith("\\"))
            (HERE / f"ledger-{args.commit}.pg.sql").write_text(dump)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
