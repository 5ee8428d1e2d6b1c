"""The command provider against a real script that prints what Claude Code prints."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from switchyard.catalog import Usage
from switchyard.config import loads_config
from switchyard.errors import ConfigError
from switchyard.failures import FailureKind
from switchyard.providers.base import Call, ProviderContext
from switchyard.providers.command import KEEP_BYTES, TOTAL_AT_END, CommandRunner, render_argv, safe_output_path
from switchyard.redact import Redactor
from switchyard.task import Task
from switchyard.usage_formats import USAGE_FORMATS

FAKE = str(Path(__file__).parent / "fakes" / "fake_agent.py")
SECRET = "sk-test-SUPERSECRET-0123456789abcdef"


def provider(
    tmp_path: Path,
    extra: str = "",
    env: dict[str, str] | None = None,
    template: str | None = None,
    usage_format: str = "claude-json",
) -> CommandRunner:
    tmpl = template or json.dumps([sys.executable, FAKE, "-p", "--model", "{model}", "--task", "{task_id}"])
    text = f"""
[providers.agent]
command_template = {tmpl}
stdin = "{{prompt_file}}"
usage_format = "{usage_format}"
api_key_env = "AGENT_KEY"
env = {{ FAKE_RECORD = "{tmp_path / "record.json"}" }}
{extra}

[[models]]
name = "m"
provider = "agent"

