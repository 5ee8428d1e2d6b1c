"""Verified outcomes and delivery, end to end: `switchyard run` on a real git repository with a bare remote.

The agent is tests/fakes/fake_agent.py in `edit` mode (it writes the files a model is
told to); `gh` and `bd` are tests/fakes/fake_gh.py, which records every call and keeps
the pull requests, comments and labels GitHub would keep. The real Claude Code CLI runs
the same flow in test_claude_code.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from switchyard.ledger import Ledger
from test_coordinator import EXE, FAKE, status, wait_for
from test_worktree import git, make_repo

FAKE_GH = str(Path(__file__).parent / "fakes" / "fake_gh.py")
GOOD = "def f():\n    return 2\n"
BAD = "def f():\n    return 1\n"
CHECK = "from feature import f\nassert f() == 2, f'f() returned {f()}, expected 2'\nprint('check passed')\n"
ISSUE = {
    "number": 7,
    "title": "Make f return 2",
    "body": "f() must return 2.",
    "labels": [{"name": "agent"}],
    "url": "https://github.com/o/r/issues/7",
    "createdAt": "2026-11-01T00:00:00Z",
}


def tools(bin_dir: Path) -> Path:
    bin_dir.mkdir(exist_ok=True)
    for name in ("gh", "bd"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" {name} "$@"\n')
        script.chmod(0o755)
    return bin_dir


def project(
    tmp_path: Path,
    *,
    edits: dict[str, dict[str, str]],
    delivery: str = "pr",
    verify: str = '[[verify.commands]]\nname = "check"\nargv = ["{py}", "check.py"]\ntimeout_s = 60\n',
    extra: str = "",
    routing: str = "",
    escalate: str = "retry_count >= 1",
    source: str = '[[sources]]\nkind = "github"\nrepo = "o/r"\nlabel = "agent"\n',
) -> tuple[Path, Path, dict[str, str]]:
    """A repository with its own check, a bare remote, a config in the repository; (config, remote, env)."""
    repo = make_repo(tmp_path / "repo", {"check.py": CHECK, "README.md": "project\n"})
    remote = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    template = json.dumps([sys.executable, FAKE, "--model", "{model}", "--out", "{output_file}"])
    cfg = repo / "switchyard.toml"
    cfg.write_text(
        f"""
[providers.agent]
command_template = {template}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
max_retries = 0
timeout_s = 60
env = {{ FAKE_MODE = "edit", FAKE_EDITS = {json.dumps(json.dumps(edits))}, FAKE_RECORD = "{tmp_path / "last_call.json"}" }}

[[models]]
name = "cheap"
provider = "agent"
cost_per_million_input = 1.0
cost_per_million_output = 5.0

[[models]]
name = "strong"
provider = "agent"
cost_per_million_input = 3.0
cost_per_million_output = 15.0

[routing]
default_model = "cheap"
{routing}

[[routing.rules]]
condition = "{escalate}"
model = "strong"
reason = "escalate after a rejection"

[runner]
max_attempts = 1

[coordinator]
max_workers = 2
max_attempts = 2
poll_interval_s = 0.05

{source}delivery = "{delivery}"

