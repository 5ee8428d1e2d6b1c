"""The command provider against a real script that prints what Claude Code prints."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from switchyard.catalog import Usage
from switchyard.config import loads_config
from switchyard.errors import ConfigError
from switchyard.failures import FailureKind
from switchyard.providers.base import Call, ProviderContext
from switchyard.providers.command import CommandRunner, render_argv, safe_output_path
from switchyard.redact import Redactor
from switchyard.task import Task

FAKE = str(Path(__file__).parent / "fakes" / "fake_agent.py")
SECRET = "sk-test-SUPERSECRET-0123456789abcdef"


def provider(
    tmp_path: Path, extra: str = "", env: dict[str, str] | None = None, template: str | None = None
) -> CommandRunner:
    tmpl = template or json.dumps([sys.executable, FAKE, "-p", "--model", "{model}", "--task", "{task_id}"])
    text = f"""
[providers.agent]
command_template = {tmpl}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
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
    assert set(env) <= {"PATH", "HOME", "AGENT_KEY", "FAKE_RECORD", "LC_CTYPE", "PWD", "SHLVL", "_"}


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
    leftovers = list((tmp_path / "run" / ".private").iterdir())
    assert leftovers == []


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


def test_missing_executable_fails_over(tmp_path: Path) -> None:
    result = provider(tmp_path, template='["no-such-agent-binary", "-p"]').execute(call(tmp_path))
    assert result.failure is not None and result.failure.kind is FailureKind.NOT_FOUND
    assert "no-such-agent-binary" in result.failure.message


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
