"""The read commands and the dashboard over ledgers of 10k, 100k and 1M attempts: wall time and peak memory.

    .venv/bin/python bench/bench_report.py [--attempts 10000 100000 1000000] [--runs 3] [--dir DIR]
                                           [--pg postgresql://USER@HOST:PORT]

Generates each ledger once (bench/gen_ledger.py, ~N/1.25 tasks with their rows;
kept in DIR/<backend>-<N> and reused), then measures, for each size:

* every read command as a process of its own (`switchyard status`, `log`,
  `report` with its costly variants): the median wall time of `--runs` runs
  and the peak resident memory of the process (`wait4`'s `ru_maxrss`);
* the `--all` forms, which stream every task or attempt (their time grows with
  the ledger; their memory must not);
* every JSON endpoint of the dashboard: a fresh `switchyard dashboard` process
  per endpoint, the median time of `--runs` requests, and the server's peak
  memory after them (`VmHWM`).

With --pg, the same on that PostgreSQL server (a database `switchyard_bench_<N>` per size, made and
filled once).
Target: status, log, report and each endpoint at most 1 s and 100 MiB at 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from gen_ledger import config_text  # noqa: E402

EXE = str(Path(sys.executable).parent / "switchyard")
TARGET_MS, TARGET_MIB = 1000, 100

# (label, argv after `switchyard`, held to the target)
COMMANDS: list[tuple[str, list[str], bool]] = [
    ("status", ["status"], True),
    ("status --json", ["status", "--json"], True),
    ("status --state dead --limit 100", ["status", "--state", "dead", "--limit", "100"], True),
    ("log", ["log"], True),
    ("log --task gh-7", ["log", "--task", "gh-7"], True),
    ("log --since 1d --json", ["log", "--since", "1d", "--json"], True),
    ("report", ["report"], True),
    (
        "report --by model --baseline claude-sonnet-4-5",
        ["report", "--by", "model", "--baseline", "claude-sonnet-4-5"],
        True,
    ),
    ("report --baseline bench-tiered", ["report", "--baseline", "bench-tiered"], True),
    ("report --by label", ["report", "--by", "label"], True),
    ("report --since 7d --by day --json", ["report", "--since", "7d", "--by", "day", "--json"], True),
    ("status --all (streams every task)", ["status", "--all"], False),
    ("log --all (streams every attempt)", ["log", "--all"], False),
]
ENDPOINTS = [
    "/api/summary?days=30",
    "/api/spend?by=model&days=30",
    "/api/spend?by=provider&days=30",
    "/api/budgets",
    "/api/providers",
    "/api/decisions?limit=50",
    "/api/experiments",
    "/api/verification?days=30",
    "/api/money?days=30",
    "/api/report",
]


TIME = "/usr/bin/time"  # GNU time: a small C launcher, so the peak it reports is the command's own


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall ms, peak RSS MiB) of one process, its output thrown away.

    The peak comes from GNU time (`%M`) where it is installed: a child forked from this (larger) Python
    process would count this process's memory in its `ru_maxrss` until it execs.
    """
    launcher = [TIME, "-f", "maxrss_kb=%M"] if os.path.exists(TIME) else []
    t0 = time.perf_counter()
    proc = subprocess.Popen([*launcher, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err}")
    found = re.findall(r"maxrss_kb=(\d+)", err)
    return wall, (int(found[-1]) if found else usage.ru_maxrss) / 1024


def measure_command(cfg: Path, args: list[str], runs: int) -> tuple[float, float]:
    argv = [EXE, *args, "--config", str(cfg)]
    run_once(argv)  # warm the page cache
    samples = [run_once(argv) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def measure_endpoint(cfg: Path, endpoint: str, runs: int) -> tuple[float, float]:
    server = subprocess.Popen(
        [EXE, "dashboard", "--port", "0", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert server.stderr is not None
        line = server.stderr.readline().decode()
        found = re.search(r"http://[^/\s]+", line)
        if not found:
            raise SystemExit(f"the dashboard did not start: {line}{server.stderr.read().decode()}")
        with httpx.Client(base_url=found.group(0), timeout=120) as client:
            client.get(endpoint).raise_for_status()
            samples = []
            for _ in range(runs):
                t0 = time.perf_counter()
                client.get(endpoint).raise_for_status()
                samples.append((time.perf_counter() - t0) * 1000)
        status = Path(f"/proc/{server.pid}/status").read_text()
        hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
        return statistics.median(samples), int(hwm.group(1)) / 1024 if hwm else float("nan")
    finally:
        server.terminate()
        server.wait(timeout=30)


def pg_database(server: str, n: int) -> str:
    """The URL of this size's database on the server, made if it is not there."""
    import psycopg

    name = f"switchyard_bench_{n}"
    with psycopg.connect(server.rstrip("/") + "/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server.rstrip('/')}/{name}"


def ledger_for(base: Path, backend: str, n: int, pg: str | None) -> Path:
    out = base / f"{backend}-{n}"
    cfg = out / "switchyard.toml"
    marker = out / "generated"
    url = pg_database(pg, n) if backend == "postgres" and pg else None
    if not marker.exists() or marker.read_text().strip() != f"{n} {url or ''}".strip():
        t0 = time.perf_counter()
        # In a process of its own: this one stays small (a forked child starts with this one's memory).
        gen = [sys.executable, str(ROOT / "bench" / "gen_ledger.py"), str(out), "--attempts", str(n)]
        subprocess.run([*gen, *(["--url", url] if url else [])], check=True)
        marker.write_text(f"{n} {url or ''}".strip())
        print(f"generated {n:,} attempts ({backend}) in {time.perf_counter() - t0:.0f} s", flush=True)
    cfg.write_text(config_text(url))  # a ledger generated by an older bench keeps working with today's models
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=ROOT / ".bench-data" / "report")
    ap.add_argument("--pg", metavar="URL", help="also measure on this PostgreSQL server (postgresql://USER@HOST:PORT)")
    ap.add_argument("--only", help="measure only the commands and endpoints whose label contains this")
    ap.add_argument("--backend", choices=["sqlite", "postgres"], help="only this one")
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True, stdout=subprocess.DEVNULL)
    backends = ["sqlite"] + (["postgres"] if args.pg else [])
    if args.backend:
        backends = [args.backend]
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for backend in backends:
        for n in args.attempts:
            cfg = ledger_for(args.dir, backend, n, args.pg)
            column = f"{backend} {n:,}"
            for label, argv, _ in COMMANDS:
                if args.only and args.only not in label:
                    continue
                results.setdefault(label, {}).setdefault(backend, {})[str(n)] = list(
                    measure_command(cfg, argv, 1 if "--all" in argv else args.runs)
                )
                print(f"{column:>18}  {label:<48} {results[label][backend][str(n)][0]:8.0f} ms", flush=True)
            for ep in ENDPOINTS:
                label = f"GET {ep}"
                if args.only and args.only not in label:
                    continue
                results.setdefault(label, {}).setdefault(backend, {})[str(n)] = list(
                    measure_endpoint(cfg, ep, args.runs)
                )
                print(f"{column:>18}  {label:<48} {results[label][backend][str(n)][0]:8.0f} ms", flush=True)
    print_table(results, backends, args.attempts)
    args.dir.mkdir(parents=True, exist_ok=True)
    (args.dir / "results.json").write_text(json.dumps(results, indent=2))


def print_table(results: dict[str, dict[str, dict[str, list[float]]]], backends: list[str], sizes: list[int]) -> None:
    held = {label for label, _, h in COMMANDS if h} | {f"GET {ep}" for ep in ENDPOINTS}
    width = max(len(k) for k in results)
    for backend in backends:
        head = "  ".join(f"{f'{n:,} attempts':>20}" for n in sizes)
        print(f"\n{backend}: median ms / peak MiB (target <= {TARGET_MS} ms, <= {TARGET_MIB} MiB at every size)")
        print(f"  {'':<{width}}  {head}")
        for label, per in results.items():
            cells = []
            over = False
            for n in sizes:
                ms, mib = per.get(backend, {}).get(str(n), [float("nan"), float("nan")])
                over |= label in held and (ms > TARGET_MS or mib > TARGET_MIB)
                cells.append(f"{ms:>9.0f} / {mib:>6.0f}")
            flag = "  OVER" if over else ""
            print(f"  {label:<{width}}  {'  '.join(f'{c:>20}' for c in cells)}{flag}")


if __name__ == "__main__":
    main()