[routing]
default_model = "m"
"""
    loaded = loads_config(text)
    base_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AGENT_KEY": SECRET,
        "UNRELATED_TOKEN": "tok-should-not-pass",
        **(env or {}),
    }
    ctx = ProviderContext(redactor=Redactor.from_env(["AGENT_KEY"], base_env), env=base_env)
    p = loaded.providers["agent"]
    return CommandRunner(p, ctx)  # type: ignore[arg-type]


def call(tmp_path: Path, title: str = "Fix it", timeout_s: float = 30.0) -> Call:
    task = Task(id="gh-1", title=title)
    return Call("att-1", task, "m", "model-x", f"{title}\n\nbody", tmp_path / "run", timeout_s)


def record(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((tmp_path / "record.json").read_text())


def test_success_reads_claude_usage_and_cost(tmp_path: Path) -> None:
    result = provider(tmp_path).execute(call(tmp_path))
    assert result.ok, result.failure
    assert result.usage == Usage(1000, 500, 4000, 2000)
    assert result.reported_cost_usd == Decimal("0.0192")
    assert result.text is not None and result.text.startswith("done: Fix it")
    assert (tmp_path / "run" / "stdout.txt").exists()


def test_argv_is_the_template_with_placeholders_each_one_element(tmp_path: Path) -> None:
    hostile = "x'; rm -rf / #  --dangerously-skip-permissions $(whoami)"
    c = call(tmp_path, title=hostile)
    task = Task(id=hostile, title=hostile)
    c = Call("att-1", task, "m", "model-x", "prompt", tmp_path / "run", 30.0)
    provider(tmp_path).execute(c)
    rec = record(tmp_path)
    assert rec["argv"][1:] == ["-p", "--model", "model-x", "--task", hostile]
    assert rec["prompt"] == "prompt"  # the prompt came on stdin
    assert SECRET not in " ".join(rec["argv"])


def test_child_gets_a_minimal_environment(tmp_path: Path) -> None:
    provider(tmp_path).execute(call(tmp_path))
    env = record(tmp_path)["env"]
    assert env["AGENT_KEY"] == SECRET  # the provider's own key, by environment only
    assert "UNRELATED_TOKEN" not in env
    assert env["HOME"] == str(tmp_path)
    assert set(env) <= {"PATH", "HOME", "AGENT_KEY", "FAKE_RECORD", "LC_CTYPE", "PWD", "SHLVL", "_", "SWITCHYARD_AGENT"}
    assert env["SWITCHYARD_AGENT"]  # the mark that tells its descendants apart


def test_prompt_file_is_private_and_removed(tmp_path: Path) -> None:
    template = json.dumps(
        [
            sys.executable,
            "-c",
            "import os,sys,json; p=sys.argv[1]; st=os.stat(p); d=os.stat(os.path.dirname(p)); print(json.dumps({'type':'result','is_error':False,'result':oct(st.st_mode&0o777)+' '+oct(d.st_mode&0o777),'usage':{'input_tokens':1,'output_tokens':1}}))",
            "{prompt_file}",
        ]
    )
    result = provider(tmp_path, template=template).execute(call(tmp_path))
    assert result.text == "0o600 0o700"
    assert not (tmp_path / "run" / ".prompt.txt").exists()


def test_hang_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    p = _with_env(provider(tmp_path), FAKE_MODE="hang", FAKE_PIDFILE=str(pidfile))
    t0 = time.monotonic()
    result = p.execute(call(tmp_path, timeout_s=1.5))
    assert time.monotonic() - t0 < 10
    assert result.failure is not None and result.failure.kind is FailureKind.TIMEOUT
    agent_pid, grandchild_pid = map(int, pidfile.read_text().split())
    deadline = time.monotonic() + 3  # SIGKILL is delivered asynchronously
    while any(_alive(pid) for pid in (agent_pid, grandchild_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in (agent_pid, grandchild_pid):
        assert not _alive(pid), f"process {pid} outlived the timeout"
    assert p.context.children.running() == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _with_env(p: CommandRunner, **env: str) -> CommandRunner:
    p.config = p.config.__class__(**{**p.config.__dict__, "env": {**p.config.env, **env}})
    return p


def test_api_error_status_is_classified(tmp_path: Path) -> None:
    result = _with_env(provider(tmp_path), FAKE_MODE="error529").execute(call(tmp_path))
    assert result.failure is not None
    assert result.failure.kind is FailureKind.OVERLOADED
    assert result.failure.http_status == 529
    assert result.exit_code == 1


def test_nonzero_exit_keeps_the_clis_error_text_redacted(tmp_path: Path) -> None:
    result = _with_env(provider(tmp_path), FAKE_MODE="exit2", LEAK=SECRET).execute(call(tmp_path))
    assert result.failure is not None and result.failure.kind is FailureKind.CLI_ERROR
    assert "upstream rejected key" in result.failure.message
    assert SECRET not in result.failure.message
    assert "[REDACTED]" in result.failure.message
    assert result.exit_code == 2


def test_is_error_result_text_is_kept(tmp_path: Path) -> None:
    result = _with_env(provider(tmp_path), FAKE_MODE="is_error_text", LEAK=SECRET).execute(call(tmp_path))
    assert result.failure is not None and "could not finish" in result.failure.message
    assert SECRET not in result.failure.message


@pytest.mark.parametrize("mode", ["garbage", "truncated"])
def test_unparseable_output_is_an_outcome_not_a_crash(tmp_path: Path, mode: str) -> None:
    result = _with_env(provider(tmp_path), FAKE_MODE=mode).execute(call(tmp_path))
    assert result.usage is None
    assert result.usage_problem is not None and result.usage_problem.startswith("unparseable usage")


def test_missing_executable_is_a_configuration_error(tmp_path: Path) -> None:
    # seen: `executable 'claude' not found` was retried on every task like a transient failure
    result = provider(tmp_path, template='["no-such-agent-binary", "-p"]').execute(call(tmp_path))
    assert result.failure is not None and result.failure.kind is FailureKind.CONFIG_ERROR
    assert result.failure.message == "executable 'no-such-agent-binary' not found on PATH (provider agent)"
    assert result.failure.policy.action == "disable"


def test_a_file_that_is_not_executable_is_a_configuration_error(tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result = provider(tmp_path, template=json.dumps([str(script)])).execute(call(tmp_path))
    assert result.failure is not None and result.failure.kind is FailureKind.CONFIG_ERROR
    assert "is not executable" in result.failure.message


def test_a_cli_usage_error_is_a_configuration_error(tmp_path: Path) -> None:
    # seen: a CLI usage error (exit 2 and its usage text) was retried three times
    result = _with_env(provider(tmp_path), FAKE_MODE="usage_error").execute(call(tmp_path))
    assert result.failure is not None and result.failure.kind is FailureKind.CONFIG_ERROR
    assert result.failure.message == (
        f"{sys.executable} rejected its command line (exit 2): error: unknown option '--bogus'; "
        "fix command_template of provider agent"
    )
    assert result.exit_code == 2


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.txt", "a/../../b"])
def test_output_file_must_stay_in_the_run_dir(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="output_file"):
        safe_output_path(tmp_path, name)


def test_output_file_symlink_escape_is_rejected(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "out.txt").symlink_to("/etc/hostname")
    with pytest.raises(ConfigError, match="resolves outside the run directory"):
        safe_output_path(run, "out.txt")


def test_output_file_config_is_checked_at_load() -> None:
    with pytest.raises(ConfigError, match="output_file must be a plain relative name"):
        loads_config(
            '[providers.a]\ncommand_template = ["x"]\noutput_file = "/tmp/x"\n[[models]]\nname = "m"\nprovider = "a"\n[routing]\ndefault_model = "m"\n'
        )


def test_unknown_placeholder_and_stdin_are_config_errors() -> None:
    base = '[[models]]\nname = "m"\nprovider = "a"\n[routing]\ndefault_model = "m"\n'
    with pytest.raises(ConfigError, match=r"unknown placeholder \{modle\} \(did you mean \{model\}\?\)"):
        loads_config('[providers.a]\ncommand_template = ["x", "{modle}"]\n' + base)
    with pytest.raises(ConfigError, match="stdin can only be"):
        loads_config('[providers.a]\ncommand_template = ["x"]\nstdin = "{model}"\n' + base)


def test_render_argv_never_splits_or_reexpands() -> None:
    argv = render_argv(("a", "--m={model}", "{task_id}"), {"model": "x y", "task_id": "{model}"})
    assert argv == ["a", "--m=x y", "{model}"]


def test_output_file_placeholder_points_into_the_run_dir(tmp_path: Path) -> None:
    template = json.dumps(
        [
            sys.executable,
            "-c",
            "import sys,json; open(sys.argv[1],'w').write('hi'); print(json.dumps({'type':'result','is_error':False,'result':sys.argv[1],'usage':{'input_tokens':1,'output_tokens':1}}))",
            "{output_file}",
        ]
    )
    result = provider(tmp_path, template=template).execute(call(tmp_path))
    assert result.output_path == (tmp_path / "run").resolve() / "output.txt"
    assert result.output_path.read_text() == "hi"
    assert stat.S_ISREG(result.output_path.stat().st_mode)


_FORKS: list[int] = []
_COUNT_FORKS = threading.Event()
os.register_at_fork(before=lambda: _COUNT_FORKS.is_set() and _FORKS.append(os.getpid()))


def test_spawning_an_agent_never_forks_this_python_process(tmp_path: Path) -> None:
    """No `preexec_fn`: Python starts the agent by vfork, not by copying the whole parent (at-fork
    hooks run only on that path). From a 120 MiB coordinator the copy cost 8 ms a spawn instead of 1."""
    p = provider(tmp_path)
    _COUNT_FORKS.set()
    try:
        result = p.execute(call(tmp_path))
    finally:
        _COUNT_FORKS.clear()
    assert result.ok, result.failure
    assert _FORKS == []


def test_no_thread_per_call(tmp_path: Path) -> None:
    p = _with_env(provider(tmp_path), FAKE_MODE="threads")
    p.execute(call(tmp_path))  # the first call may start process-wide helpers; count from the second
    before = len(os.listdir("/proc/self/task"))
    result = p.execute(call(tmp_path))
    assert result.text == str(before)  # what the agent saw while it ran: no timer thread waiting on it


def test_run_directory_is_private_and_holds_only_what_is_needed(tmp_path: Path) -> None:
    result = provider(tmp_path).execute(call(tmp_path))
    assert result.ok
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == ["stdout.txt"]  # no prompt file, no empty stderr.txt
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert stat.S_IMODE((run / "stdout.txt").stat().st_mode) == 0o600


def _pids(pidfile: Path) -> list[int]:
    return [int(x) for x in pidfile.read_text().split()]


def _wait_all_dead(pids: list[int], what: str) -> None:
    deadline = time.monotonic() + 30  # SIGKILL is delivered asynchronously
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in pids if _alive(pid)]
    assert alive == [], (
        f"{what}: processes {alive} of {pids} (agent, group child, setsid child, env-less child, daemon)"
    )


def _kill_quietly(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_timeout_kills_every_descendant_setsid_and_daemons_included(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    p = _with_env(provider(tmp_path), FAKE_MODE="escape", FAKE_PIDFILE=str(pidfile))
    result = p.execute(call(tmp_path, timeout_s=5))
    assert result.failure is not None and result.failure.kind is FailureKind.TIMEOUT
    assert pidfile.exists(), "the agent had not started its processes when the timeout hit: raise timeout_s"
    pids = _pids(pidfile)
    try:
        _wait_all_dead(pids, "outlived the timeout")
    finally:
        _kill_quietly(pids)
    assert p.context.children.running() == []


_HOST = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_command_provider import _with_env, call, provider
tmp = Path({tmp!r})
p = _with_env(provider(tmp), FAKE_MODE="escape", FAKE_PIDFILE=str(tmp / "pids"))
p.execute(call(tmp, timeout_s=600))
"""


