"""Several `switchyard run` machines on one PostgreSQL database, as real processes: the chaos tests' rig.

`Cluster(tmp_path, pg_url)` makes one directory per machine (each its own state
directory, so its own executor identity) sharing one config text, one tasks file
and one agent log. `start(i)` launches machine i, `kill(i)` sends it SIGKILL,
`stop(i)` SIGTERM. `Proxy` is a TCP proxy in front of PostgreSQL that can be
frozen: the connections stay open and nothing goes through (a stalled network).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

AGENT = str(Path(__file__).parent / "fakes" / "recording_agent.py")
EXE = str(Path(sys.executable).parent / "switchyard")
COST = Decimal("0.0095")  # the recording agent's usage on model `cheap`
HOLD = Decimal("0.01")  # its provider's max_cost_usd: what each call holds


def config_text(
    ledger_url: str,
    log: Path,
    *,
    sleep: float = 0.3,
    workers: int = 2,
    budgets: str = "",
    lease: str = "lease_s = 2\nrenew_s = 0.5\ntakeover_s = 7",
    beat: bool = False,
) -> str:
    template = json.dumps([sys.executable, AGENT, "--out", "{output_file}"])
    env = {"AGENT_LOG": str(log), "AGENT_SLEEP": str(sleep)}
    if beat:
        env["AGENT_BEAT"] = "1"
    env_toml = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
    return f"""
[ledger]
url = "{ledger_url}"

[providers.agent]
command_template = {template}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
max_retries = 0
timeout_s = 120
max_cost_usd = {HOLD}
env = {{ {env_toml} }}

[[models]]
name = "cheap"
provider = "agent"
cost_per_million_input = 1.0
cost_per_million_output = 5.0

[routing]
default_model = "cheap"

[runner]
max_attempts = 1

[health]
consecutive_failures = 1000

[coordinator]
max_workers = {workers}
max_attempts = 3
poll_interval_s = 0.1
grace_s = 5
{lease}

{budgets}
"""


def tasks_jsonl(path: Path, n: int, *, docs_every: int = 0, docs_first: int = 0) -> Path:
    """n tasks T-000...; every `docs_every`-th (or the first `docs_first`) labelled docs, the rest bug."""
    lines = []
    for i in range(n):
        docs = (docs_every and i % docs_every == 0) or i < docs_first
        lines.append(json.dumps({"id": f"T-{i:03d}", "title": f"task {i}", "labels": ["docs" if docs else "bug"]}))
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Machine:
    index: int
    dir: Path
    proc: subprocess.Popen[str] | None = None
    pids: list[int] = field(default_factory=list)  # every process this machine ran as
    exits: list[int] = field(default_factory=list)


class Cluster:
    """N machine directories on one database; processes started, killed and stopped by index."""

    def __init__(self, root: Path, n: int, text: Callable[[Path], str], tasks: Path | None = None) -> None:
        self.root = root
        self.log = root / "agents.log"
        self.tasks = tasks
        self.machines: list[Machine] = []
        for i in range(n):
            d = root / f"m{i}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "switchyard.toml").write_text(text(self.log))
            self.machines.append(Machine(i, d))

    def start(self, i: int, *args: str) -> Machine:
        m = self.machines[i]
        cmd = [EXE, "run", "--config", str(m.dir / "switchyard.toml"), *args]
        if self.tasks is not None and "--tasks" not in args:
            cmd += ["--tasks", str(self.tasks)]
        out = open(m.dir / f"run{len(m.pids)}.log", "w")  # noqa: SIM115 - the process owns it
        m.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=m.dir)
        out.close()
        m.pids.append(m.proc.pid)
        return m

    def alive(self, i: int) -> bool:
        p = self.machines[i].proc
        return p is not None and p.poll() is None

    def kill(self, i: int) -> None:
        m = self.machines[i]
        assert m.proc is not None
        m.proc.send_signal(signal.SIGKILL)
        m.exits.append(m.proc.wait())

    def stop(self, i: int, timeout: float = 60) -> int:
        m = self.machines[i]
        assert m.proc is not None
        if m.proc.poll() is None:
            m.proc.send_signal(signal.SIGTERM)
        code = m.proc.wait(timeout)
        m.exits.append(code)
        return code

    def stop_all(self) -> None:
        for i in range(len(self.machines)):
            if self.alive(i):
                self.stop(i)

    def output(self, i: int) -> str:
        return "\n".join(p.read_text() for p in sorted(self.machines[i].dir.glob("run*.log")))

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def wait_for(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of `target`; `freeze()` stalls every connection (they stay open)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.frozen = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                while self.frozen.is_set() and not self.closed.is_set():
                    time.sleep(0.05)  # stalled: read nothing, send nothing, keep the socket open
                data = src.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self.closed.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def url(self, pg_url: str) -> str:
        """`pg_url` with its host and port replaced by this proxy's."""
        scheme, rest = pg_url.split("://", 1)
        creds, _, path = rest.partition("@")
        _, _, dbpath = path.partition("/")
        return f"{scheme}://{creds}@127.0.0.1:{self.port}/{dbpath}"

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self.closed.set()
        self.server.close()


def pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ---------------------------------------------------------------- chaos
def chaos_config(ledger_url: str, log: Path, *, tasks: int, docs_every: int, workers: int, sleep: float) -> str:
    """A global cap that admits about 85% of the tasks' calls, and a docs cap about half of the docs tasks'."""
    runs = int(tasks * 0.85)
    docs = len(range(0, tasks, docs_every)) // 2
    budgets = (
        f"[budgets]\nrecheck_s = 2\ndaily_usd = {COST * runs + Decimal('0.0005')}\n"
        f'[[budgets.limits]]\nscope = "label:docs"\nperiod = "day"\nlimit_usd = {COST * docs + Decimal("0.0005")}\n'
        'on_exceed = "block"'
    )
    return config_text(ledger_url, log, sleep=sleep, workers=workers, budgets=budgets)


@dataclass
class ChaosResult:
    """What a chaos run did and what the books say; `problems` lists every broken promise."""

    seed: int
    tasks: int
    kills: int
    restarts: int
    seconds: float
    states: dict[str, int]
    started_twice: int  # attempts started more than once (their first start's machine died mid-call)
    finished_unrecorded: int  # calls that finished but whose machine died before recording them
    overspend_usd: Decimal  # really spent (finished calls) beyond each cap, summed
    takeovers_s: list[float]  # kill -> a survivor claimed the dead session, for kills not followed by a restart
    problems: list[str]


