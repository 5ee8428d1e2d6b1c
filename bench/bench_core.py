"""Core benchmark: switchyard's routing decision and cost() against LiteLLM's, the same work, alternated in one run.

    .venv/bin/python bench/bench_core.py             # everything (creates .bench-venv/litellm on first use)
    .venv/bin/python bench/bench_core.py --no-peer   # switchyard alone

Each side runs in a process of its own (switchyard in this venv, LiteLLM in
.bench-venv/litellm) speaking the `_bench_worker` protocol: this driver asks each in turn
for a batch of timed calls, round after round, swapping which goes first, so both are
measured under the same machine load. Each side's peak RSS is its own process's high-water
mark (VmHWM, read in the process: wait4's ru_maxrss of a vforked child also counts the
parent's memory, which the child ran on until it exec'd).

The same work on both sides:
  pick among 6   LiteLLM: Router.get_available_deployment on one group of 6 deployments;
                 switchyard: Router.decide plus the whole failover chain (the same 6 models).
  pick by group  the same 6 as 3 groups of 2; the calls cycle over the groups (LiteLLM:
                 get_available_deployment(group); switchyard: decide, one rule per group).
  cost           gpt-4o, 1000 prompt / 500 completion tokens.
  cost + cache   claude-sonnet-4-5, 1000 uncached + 2000 cache-read + 500 cache-write prompt
                 tokens, 500 completion tokens.
switchyard's catalog gets LiteLLM's own prices for those models, and before timing anything
the driver checks that both sides give the same answers (the picks stay in the group asked
for, the chain holds all 6, the costs are equal).

Whole processes, alternated: `switchyard route` for one task against `python -c` importing
litellm and making one pick (wall, CPU, peak RSS of each).
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
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(BENCH))

SEED = ROOT / "tests" / "data" / "seed.toml"
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
GROUPS = ("gpt-4o", "claude-sonnet-4-5", "deepseek-chat")
IDS = {g: (f"{g}-1", f"{g}-2") for g in GROUPS}
ALL_IDS = [i for g in GROUPS for i in IDS[g]]
SHARED = ("pick6", "pick3x2", "cost", "cost_cache")
OURS_ONLY = ("pick6_decision", "seed_decide", "rules100_no_match", "rules100_late_match")
# What LiteLLM 1.110.2 prices these at (per token), for --no-peer runs; a peer run uses what it reports.
DEFAULT_PRICES = {
    "gpt-4o": {
        "input_cost_per_token": "2.5e-06",
        "output_cost_per_token": "1e-05",
        "cache_read_input_token_cost": "1.25e-06",
    },
    "claude-sonnet-4-5": {
        "input_cost_per_token": "3e-06",
        "output_cost_per_token": "1.5e-05",
        "cache_read_input_token_cost": "3e-07",
        "cache_creation_input_token_cost": "3.75e-06",
    },
    "deepseek-chat": {
        "input_cost_per_token": "2.8e-07",
        "output_cost_per_token": "4.2e-07",
        "cache_read_input_token_cost": "2.8e-08",
    },
}
_PRICE_KEYS = {
    "input_cost_per_token": "cost_per_million_input",
    "output_cost_per_token": "cost_per_million_output",
    "cache_read_input_token_cost": "cost_per_million_cached_input",
    "cache_creation_input_token_cost": "cost_per_million_cache_write",
}


# --------------------------------------------------------------------------- switchyard's side


def worker_config(prices: dict[str, dict[str, str]]) -> str:
    """6 models on 6 providers (like LiteLLM's 6 deployments), a rule per group and one for all 6."""
    out = []
    for g in GROUPS:
        for ident in IDS[g]:
            out.append(f'[providers."{ident}"]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/{ident}"\n')
    for g in GROUPS:
        rates = "".join(
            f"{_PRICE_KEYS[k]} = {Decimal(v) * 1_000_000}\n" for k, v in prices[g].items() if k in _PRICE_KEYS
        )
        for ident in IDS[g]:
            out.append(f'[[models]]\nname = "{ident}"\nprovider = "{ident}"\nprovider_model = "{g}"\n{rates}')
    out.append(f'[routing]\ndefault_model = "{ALL_IDS[0]}"\ntimezone = "UTC"\n')
    for g in GROUPS:
        out.append(
            f"[[routing.rules]]\ncondition = \"labels contains 'group:{g}'\"\n"
            f'model = "{IDS[g][0]}"\nfallbacks = ["{IDS[g][1]}"]\n'
        )
    others = ", ".join(f'"{i}"' for i in ALL_IDS[1:])
    out.append(
        f'[[routing.rules]]\ncondition = "labels contains \'chat\'"\nmodel = "{ALL_IDS[0]}"\nfallbacks = [{others}]\n'
    )
    return "\n".join(out)


def hundred_rule_config() -> str:
    lines = ['[providers.a]\nkind = "openai"\n[providers.b]\nkind = "openai"\n']
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


def switchyard_worker(prices: dict[str, dict[str, str]]) -> None:
    from _bench_worker import protocol_stream, serve

    stream = protocol_stream()
    from switchyard.catalog import Usage
    from switchyard.config import load_config, loads_config
    from switchyard.router import Router
    from switchyard.task import Task

    loaded = loads_config(worker_config(prices))
    router = Router(loaded)
    catalog = loaded.catalog
    chat = Task(id="t-chat", labels=("chat",))
    by_group = [Task(id=f"t-{g}", labels=(f"group:{g}",)) for g in GROUPS]
    turn = iter(range(10**12))
    simple = Usage(1000, 500, convention="openai")
    cached = Usage(3500, 500, cache_read_tokens=2000, cache_write_tokens=500, convention="openai")

    def pick6() -> object:
        return router.decide(chat, now=NOW).candidates

    def pick3x2() -> object:
        return router.decide(by_group[next(turn) % 3], now=NOW)

    seed = Router(load_config(SEED))
    seed_tasks = [
        Task(id=f"gh-{i}", priority=i % 5, labels=("bug",) if i % 3 else ("documentation",)) for i in range(101)
    ]
    big = Router(loads_config(hundred_rule_config()))
    miss = Task(id="t-1", title="nothing matches", priority=4, labels=("none",), type="task", metadata={"team": "x"})
    late = Task(id="t-2", title="feat-96: x", priority=4, labels=("none",), type="task")

    serve(
        stream,
        {
            "pick6": pick6,
            "pick3x2": pick3x2,
            "cost": lambda: catalog.cost(ALL_IDS[0], simple),
            "cost_cache": lambda: catalog.cost(IDS["claude-sonnet-4-5"][0], cached),
            "pick6_decision": lambda: router.decide(chat, now=NOW),
            "seed_decide": lambda: seed.decide(seed_tasks[next(turn) % 101], now=NOW),
            "rules100_no_match": lambda: big.decide(miss, now=NOW),
            "rules100_late_match": lambda: big.decide(late, now=NOW),
        },
        {
            "pick6": lambda: [c.model for c in pick6()],  # type: ignore[attr-defined]
            "pick3x2": lambda: {
                g: sorted({c.model for c in router.decide(t, now=NOW).candidates[:2]})
                for g, t in zip(GROUPS, by_group, strict=True)
            },
            "cost": lambda: str(catalog.cost(ALL_IDS[0], simple)),
            "cost_cache": lambda: str(catalog.cost(IDS["claude-sonnet-4-5"][0], cached)),
        },
        {"seed_rules": len(seed.rules)},
    )


# --------------------------------------------------------------------------- the driver


class Worker:
    """One side, in its own process."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env
        )
        self.info = self._read()
        self.peak_rss_mib = 0.0

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.seek(0)
            tail = self.stderr.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"the {self.name} worker stopped:\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"{self.name} worker: {reply['error']}")
        return reply

    def ask(self, **cmd: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(cmd) + "\n")
        stdin.flush()
        return self._read()

    def quit(self) -> None:
        self.peak_rss_mib = self.ask(op="quit")["peak_rss_kib"] / 1024
        self.proc.wait()
        self.stderr.close()


def check_answers(ours: Worker, peer: Worker) -> dict[str, Any]:
    """Both sides must answer the same before their times mean anything."""
    a = {op: ours.ask(op="answer", name=op)["answer"] for op in SHARED}
    b = {op: peer.ask(op="answer", name=op)["answer"] for op in SHARED}
    problems = []
    if sorted(a["pick6"]) != sorted(ALL_IDS):
        problems.append(f"switchyard's chain {a['pick6']} is not the 6 models")
    if not set(b["pick6"]) <= set(ALL_IDS):
        problems.append(f"LiteLLM picked {b['pick6']} outside the 6 deployments")
    for g in GROUPS:
        for side, got in (("switchyard", a["pick3x2"][g]), ("LiteLLM", b["pick3x2"][g])):
            if not set(got) <= set(IDS[g]) or not got:
                problems.append(f"{side} picked {got} for group {g}")
    costs = {}
    for op in ("cost", "cost_cache"):
        mine, theirs = Decimal(a[op]), Decimal(b[op])
        costs[op] = {"switchyard": a[op], "litellm": b[op]}
        if abs(mine - theirs) > mine * Decimal("1e-12"):
            problems.append(f"{op}: switchyard {mine} != LiteLLM {theirs}")
    io = peer.ask(op="answer", name="io")["answer"]
    if io["total"]:
        problems.append(f"LiteLLM tried the network: {io['network_attempts']}")
    if problems:
        raise SystemExit("the two sides do not do the same work:\n  " + "\n  ".join(problems))
    return {"costs": costs, "litellm_picks": {"pick6": b["pick6"], "pick3x2": b["pick3x2"]}}


def summary(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {"median_us": statistics.median(s) / 1000, "p99_us": s[min(len(s) - 1, int(len(s) * 0.99))] / 1000}


def timed_rounds(workers: list[Worker], rounds: int, n: int) -> dict[str, dict[str, dict[str, float]]]:
    """`rounds` rounds (after one discarded warm-up), each side in turn, the first one swapped every round."""
    samples: dict[str, dict[str, list[int]]] = {w.name: {} for w in workers}
    for r in range(rounds + 1):
        order = workers if r % 2 == 0 else workers[::-1]
        for op in SHARED:
            for w in order:
                ns = w.ask(op="time", name=op, n=n)["ns"]
                if r:
                    samples[w.name].setdefault(op, []).extend(ns)
        ours = next(w for w in workers if w.name == "switchyard")
        for op in OURS_ONLY:
            ns = ours.ask(op="time", name=op, n=n)["ns"]
            if r:
                samples[ours.name].setdefault(op, []).extend(ns)
    return {side: {op: summary(s) for op, s in ops.items()} for side, ops in samples.items()}


# Run first in each whole-process child: at exit, write its own peak RSS (VmHWM) to $BENCH_HWM_FD.
_HWM = (
    "import atexit, os\n"
    "def _hwm():\n"
    "    kib = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
    "    os.write(int(os.environ['BENCH_HWM_FD']), kib.encode())\n"
    "atexit.register(_hwm)\n"
)


def _process(python: str, code: str, env: dict[str, str]) -> tuple[float, float, float]:
    r, w = os.pipe()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [python, "-c", _HWM + code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "BENCH_HWM_FD": str(w)},
        pass_fds=[w],
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        hwm = fh.read()
    if os.waitstatus_to_exitcode(status) != 0 or not hwm:
        raise SystemExit(f"failed: {python} -c {code!r}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, int(hwm) / 1024


def processes(
    runs: int, config: Path, peer_python: str | None, peer_env: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Fresh processes making one decision each, alternated: wall and CPU medians, peak RSS."""
    # Bytecode as an installed package has it (pip compiles on install).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True, stdout=subprocess.DEVNULL)
    route = ["switchyard", "route", "--config", str(config), "--task", '{"id": "t-chat", "labels": ["chat"]}']
    sides: dict[str, tuple[str, str, dict[str, str]]] = {
        # What the `switchyard` console script does.
        "switchyard route": (
            sys.executable,
            f"import sys\nfrom switchyard.cli import main\nsys.argv = {route!r}\nsys.exit(main())\n",
            dict(os.environ),
        ),
        "python -c pass": (sys.executable, "pass", dict(os.environ)),
    }
    if peer_python:
        code = (
            "import litellm\n"
            "r = litellm.Router(model_list=[{'model_name': 'chat', 'litellm_params': {'model': m, 'api_key': 'sk-fake',"
            " 'api_base': 'http://127.0.0.1:9'}} for m in ('openai/gpt-4o', 'anthropic/claude-sonnet-4-5',"
            " 'deepseek/deepseek-chat')])\n"
            "r.get_available_deployment(model='chat', messages=[{'role': 'user', 'content': 'hi'}])\n"
        )
        sides["litellm import + pick"] = (peer_python, code, peer_env)
    got: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(runs + 1):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            m = _process(*sides[name])
            if r:
                got[name].append(m)
    return {
        name: {
            "wall_ms_median": statistics.median(x[0] for x in ms),
            "cpu_ms_median": statistics.median(x[1] for x in ms),
            "peak_rss_mib": max(x[2] for x in ms),
        }
        for name, ms in got.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20_000, help="timed calls per operation and side")
    ap.add_argument("--rounds", type=int, default=10, help="the calls are split into this many alternated rounds")
    ap.add_argument("--runs", type=int, default=10, help="whole-process runs of each side")
    ap.add_argument("--no-peer", action="store_true", help="skip LiteLLM")
    ap.add_argument("--litellm-version", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", metavar="PRICES_JSON", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        switchyard_worker(json.loads(args.worker))
        return

    results: dict[str, Any] = {"host": {"cpu_count": os.cpu_count(), "loadavg_before": os.getloadavg()}}
    workers: list[Worker] = []
    peer_python: str | None = None
    peer_env: dict[str, str] = {}
    prices = DEFAULT_PRICES
    if not args.no_peer:
        from peer_litellm import DEFAULT_VERSION, _child_env, ensure_venv

        install = ensure_venv(args.litellm_version or DEFAULT_VERSION)
        peer_python, peer_env = install["python"], _child_env()
        peer = Worker("litellm", [peer_python, str(BENCH / "_litellm_probe.py")], env=peer_env)
        prices = peer.info["prices"]
        results["litellm_version"] = peer.info["version"]
        workers.append(peer)
    ours = Worker("switchyard", [sys.executable, __file__, "--worker", json.dumps(prices)])
    workers.insert(0, ours)
    results["seed_rules"] = ours.info["seed_rules"]
    if len(workers) == 2:
        results["checks"] = check_answers(ours, workers[1])
    per_round = max(1, args.n // args.rounds)
    results["calls"] = timed_rounds(workers, args.rounds, per_round)
    for w in workers:
        w.quit()
    results["worker_peak_rss_mib"] = {w.name: w.peak_rss_mib for w in workers}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "switchyard.toml"
        config.write_text(worker_config(prices), encoding="utf-8")
        results["processes"] = processes(args.runs, config, peer_python, peer_env)
    results["host"]["loadavg_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return
    report(results, per_round * args.rounds)


def report(results: dict[str, Any], n: int) -> None:
    calls = results["calls"]
    ours, peer = calls["switchyard"], calls.get("litellm")
    print(f"median (p99) µs per call, {n} calls a side, alternated in {len(calls)} processes, one run")
    labels = {
        "pick6": "pick among 6 (switchyard: decide + chain)",
        "pick3x2": "pick by group (3 groups of 2)",
        "cost": "cost, gpt-4o",
        "cost_cache": "cost + cache, claude-sonnet-4-5",
    }
    fmt: Callable[[dict[str, float]], str] = lambda s: f"{s['median_us']:8.2f} ({s['p99_us']:7.2f})"  # noqa: E731
    print(f"  {'':44} {'switchyard':>18} {'LiteLLM ' + results.get('litellm_version', ''):>22}   ratio")
    for op, label in labels.items():
        line = f"  {label:44} {fmt(ours[op]):>18}"
        if peer:
            line += f" {fmt(peer[op]):>22}   {peer[op]['median_us'] / ours[op]['median_us']:5.1f}x"
        print(line)
    print("switchyard only:")
    for op, label in (
        ("pick6_decision", "decide only, 6 candidates"),
        ("seed_decide", f"decide, seed rules ({results['seed_rules']})"),
        ("rules100_no_match", "decide, 100 rules, no match"),
        ("rules100_late_match", "decide, 100 rules, rule 96 matches"),
    ):
        print(f"  {label:44} {fmt(ours[op]):>18}")
    if "checks" in results:
        c = results["checks"]["costs"]
        print(
            "answers checked equal: picks in the group asked for; costs "
            + ", ".join(f"{op} ${c[op]['switchyard']} = ${c[op]['litellm']}" for op in c)
        )
    rss = results["worker_peak_rss_mib"]
    print("peak RSS of each side's process: " + ", ".join(f"{k} {v:.1f} MiB" for k, v in rss.items()))
    print("whole processes, one decision each (medians; alternated):")
    for name, p in results["processes"].items():
        print(
            f"  {name:24} {p['wall_ms_median']:7.0f} ms wall  {p['cpu_ms_median']:7.0f} ms CPU"
            f"  peak RSS {p['peak_rss_mib']:6.1f} MiB"
        )
    h = results["host"]
    print(f"(cpu count {h['cpu_count']}, load {h['loadavg_before'][0]:.2f} -> {h['loadavg_after'][0]:.2f})")


if __name__ == "__main__":
    main()
