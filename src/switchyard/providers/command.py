"""The `command` provider: run an agent CLI from an argv template, never through a shell.

Each template element becomes exactly one argv element; placeholders are
substituted inside elements, in one pass, never split or re-expanded, so task
text cannot inject arguments. With `stdin = "{prompt_file}"` the prompt reaches the
CLI's stdin from an anonymous in-memory file; a template that names `{prompt_file}`
gets a 0600 file in the run directory, removed afterwards. The child gets a minimal
environment and its own session; it and everything it started are killed on
timeout, on shutdown and after it exits, and none of them outlives switchyard
(`switchyard.providers.processes`).

What the CLI printed is read from its pipes, not from files, so nothing done to the
run directory during the run changes what is priced. Output is kept bounded (the
first and the last `KEEP_BYTES`, whole lines, with a marker between them); when it
was too long to keep whole, usage is read from the tail. Every saved file
(stdout.txt, stderr.txt, the `{output_file}`) is redacted and owner-only (0600) in an
owner-only (0700) run directory.
"""

from __future__ import annotations

import os
import select
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from switchyard.config.schema import CommandProvider
from switchyard.errors import ConfigError
from switchyard.failures import Failure, FailureKind, classify_http, usage_error
from switchyard.providers.base import Call, ProviderContext, Result
from switchyard.providers.command_template import PLACEHOLDERS, render_argv
from switchyard.providers.processes import Agent
from switchyard.redact import private_dir, write_private
from switchyard.usage_parsers import PROBLEM_PREFIX, parse_output

__all__ = [
    "BASE_ENV",
    "PLACEHOLDERS",
    "Capture",
    "CommandRunner",
    "collect",
    "marker",
    "render_argv",
    "safe_output_path",
]

BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM")
KEEP_BYTES = 32 * 1024 * 1024  # of stdout (and of the output file), kept from the start and from the end
STDERR_KEEP_BYTES = 1024 * 1024
KILL_GRACE_S = 3.0
_CHUNK = 1 << 16
_DRAIN_MAX = 1 << 20  # read after exit at most this much more: what sat in the pipe when the CLI exited
# Formats whose usage is the run's total, printed at the end: an over-long output is still priced from
# its tail. The others (opencode-jsonl, aider) sum lines over the whole output, so a cut one is unpriced.
TOTAL_AT_END = frozenset(
    {"claude-json", "claude-stream-json", "codex-jsonl", "gemini-json", "openai-json", "anthropic-json", "none"}
)


def _plain_name(name: str) -> Path:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not name.strip():
        raise ConfigError.single(
            f"output_file {name!r} must be a plain relative name inside the run directory",
            hint='use a name such as "output.txt"',
        )
    return p


def safe_output_path(run_dir: Path, name: str) -> Path:
    """`run_dir/name`, refusing absolute paths, `..` and symlinks that lead out of `run_dir`."""
    p = _plain_name(name)
    base = run_dir.resolve()
    target = (base / p).resolve()
    if not target.is_relative_to(base):
        raise ConfigError.single(f"output_file {name!r} resolves outside the run directory ({target})")
    return base / p


class Capture:
    """The first and the last `keep` bytes of a stream, and its length."""

    __slots__ = ("head", "keep", "tail", "total")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            if len(data) <= room:
                return
            data = data[room:]
        self.tail += data
        if len(self.tail) > 2 * self.keep:  # trim in big steps: each trim moves the whole tail
            del self.tail[: len(self.tail) - self.keep]

    def parts(self) -> tuple[str, str | None, int]:
        """(head, tail, bytes omitted between them); tail is None when the whole stream was kept.

        When something was cut, the head ends and the tail starts at a line boundary, so no
        line (and no secret in it) is kept in part.
        """
        if self.total <= 2 * self.keep:
            return (self.head + self.tail).decode("utf-8", "replace"), None, 0
        head = self.head[: self.head.rfind(b"\n") + 1]
        tail = self.tail[len(self.tail) - self.keep :]
        tail = tail[tail.find(b"\n") + 1 :] if b"\n" in tail else bytearray()
        omitted = self.total - len(head) - len(tail)
        return head.decode("utf-8", "replace"), tail.decode("utf-8", "replace"), omitted


