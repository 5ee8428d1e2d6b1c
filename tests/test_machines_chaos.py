"""Chaos: 3 machines on one PostgreSQL, random kill -9 (some restarted), a global cap and a label cap.

Every task ends done or legitimately blocked (its cap cannot admit another call),
no call is started twice unless its first run's machine died mid-call, the
recorded cost is the cost of the calls that finished and were recorded (a call
that finished in the instant before its machine died is counted apart: its
machine could not record it), each cap's counter equals what was recorded and
stays under its limit, no hold is left, and the last machine killed is never
restarted: the survivors took its work over. The short form runs one fixed seed;
`SWITCHYARD_SLOW=1` runs the long form (200 tasks, several seeds), as does
`bench/bench_machines.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster import run_chaos

SEED = 20261202


def test_chaos_fixed_seed(tmp_path: Path, pg_url: str) -> None:
    result = run_chaos(tmp_path, pg_url, seed=SEED, tasks=48, kills=10, sleep=0.8)
    assert result.problems == [], result
    assert result.kills >= 10
    assert result.takeovers_s, result  # at least the last kill was taken over by a survivor


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SWITCHYARD_SLOW"), reason="the long form: SWITCHYARD_SLOW=1")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_long(tmp_path: Path, pg_url: str, seed: int) -> None:
    result = run_chaos(tmp_path, pg_url, seed=seed, tasks=200, kills=16, sleep=1.0, interval=(1.0, 3.0), timeout=600)
    assert result.problems == [], result