def run_chaos(
    root: Path,
    pg_url: str,
    *,
    seed: int,
    tasks: int = 60,
    kills: int = 10,
    machines: int = 3,
    workers: int = 2,
    sleep: float = 1.0,
    interval: tuple[float, float] = (0.8, 1.6),
    restart_p: float = 0.6,
    timeout: float = 240,
) -> ChaosResult:
    """3 machines on one database, random kill -9 (some restarted), then check every promise."""
    import random

    from switchyard.ledger import Ledger
    from switchyard.ledger.leases import Leases
    from switchyard.runner import safe_name as safe

    rng = random.Random(seed)
    docs_every = 4
    task_file = tasks_jsonl(root / "tasks.jsonl", tasks, docs_every=docs_every)
    c = Cluster(
        root,
        machines,
        lambda log: chaos_config(pg_url, log, tasks=tasks, docs_every=docs_every, workers=workers, sleep=sleep),
        task_file,
    )
    t0 = time.monotonic()
    for i in range(machines):
        c.start(i, "--watch", "3600")
    killed_at: list[tuple[int, float]] = []  # (pid, wall time)
    pending_restarts: list[tuple[float, int]] = []
    restarts = 0
    last_victim = -1

    def restart_due() -> None:
        nonlocal restarts
        now = time.monotonic()
        for when, idx in list(pending_restarts):
            if when <= now:
                pending_restarts.remove((when, idx))
                c.start(idx, "--watch", "3600")
                restarts += 1

    for k in range(kills):
        end = time.monotonic() + rng.uniform(*interval)
        while time.monotonic() < end:
            restart_due()
            time.sleep(0.05)
        alive = [i for i in range(machines) if c.alive(i)]
        if len(alive) <= 1:  # keep one machine up: bring a dead one back first
            dead = [i for i in range(machines) if not c.alive(i) and all(idx != i for _, idx in pending_restarts)]
            if dead:
                c.start(dead[0], "--watch", "3600")
                restarts += 1
            alive = [i for i in range(machines) if c.alive(i)]
        victim = rng.choice(alive)
        pid = c.machines[victim].pids[-1]
        c.kill(victim)
        killed_at.append((pid, time.time()))
        last_victim = victim
        if k < kills - 1 and rng.random() < restart_p:
            pending_restarts.append((time.monotonic() + rng.uniform(0.5, 3.0), victim))
    pending_restarts = [(w, i) for w, i in pending_restarts if i != last_victim]
    if not any(c.alive(i) for i in range(machines) if i != last_victim):
        other = next(i for i in range(machines) if i != last_victim)
        pending_restarts = [(w, i) for w, i in pending_restarts if i != other]
        c.start(other, "--watch", "3600")
        restarts += 1

    def settled() -> bool:
        restart_due()
        with Ledger.open(pg_url) as ledger:
            if ledger.count_tasks(["queued", "running", "retrying"]):
                return False
            limits = {
                r[0]: (int(r[1]), int(r[2]), int(r[3]))
                for r in ledger.db.query("SELECT scope, spent_pico, held_pico, limit_pico FROM budget_counters")
            }
            for row in ledger.tasks(states=["blocked"]):
                scope = "label:docs" if "label:docs" in (row.note or "") else "global"
                spent, held, limit = limits[scope]
                if spent + held + int(HOLD * 10**12) <= limit:
                    return False  # it could run now: a recheck will wake it
            return not ledger.db.one("SELECT 1 FROM budget_holds WHERE state = 'held'")

    problems: list[str] = []
    try:
        wait_for(
            lambda: settled() and not pending_restarts,
            timeout,
            f"seed {seed}: every task done or legitimately blocked",
            0.5,
        )
    except AssertionError as exc:
        problems.append(str(exc))
    seconds = time.monotonic() - t0
    c.stop_all()
    # A blocked task may be between a wake (queued) and its next refusal when its machine stops: such a task
    # stays queued for the next start. That next start, a `run --once`, ends with it blocked again.
    final_once = subprocess.run(
        [EXE, "run", "--config", str(c.machines[0].dir / "switchyard.toml"), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if final_once.returncode != 0:
        problems.append(f"seed {seed}: the final run --once exited {final_once.returncode}: {final_once.stderr[-500:]}")
    killed = {pid for pid, _ in killed_at}
    for m in c.machines:  # a machine that exited by itself (fenced) counts as dead too
        for pid, code in zip(m.pids, m.exits, strict=False):
            if code not in (0, 143, -9):
                killed.add(pid)
                problems.append(f"seed {seed}: machine {m.index} pid {pid} exited with {code}")

    events = c.events()
    starts: dict[str, list[dict[str, Any]]] = {}
    finishes: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        (starts if e["event"] == "start" else finishes).setdefault(e["attempt"], []).append(e)
    with Ledger.open(pg_url) as ledger:
        final = {r.task_id: r for r in ledger.tasks()}
        attempts = ledger.attempts()
        counters = {
            r[0]: (int(r[1]), int(r[2]), int(r[3]))
            for r in ledger.db.query("SELECT scope, spent_pico, held_pico, limit_pico FROM budget_counters")
        }
        holds = ledger.db.one("SELECT COUNT(*) FROM budget_holds WHERE state = 'held'")
        lease_rows = Leases(ledger.db).sessions(states=("live", "taking", "taken", "ended"))
        pending = ledger.db.one("SELECT COUNT(*) FROM dbos.workflow_status WHERE status IN ('PENDING', 'ENQUEUED')")
    states: dict[str, int] = {}
    for r in final.values():
        states[r.state] = states.get(r.state, 0) + 1
    if set(states) - {"done", "blocked"} or len(final) != tasks:
        problems.append(f"seed {seed}: task states {states}")
    for r in final.values():
        if r.state == "blocked" and "would be exceeded" not in (r.note or ""):
            problems.append(f"seed {seed}: {r.task_id} blocked for {r.note!r}")
    recorded = {safe(a.attempt_id): a for a in attempts}
    started_twice = 0
    for attempt, ss in starts.items():
        if len(ss) > 1:
            started_twice += 1
        # Every start but the last was cut short by its machine's death: mid-call, or in the instant between the
        # agent's answer and its record (counted in finished_unrecorded below).
        machine_pids = {pid for m in c.machines for pid in m.pids}
        for s in ss[:-1]:
            # A parent that is no machine: its machine died as it spawned it, and it was reparented (to init, or
            # to a subreaper above the test) before it noted its start.
            if s["ppid"] in machine_pids and s["ppid"] not in killed:
                problems.append(
                    f"seed {seed}: {attempt} started again though its machine was not killed: {ss} "
                    f"(finishes {finishes.get(attempt)}; machines {[m.pids for m in c.machines]}; killed {sorted(killed)})"
                )
    finished_unrecorded = 0
    lost_docs = 0  # of those, calls of docs tasks (under the docs cap too)
    for attempt, fs in finishes.items():
        rec = recorded.get(attempt)
        # A call that finished as its machine died is in the ledger as interrupted (charged its hold) once a
        # survivor took the machine over: its spend is counted, not lost.
        extra = len(fs) - (1 if rec is not None and rec.status in ("ok", "interrupted") else 0)
        finished_unrecorded += extra
        if int(attempt.split(":")[0][2:]) % docs_every == 0:
            lost_docs += extra
        lost = fs[:-1] if rec is not None else fs
        for f in lost:
            if f["ppid"] not in killed:
                problems.append(f"seed {seed}: {attempt} finished on a live machine and was not recorded: {f}")
    for a in attempts:
        if a.status == "ok" and safe(a.attempt_id) not in finishes:
            problems.append(f"seed {seed}: {a.attempt_id} recorded ok but never finished")
    ok = [a for a in attempts if a.status == "ok"]
    per_task: dict[str, int] = {}
    for a in ok:
        per_task[a.task_id] = per_task.get(a.task_id, 0) + 1
    if any(n > 1 for n in per_task.values()):
        problems.append(f"seed {seed}: a task succeeded twice")
    total = sum((a.cost_usd for a in attempts), Decimal(0))
    # Calls cut by their machine's death are recorded interrupted by the survivor that took it over, charged
    # their hold (what they spent cannot be known); every other recorded cost is a finished call's.
    interrupted = [a for a in attempts if a.status == "interrupted"]
    for a in interrupted:
        if a.cost_usd != HOLD or a.cost_basis != "unknown":
            problems.append(
                f"seed {seed}: interrupted {a.attempt_id} charged {a.cost_usd} ({a.cost_basis}), not its hold"
            )
    if total != COST * len(ok) + HOLD * len(interrupted):
        problems.append(
            f"seed {seed}: recorded cost {total} != {COST} x {len(ok)} finished + {HOLD} x {len(interrupted)} interrupted"
        )
    overspend = Decimal(0)
    docs_cost = sum((a.cost_usd for a in attempts if "docs" in a.labels), Decimal(0))
    for scope, recorded_cost in (("global", total), ("label:docs", docs_cost)):
        spent, _held_pico, limit = counters[scope]
        if spent != int(recorded_cost * 10**12):
            problems.append(f"seed {seed}: {scope} counter spent {spent} != recorded {recorded_cost}")
        if spent > limit:
            problems.append(f"seed {seed}: {scope} spent {spent} over its limit {limit}")
        real = Decimal(spent) / 10**12 + COST * (finished_unrecorded if scope == "global" else lost_docs)
        overspend += max(Decimal(0), real - Decimal(limit) / 10**12)
    if holds is None or holds[0] != 0:
        problems.append(f"seed {seed}: {holds} budget holds left")
    if pending is None or pending[0] != 0:
        problems.append(f"seed {seed}: {pending} workflows still pending or enqueued")
    if any(r.state in ("live", "taking") for r in lease_rows):
        problems.append(f"seed {seed}: sessions left live: {[r for r in lease_rows if r.state in ('live', 'taking')]}")
    takeovers = []
    by_pid = {r.pid: r for r in lease_rows}
    last_pid = c.machines[last_victim].pids[-1]
    for pid, when in killed_at:
        row = by_pid.get(pid)
        if row is None:
            continue  # killed before it took a lease
        if row.taken_by is not None and not row.taken_by.startswith(row.executor_id + "/") and row.claimed_ms:
            takeovers.append(round(row.claimed_ms / 1000 - when, 2))
        if pid == last_pid and (
            row.state != "taken" or row.taken_by is None or row.taken_by.startswith(row.executor_id + "/")
        ):
            problems.append(f"seed {seed}: the last killed machine was not taken over by a survivor: {row}")
    return ChaosResult(
        seed,
        tasks,
        len(killed_at),
        restarts,
        round(seconds, 1),
        states,
        started_twice,
        finished_unrecorded,
        overspend,
        sorted(takeovers),
        problems,
    )