{verify.replace("{py}", sys.executable)}
{extra}
"""
    )
    bin_dir = tools(tmp_path / "bin")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_GH_LOG": str(tmp_path / "gh.log"),
        "FAKE_GH_STATE": str(tmp_path / "gh-state.json"),
        "FAKE_GH_ISSUES": json.dumps([ISSUE]),
    }
    return cfg, remote, env


def run(cfg: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "run", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=240,
        check=False,
    )


def gh_calls(tmp_path: Path, call: str | None = None) -> list[dict[str, Any]]:
    path = tmp_path / "gh.log"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if call is None or r["call"] == call]


def gh_state(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "gh-state.json").read_text())  # type: ignore[no-any-return]


def test_rejected_change_escalates_and_the_verified_one_becomes_a_pull_request(tmp_path: Path) -> None:
    cfg, remote, env = project(tmp_path, edits={"cheap": {"feature.py": BAD}, "strong": {"feature.py": GOOD}})
    proc = run(cfg, env, "--once")  # no --source: the config's [[sources]]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = status(cfg)
    assert row["task"] == "gh-7" and row["state"] == "done" and row["models"] == ["cheap", "strong"]
    assert row["note"] == "pull request https://github.com/o/r/pull/100"

    with Ledger.open(cfg.parent / ".switchyard" / "ledger.db") as ledger:
        first, second = ledger.attempts(task_id="gh-7")
    assert (first.model, first.status, first.verdict, first.verify_check) == ("cheap", "rejected", "rejected", "check")
    assert "f() returned 1, expected 2" in (first.verify_detail or "") and first.error_class == "rejected"
    assert (second.model, second.status, second.verdict, second.task_retry) == ("strong", "ok", "verified", 1)
    assert second.completed and not first.completed
    assert second.verify_detail == "verified: change ok, secrets ok, check ok"
    # The model that tried again was told why the first change was rejected (the check and its output).
    prompt = json.loads((tmp_path / "last_call.json").read_text())["prompt"]
    assert prompt.startswith("Make f return 2\n") and "rejected by the check 'check'" in prompt
    assert "AssertionError: f() returned 1, expected 2" in prompt

    # The verified change is on the branch at the remote: the strong model's file, from a clean start.
    branch = "switchyard/gh-7"
    assert git(remote, "show", f"{branch}:feature.py") + "\n" == GOOD
    message = git(remote, "log", "-1", "--format=%B", branch)
    assert message.startswith("Make f return 2\n\nhttps://github.com/o/r/issues/7")
    assert "Switchyard-Task: gh-7" in message and "Switchyard-Model: cheap, strong" in message
    assert "Switchyard-Attempts: 2" in message
    assert f"Switchyard-Cost-USD: {first.cost_usd + second.cost_usd}" in message
    assert git(remote, "rev-list", "--count", f"main..{branch}") == "1"

    # One pull request, whose body names each attempt's model, why it was chosen, cost and verdict.
    [create] = gh_calls(tmp_path, "pr create")
    assert "--head=switchyard/gh-7" in create["args"] and "--base=main" in create["args"]
    assert "--title=Make f return 2" in create["args"] and "--repo=o/r" in create["args"]
    body = create["body"]
    assert "Closes #7" in body and "| `cheap` | no rule matched; default model | rejected (check) |" in body
    assert "| `strong` | escalate after a rejection | verified |" in body
    assert "$0.0095" in body and "- `strong`: verified: change ok, secrets ok, check ok" in body
    assert "- `cheap` rejected by `check`: exited with status 1 ... AssertionError: f() returned 1, expected 2" in body
    # The issue: taken (in-progress), then done with one comment pointing at the pull request.
    state = gh_state(tmp_path)
    assert state["labels"]["o/r#7"] == ["done"]
    [comment] = state["comments"]["o/r#7"]
    assert "Done: pull request https://github.com/o/r/pull/100." in comment and "`strong`" in comment
    edits = [c["args"] for c in gh_calls(tmp_path, "issue edit")]
    assert edits == [
        ["issue", "edit", "7", "--add-label=in-progress", "--repo=o/r"],
        ["issue", "edit", "7", "--add-label=done", "--remove-label=in-progress", "--repo=o/r"],
    ]
    # Its worktree went to the pool for the next task; the branch stays.
    worktrees = cfg.parent / ".switchyard" / "worktrees"
    assert [p.name for p in (worktrees / ".pool").iterdir()] == ["gh-7"] and not (worktrees / "gh-7").exists()
    # The repository the user works in is untouched: the work happened in the task's worktree.
    assert not (cfg.parent / "feature.py").exists()
    assert git(cfg.parent, "status", "--porcelain") == "?? switchyard.toml"

    # Running again changes nothing: the task is known, its pull request exists.
    again = run(cfg, env, "--once")
    assert again.returncode == 0 and len(gh_calls(tmp_path, "pr create")) == 1


def test_a_task_that_ends_dead_gets_a_comment_with_the_reason(tmp_path: Path) -> None:
    cfg, remote, env = project(tmp_path, edits={"*": {"feature.py": BAD}})
    proc = run(cfg, env, "--once")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [row] = status(cfg)
    assert row["state"] == "dead" and "check: exited with status 1" in row["last_error"]
    state = gh_state(tmp_path)
    assert state["labels"]["o/r#7"] == ["failed"]
    [comment] = state["comments"]["o/r#7"]
    assert "switchyard gave up on this task: strong: [rejected] check: exited with status 1" in comment
    assert gh_calls(tmp_path, "pr create") == []
    assert subprocess.run(["git", "-C", str(remote), "rev-parse", "--verify", "-q", "switchyard/gh-7"]).returncode != 0


@pytest.mark.parametrize(("mode", "pushed", "prs"), [("commit", False, 0), ("push", True, 0), ("none", False, 0)])
def test_delivery_goes_as_far_as_the_source_says(tmp_path: Path, mode: str, pushed: bool, prs: int) -> None:
    cfg, remote, env = project(tmp_path, edits={"*": {"feature.py": GOOD}}, delivery=mode)
    proc = run(cfg, env, "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = status(cfg)
    assert row["state"] == "done"
    on_remote = subprocess.run(["git", "-C", str(remote), "rev-parse", "--verify", "-q", "switchyard/gh-7"])
    assert (on_remote.returncode == 0) is pushed
    assert len(gh_calls(tmp_path, "pr create")) == prs
    local = subprocess.run(
        ["git", "-C", str(cfg.parent), "log", "-1", "--format=%B", "switchyard/gh-7"], capture_output=True, text=True
    )
    assert ("Switchyard-Task: gh-7" in local.stdout) is (mode != "none")
    if mode == "none":
        assert gh_calls(tmp_path, "issue edit") == [] and gh_calls(tmp_path, "issue comment") == []


@pytest.mark.parametrize("block", ["pr list", "pr create"])
def test_kill_9_between_push_and_pull_request_makes_exactly_one(tmp_path: Path, block: str) -> None:
    cfg, remote, env = project(tmp_path, edits={"*": {"feature.py": GOOD}})
    blocked = tmp_path / "blocked.pid"
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(cfg), "--once"],
        env={**os.environ, **env, "FAKE_GH_BLOCK": block, "FAKE_GH_BLOCKED": str(blocked)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(blocked.exists, 120, f"`gh {block}` to be reached")
        assert git(remote, "show", "switchyard/gh-7:feature.py") + "\n" == GOOD  # pushed before the crash
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if blocked.exists():
            os.kill(int(blocked.read_text()), signal.SIGKILL)
    again = run(cfg, env, "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    [row] = status(cfg)
    assert row["state"] == "done" and row["note"] == "pull request https://github.com/o/r/pull/100"
    assert len(gh_calls(tmp_path, "pr create")) == 1
    assert len(gh_state(tmp_path)["prs"]) == 1
    assert len(gh_state(tmp_path)["comments"]["o/r#7"]) == 1


def test_a_failed_pull_request_ends_the_task_dead_and_says_why(tmp_path: Path) -> None:
    cfg, remote, env = project(tmp_path, edits={"*": {"feature.py": GOOD}})
    proc = run(cfg, {**env, "FAKE_GH_FAIL": "pr create"}, "--once")
    assert proc.returncode == 1
    [row] = status(cfg)
    assert row["state"] == "dead"
    assert row["last_error"].startswith("delivery failed: pr: 'gh pr create' exited 1: gh: pr create failed: HTTP 502")
    [comment] = gh_state(tmp_path)["comments"]["o/r#7"]
    assert "delivery failed" in comment
    assert git(remote, "show", "switchyard/gh-7:feature.py") + "\n" == GOOD  # the work is not lost


def test_on_retry_continue_lets_the_next_model_see_the_work(tmp_path: Path) -> None:
    edits = {"cheap": {"feature.py": BAD, "notes.md": "tried\n"}, "strong": {"feature.py": GOOD}}
    cfg, remote, env = project(tmp_path, edits=edits, extra='[workspace]\non_retry = "continue"\n')
    assert run(cfg, env, "--once").returncode == 0
    assert git(remote, "show", "switchyard/gh-7:notes.md") == "tried"  # cheap's file stayed for strong
    cfg2, remote2, env2 = project(tmp_path / "reset", edits=edits)
    assert run(cfg2, env2, "--once").returncode == 0
    shown = subprocess.run(["git", "-C", str(remote2), "show", "switchyard/gh-7:notes.md"], capture_output=True)
    assert shown.returncode != 0  # reset: strong started from the base


def test_hostile_task_ids_each_get_their_own_worktree_and_end(tmp_path: Path) -> None:
    cfg, _remote, env = project(tmp_path, edits={"*": {"feature.py": GOOD}}, extra='[workspace]\nmode = "worktree"\n')
    ids = ["a.lock", "a..b", "x/y", "x_y", "x?y", "nul\u0000id"]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": i, "title": f"task {i!r}"}) + "\n" for i in ids))
    proc = run(cfg, env, "--tasks", str(tasks), "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["task"]: r for r in status(cfg)}
    assert set(rows) == set(ids) and {r["state"] for r in rows.values()} == {"done"}
    worktrees = git(cfg.parent, "worktree", "list", "--porcelain")
    assert worktrees.count("branch refs/heads/switchyard/") == len(ids)


def test_a_workspace_that_cannot_be_made_ends_the_task_dead_with_the_reason(tmp_path: Path) -> None:
    cfg, _remote, env = project(
        tmp_path, edits={"*": {"feature.py": GOOD}}, extra='[workspace]\nbase = "no-such-branch"\n'
    )
    proc = run(cfg, env, "--once")
    assert proc.returncode == 1
    [row] = status(cfg)
    assert row["state"] == "dead" and row["attempts"] == 0
    assert row["last_error"].startswith("could not make the task's worktree: 'git rev-parse' failed")
    [comment] = gh_state(tmp_path)["comments"]["o/r#7"]
    assert "could not make the task's worktree" in comment


def test_beads_tasks_are_committed_and_their_bead_closed(tmp_path: Path) -> None:
    bead = {"id": "bd-a1", "title": "Make f return 2", "description": "f() must return 2", "priority": 1}
    cfg, _remote, env = project(
        tmp_path, edits={"*": {"feature.py": GOOD}}, delivery="commit", source='[[sources]]\nkind = "beads"\n'
    )
    proc = run(cfg, {**env, "FAKE_BD_ISSUES": json.dumps([bead])}, "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = status(cfg)
    assert (
        row["state"] == "done"
        and row["note"].startswith("commit ")
        and row["note"].endswith("on branch switchyard/bd-a1")
    )
    calls = [c["args"] for c in gh_calls(tmp_path) if c["tool"] == "bd" and c["call"] != "ready"]
    assert calls[0] == ["update", "--status=in_progress", "--", "bd-a1"]
    assert calls[1][:1] == ["close"] and calls[1][-2:] == ["--", "bd-a1"]
    assert calls[1][1].startswith("--reason=Done: commit ") and len(calls) == 2
    assert "Switchyard-Task: bd-a1" in git(cfg.parent, "log", "-1", "--format=%B", "switchyard/bd-a1")


def test_a_review_that_still_rejects_escalates_the_change_it_reviewed(tmp_path: Path) -> None:
    reviewer = json.dumps([sys.executable, FAKE, "--model", "{model}", "--out", "{output_file}"])
    extra = f"""