def marker(omitted: int) -> str:
    return f"\n[switchyard: {omitted} bytes of output not kept]\n"


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
        if private_dir(run_dir):  # new, so empty: nothing in it can be a symlink leading out
            output_path = Path(os.path.abspath(run_dir), _plain_name(cfg.output_file))
        else:
            output_path = safe_output_path(run_dir, cfg.output_file)
        workdir = Path(cfg.workdir).expanduser() if cfg.workdir else (call.workdir or run_dir)
        prompt = call.prompt.encode("utf-8")
        prompt_in_argv = any("{prompt_file}" in e for e in (*cfg.command_template, *cfg.max_cost_flag))
        prompt_file = run_dir / ".prompt.txt" if prompt_in_argv else None
        values = {
            "prompt_file": str(prompt_file or ""),
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
        if prompt_file is not None:
            write_private(prompt_file, prompt)
        try:
            return self._run(argv, call, run_dir, workdir, prompt, output_path)
        finally:
            if prompt_file is not None:
                prompt_file.unlink(missing_ok=True)

    def _stdin(self, prompt: bytes) -> int:
        """A descriptor for the child's stdin: the prompt in a pipe (whole, written end closed) or,
        when it does not fit in one, in an anonymous file; else /dev/null."""
        if self.config.stdin != "{prompt_file}":
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        r, w = os.pipe()
        try:
            os.set_blocking(w, False)
            if os.write(w, prompt) == len(prompt):
                return r
        except BlockingIOError:
            pass
        finally:
            os.close(w)
        os.close(r)
        memfd_create = getattr(os, "memfd_create", None)
        if memfd_create is not None:
            fd: int = memfd_create("switchyard-prompt", os.MFD_CLOEXEC)
        else:  # pragma: no cover - not Linux
            fd, name = tempfile.mkstemp()
            os.unlink(name)
        view = memoryview(prompt)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def _run(
        self, argv: list[str], call: Call, run_dir: Path, workdir: Path, prompt: bytes, output_path: Path
    ) -> Result:
        redact = self.context.redactor.redact
        stdin = self._stdin(prompt)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            try:
                agent = self.context.children.spawn(
                    argv, env=self._env(), cwd=workdir, stdin=stdin, stdout=out_w, stderr=err_w, tag=call.task.id
                )
            except FileNotFoundError as exc:
                if exc.filename not in (None, argv[0]):  # the working directory, not the executable
                    message = f"cannot start {argv[0]!r}: {exc.strerror}: {exc.filename} (provider {self.name})"
                    return Result(failure=Failure(FailureKind.NOT_FOUND, message))
                message = f"executable {argv[0]!r} not found on PATH (provider {self.name})"
                return Result(failure=Failure(FailureKind.CONFIG_ERROR, message))
            except PermissionError:
                message = f"executable {argv[0]!r} is not executable (provider {self.name})"
                return Result(failure=Failure(FailureKind.CONFIG_ERROR, message))
            finally:
                for fd in (stdin, out_w, err_w):
                    os.close(fd)
            exited = False
            try:
                out, err, timed_out = self._collect(agent, out_r, err_r, call.timeout_s)
                exited = not timed_out
            finally:
                exit_code = agent.release(exited=exited)  # kills it (if still there) and all it left; reaps it
        finally:
            os.close(out_r)
            os.close(err_r)

        stdout, cut = _save(os.path.join(run_dir, "stdout.txt"), out, redact)
        stderr, _ = _save(os.path.join(run_dir, "stderr.txt"), err, redact)
        stderr_tail = redact(stderr[-4000:])
        if self.context.children.was_stopped(call.task.id):
            return Result(
                failure=Failure(FailureKind.INTERRUPTED, "its task was cancelled; agent and its processes killed"),
                exit_code=exit_code,
            )
        if self.context.hard_stop.is_set() and exit_code < 0:
            return Result(failure=Failure(FailureKind.INTERRUPTED, "stopped by shutdown"), exit_code=exit_code)
        if timed_out:
            return Result(
                failure=Failure(
                    FailureKind.TIMEOUT, f"no result within {call.timeout_s:g}s; agent and its processes killed"
                ),
                exit_code=exit_code,
            )
        files = {"stderr": stderr}  # some CLIs (Gemini) print their error JSON there
        output_text, output_cut = _take_output_file(output_path, redact)
        if output_text is not None:
            files["output_file"] = output_text
        parsed = parse_output(self.config.usage_format, stdout, files=files)
        usage, reported_cost, problem = parsed.usage, parsed.reported_cost_usd, parsed.problem
        if (cut or output_cut) and self.config.usage_format not in TOTAL_AT_END and usage is not None:
            kept = "stdout" if cut else "the output file"
            usage = reported_cost = None
            problem = (
                f"{PROBLEM_PREFIX}{kept} was too long to keep whole ({2 * KEEP_BYTES} bytes kept) and "
                f"{self.config.usage_format} usage is summed over all of it"
            )
        failure = None
        if exit_code != 0 or parsed.is_error:
            message = parsed.error_message or stderr_tail.strip() or f"exited with status {exit_code}"
            if parsed.error_status:
                kind = classify_http(parsed.error_status, parsed.error_code)
            elif parsed.is_error or usage is not None or parsed.text is not None:
                kind = FailureKind.CLI_ERROR  # it ran and reported its own failure
            elif (rejected := usage_error(exit_code, stderr_tail + "\n" + stdout[:4000])) is not None:
                kind = FailureKind.CONFIG_ERROR  # every call would fail the same way: not worth a retry
                message = (
                    f"{argv[0]} rejected its command line (exit {exit_code}): {rejected}; "
                    f"fix command_template of provider {self.name}"
                )
            else:
                kind = FailureKind.CLI_ERROR
            failure = Failure(
                kind,
                redact(message)[-2000:],
                http_status=parsed.error_status,
                retry_after_s=parsed.retry_after_s,
                exit_code=exit_code,
            )
        return Result(
            text=None if parsed.text is None else redact(parsed.text),
            usage=usage,
            reported_cost_usd=reported_cost,
            failure=failure,
            exit_code=exit_code,
            usage_problem=problem,
            output_path=output_path if output_text is not None else None,
            model=parsed.model,
        )

    def _collect(self, agent: Agent, out_r: int, err_r: int, timeout_s: float) -> tuple[Capture, Capture, bool]:
        """Read stdout and stderr (bounded) until the agent exits: (stdout, stderr, timed_out)."""
        out, err = Capture(KEEP_BYTES), Capture(STDERR_KEEP_BYTES)
        return out, err, collect(agent, {out_r: out, err_r: err}, timeout_s)


def collect(agent: Agent, captures: dict[int, Capture], timeout_s: float, grace_s: float = KILL_GRACE_S) -> bool:
    """Read the pipes into their captures until the agent exits; at the deadline SIGTERM it, after `grace_s` give up.

    Returns whether it timed out. One thread, no timer: a poll on the pipes and the agent's
    pidfd, with the deadline as its timeout. Leftover processes holding the pipes open do not
    keep us waiting: the agent's exit ends the call.
    """
    captures = dict(captures)
    poller = select.poll()
    for fd in captures:
        poller.register(fd, select.POLLIN)
    pidfd = agent.pidfd
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    deadline = time.monotonic() + timeout_s
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if timed_out:  # the grace period is over too: `release` kills everything
                return True
            timed_out = True
            agent.terminate()
            deadline = time.monotonic() + grace_s
            continue
        exited = False
        # Without a pidfd (kernels before 5.3), look at the agent every 50 ms.
        for fd, _ in poller.poll(remaining * 1000 if pidfd is not None else min(remaining, 0.05) * 1000):
            if fd == pidfd:
                exited = True
                continue
            data = os.read(fd, _CHUNK)
            if data:
                captures[fd].feed(data)
            else:
                poller.unregister(fd)
                del captures[fd]
        if exited or (pidfd is None and agent.exited()):
            for fd, capture in captures.items():
                _drain(fd, capture)
            return timed_out


def _drain(fd: int, capture: Capture) -> None:
    """Read what is already in the pipe, without waiting for writers that may never close it."""
    os.set_blocking(fd, False)
    got = 0
    while got < _DRAIN_MAX:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        if not data:
            return
        got += len(data)
        capture.feed(data)


Redact = Callable[[str | None], str]


def _save(path: str, capture: Capture, redact: Redact) -> tuple[str, bool]:
    """Save a stream, redacted and bounded (nothing when it was empty); return (text to read, was it cut).

    The text to read is the whole stream, or its tail when it was cut.
    """
    head, tail, omitted = capture.parts()
    if tail is None:
        if head:
            write_private(path, redact(head).encode("utf-8"))
        return head, False
    write_private(path, (redact(head) + marker(omitted) + redact(tail)).encode("utf-8"))
    return tail, True


def _take_output_file(path: Path, redact: Redact) -> tuple[str | None, bool]:
    """Read the file the CLI wrote at `{output_file}`; leave it redacted, bounded and 0600.

    Returns (its text, or its tail when it was too long; None when there is no regular file there,
    was it cut). A symlink or a FIFO planted there is not followed or read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None, False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, False
        capture = Capture(KEEP_BYTES)
        if st.st_size <= 2 * KEEP_BYTES:
            capture.feed(_pread(fd, 2 * KEEP_BYTES + 1, 0))
        else:
            capture.feed(_pread(fd, KEEP_BYTES, 0))
            capture.feed(_pread(fd, KEEP_BYTES, st.st_size - KEEP_BYTES))
            capture.total = st.st_size
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)  # the file we opened, whatever its name points to by now
    finally:
        os.close(fd)
    head, tail, omitted = capture.parts()
    if tail is not None:
        write_private(path, (redact(head) + marker(omitted) + redact(tail)).encode("utf-8"))
    elif (clean := redact(head)) != head:
        write_private(path, clean.encode("utf-8"))
    return (head, False) if tail is None else (tail, True)


def _pread(fd: int, size: int, offset: int) -> bytes:
    chunks = []
    while size > 0:
        data = os.pread(fd, size, offset)
        if not data:
            break
        chunks.append(data)
        size -= len(data)
        offset += len(data)
    return b"".join(chunks)
