"""Agent processes: started cheaply, killed with every descendant, never outliving switchyard.

Starting: a plain `subprocess.Popen` in a new session, with no `preexec_fn`, so Python
takes its vfork path instead of copying the whole (often 100+ MiB) parent: about 1 ms
a spawn instead of 8-14 ms.

Finding what an agent started, however it tried to get away:

* The host process becomes a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``).
  A process whose parent dies is re-parented to us instead of to init, so a
  grandchild that called ``setsid`` and was orphaned (a double-forked daemon) is
  still among our children, where it can be found and killed.
* Each agent leads its own session and carries ``SWITCHYARD_AGENT=<mark>`` in its
  environment, which its descendants inherit. A process left behind is the
  agent's when it is in the agent's session or carries its mark.
* Killing: SIGSTOP each process found and look again under the stopped ones (a
  stopped process cannot fork) until nothing new turns up; then SIGKILL them all,
  wait for them and reap the ones re-parented to us.

Outliving: a watchdog process, started once per host process, holds the read end of a
pipe whose write end only the host holds. When the host dies, SIGKILL included, the
watchdog reads end-of-file, kills every process carrying the host's mark (with their
sessions and descendants) and exits. A process that both clears its environment and
leaves the agent's session is found while switchyard runs (it stays in our tree) but
not by the watchdog after switchyard was killed.

This module uses the standard library only: it is also the watchdog's script
(``python -I -S processes.py PREFIX``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["MARK", "Agent", "ChildProcesses", "ProcStat", "kill_trees", "proc_children", "proc_mark", "proc_stat"]

MARK = "SWITCHYARD_AGENT"
_MARK_KEY = MARK.encode() + b"="
_PR_SET_CHILD_SUBREAPER = 36
REAP_WAIT_S = 5.0  # how long to wait for SIGKILLed processes to be gone before leaving them for a later sweep


class ProcStat(NamedTuple):
    """The fields of /proc/PID/stat we use."""

    state: str
    ppid: int
    sid: int
    start: int  # in clock ticks since boot: tells a process apart from a later one with the same pid


def _read(path: str) -> bytes:
    """A small /proc file, in as few system calls as it takes (open, read, close)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 16))
        return b"".join(chunks)
    finally:
        os.close(fd)


def proc_stat(pid: int) -> ProcStat | None:
    """`pid`'s state, parent, session and start time; None if it is gone."""
    try:
        data = _read(f"/proc/{pid}/stat")
        f = data[data.rindex(b")") + 2 :].split()
        return ProcStat(f[0].decode(), int(f[1]), int(f[3]), int(f[19]))
    except (OSError, ValueError, IndexError):
        return None


def proc_children(pid: int, *, main_thread_only: bool = False) -> list[int]:
    """`pid`'s children (those of all its threads, or of its main thread only)."""
    tids = [str(pid)] if main_thread_only else _listdir(f"/proc/{pid}/task")
    out: list[int] = []
    for tid in tids:
        try:
            out.extend(map(int, _read(f"/proc/{pid}/task/{tid}/children").split()))
        except OSError:
            continue
    return out


def proc_mark(pid: int) -> str | None:
    """The value of `MARK` in `pid`'s environment (None if absent or unreadable, as for a zombie)."""
    try:
        data = _read(f"/proc/{pid}/environ")
    except OSError:
        return None
    at = data.find(_MARK_KEY)
    while at > 0 and data[at - 1] != 0:  # inside another variable's value
        at = data.find(_MARK_KEY, at + 1)
    if at < 0:
        return None
    end = data.find(b"\0", at)
    return data[at + len(_MARK_KEY) : end if end >= 0 else len(data)].decode("ascii", "replace")


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _all_pids() -> list[int]:
    return [int(name) for name in _listdir("/proc") if name.isdigit()]


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_trees(roots: Iterable[int], known: Mapping[int, int] | None = None) -> dict[int, int]:
    """SIGSTOP `roots` and every descendant (looking again under each stopped one), then SIGKILL them all.

    Returns {pid: start time} of the processes signalled. Processes already in `known`
    (killed earlier, with the same start time) are not looked at again.
    """
    known = known or {}
    victims: dict[int, int] = {}
    frontier = list(roots)
    while frontier:
        found: list[int] = []
        for pid in frontier:
            if pid in victims or pid == os.getpid():
                continue
            st = proc_stat(pid)
            if st is None or st.state in ("Z", "X") or known.get(pid) == st.start:
                continue
            if _signal(pid, signal.SIGSTOP):
                victims[pid] = st.start
                found.extend(proc_children(pid))
        frontier = found
    for pid in victims:
        _signal(pid, signal.SIGKILL)
    return victims


def _pidfd(pid: int) -> int | None:
    """A pollable descriptor that becomes readable when `pid` exits (Linux 5.3+), or None."""
    opener: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


