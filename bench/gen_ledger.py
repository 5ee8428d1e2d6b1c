"""Generate a realistic synthetic ledger of N attempts (for the report and dashboard benchmarks).

    .venv/bin/python bench/gen_ledger.py OUT_DIR [--attempts 1000000] [--url postgresql://...]

Writes OUT_DIR/switchyard.toml (models, providers, a budget) and its ledger
OUT_DIR/.switchyard/ledger.db (or the PostgreSQL database at --url, emptied
first): ~N/1.25 tasks over 30 days, seven models, failed attempts and
failovers, escalations, an A/B experiment, labels and stages. Each task has its
`tasks` row: done, dead (with its last error), and the last few hundred still
queued, running, retrying or blocked, as a coordinator leaves them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from switchyard.catalog import Usage  # noqa: E402
from switchyard.config import load_config  # noqa: E402
from switchyard.ledger import AttemptRecord, Ledger  # noqa: E402

# The old demo config (bench/gen_ledger.toml), plus a model with a long-context tier and an off-peak
# window, so `report --baseline bench-tiered` re-prices every attempt in the database (bench_report.py).
CONFIG = (
    (ROOT / "bench" / "gen_ledger.toml").read_text()
    + """
[[models]]
name = "bench-tiered"
provider = "openrouter"
cost_per_million_input = 1.25
cost_per_million_output = 10.0
[[models.tiers]]
above_input_tokens = 20000
cost_per_million_input = 2.5
cost_per_million_output = 15.0
[[models.off_peak]]
start = "16:30"
end = "00:30"
cost_per_million_input = 0.625
cost_per_million_output = 5.0
"""
)
MODELS = [
    ("claude-opus-4", "claude-cli", 0.05),
    ("claude-sonnet-4-5", "claude-cli", 0.40),
    ("claude-haiku-4", "claude-cli", 0.15),
    ("deepseek/deepseek-chat", "openrouter", 0.25),
    ("anthropic/claude-3.5-sonnet", "openrouter", 0.05),
    ("grok-beta", "openrouter", 0.05),
    ("gpt-4o-mini", "openai", 0.05),
]
LABELS = ["bug", "feature", "documentation", "refactor", "test", "security", "frontend", "backend"]
STAGES = [None, None, "plan", "implement", "review"]
ERRORS = ["rate_limited", "overloaded", "server_error", "timeout", "cli_error"]


ACTIVE = ["queued"] * 6 + ["running"] * 2 + ["retrying", "blocked"]
TASK_INSERT = (
    "INSERT INTO tasks (task_id, state, source, task_json, enqueued_ms, updated_ms, retry_count, workflow, stage, "
    "last_error, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def config_text(url: str | None) -> str:
    return CONFIG + (f'\n[ledger]\nurl = "{url}"\n' if url else "")


def _empty(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def generate(out: Path, attempts: int, seed: int = 1, url: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "switchyard.toml"
    cfg.write_text(config_text(url))
    loaded = load_config(cfg)
    if url:
        _empty(url)
        ledger_path: str | Path = url
    else:
        ledger_path = Path(loaded.ledger_location())
        if ledger_path.exists():
            ledger_path.unlink()
    rng = random.Random(seed)
    catalog = loaded.catalog
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - 30 * 86_400_000
    batch: list[AttemptRecord] = []
    task_rows: list[tuple[object, ...]] = []
    with Ledger.open(ledger_path) as ledger:
        i = task_no = 0
        while i < attempts:
            task_no += 1
            task_id = f"gh-{task_no}"
            priority = rng.choices([0, 1, 2, 3, 4], [1, 3, 4, 2, 1])[0]
            labels = tuple(rng.sample(LABELS, rng.choice([1, 1, 2])))
            stage = rng.choice(STAGES)
            at = rng.randint(start_ms, end_ms)
            experiment = "grok-vs-sonnet" if task_no % 10 == 0 else None
            tries = 1 + (rng.random() < 0.2) + (rng.random() < 0.05)
            previous = None
            for t in range(tries):
                model, provider, _ = rng.choices(MODELS, [w for _, _, w in MODELS])[0]
                if experiment:
                    model, provider = rng.choice([("grok-beta", "openrouter"), ("claude-sonnet-4-5", "claude-cli")])
                ok = t == tries - 1 and rng.random() > 0.03
                usage = (
                    Usage(
                        rng.randint(500, 20_000), rng.randint(100, 4000), rng.randint(0, 30_000), rng.randint(0, 2000)
                    )
                    if ok or rng.random() < 0.3
                    else None
                )
                cost = catalog.cost(model, usage) if usage else Decimal(0)
                latency = int(rng.lognormvariate(9.5, 0.8)) if ok else rng.randint(50, 5000)
                batch.append(
                    AttemptRecord(
                        attempt_id=f"{task_id}:a{t}",
                        task_id=task_id,
                        provider=provider,
                        model=model,
                        status="ok" if ok else rng.choice(["failed", "failed", "timeout"]),
                        started_ms=at + t * 60_000,
                        ended_ms=at + t * 60_000 + latency,
                        stage=stage,
                        workflow="standard" if stage else None,
                        rule=rng.choice([None, 0, 1, 2, 3, 5]),
                        reason="generated",
                        experiment=experiment,
                        arm=model if experiment else None,
                        candidate_index=1 if t == 1 else 0,
                        try_index=t,
                        task_retry=1 if t == 2 else 0,
                        first=t == 0,
                        completed=ok,
                        failover_from=previous if t and t != 2 else None,
                        priority=priority,
                        labels=labels,
                        input_tokens=usage.input_tokens if usage else 0,
                        output_tokens=usage.output_tokens if usage else 0,
                        cache_read_tokens=usage.cache_read_tokens if usage else 0,
                        cache_write_tokens=usage.cache_write_tokens if usage else 0,
                        cost_usd=cost,
                        latency_ms=latency,
                        error_class=None if ok else rng.choice(ERRORS),
                        prompt_bytes=rng.randint(200, 20_000),
                    )
                )
                previous = provider
                i += 1
            last = batch[-1]
            if i > attempts - 375:  # the last few hundred tasks are still in flight
                state = ACTIVE[task_no % len(ACTIVE)]
            else:
                state = "done" if last.ok else "dead"
            error = (
                f"{last.model}: [{last.error_class}] the provider said no " + "x" * 120 if last.error_class else None
            )
            task_rows.append(
                (
                    task_id,
                    state,
                    "bench",
                    json.dumps({"id": task_id, "title": f"issue {task_no}", "priority": priority, "labels": labels}),
                    at,
                    last.ended_ms,
                    tries - 1,
                    last.workflow,
                    last.stage,
                    error if state in ("dead", "retrying") else None,
                    "daily budget reached" if state == "blocked" else None,
                )
            )
            if len(batch) >= 20_000:
                with ledger.db.transaction():
                    ledger.record_many(batch)
                    ledger.db.executemany(TASK_INSERT, task_rows)
                batch.clear()
                task_rows.clear()
        if batch:
            with ledger.db.transaction():
                ledger.record_many(batch)
                ledger.db.executemany(TASK_INSERT, task_rows)
        ledger.db.execute("ANALYZE")
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--url", help="a postgresql:// ledger (emptied first) instead of OUT_DIR/.switchyard/ledger.db")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = generate(args.out, args.attempts, url=args.url)
    print(f"wrote {args.attempts:,} attempts for {cfg} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
