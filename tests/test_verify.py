"""`[verify]`: the built-in checks and the commands, on real git worktrees and real processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from switchyard.config import loads_config
from switchyard.config.delivery import VerifyCommand, VerifyConfig
from switchyard.errors import ConfigError
from switchyard.providers.processes import ChildProcesses, proc_stat
from switchyard.redact import Redactor
from switchyard.verify import glob_matcher, verify
from switchyard.worktree import Workspace
from test_worktree import make_repo

PY = sys.executable


def space(tmp_path: Path) -> Workspace:
    repo = make_repo(tmp_path / "repo", {"src/app.py": "x = 1\n", "tests/test_app.py": "assert True\n"})
    return Workspace.open(repo, tmp_path / "wt", "T-1", "sy/", "HEAD")


def run(cfg: VerifyConfig, ws: Workspace | None, tmp_path: Path, *, secrets: tuple[str, ...] = (), workdir=None):  # type: ignore[no-untyped-def]
    return verify(
        cfg,
        Path(workdir or (ws.path if ws else tmp_path)),
        ws,
        run_dir=tmp_path / "run",
        redactor=Redactor(secrets),
        children=ChildProcesses(),
        env=dict(os.environ),
    )


def test_an_empty_change_is_rejected(tmp_path: Path) -> None:
    ws = space(tmp_path)
    v = run(VerifyConfig(enabled=True), ws, tmp_path)
    assert (v.outcome, v.check, v.detail) == ("rejected", "change", "the attempt changed nothing")
    assert not VerifyConfig(require_change=False, enabled=True).require_change
    ok = run(VerifyConfig(require_change=False, enabled=True), ws, tmp_path)
    assert ok.verified and ok.summary() == "verified: secrets ok"


def test_paths_outside_the_allowed_globs_are_rejected(tmp_path: Path) -> None:
    ws = space(tmp_path)
    wt = Path(ws.path)
    (wt / "src/app.py").write_text("x = 2\n")
    (wt / "src/deep/mod.py").parent.mkdir()
    (wt / "src/deep/mod.py").write_text("y = 1\n")
    cfg = VerifyConfig(allowed_paths=("src/**", "docs/*.md"), enabled=True)
    assert run(cfg, ws, tmp_path).verified
    (wt / ".github").mkdir()
    (wt / ".github/ci.yml").write_text("on: push\n")
    (wt / "docs").mkdir()
    (wt / "docs/a.md").write_text("ok\n")
    (wt / "docs/sub").mkdir()
    (wt / "docs/sub/b.md").write_text("not ok\n")
    v = run(cfg, ws, tmp_path)
    assert v.outcome == "rejected" and v.check == "paths"
    assert (
        "2 path(s) outside allowed_paths" in v.detail and ".github/ci.yml" in v.detail and "docs/sub/b.md" in v.detail
    )


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("**", "a/b/c", True),
        ("src/**", "src/a/b.py", True),
        ("src/**", "srcx/a.py", False),
        ("**/*.md", "README.md", True),
        ("**/*.md", "a/b/c.md", True),
        ("*.md", "a/b.md", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("a.b", "axb", False),
    ],
)
def test_globs(glob: str, path: str, matches: bool) -> None:
    assert bool(glob_matcher(glob).match(path)) is matches


def test_an_added_secret_is_rejected_and_never_shown(tmp_path: Path) -> None:
    ws = space(tmp_path)
    wt = Path(ws.path)
    (wt / "src/app.py").write_text("import os\napi_key = os.environ['KEY']\n")
    assert run(VerifyConfig(enabled=True), ws, tmp_path).verified  # a variable is not a key
    (wt / "src/config.py").write_text("TOKEN = 'our-deploy-secret-42'\n")
    v = run(VerifyConfig(enabled=True), ws, tmp_path, secrets=("our-deploy-secret-42",))
    assert (v.outcome, v.check) == ("rejected", "secrets")
    assert "src/config.py" in v.detail and "our-deploy-secret-42" not in v.detail
    (wt / "src/config.py").write_text("headers = {'x-api-key': 'sk-ant-api03-abcdefghijklmnopqrstuv'}\n")
    v = run(VerifyConfig(enabled=True), ws, tmp_path)
    assert v.check == "secrets" and "sk-ant-api03" not in v.detail
    assert run(VerifyConfig(secrets=False, enabled=True), ws, tmp_path).verified


def test_commands_run_in_the_worktree_with_their_environment(tmp_path: Path) -> None:
    ws = space(tmp_path)
    wt = Path(ws.path)
    (wt / "src/app.py").write_text("x = 2\n")
    check = "import os, sys; print(open('src/app.py').read().strip(), os.environ.get('MODE'), os.environ.get('SECRET_THING'), os.environ.get('KEEP')); sys.exit(0 if os.path.exists('src/app.py') else 3)"
    os.environ["KEEP"] = "kept"
    os.environ["SECRET_THING"] = "hidden-value-123456"
    try:
        cmd = VerifyCommand((PY, "-c", check), name="tests", env={"MODE": "ci"}, pass_env=("KEEP",))
        v = run(VerifyConfig((cmd,), enabled=True), ws, tmp_path)
    finally:
        del os.environ["KEEP"], os.environ["SECRET_THING"]
    assert v.verified, v
    assert [c.name for c in v.checks] == ["change", "secrets", "tests"]
    log = (tmp_path / "run" / "verify-1.log").read_text()
    assert log.strip() == "x = 2 ci None kept"  # only what it was given: no stray secret
    assert oct((tmp_path / "run" / "verify-1.log").stat().st_mode & 0o777) == "0o600"


def test_a_failing_command_rejects_with_its_output_tail_redacted(tmp_path: Path) -> None:
    ws = space(tmp_path)
    (Path(ws.path) / "src/app.py").write_text("x = 2\n")
    noisy = "import sys; print('line\\n' * 5000); print('FAILED test_app::test_x - assert 1 == 2 key=sk-abcdefghijklmnopqrstu'); sys.exit(1)"
    cfg = VerifyConfig((VerifyCommand(("true",)), VerifyCommand((PY, "-c", noisy), name="pytest")), enabled=True)
    v = run(cfg, ws, tmp_path)
    assert (v.outcome, v.check) == ("rejected", "pytest")
    assert v.detail.startswith("exited with status 1\n") and "FAILED test_app::test_x" in v.detail
    assert "sk-abcdefghijklmnopqrstu" not in v.detail and "[REDACTED]" in v.detail
    assert len(v.detail) < 4200
    assert [(c.name, c.passed) for c in v.checks][-2:] == [("true", True), ("pytest", False)]


def test_a_command_that_hangs_is_killed_with_what_it_started(tmp_path: Path) -> None:
    ws = space(tmp_path)
    (Path(ws.path) / "src/app.py").write_text("x = 2\n")
    pidfile = tmp_path / "grandchild.pid"
    hang = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(600)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(600)"
    )
    cfg = VerifyConfig((VerifyCommand((PY, "-c", hang), name="slow", timeout_s=2),), enabled=True)
    v = run(cfg, ws, tmp_path)
    assert (v.outcome, v.check) == ("rejected", "slow")
    assert v.detail.startswith("timed out after 2s (killed)") and "started" in v.detail
    st = proc_stat(int(pidfile.read_text()))
    assert st is None or st.state in ("Z", "X")  # the setsid grandchild is gone too


def test_a_command_that_cannot_run_is_an_error_not_a_rejection(tmp_path: Path) -> None:
    ws = space(tmp_path)
    (Path(ws.path) / "src/app.py").write_text("x = 2\n")
    cfg = VerifyConfig((VerifyCommand(("no-such-verifier-xyz", "--all"), name="lint"),), enabled=True)
    v = run(cfg, ws, tmp_path)
    assert (v.outcome, v.check) == ("error", "lint")
    assert "'no-such-verifier-xyz' not found on PATH" in v.detail


def test_without_a_worktree_only_the_commands_run(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cfg = VerifyConfig(
        (VerifyCommand((PY, "-c", "import os; assert os.listdir('.') == []"), name="empty"),), enabled=True
    )
    v = run(cfg, None, tmp_path, workdir=scratch)
    assert v.verified and [c.name for c in v.checks] == ["empty"]


BASE = """
[providers.p]
kind = "simulated"
[[models]]
name = "m"
provider = "p"
[routing]
default_model = "m"
"""


def test_verify_config_loads_and_bad_entries_are_located() -> None:
    loaded = loads_config(BASE, "c.toml")
    assert not loaded.verify.enabled
    loaded = loads_config(
        BASE + '[verify]\nallowed_paths = ["src/**"]\n[[verify.commands]]\nargv = ["pytest", "-q"]\ntimeout_s = 30\n',
        "c.toml",
    )
    assert loaded.verify.enabled and loaded.verify.commands[0].argv == ("pytest", "-q")
    assert loaded.verify.commands[0].label == "pytest -q"
    assert loads_config(BASE + "[verify]\n", "c.toml").verify.enabled
    with pytest.raises(ConfigError) as err:
        loads_config(
            BASE + '[verify]\nallowed_paths = ["/etc/**"]\n[[verify.commands]]\nargv = []\npass_env = ["A B"]\n',
            "c.toml",
        )
    text = str(err.value)
    assert "c.toml:10:17: verify.allowed_paths: paths are relative globs such as 'src/**'" in text
    assert "verify.commands[0].argv: argv needs at least the program" in text
    assert "verify.commands[0].pass_env: not an environment variable name: 'A B'" in text


def test_names_git_would_read_as_options_are_config_errors() -> None:
    with pytest.raises(ConfigError) as err:
        loads_config(
            BASE + '[workspace]\nbase = "--orphan"\nbranch_prefix = "-x/"\n[delivery]\nremote = "--upload-pack=x"\n',
            "c.toml",
        )
    text = str(err.value)
    for key in ("workspace.base", "workspace.branch_prefix", "delivery.remote"):
        assert f"{key}: " in text and "starts with '-', which git would read as an option" in text


# Verification in a process of its own, which reports its peak memory: what it read of the check's output
# and of the change shows there (a 200 MB log or diff read whole would be over 200 MB).
_MEASURED = """
import json, os, sys
from pathlib import Path
from switchyard.config.delivery import VerifyCommand, VerifyConfig
from switchyard.providers.processes import ChildProcesses
from switchyard.redact import Redactor
from switchyard.verify import verify
from switchyard.worktree import Workspace
repo, wt, run_dir, argv = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ws = Workspace.open(Path(repo), Path(wt), "T-1", "sy/", "HEAD")
cmds = (VerifyCommand(tuple(argv), name="noisy"),) if argv else ()
v = verify(VerifyConfig(cmds, enabled=True), Path(wt), ws, run_dir=Path(run_dir), redactor=Redactor(()),
           children=ChildProcesses(), env=dict(os.environ))
