"""Core benchmark: route decisions, cost(), and `switchyard route` as a whole process.

Compared in the same run with LiteLLM (its own virtual environment, created on
demand under .bench-venv/): `Router.get_available_deployment`, `cost_per_token`
and `import litellm`.

    .venv/bin/python bench/bench_core.py            # everything
    .venv/bin/python bench/bench_core.py --no-peer  # without LiteLLM
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from switchyard.catalog import Usage  # noqa: E402
from switchyard.config import load_config, loads_config  # noqa: E402
from switchyard.router import Router  # noqa: E402
from switchyard.task import Task  # noqa: E402

SEED = ROOT / "tests" / "data" / "seed.toml"
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {
        "median_us": statistics.median(s) / 1000,
        "p99_us": s[min(len(s) - 1, int(len(s) * 0.99))] / 1000,
    }


def time_calls(fn, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for _ in range(min(2000, n)):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return percentiles(samples)


def hundred_rule_config() -> str:
    lines = [
        '[providers.a]\nkind = "openai"\n[providers.b]\nkind = "openai"\n',
    ]
    for i in range(20):
        lines.append(f'[[models]]\nname = "m{i}"\nprovider = "{"ab"[i % 2]}"\ncost_per_million_input = 1.0\n')
    lines.append('[routing]\ndefault_model = "m0"\ntimezone = "UTC"\n')
    shapes = [
        "labels contains 'area-{i}' and priority <= {p}",
        "task.title matches '^feat-{i}:'",
        "task.type in ['kind-{i}', 'other-{i}'] or retry_count > {r}",
        "hour == {h} and weekday != 'sun' and provider_status['a'] == 'up'",
        "task.metadata.team == 'team-{i}' and bucket < {b}",
    ]
    for i in range(100):
        cond = shapes[i % len(shapes)].format(
            i=i, p=i % 5, r=3 + i % 4, h=(i * 7) % 24 if i % 24 != 12 else 0, b=i % 100
        )
        lines.append(f'[[routing.rules]]\ncondition = "{cond}"\nmodel = "m{i % 20}"\nfallbacks = ["m{(i + 1) % 20}"]\n')
    return "\n".join(lines)


def bench_decisions(n: int) -> dict[str, object]:
    seed = Router(load_config(SEED))
    tasks = [Task(id=f"gh-{i}", priority=i % 5, labels=("bug",) if i % 3 else ("documentation",)) for i in range(101)]
    it = iter(range(10**9))

    def seed_decide() -> None:
        seed.decide(tasks[next(it) % 101], now=NOW)

    def seed_decide_full() -> None:
        d = seed.decide(tasks[next(it) % 101], now=NOW)
        d.candidates  # noqa: B018 - force the full failover chain

    big = Router(loads_config(hundred_rule_config()))
    miss = Task(id="t-1", title="nothing matches", priority=4, labels=("none",), type="task", metadata={"team": "x"})
    late = Task(id="t-2", title="feat-96: x", priority=4, labels=("none",), type="task")

    return {
        "seed_rules": len(seed.rules),
        "seed_decide": time_calls(seed_decide, n),
        "seed_decide_with_chain": time_calls(seed_decide_full, n),
        "rules100_no_match": time_calls(lambda: big.decide(miss, now=NOW), n),
        "rules100_late_match": time_calls(lambda: big.decide(late, now=NOW), n),
    }


def bench_cost(n: int) -> dict[str, float]:
    catalog = load_config(SEED).catalog
    usage = Usage(1000, 500, cache_read_tokens=4000, cache_write_tokens=2000)
    return time_calls(lambda: catalog.cost("claude-sonnet-4-5", usage), n)


def _process(argv: list[str], runs: int, env: dict[str, str]) -> dict[str, float]:
    walls, cpus, rss = [], [], []
    for _ in range(runs + 2):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
        rss.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {argv}")
    walls, cpus, rss = walls[2:], cpus[2:], rss[2:]
    return {
        "wall_ms_median": statistics.median(walls),
        "wall_ms_min": min(walls),
        "cpu_ms_median": statistics.median(cpus),
        "peak_rss_mib": max(rss),
    }


def bench_route_process(runs: int) -> dict[str, object]:
    # Bytecode as an installed package has it (pip compiles on install; an editable
    # checkout with PYTHONDONTWRITEBYTECODE=1 would recompile every module on every run).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True, stdout=subprocess.DEVNULL)
    exe = Path(sys.executable).parent / "switchyard"
    argv = [str(exe), "route", "--config", str(SEED), "--task", '{"id": "gh-7", "priority": 1}']
    env = {**os.environ, "OPENROUTER_API_KEY": "bench"}
    return {
        "route": _process(argv, runs, env),
        "bare_python": _process([sys.executable, "-c", "pass"], runs, env),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=50_000, help="calls per micro-benchmark")
    ap.add_argument("--runs", type=int, default=15, help="process runs of `switchyard route`")
    ap.add_argument("--no-peer", action="store_true", help="skip LiteLLM")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    results: dict[str, object] = {
        "decisions": bench_decisions(args.n),
        "cost": bench_cost(args.n),
        "route_process": bench_route_process(args.runs),
    }
    if not args.no_peer:
        from peer_litellm import measure_litellm

        results["litellm"] = measure_litellm()

    if args.json:
        print(json.dumps(results, indent=2))
        return
    d = results["decisions"]
    assert isinstance(d, dict)
    print("switchyard core benchmark")
    print(
        f"  route decision, seed rules ({d['seed_rules']}):   median {d['seed_decide']['median_us']:.2f} µs   p99 {d['seed_decide']['p99_us']:.2f} µs"
    )
    print(
        f"    + full failover chain:           median {d['seed_decide_with_chain']['median_us']:.2f} µs   p99 {d['seed_decide_with_chain']['p99_us']:.2f} µs"
    )
    print(
        f"  route decision, 100 rules, no match: median {d['rules100_no_match']['median_us']:.2f} µs   p99 {d['rules100_no_match']['p99_us']:.2f} µs"
    )
    print(
        f"  route decision, 100 rules, rule 96:  median {d['rules100_late_match']['median_us']:.2f} µs   p99 {d['rules100_late_match']['p99_us']:.2f} µs"
    )
    c = results["cost"]
    assert isinstance(c, dict)
    print(f"  cost():                              median {c['median_us']:.2f} µs   p99 {c['p99_us']:.2f} µs")
    proc = results["route_process"]
    assert isinstance(proc, dict)
    r, bare = proc["route"], proc["bare_python"]
    print(
        f"  `switchyard route` process:          median {r['wall_ms_median']:.0f} ms wall (min {r['wall_ms_min']:.0f}),"
        f" {r['cpu_ms_median']:.0f} ms CPU, peak RSS {r['peak_rss_mib']:.1f} MiB   (targets: <150 ms, <60 MiB)"
    )
    print(
        f"    for scale, `python -c pass` here:   median {bare['wall_ms_median']:.0f} ms wall (min {bare['wall_ms_min']:.0f})"
    )
    peer = results.get("litellm")
    if isinstance(peer, dict):
        pick = peer["pick_us"]["median"]
        cost = peer["cost_us"]["median"]
        print(f"LiteLLM {peer.get('litellm_version')} (same machine, same run)")
        print(
            f"  Router.get_available_deployment (6 deployments): median {pick:.1f} µs   p99 {peer['pick_us']['p99']:.1f} µs"
        )
        print(
            f"  litellm.cost_per_token:                           median {cost:.1f} µs   p99 {peer['cost_us']['p99']:.1f} µs"
        )
        print(f"  import litellm:                                   median {peer['import_ms']['median']:.0f} ms")
        ratio_pick = pick / d["seed_decide"]["median_us"]
        ratio_cost = cost / c["median_us"]
        print("ratios (LiteLLM / switchyard, higher is better for switchyard)")
        print(f"  decision: {ratio_pick:.0f}x   (target >= 50x)")
        print(f"  decision with full chain: {pick / d['seed_decide_with_chain']['median_us']:.0f}x")
        print(f"  cost:     {ratio_cost:.0f}x   (target >= 40x)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        main()
