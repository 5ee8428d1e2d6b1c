"""Many machines on one PostgreSQL: identity, leases, takeover, fenced budgets, no head-of-line blocking.

Every test runs real `switchyard run` processes (tests/cluster.py) on a fresh
PostgreSQL database, with an agent that notes each real start and finish
(tests/fakes/recording_agent.py). The chaos test is in test_machines_chaos.py.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import time
from pathlib import Path

import pytest
from dbos import DBOS

from cluster import COST, EXE, HOLD, Cluster, Proxy, config_text, pid_alive, tasks_jsonl, wait_for
from switchyard.ledger import Ledger
from switchyard.ledger.leases import Identity, IdentityInUse, Leases


def states(url: str) -> dict[str, str]:
    with Ledger.open(url) as ledger:
        return {r.task_id: r.state for r in ledger.tasks()}


def held(url: str) -> int:
    with Ledger.open(url) as ledger:
        row = ledger.db.one("SELECT COUNT(*) FROM budget_holds WHERE state = 'held'")
    assert row is not None
    return int(row[0])


def sessions(url: str) -> list[tuple[str, str, str | None]]:
    with Ledger.open(url) as ledger:
        return [
            (r.executor_id, r.state, r.taken_by)
            for r in Leases(ledger.db).sessions(states=("live", "taking", "taken", "ended"))
        ]


# ---------------------------------------------------------------- identity
def test_identity_is_stable_per_directory_and_exclusive(tmp_path: Path) -> None:
    a = Identity.claim(tmp_path / "a" / ".switchyard")
    with pytest.raises(IdentityInUse, match="already running in"):
        Identity.claim(tmp_path / "a" / ".switchyard")
    b = Identity.claim(tmp_path / "b" / ".switchyard")
    assert a.executor_id != b.executor_id
    first = (a.executor_id, a.session)
    a.release()
    again = Identity.claim(tmp_path / "a" / ".switchyard")
    assert again.executor_id == first[0]  # a restart of the installation keeps its identity
    assert again.session != first[1]  # but is a new session: it owns its own budget holds
    again.release()
    b.release()


def test_a_second_process_in_one_directory_refuses(tmp_path: Path, pg_url: str) -> None:
    c = Cluster(tmp_path, 1, lambda log: config_text(pg_url, log, sleep=0.1), tasks_jsonl(tmp_path / "t.jsonl", 1))
    c.start(0, "--watch", "3600")
    try:
        wait_for(lambda: states(pg_url).get("T-000") == "done", 60, "the first machine to run its task")
        second = subprocess.run(
            [EXE, "run", "--config", str(c.machines[0].dir / "switchyard.toml"), "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert "already running in" in second.stderr and "one coordinator per directory" in second.stderr
    finally:
        c.stop_all()


def test_a_shared_executor_id_is_refused_while_its_holder_lives(tmp_path: Path, pg_url: str) -> None:
    lease = 'executor_id = "shared"\nlease_s = 2\nrenew_s = 0.5\ntakeover_s = 7'
    c = Cluster(tmp_path, 2, lambda log: config_text(pg_url, log, lease=lease), tasks_jsonl(tmp_path / "t.jsonl", 1))
    c.start(0, "--watch", "3600")
    try:
        wait_for(lambda: any(s[1] == "live" for s in sessions(pg_url)), 60, "the first machine's lease")
        second = subprocess.run(
            [EXE, "run", "--config", str(c.machines[1].dir / "switchyard.toml"), "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1, second.stderr
        assert "executor id 'shared' is in use by" in second.stderr
        assert "remove [coordinator] executor_id" in second.stderr
        assert "executor_id is set: every machine that uses this config shares it" in second.stderr  # the warning
    finally:
        c.stop_all()


# ---------------------------------------------------------------- config
MINIMAL = '[providers.a]\nkind = "simulated"\n[[models]]\nname = "m"\nprovider = "a"\n[routing]\ndefault_model = "m"\n'


def test_lease_timings_must_let_a_machine_fence_itself_first() -> None:
    from switchyard.config import loads_config
    from switchyard.errors import ConfigError

    cfg = loads_config(MINIMAL).coordinator
    assert (cfg.lease_s, cfg.renew_s, cfg.takeover_s, cfg.executor_id) == (10, 2, 20, None)
    with pytest.raises(ConfigError) as err:
        loads_config(MINIMAL + "[coordinator]\nlease_s = 10\nrenew_s = 6\ntakeover_s = 12\n")
    text = str(err.value)
    assert "coordinator.takeover_s: takeover_s (12) must be at least lease_s + 5 (15)" in text
    assert "coordinator.renew_s: renew_s (6) must be at most half of lease_s (10)" in text
    with pytest.raises(ConfigError, match="lease_s"):
        loads_config(MINIMAL + "[coordinator]\nlease_s = 0\n")
    with pytest.raises(ConfigError, match="takeover_s"):
        loads_config(MINIMAL + "[coordinator]\ntakeover_s = 1e9\n")
    warned = loads_config(MINIMAL + '[coordinator]\nexecutor_id = "local"\n').warnings
    assert [w.key_path for w in warned] == ["coordinator.executor_id"]
    assert "every machine that uses this config shares it" in warned[0].message


# ---------------------------------------------------------------- budgets across sessions
def test_holds_are_reconciled_only_for_their_dead_owner_and_a_replay_holds_again(ledger_url: str) -> None:
    from decimal import Decimal

    from switchyard.budgets import Budgets
    from test_budgets import counters_total, loaded

    ledger = Ledger.open(ledger_url)
    a = Budgets(loaded(ledger_url, "daily_usd = 1"), ledger, owner="exec-a/1")  # type: ignore[arg-type]
    b = Budgets(loaded(ledger_url, "daily_usd = 1"), ledger, owner="exec-b/1")  # type: ignore[arg-type]
    a.reserve("att-1", "T-1", Decimal("0.2"), a.counters())
    a.reserve("att-2", "T-2", Decimal("0.2"), a.counters())
    # machine b starts: it reconciles its own dead sessions, never machine a's live holds
    assert b.reconcile(["exec-b/0"]) == (0, 0)
    assert counters_total(ledger) == (Decimal(0), Decimal("0.4"))
    # machine a died; b replays att-1's step (recovered workflow) before the takeover's reconcile: it adopts the hold
    b.reserve("att-1", "T-1", Decimal("0.2"), b.counters())
    assert b.reconcile(["exec-a/1"]) == (0, 1)  # att-2 released; att-1 is b's now and untouched
    assert counters_total(ledger) == (Decimal(0), Decimal("0.2"))
    # att-2's step replays after its hold was released: it must hold again, or it would spend outside the limit
    b.reserve("att-2", "T-2", Decimal("0.2"), b.counters())
    assert counters_total(ledger) == (Decimal(0), Decimal("0.4"))
    assert b.settle("att-2", Decimal("0.05")) and b.settle("att-1", Decimal("0.05"))
    assert counters_total(ledger) == (Decimal("0.1"), Decimal(0))
    ledger.close()


def test_a_task_blocked_by_another_machine_waits_for_its_backoff_not_for_our_view(ledger_url: str) -> None:
    # seen: two machines whose config files differed by a comment re-queued each other's blocked tasks about
    # once a second for ever (each block stored its own config digest; the other machine saw "a change")
    ledger = Ledger.open(ledger_url)
    ledger.add_tasks([("doc1", json.dumps({"id": "doc1"}), None)], 1_000)
    ledger.set_task("doc1", "blocked", 1_000, note="label:docs day limit")
    leases = Leases(ledger.db)
    for session in ("session-a", "session-b"):
        ledger.db.execute(
            "INSERT INTO leases (session, executor_id, host, pid, state_dir, state, started_ms, renewed_ms, "
            "lease_ms, takeover_ms) VALUES (?, ?, 'h', 1, '/x', 'live', 0, 0, 10000, 20000)",
            (session, session),
        )
    digest1, digest2, digest9 = ("1" * 32, "2" * 32, "9" * 32)
    leases.block("doc1", "label:docs day limit", f"session-a:{digest1}", 1_000, 30_000)
    assert [w.task_id for w in leases.due(f"session-a:{digest2}", 2_000, 10)] == ["doc1"]  # a's own view changed
    assert leases.due(f"session-a:{digest1}", 2_000, 10) == []  # a's view is the same: wait
    assert leases.due(f"session-b:{digest9}", 2_000, 10) == []  # b's view differs from live a's: says nothing
    assert [w.task_id for w in leases.due(f"session-b:{digest9}", 31_000, 10)] == ["doc1"]  # the backoff is over
    # a is gone (ended): a view that differs from the one it blocked under is worth a try at once
    ledger.db.execute("UPDATE leases SET state = 'ended' WHERE session = 'session-a'")
    assert [w.task_id for w in leases.due(f"session-b:{digest9}", 2_000, 10)] == ["doc1"]
    assert leases.due(f"session-a:{digest1}", 2_000, 10) == []  # the very view it was refused under
    ledger.close()


# ---------------------------------------------------------------- takeover
def test_recover_executor_uses_dbos_recovery_for_given_executor_ids() -> None:
    """`coordinator.recover_executor` is one of the two calls past DBOS's public API (with `_stop_queue`): fail loudly if it changes."""
    fn = DBOS._recover_pending_workflows
    assert list(inspect.signature(fn).parameters) == ["executor_ids"]


