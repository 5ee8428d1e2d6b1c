"""Replay and tune: score routing configs on recorded per-task outcomes, and search for cheaper ones.

    outcomes.py   the outcomes table (CSV / JSONL): load with located errors, write, import from the ledger
    engine.py     replay a config with its real Router and escalation semantics against a table
    fast.py       the same semantics for rule-shaped policies on per-task bit sets (tune's inner loop)
    tune.py       search ladders / per-group choices / splits, cross-validated; emit TOML rules
    plot.py       a self-contained SVG of cost against resolved share

Nothing here calls a provider: every attempt's result, cost and tokens come from the table.
"""

from __future__ import annotations
