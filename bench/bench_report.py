"""Report and dashboard latency over a ledger of 1,000,000 attempts.

    .venv/bin/python bench/bench_report.py [--attempts 1000000] [--runs 5] [--dir .bench-data/report]

Generates the ledger once (bench/gen_ledger.py; reused on later runs), then
times, median of `--runs`: `switchyard report` as a whole process (default
report, with --by model and --baseline, and with --by label), and every JSON
endpoint of the dashboard over HTTP. Target: each at most 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from gen_ledger import generate  # noqa: E402
from switchyard.config import load_config  # noqa: E402
from switchyard.dashboard import make_server  # noqa: E402
from switchyard.ledger import Ledger  # noqa: E402

ENDPOINTS = [
    "/api/summary?days=30",
    "/api/spend?by=model&days=30",
    "/api/spend?by=provider&days=30",
    "/api/budgets",
    "/api/providers",
    "/api/decisions?limit=50",
    "/api/experiments",
    "/api/report",
]


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=ROOT / ".bench-data" / "report")
    args = ap.parse_args()
    out = args.dir / str(args.attempts)
    cfg = out / "switchyard.toml"
    marker = out / "generated"
    if not marker.exists():
        t0 = time.perf_counter()
        generate(out, args.attempts)
        marker.write_text(str(args.attempts))
        print(f"generated {args.attempts:,} attempts in {time.perf_counter() - t0:.0f} s")
    loaded = load_config(cfg)
    with Ledger.open(loaded.ledger_location()) as ledger:
        count = ledger.db.one("SELECT COUNT(*) FROM attempts")
    print(f"ledger: {count[0] if count else 0:,} attempts ({loaded.ledger_location()})")

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True, stdout=subprocess.DEVNULL)
    exe = str(Path(sys.executable).parent / "switchyard")
    env = {**os.environ}
    results: dict[str, float] = {}
    for label, extra in (
        ("switchyard report", []),
        (
            "switchyard report --by model --baseline claude-sonnet-4-5",
            ["--by", "model", "--baseline", "claude-sonnet-4-5"],
        ),
        ("switchyard report --by label", ["--by", "label"]),
        ("switchyard report --since 7d --by day --json", ["--since", "7d", "--by", "day", "--json"]),
    ):
        argv = [exe, "report", "--config", str(cfg), *extra]
        subprocess.run(argv, check=True, capture_output=True, env=env)  # warm the page cache
        results[label] = timed(
            lambda argv=argv: subprocess.run(argv, check=True, capture_output=True, env=env), args.runs
        )

    with Ledger.open(loaded.ledger_location()) as ledger:
        server = make_server(loaded, ledger, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host, port = server.server_address[:2]
        with httpx.Client(base_url=f"http://{host!s}:{port}", timeout=60) as client:
            for ep in ENDPOINTS:
                client.get(ep).raise_for_status()
                results[f"GET {ep}"] = timed(lambda ep=ep: client.get(ep).raise_for_status(), args.runs)
        server.shutdown()
        server.server_close()

    width = max(len(k) for k in results)
    print(f"median of {args.runs} runs over {count[0] if count else 0:,} attempts (target <= 1000 ms each):")
    for k, v in results.items():
        flag = "ok" if v <= 1000 else "OVER"
        print(f"  {k.ljust(width)}  {v:7.0f} ms  {flag}")
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
