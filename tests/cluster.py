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