def wait_gone(pids: Iterable[int], timeout_s: float) -> None:
    """Wait (at most `timeout_s`) until each of `pids` has exited (is a zombie or gone)."""
    fds: list[int] = []
    pending: list[int] = []
    for pid in pids:
        fd = _pidfd(pid)
        if fd is None:
            pending.append(pid)
        else:
            fds.append(fd)
    deadline = time.monotonic() + timeout_s
    try:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        left = len(fds)
        while left and (remaining := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(remaining * 1000):
                poller.unregister(fd)
                left -= 1
    finally:
        for fd in fds:
            os.close(fd)
    # Without pidfds (old kernels): look at /proc until they are gone.
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if (st := proc_stat(p)) is not None and st.state not in ("Z", "X")]
        if pending:
            time.sleep(0.01)


def _set_subreaper() -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return False


class _Host:
    """What belongs to the whole process, not to one `ChildProcesses`: being a subreaper, the
    watchdog, the mark prefix and the set of live agents (re-parented orphans land on the
    process, whichever registry started their agent)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.sid = os.getsid(0)
        self.prefix = f"{self.pid}.{secrets.token_hex(6)}."
        self._counter = itertools.count(1)
        self.lock = threading.Lock()
        self.live: dict[int, str] = {}  # agent pid -> its mark
        self.strays: dict[int, int] = {}  # pid -> start time: killed by us, not reaped yet
        self.subreaper = _set_subreaper()
        self.watchdog = self._start_watchdog()

    def next_mark(self) -> str:
        return self.prefix + str(next(self._counter))

    def _start_watchdog(self) -> int | None:
        """Start the watchdog; it lives as long as this process (the pipe's write end is never closed)."""
        if not hasattr(os, "posix_spawn"):  # pragma: no cover - not POSIX
            return None
        read_end, self._watch_fd = os.pipe()  # both close on exec: agents never hold the write end
        try:
            return os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", str(Path(__file__).resolve()), self.prefix],
                {},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,  # a Ctrl-C to our process group must not reach it
            )
        except OSError:  # pragma: no cover - no interpreter to run it with
            return None
        finally:
            os.close(read_end)

    def orphans(self) -> list[tuple[int, ProcStat]]:
        """Our children that are neither agents nor the watchdog, nor in our own session.

        Orphans re-parented to a subreaper go to its main thread, so only that thread's list
        is read (the cheap path taken after every call); agents are children of the threads
        that started them and are known anyway.
        """
        out = []
        for pid in proc_children(self.pid, main_thread_only=True):
            if pid in self.live or pid == self.watchdog:
                continue
            st = proc_stat(pid)
            if st is not None and st.sid != self.sid:
                out.append((pid, st))
        return out

    def reap(self, pids: Mapping[int, int]) -> None:
        """Reap those of `pids` (pid -> start time) that are now our zombies; keep the rest as strays."""
        with self.lock:
            pending = {**self.strays, **pids}
        left: dict[int, int] = {}
        for pid, start in pending.items():
            st = proc_stat(pid)
            if st is None or st.start != start:
                continue  # gone, reaped by someone else (its pid may even be another process now)
            if st.ppid == self.pid and st.state in ("Z", "X") and pid not in self.live:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                continue
            left[pid] = start
        with self.lock:
            self.strays = left

    def sweep(self, agent: Agent, *, exited: bool) -> None:
        """Kill what `agent` left behind (and the agent itself unless it is known to have exited), then reap
        it all. The agent's own exit status is left for its `Popen` to collect."""
        roots = [] if exited else [agent.pid]
        killed: dict[int, int] = {}
        for _ in range(16):  # each round waits for the last one's victims: their orphans come to us
            for pid, st in self.orphans():
                if st.state in ("Z", "X"):
                    if st.sid == agent.pid:
                        killed.setdefault(pid, st.start)  # reaped below
                    continue
                if killed.get(pid) != st.start and (st.sid == agent.pid or proc_mark(pid) == agent.mark):
                    roots.append(pid)
            if not roots:
                break
            victims = kill_trees(roots, killed)
            killed.update(victims)
            wait_gone(victims, REAP_WAIT_S)
            roots = []
        killed.pop(agent.pid, None)
        if killed or self.strays:
            self.reap(killed)


_HOST: _Host | None = None
_HOST_LOCK = threading.Lock()


def _host() -> _Host:
    global _HOST
    with _HOST_LOCK:
        if _HOST is None or _HOST.pid != os.getpid():  # first use, or a forked child
            _HOST = _Host()
        return _HOST


