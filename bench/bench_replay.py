"""Replay and tune on the SWE-bench Verified bash-only outcome table (500 tasks × 25 models).

    .venv/bin/python bench/bench_replay.py [--data PATH] [--runs 7] [--splits 5] [--seed 1] [--max-attempts 6]

The table is read where it lies (`--data`, else ../shared/data/ next to the repository
or its worktree folder); it is benchmark data (CC BY-NC 4.0, "SWE-bench bash-only
leaderboard") and is never copied into the repository.

Speed (targets): replaying one config over the 500 tasks ≤ 50 ms (median of --runs, the
table already loaded); `tune` scoring ≥ 10,000 candidate policies ≤ 10 s.

Figures: the policy `tune` finds (target: the best single model's resolved share on the
fitting half), fitted on a random half and reported on the other half, over --splits
seeds; against the best single model (chosen on the fitting half, measured on the
held-out half): resolved share and cost as a share of its cost. Once with a perfect
verifier, once with recall 0.9 and false-pass rate 0.05. Every reported figure is the
real router replaying the printed config (tune checks it against its fast scorer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from switchyard.config import loads_config  # noqa: E402
from switchyard.replay.engine import Replayer, Verifier, oracle, single_model  # noqa: E402
from switchyard.replay.outcomes import OutcomeTable, load_outcomes  # noqa: E402
from switchyard.replay.tune import SplitResult, TuneSettings, tune_split  # noqa: E402

NAME = "swebench-verified-bash-only.csv"
CASCADE = """
[providers.p]
kind = "simulated"
[[models]]
name = "deepseek-v3-2-reasoner"
provider = "p"
[[models]]
name = "gpt-5-mini-2025-08-07-medium-reasoning"
provider = "p"
[[models]]
name = "claude-4-5-opus-medium-20251101"
provider = "p"

[coordinator]
max_attempts = 3

[routing]
default_model = "deepseek-v3-2-reasoner"
[[routing.rules]]
condition = "retry_count >= 2"
model = "claude-4-5-opus-medium-20251101"
[[routing.rules]]
condition = "retry_count >= 1"
model = "gpt-5-mini-2025-08-07-medium-reasoning"
"""


def find_data(given: Path | None) -> Path:
    if given is not None:
        return given
    for base in (ROOT.parent, ROOT.parent.parent):
        p = base / "shared" / "data" / NAME
        if p.exists():
            return p
    raise SystemExit(f"cannot find {NAME}; pass --data PATH")


def speed(t: OutcomeTable, runs: int, max_attempts: int) -> None:
    print("Speed")
    cfg = loads_config(CASCADE, "cascade.toml")
    replayer = Replayer(cfg, t, name="cascade")
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = replayer.run()
        samples.append(time.perf_counter() - t0)
    s = res.summary
    print(
        f"  replay, 3-step cascade over {s.tasks} tasks × {len(t.models)} models: median "
        f"{statistics.median(samples) * 1000:.1f} ms over {runs} runs (target ≤ 50 ms); "
        f"{s.resolved} resolved for ${s.cost_usd:.2f}, {s.attempts} router decisions"
    )
    for attempts in (3, max_attempts):
        settings = TuneSettings(models=t.models, max_attempts=attempts, target_best=True)
        r = tune_split(t, settings, seed=0)
        print(
            f"  tune, ladders up to {attempts} attempts over {len(t.models)} models: {r.candidates:,} candidate "
            f"policies in {r.seconds:.2f} s, winner checked by the router on both halves (target ≥ 10,000 in ≤ 10 s)"
        )


def figures(t: OutcomeTable, splits: int, seed: int, max_attempts: int, verifier: Verifier, label: str) -> None:
    settings = TuneSettings(models=t.models, max_attempts=max_attempts, target_best=True, verifier=verifier)
    print(f"\n{label}: tune fitted on a random half, reported on the other (seeds {seed}..{seed + splits - 1})")
    head = f"  {'seed':>4}  {'tuned':>11}  {'best single':>11}  {'tuned $':>8}  {'its $':>8}  {'cost share':>10}  "
    print(head + "best single model (on the fitting half); policy")
    rows: list[SplitResult] = []
    for k in range(splits):
        r = tune_split(t, settings, seed + k)
        rows.append(r)
        h, b = r.held.summary, r.best_single.summary
        print(
            f"  {r.seed:>4}  {h.resolved:>3}/{h.tasks} {h.share * 100:4.1f}%  {b.resolved:>3}/{b.tasks} "
            f"{b.share * 100:4.1f}%  {h.cost_usd:8.2f}  {b.cost_usd:8.2f}  {float(h.cost_usd / b.cost_usd) * 100:9.1f}%  "
            f"{r.best_single.name}; {r.policy.describe()}" + (f"; {h.false_pass} false passes" if h.false_pass else "")
        )
    diff = [(r.held.summary.share - r.best_single.summary.share) * 100 for r in rows]
    share = [r.held.summary.share * 100 for r in rows]
    base = [r.best_single.summary.share * 100 for r in rows]
    cost = [float(r.held.summary.cost_usd / r.best_single.summary.cost_usd) * 100 for r in rows]
    top = [r.best_single_held.summary.share * 100 for r in rows]
    print(
        f"  resolved share: tuned mean {statistics.mean(share):.1f}% (range {min(share):.1f}–{max(share):.1f}); "
        f"best single mean {statistics.mean(base):.1f}% (range {min(base):.1f}–{max(base):.1f}); "
        f"difference mean {statistics.mean(diff):+.1f} points (range {min(diff):+.1f} to {max(diff):+.1f})"
    )
    print(
        f"  cost as a share of the best single model's: mean {statistics.mean(cost):.1f}% "
        f"(range {min(cost):.1f}–{max(cost):.1f}%)"
    )
    print(
        f"  (the model that happens to be best on each held-out half itself: mean {statistics.mean(top):.1f}%, "
        f"range {min(top):.1f}–{max(top):.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help=f"path to {NAME}")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-attempts", type=int, default=6)
    args = ap.parse_args()
    path = find_data(args.data)
    t0 = time.perf_counter()
    t = load_outcomes(path)
    print(
        f"Data: {path} (SWE-bench bash-only leaderboard, CC BY-NC 4.0): {len(t.tasks)} tasks × {len(t.models)} "
        f"models, loaded in {(time.perf_counter() - t0) * 1000:.0f} ms"
    )
    best = max((single_model(t, m) for m in t.models), key=lambda r: (r.summary.resolved, -r.summary.cost_usd))
    o = oracle(t).summary
    print(
        f"  anchors: best single model {best.name} {best.summary.resolved}/500 for ${best.summary.cost_usd:.2f}; "
        f"oracle {o.resolved}/500 for ${o.cost_usd:.2f}\n"
    )
    speed(t, args.runs, args.max_attempts)
    figures(t, args.splits, args.seed, args.max_attempts, Verifier(), "Perfect verifier")
    noisy = Verifier(Decimal("0.9"), Decimal("0.05"), args.seed)
    figures(
        t,
        args.splits,
        args.seed,
        args.max_attempts,
        noisy,
        f"Verifier recall 0.9, false-pass rate 0.05 (seed {args.seed})",
    )


if __name__ == "__main__":
    main()