# This process's own peak (VmHWM: of its memory since exec; ru_maxrss would carry the parent's over)
peak_kb = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
print(json.dumps({"outcome": v.outcome, "check": v.check, "detail": v.detail,
                  "peak_mb": peak_kb // 1024}))
"""


def _measured(tmp_path: Path, ws: Workspace, argv: list[str]) -> dict:  # type: ignore[type-arg]
    import json
    import subprocess

    proc = subprocess.run(
        [PY, "-c", _MEASURED, ws.repo, ws.path, str(tmp_path / "run"), json.dumps(argv)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_a_check_that_prints_without_end_is_kept_bounded_on_disk_and_in_memory(tmp_path: Path) -> None:
    from switchyard.verify import LOG_KEEP_BYTES

    ws = space(tmp_path)
    (Path(ws.path) / "src/app.py").write_text("x = 2\n")
    noisy = ["sh", "-c", "echo first line; yes | head -c 200000000; echo; echo the last words; exit 1"]
    v = _measured(tmp_path, ws, noisy)
    assert (v["outcome"], v["check"]) == ("rejected", "noisy")
    assert v["detail"].startswith("exited with status 1\n") and v["detail"].endswith("the last words\n")
    assert v["peak_mb"] < 120, v  # the 200 MB never held in memory
    log = tmp_path / "run" / "verify-1.log"
    assert log.stat().st_size < 2 * LOG_KEEP_BYTES + 200
    text = log.read_text()
    assert text.startswith("first line\ny\n") and text.endswith("y\n\nthe last words\n")
    assert "bytes of output not kept]" in text


def test_a_change_too_large_to_scan_is_rejected_by_its_size(tmp_path: Path) -> None:
    from switchyard.worktree import SCAN_FILE_BYTES

    ws = space(tmp_path)
    wt = Path(ws.path)
    (wt / "src/app.py").write_text("x = 2\n")
    with open(wt / "data.txt", "wb") as f:  # short lines: the most objects a line-per-object reading makes
        for _ in range(SCAN_FILE_BYTES // (1 << 20) + 4):
            f.write(b"y\n" * (1 << 19))
    size = (wt / "data.txt").stat().st_size
    v = _measured(tmp_path, ws, [])
    assert (v["outcome"], v["check"]) == ("rejected", "secrets")
    assert v["detail"] == (
        f"the change is too large to scan for secrets: 1 file(s) over {SCAN_FILE_BYTES:,} bytes: data.txt ({size:,} bytes)"
    )
    assert v["peak_mb"] < 120, v

    # Just under the limit it is read, bounded, and a key at its end is still found.
    with open(wt / "data.txt", "wb") as f:
        f.write(b"y\n" * ((SCAN_FILE_BYTES - 100) // 2))
        f.write(b"key = 'sk-ant-abcdefghijklmnop1234'\n")
    v = _measured(tmp_path, ws, [])
    assert (v["outcome"], v["check"]) == ("rejected", "secrets"), v
    assert v["detail"].startswith("added 1 line(s) that look like a secret:\ndata.txt: key = ")
    assert v["peak_mb"] < 150, v