[providers.reviewer]
command_template = {reviewer}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
max_retries = 0
env = {{ FAKE_MODE = "judge", FAKE_JUDGE_FILE = "feature.py", FAKE_JUDGE_WANT = "return 2" }}

[[models]]
name = "judge"
provider = "reviewer"

[workflows.reviewed]
max_loops = 0
stages = [
    {{ name = "implement", route = true }},
    {{ name = "review", model = "judge", loop_to = "implement", reject_if = "^REJECT" }},
]
"""
    cfg, remote, env = project(
        tmp_path,
        edits={"cheap": {"feature.py": BAD}, "strong": {"feature.py": GOOD}},
        verify="[verify]\nreview = true\n",  # the built-in checks, and the review's verdict
        extra=extra,
        routing='default_workflow = "reviewed"',
        escalate="last_outcome == 'rejected' and rejected_count >= 1",
    )
    proc = run(cfg, env, "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Ledger.open(cfg.parent / ".switchyard" / "ledger.db") as ledger:
        attempts = ledger.attempts(task_id="gh-7")
    assert [(a.stage, a.model, a.status, a.verdict, a.verify_check) for a in attempts] == [
        ("implement", "cheap", "ok", "verified", None),  # its change passed the built-in checks ...
        ("review", "judge", "rejected", "rejected", "review"),  # ... but the review rejected it, for good
        ("implement", "strong", "ok", "verified", None),  # escalated: the rules saw last_outcome = 'rejected'
        ("review", "judge", "ok", None, None),
    ]
    assert attempts[2].task_retry == 1 and attempts[3].completed
    assert git(remote, "show", "switchyard/gh-7:feature.py") + "\n" == GOOD
    report = subprocess.run(
        [EXE, "report", "--config", str(cfg)], capture_output=True, text=True, check=True, env={**os.environ, **env}
    ).stdout
    assert "cheap verified -> judge rejected (review) -> strong verified: 1 task(s)" in report
    assert "judge by review: 1" in report


def test_a_delivery_template_with_an_unknown_field_stops_the_run_before_any_task(tmp_path: Path) -> None:
    cfg, _remote, env = project(
        tmp_path, edits={"*": {"feature.py": GOOD}}, extra='[delivery]\ncommit_message = "{titel}"\n'
    )
    proc = run(cfg, env, "--once")
    assert proc.returncode == 2
    assert "delivery.commit_message: unknown template field {titel} (did you mean {title}?)" in proc.stderr
    assert gh_calls(tmp_path) == []
