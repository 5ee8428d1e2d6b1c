"""The `command` provider: run an agent CLI from an argv template, never through a shell.

Each template element becomes exactly one argv element; placeholders are
substituted inside elements, in one pass, never split or re-expanded, so task
text cannot inject arguments. The prompt goes through a 0600 file in a 0700
directory (by stdin when `stdin = "{prompt_file}"`). The child gets a minimal
environment, runs in its own process group, and the whole group is killed on
timeout, on shutdown, and after it exits (no stray grandchildren).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from switchyard.config.schema import CommandProvider
from switchyard.errors import ConfigError
from switchyard.failures import Failure, FailureKind, classify_http
from switchyard.providers.base import Call, ProviderContext, Result
from switchyard.providers.command_template import PLACEHOLDERS, render_argv
from switchyard.usage_parsers import parse_output

__all__ = ["BASE_ENV", "PLACEHOLDERS", "CommandRunner", "render_argv", "safe_output_path"]

BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM")
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
KILL_GRACE_S = 3.0


def safe_output_path(run_dir: Path, name: str) -> Path:
    """`run_dir/name`, refusing absolute paths, `..` and symlinks that lead out of `run_dir`."""
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not name.strip():
        raise ConfigError.single(
            f"output_file {name!r} must be a plain relative name inside the run directory",
            hint='use a name such as "output.txt"',
        )
    base = run_dir.resolve()
    target = (base / p).resolve()
    if not target.is_relative_to(base):
        raise ConfigError.single(f"output_file {name!r} resolves outside the run directory ({target})")
    return base / p


def _read_capped(path: Path) -> str:
    """Read a file the child wrote, without following a symlink it may have planted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, OSError):
        return ""
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_OUTPUT_BYTES)
    return data.decode("utf-8", errors="replace")