@dataclass
class Agent:
    """One running agent CLI."""

    proc: subprocess.Popen[bytes]
    mark: str
    pidfd: int | None  # readable once the agent has exited; None on kernels without pidfd_open
    owner: ChildProcesses = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> bool:
        """Has the agent exited (without reaping it)?"""
        if self.pidfd is not None:
            return bool(select.select([self.pidfd], [], [], 0)[0])
        st = proc_stat(self.pid)
        return st is None or st.state in ("Z", "X")

    def terminate(self) -> None:
        """SIGTERM the agent's process group: a chance to stop cleanly before `release` kills everything."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)

    def release(self, *, exited: bool = False) -> int:
        """Kill the agent (unless it is known to have `exited`) and everything it left behind, reap it,
        forget it; returns its exit status."""
        host = _host()
        try:
            host.sweep(self, exited=exited)
        finally:
            returncode = self.proc.wait()
            with host.lock:
                host.live.pop(self.pid, None)
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None
            self.owner.discard(self.pid)
        return returncode


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid`: tells a pid apart from a recycled one."""
    st = proc_stat(pid)
    return None if st is None else str(st.start)


class ChildProcesses:
    """The agent CLIs one host runs, so a shutdown can kill every one of them.

    With a `state_dir`, each agent's process group is also noted on disk, so the next start
    after a crash (`reap_stale`) kills whatever survived (the watchdog should have already).
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._tags: dict[int, str] = {}  # process group -> the tag it was spawned with (the task it calls for)
        self._stopped: set[str] = set()  # tags whose running agent `stop` killed, until `was_stopped` asks
        self.state_dir = state_dir
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        stdin: int,
        stdout: int,
        stderr: int,
        tag: str | None = None,
    ) -> Agent:
        """Start `argv` in its own session, marked as ours; raises what `Popen` raises (e.g. FileNotFoundError).

        `tag` names what the agent works for (a task id): `stop(tags)` kills the agents so tagged.
        """
        host = _host()
        mark = host.next_mark()
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env={**env, MARK: mark},
            start_new_session=True,
        )
        with host.lock:
            host.live[proc.pid] = mark
        self.add(proc.pid)
        if tag is not None:
            with self._lock:
                self._tags[proc.pid] = tag
        return Agent(proc, mark, _pidfd(proc.pid), self)

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)
        if self.state_dir is not None:
            (self.state_dir / str(pgid)).write_text(_start_time(pgid) or "", encoding="ascii")

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
            self._tags.pop(pgid, None)
        if self.state_dir is not None:
            (self.state_dir / str(pgid)).unlink(missing_ok=True)

    def reap_stale(self) -> int:
        """Kill groups a previous, crashed process left behind; returns how many were killed."""
        if self.state_dir is None:
            return 0
        killed = 0
        for entry in self.state_dir.iterdir():
            if not entry.name.isdigit() or int(entry.name) in self._groups:
                continue
            pgid = int(entry.name)
            recorded = entry.read_text(encoding="ascii").strip()
            if recorded and _start_time(pgid) == recorded:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                    killed += 1
                except (ProcessLookupError, PermissionError):
                    pass
            entry.unlink(missing_ok=True)
        return killed

    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._groups)

    def stop(self, tags: Iterable[str]) -> int:
        """SIGKILL the process group of every running agent tagged with one of `tags` (its call then sweeps
        what it left outside the group, `Agent.release`); `was_stopped` tells that call so. Returns how many."""
        wanted = set(tags)
        n = 0
        with self._lock:
            for pgid, tag in self._tags.items():
                if tag in wanted:
                    self._stopped.add(tag)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pgid, signal.SIGKILL)
                        n += 1
        return n

    def was_stopped(self, tag: str) -> bool:
        """Was the agent tagged `tag` killed by `stop`? Asked once, after its call released it."""
        with self._lock:
            if tag in self._stopped:
                self._stopped.discard(tag)
                return True
            return False

    def kill_all(self, sig: int = signal.SIGKILL) -> int:
        """Signal every agent's process group; returns how many were signalled.

        What an agent left outside its group is killed when its call ends (`Agent.release`).
        """
        n = 0
        for pgid in self.running():
            try:
                os.killpg(pgid, sig)
                n += 1
            except (ProcessLookupError, PermissionError):
                pass
        return n


def _watch(prefix: str) -> None:
    """The watchdog: block until the host's pipe closes, then kill every process carrying its mark."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    os.closerange(3, 1 << 16)  # hold nothing of the host's open (a pipe someone waits on to close)
    while os.read(0, 4096):
        pass
    for _ in range(16):
        marked = [pid for pid in _all_pids() if (m := proc_mark(pid)) is not None and m.startswith(prefix)]
        if not marked:
            return
        leaders = {pid for pid in marked if (st := proc_stat(pid)) is not None and st.sid == pid}
        in_sessions = [pid for pid in _all_pids() if (st := proc_stat(pid)) is not None and st.sid in leaders]
        wait_gone(kill_trees([*marked, *in_sessions]), REAP_WAIT_S)


def _main(argv: list[str]) -> Any:
    if len(argv) != 2 or not argv[1]:
        sys.stderr.write("usage: processes.py MARK_PREFIX  (started by switchyard with its pipe on stdin)\n")
        return 2
    _watch(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