def test_kill_dash_nine_of_switchyard_kills_the_agent_and_all_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = _HOST.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    host = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not pidfile.exists() and host.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pidfile.exists(), f"the agent never got going: {host.stderr.read() if host.poll() is not None else ''}"  # type: ignore[union-attr]
        pids = _pids(pidfile)
        host.kill()  # SIGKILL: nothing of switchyard's own code runs after this
        host.wait()
        _wait_all_dead(pids, "outlived switchyard")
        _wait_all_dead(_watchdogs_of(host.pid), "the watchdog stayed after its work")
    finally:
        host.kill()
        host.wait()
        _kill_quietly(pids)


def _watchdogs_of(host_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv[-2:-1] and argv[-2].startswith(f"{host_pid}.".encode()) and b"processes.py" in argv[-3]:
                    found.append(int(entry.name))
    return found


def test_a_prompt_larger_than_a_pipe_reaches_stdin_whole(tmp_path: Path) -> None:
    prompt = "".join(f"line {i} of a long prompt\n" for i in range(20_000))  # ~500 KB
    c = Call("att-1", Task(id="gh-1", title="t"), "m", "model-x", prompt, tmp_path / "run", 30.0)
    assert provider(tmp_path).execute(c).ok
    assert record(tmp_path)["prompt"] == prompt


def test_secrets_echoed_into_the_output_file_and_the_answer_are_masked(tmp_path: Path) -> None:
    template = json.dumps([sys.executable, FAKE, "--out", "{output_file}"])
    p = _with_env(provider(tmp_path, template=template), FAKE_MODE="leak", LEAK=SECRET)
    result = p.execute(call(tmp_path))
    assert result.ok, result.failure
    assert result.text == "done; my key is [REDACTED]"
    assert result.output_path is not None
    assert result.output_path.read_text() == "notes\nkey=[REDACTED]\n"
    assert stat.S_IMODE(result.output_path.stat().st_mode) == 0o600
    for path in (tmp_path / "run").rglob("*"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_replaced_stdout_file_does_not_change_what_is_priced(tmp_path: Path) -> None:
    result = _with_env(provider(tmp_path), FAKE_MODE="swap").execute(call(tmp_path))
    assert result.ok, result.failure
    assert result.usage == Usage(1000, 500, 4000, 2000)
    assert result.reported_cost_usd == Decimal("0.0192")
    saved = json.loads((tmp_path / "run" / "stdout.txt").read_text())
    assert saved["usage"]["input_tokens"] == 1000  # what it printed, not the file it left


FLOOD = 70 * 1024 * 1024  # more than the 64 MiB kept


def test_long_output_is_priced_from_its_tail_and_saved_bounded_and_masked(tmp_path: Path) -> None:
    p = _with_env(provider(tmp_path), FAKE_MODE="flood", FAKE_FLOOD_BYTES=str(FLOOD), LEAK=SECRET)
    result = p.execute(call(tmp_path, timeout_s=300))
    assert result.ok, result.failure
    assert result.usage == Usage(1000, 500, 4000, 2000)  # printed after the first 64 MiB
    saved = (tmp_path / "run" / "stdout.txt").read_bytes()
    assert len(saved) <= 2 * KEEP_BYTES + 100
    assert b" bytes of output not kept]" in saved
    assert SECRET.encode() not in saved
    assert b"key [REDACTED]" in saved  # the key's line was in the tail: kept, masked


def test_long_output_of_a_summed_format_is_not_priced_from_a_part(tmp_path: Path) -> None:
    p = _with_env(
        provider(tmp_path, usage_format="opencode-jsonl"),
        FAKE_MODE="flood",
        FAKE_FLOOD_BYTES=str(FLOOD),
        FAKE_FLOOD_FORMAT="opencode",
    )
    result = p.execute(call(tmp_path, timeout_s=300))
    assert result.usage is None  # one step at each end: either part alone would undercount
    assert result.usage_problem is not None and "too long to keep whole" in result.usage_problem


def test_formats_priced_from_the_tail_are_real_formats() -> None:
    assert set(USAGE_FORMATS) >= TOTAL_AT_END
    assert "opencode-jsonl" not in TOTAL_AT_END and "aider" not in TOTAL_AT_END  # they sum lines