class CommandRunner:
    """Runs one agent CLI per call."""

    def __init__(self, config: CommandProvider, context: ProviderContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context

    def close(self) -> None:
        """Nothing to release."""

    def _env(self) -> dict[str, str]:
        src = self.context.env
        env = {k: src[k] for k in BASE_ENV if k in src}
        for name in self.config.pass_env:
            if name in src:
                env[name] = src[name]
        if self.config.api_key_env and src.get(self.config.api_key_env):
            env[self.config.api_key_env] = src[self.config.api_key_env]
        env.update(self.config.env)
        return env

    def execute(self, call: Call) -> Result:
        """Run the CLI for `call` and read its usage."""
        cfg = self.config
        run_dir = call.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        output_path = safe_output_path(run_dir, cfg.output_file)
        private = run_dir / ".private"
        private.mkdir(mode=0o700, exist_ok=True)
        os.chmod(private, 0o700)
        fd, prompt_name = tempfile.mkstemp(prefix="prompt-", suffix=".txt", dir=private)  # created 0600
        prompt_file = Path(prompt_name)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(call.prompt)
        workdir = Path(cfg.workdir).expanduser() if cfg.workdir else (call.workdir or run_dir)
        values = {
            "prompt_file": str(prompt_file),
            "model": call.provider_model,
            "output_file": str(output_path),
            "task_id": call.task.id,
            "stage": call.stage or "",
            "workdir": str(workdir),
            "max_cost_usd": "" if call.max_cost_usd is None else str(call.max_cost_usd),
        }
        argv = render_argv(cfg.command_template, values)
        if call.max_cost_usd is not None and cfg.max_cost_flag:
            argv += render_argv(cfg.max_cost_flag, values)
        stdout_path = run_dir / "stdout.txt"
        stderr_path = run_dir / "stderr.txt"
        try:
            return self._run(argv, call, workdir, prompt_file, stdout_path, stderr_path, output_path)
        finally:
            prompt_file.unlink(missing_ok=True)

    def _run(
        self,
        argv: list[str],
        call: Call,
        workdir: Path,
        prompt_file: Path,
        stdout_path: Path,
        stderr_path: Path,
        output_path: Path,
    ) -> Result:
        redact = self.context.redactor.redact
        stdin = open(prompt_file, "rb") if self.config.stdin == "{prompt_file}" else subprocess.DEVNULL  # noqa: SIM115
        try:
            with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
                try:
                    proc = subprocess.Popen(
                        argv,
                        stdin=stdin,
                        stdout=out,
                        stderr=err,
                        cwd=workdir,
                        env=self._env(),
                        start_new_session=True,
                        close_fds=True,
                        preexec_fn=_die_with_parent,
                    )
                except FileNotFoundError:
                    return Result(
                        failure=Failure(
                            FailureKind.NOT_FOUND,
                            f"executable {argv[0]!r} not found on PATH (provider {self.name})",
                        )
                    )
                except PermissionError:
                    return Result(failure=Failure(FailureKind.NOT_FOUND, f"executable {argv[0]!r} is not executable"))
                pgid = proc.pid
                self.context.children.add(pgid)
                timed_out = interrupted = False
                try:
                    timed_out, interrupted = self._wait(proc, call.timeout_s)
                finally:
                    _kill_group(pgid, signal.SIGKILL)  # whatever the CLI left behind goes too
                    proc.wait()
                    self.context.children.discard(pgid)
        finally:
            if stdin is not subprocess.DEVNULL:
                stdin.close()  # type: ignore[union-attr]

        stdout = _read_capped(stdout_path)
        stderr = _read_capped(stderr_path)
        # Keep the CLI's own output for debugging, but never a secret it echoed.
        for path, text in ((stdout_path, stdout), (stderr_path, stderr)):
            clean = redact(text)
            if clean != text:
                path.write_text(clean, encoding="utf-8")
        stderr_tail = redact(stderr[-4000:])
        if interrupted:
            return Result(failure=Failure(FailureKind.INTERRUPTED, "stopped by shutdown"), exit_code=proc.returncode)
        if timed_out:
            return Result(
                failure=Failure(FailureKind.TIMEOUT, f"no result within {call.timeout_s:g}s; process group killed"),
                exit_code=proc.returncode,
            )
        files = {"stderr": stderr}  # some CLIs (Gemini) print their error JSON there
        if output_path.exists():
            files["output_file"] = _read_capped(output_path)
        parsed = parse_output(self.config.usage_format, stdout, files=files)
        exit_code = proc.returncode
        failure = None
        if exit_code != 0 or parsed.is_error:
            message = parsed.error_message or stderr_tail.strip() or f"exited with status {exit_code}"
            kind = (
                classify_http(parsed.error_status, parsed.error_code) if parsed.error_status else FailureKind.CLI_ERROR
            )
            failure = Failure(
                kind,
                redact(message)[-2000:],
                http_status=parsed.error_status,
                retry_after_s=parsed.retry_after_s,
                exit_code=exit_code,
            )
        return Result(
            text=parsed.text,
            usage=parsed.usage,
            reported_cost_usd=parsed.reported_cost_usd,
            failure=failure,
            exit_code=exit_code,
            usage_problem=parsed.problem,
            output_path=output_path if output_path.exists() else None,
            model=parsed.model,
        )

    def _wait(self, proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[bool, bool]:
        """Block until the child exits; a timer kills its group at the deadline. Returns (timed_out, interrupted).

        A blocking wait notices the exit at once (a polling wait would add latency to every call);
        a shutdown kills the groups through `ChildProcesses.kill_all`, which also ends this wait.
        """
        fired = threading.Event()

        def on_timeout() -> None:
            fired.set()
            _terminate(proc)

        timer = threading.Timer(timeout_s, on_timeout)
        timer.daemon = True
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
        if fired.is_set():
            return True, False
        return False, self.context.hard_stop.is_set() and proc.returncode < 0


def _load_prctl() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL me if the coordinator dies (even by kill -9).

    Only a C call on a function resolved in the parent, so it is safe between fork and exec.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, give it a moment, then SIGKILL."""
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