def kill_mid_call(c: Cluster, pg_url: str, *, holds: int | None = None) -> subprocess.CompletedProcess[str]:
    """Machine 0 runs until two of its agents are in a call, is killed with SIGKILL, then machine 1's `run --once`
    (the survivor) runs to its end; `holds`: how many budget holds the dead machine must have left."""
    c.start(0, "--watch", "3600")
    wait_for(lambda: sum(e["event"] == "start" for e in c.events()) >= 2, 60, "two agents running on machine 0")
    c.kill(0)
    if holds is not None:
        assert held(pg_url) == holds  # the dead machine's: nobody may touch them until its lease is taken over
    return subprocess.run(
        [EXE, "run", "--config", str(c.machines[1].dir / "switchyard.toml"), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_dead_machines_tasks_and_holds_are_taken_over(tmp_path: Path, pg_url: str) -> None:
    """kill -9 of a machine mid-call: a survivor's `run --once` takes its work over, finishes it, and exits."""
    budgets = "[budgets]\ndaily_usd = 1"
    c = Cluster(
        tmp_path,
        2,
        lambda log: config_text(pg_url, log, sleep=1.5, budgets=budgets),
        tasks_jsonl(tmp_path / "t.jsonl", 4),
    )
    survivor = kill_mid_call(c, pg_url, holds=2)
    assert survivor.returncode == 0, survivor.stderr
    assert set(states(pg_url).values()) == {"done"}
    assert "took over" in survivor.stderr and "2 workflow(s) recovered" in survivor.stderr  # recover_executor
    assert "this run: 4 task(s): 4 done" in survivor.stdout
    assert held(pg_url) == 0
    dead = [s for s in sessions(pg_url) if s[1] == "taken"]
    assert len(dead) == 1 and dead[0][2] is not None
    events = c.events()
    finished = [e["attempt"] for e in events if e["event"] == "finish"]
    assert len(finished) == len(set(finished)) == 4  # each task's call finished once
    killed = {c.machines[0].pids[0]}
    started = [e["attempt"] for e in events if e["event"] == "start"]
    assert len(started) == len(set(started)) == 6  # no attempt id started twice: 4 finished + the 2 killed calls
    cut = {e["attempt"] for e in events if e["event"] == "start" and e["ppid"] in killed} - set(finished)
    assert len(cut) == 2  # the two calls machine 0 was making when it died
    with Ledger.open(pg_url) as ledger:
        rows = {r.attempt_id: r for r in ledger.attempts()}
        spent = ledger.db.one("SELECT spent_pico, held_pico FROM budget_counters")
        total = ledger.total_cost()
        in_flight = ledger.db.one("SELECT COUNT(*) FROM calls")
    assert in_flight == (0,)  # every call's in-flight mark went with its record (the cut ones' with the takeover)
    # ... are in the ledger: interrupted, charged their hold (what they spent cannot be known), and their
    # tasks were called again under new attempt ids by the survivor
    assert {a: (rows[a].status, rows[a].cost_basis, rows[a].cost_usd) for a in cut} == {
        a: ("interrupted", "unknown", HOLD) for a in cut
    }
    assert "2 call(s) it was killed in recorded interrupted" in survivor.stderr
    assert total == COST * 4 + HOLD * 2
    assert spent == (int((COST * 4 + HOLD * 2) * 10**12), 0)


def test_a_once_survivor_does_not_leave_a_machine_killed_a_moment_ago_to_itself(tmp_path: Path, pg_url: str) -> None:
    """seen: survivors on --once exited 0 seconds after a kill -9, while the dead machine's lease still ran:
    nobody took its tasks over and their holds blocked the budget until someone ran again."""
    lease = "lease_s = 8\nrenew_s = 2\ntakeover_s = 13"
    c = Cluster(
        tmp_path,
        2,
        lambda log: config_text(pg_url, log, sleep=2, lease=lease),
        tasks_jsonl(tmp_path / "t.jsonl", 2),
    )
    survivor = kill_mid_call(c, pg_url)  # its lease was renewed at most renew_s ago: it looks live for a while yet
    assert survivor.returncode == 0, survivor.stderr
    assert set(states(pg_url).values()) == {"done"}, survivor.stdout + survivor.stderr
    assert "took over" in survivor.stderr
    assert held(pg_url) == 0


def test_a_starting_machine_leaves_live_holds_alone(tmp_path: Path, pg_url: str) -> None:
    """The old bug: a machine's start-up reconcile released the holds of calls still running elsewhere."""
    budgets = "[budgets]\ndaily_usd = 1"
    c = Cluster(
        tmp_path,
        2,
        lambda log: config_text(pg_url, log, sleep=4, budgets=budgets),
        tasks_jsonl(tmp_path / "t.jsonl", 2),
    )
    c.start(0, "--once")
    try:
        wait_for(lambda: sum(e["event"] == "start" for e in c.events()) >= 2, 60, "two agents running on machine 0")
        other = subprocess.run(
            [EXE, "run", "--config", str(c.machines[1].dir / "switchyard.toml"), "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert other.returncode == 0, other.stderr
        assert "this run: 0 task(s)" in other.stdout  # machine 0's running tasks are not its to wait for
        assert sum(e["event"] == "finish" for e in c.events()) == 0  # machine 0's calls are still running...
        assert held(pg_url) == 2  # ...and still hold their budget
        shown = subprocess.run(
            [EXE, "machines", "--json", "--config", str(c.machines[1].dir / "switchyard.toml")],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = json.loads(shown.stdout)
        live = [r for r in rows if r["state"] == "live"]
        assert len(live) == 1 and live[0]["pid"] == c.machines[0].pids[0]
        assert live[0]["running"] == ["T-000", "T-001"] and live[0]["lease_expires_in_s"] > 0
        assert {r["state"] for r in rows} == {"live", "ended"}  # machine 1's --once ended its session cleanly
        shown = subprocess.run(
            [EXE, "status", "--config", str(c.machines[1].dir / "switchyard.toml")], capture_output=True, text=True
        ).stdout
        assert f"machines: 1 live\n  {live[0]['executor_id']} (" in shown and "renewed" in shown
        assert c.machines[0].proc is not None and c.machines[0].proc.wait(60) == 0
    finally:
        c.stop_all()
    assert held(pg_url) == 0
    with Ledger.open(pg_url) as ledger:
        assert ledger.db.one("SELECT spent_pico, held_pico FROM budget_counters") == (int(COST * 2 * 10**12), 0)


def test_tasks_never_queued_by_a_dead_machine_are_queued_by_a_survivor(tmp_path: Path, pg_url: str) -> None:
    """A machine that died after adding tasks to the ledger, before they reached the queue."""
    c = Cluster(tmp_path, 1, lambda log: config_text(pg_url, log, sleep=0.1))
    c.start(0, "--watch", "3600", "--tasks", str(tasks_jsonl(tmp_path / "one.jsonl", 1)))
    try:
        wait_for(lambda: states(pg_url) == {"T-000": "done"}, 60, "the survivor to be up and running")
        with Ledger.open(pg_url) as ledger:
            now = int(time.time() * 1000)
            ledger.add_tasks(
                [(f"G-{i}", json.dumps({"id": f"G-{i}", "title": "ghost"}), "ghost") for i in range(3)], now
            )
            ledger.db.execute(  # the dead machine's lease: last renewed a minute ago
                "INSERT INTO leases (session, executor_id, host, pid, state_dir, state, started_ms, renewed_ms, "
                "lease_ms, takeover_ms) VALUES ('ghost/1', 'ghost', 'elsewhere', 1, '/x', 'live', ?, ?, 2000, 7000)",
                (now - 60000, now - 60000),
            )
        wait_for(lambda: set(states(pg_url).values()) == {"done"}, 60, "the ghost's tasks to be run")
    finally:
        c.stop_all()
    assert ("ghost", "taken") in {(s[0], s[1]) for s in sessions(pg_url)}
    assert "took over ghost" in c.output(0)


# ---------------------------------------------------------------- blocking
def test_blocked_tasks_do_not_hold_worker_slots(tmp_path: Path, pg_url: str) -> None:
    """2 workers, docs tasks first, a docs limit that admits one call: every bug task still runs, --once ends."""
    budgets = (
        '[budgets]\n[[budgets.limits]]\nscope = "label:docs"\nperiod = "day"\nlimit_usd = 0.015\non_exceed = "block"'
    )
    tasks = tasks_jsonl(tmp_path / "t.jsonl", 12, docs_first=6)
    c = Cluster(tmp_path, 1, lambda log: config_text(pg_url, log, sleep=0.1, budgets=budgets), tasks)
    cfg = c.machines[0].dir / "switchyard.toml"
    proc = subprocess.run(
        [EXE, "run", "--config", str(cfg), "--once", "--tasks", str(tasks)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    final = states(pg_url)
    bugs = {t: s for t, s in final.items() if int(t[2:]) >= 6}
    docs = {t: s for t, s in final.items() if int(t[2:]) < 6}
    assert set(bugs.values()) == {"done"}
    assert sorted(docs.values()) == ["blocked"] * 5 + ["done"]
    assert "this run: 12 task(s): 5 blocked, 7 done" in proc.stdout
    assert "5 waiting (e.g. T-00" in proc.stdout and "label:docs" in proc.stdout
    assert held(pg_url) == 0
    # status: each waiting task's reason, and the machines section
    shown = subprocess.run([EXE, "status", "--config", str(cfg)], capture_output=True, text=True, check=True).stdout
    assert "budget label:docs per day" in shown
    assert "machines:" not in shown  # none is live now
    # raising the limit wakes them: the config's text is part of what they were refused under
    cfg.write_text(cfg.read_text().replace("limit_usd = 0.015", "limit_usd = 1"))
    again = subprocess.run(
        [EXE, "run", "--config", str(cfg), "--once"], capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert set(states(pg_url).values()) == {"done"}
    assert "this run: 5 task(s): 5 done" in again.stdout


# ---------------------------------------------------------------- partition
def test_a_partitioned_machine_stops_its_agents_before_another_takes_over(tmp_path: Path, pg_url: str) -> None:
    proxy = Proxy(("127.0.0.1", 5432))
    try:
        via = proxy.url(pg_url)
        texts = iter([via, pg_url])
        c = Cluster(
            tmp_path,
            2,
            lambda log: config_text(next(texts), log, sleep=30, beat=True),
            tasks_jsonl(tmp_path / "t.jsonl", 1),
        )
        c.start(0, "--watch", "3600")
        wait_for(lambda: any(e["event"] == "start" for e in c.events()), 60, "machine 0's agent")
        c.start(1, "--watch", "3600", "--tasks", str(tasks_jsonl(tmp_path / "none.jsonl", 0)))
        wait_for(lambda: sum(s[1] == "live" for s in sessions(pg_url)) == 2, 60, "both leases")
        agent = next(e for e in c.events() if e["event"] == "start")
        proxy.freeze()  # machine 0 can no longer reach the database: it cannot renew
        m0 = c.machines[0].proc
        assert m0 is not None
        assert m0.wait(60) == 75  # it fenced itself
        assert not pid_alive(agent["pid"])
        last_beat = float((c.log.parent / f"beat.{agent['pid']}").read_text())
        wait_for(lambda: any(s[1] in ("taking", "taken") for s in sessions(pg_url)), 60, "machine 1 to take over")
        with Ledger.open(pg_url) as ledger:
            row = ledger.db.one("SELECT claimed_ms FROM leases WHERE state IN ('taking', 'taken')")
        assert row is not None
        assert last_beat * 1000 < int(row[0])  # its agent was dead before the takeover began
        wait_for(lambda: sum(e["event"] == "start" for e in c.events()) == 2, 60, "machine 1 to run the task again")
        again = [e for e in c.events() if e["event"] == "start"][1]
        assert again["ppid"] == c.machines[1].pids[0]
        assert "fenced itself" in c.output(0)
    finally:
        proxy.close()
        c.stop_all()


def test_workflows_left_under_another_executor_id_are_recovered_on_sqlite(tmp_path: Path) -> None:
    """One installation whose executor id changed (the old shared "local", then none): its own pending work resumes."""
    ledger = str(tmp_path / "m0" / "ledger.db")
    lease = 'executor_id = "local"\nlease_s = 2\nrenew_s = 0.5\ntakeover_s = 7'
    c = Cluster(
        tmp_path, 1, lambda log: config_text(ledger, log, sleep=2, lease=lease), tasks_jsonl(tmp_path / "t.jsonl", 2)
    )
    c.start(0, "--once")
    wait_for(lambda: sum(e["event"] == "start" for e in c.events()) >= 2, 60, "two agents running")
    c.kill(0)
    cfg = c.machines[0].dir / "switchyard.toml"
    cfg.write_text(cfg.read_text().replace('executor_id = "local"\n', ""))
    again = subprocess.run(
        [EXE, "run", "--config", str(cfg), "--once"], capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert set(states(ledger).values()) == {"done"}
    assert "this run: 2 task(s): 2 done" in again.stdout
    assert (tmp_path / "m0" / ".switchyard" / "executor_id").read_text().strip() != "local"
