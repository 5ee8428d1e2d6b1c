"""`status` and `log` over a ledger: summary from SQL, the tasks worth a look, and --all streamed page by page."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from switchyard.cli import cli
from switchyard.ledger.store import AttemptRecord, Ledger

CONFIG = """
[providers.sim]
kind = "simulated"
[[models]]
name = "m"
provider = "sim"
cost_per_million_input = 1.0
cost_per_million_output = 2.0
[routing]
default_model = "m"
[ledger]
{ledger}
"""

LONG = "the provider said no: " + "x" * 200


def make(tmp_path: Path, ledger_url: str, tasks: int = 1205) -> tuple[Path, Ledger]:
    cfg = tmp_path / "switchyard.toml"
    where = f'url = "{ledger_url}"' if "://" in ledger_url else f'path = "{ledger_url}"'
    cfg.write_text(CONFIG.format(ledger=where))
    ledger = Ledger.open(ledger_url)
    ledger.add_tasks(
        [(f"T-{i:05d}", json.dumps({"id": f"T-{i:05d}", "title": f"t{i}"}), "file") for i in range(tasks)], 1000
    )
    recs = [
        AttemptRecord(
            f"T-{i:05d}:a",
            f"T-{i:05d}",
            "sim",
            "m",
            "ok" if i % 50 else "failed",
            10_000 + i,
            10_100 + i,
            cost_usd=Decimal("0.001"),
            error_class=None if i % 50 else "server_error",
            error_message=None if i % 50 else LONG,
        )
        for i in range(tasks)
    ]
    with ledger.db.transaction():
        ledger.record_many(recs)
    for i in range(tasks):
        if i % 50 == 0:
            ledger.set_task(f"T-{i:05d}", "dead", 5000 + i, last_error="m: [server_error] " + LONG)
        elif i % 101 == 0:
            ledger.set_task(f"T-{i:05d}", "blocked", 5000 + i, note="daily budget reached (limit $1.00)")
        elif i % 211 == 0:
            ledger.set_task(f"T-{i:05d}", "running", 5000 + i)
        elif i < tasks - 5:
            ledger.set_task(f"T-{i:05d}", "done", 5000 + i)
    return cfg, ledger


def invoke(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_status_summarises_and_lists_the_tasks_worth_a_look(tmp_path: Path, ledger_url: str) -> None:
    cfg, ledger = make(tmp_path, ledger_url)
    ledger.close()
    code, out, err = invoke("status", "--config", str(cfg))
    assert code == 0, err
    lines = out.splitlines()
    # 1205 tasks: every 50th dead, then every 101st blocked, every 211th running, the last few still queued.
    assert lines[0] == "1,205 task(s): 4 queued, 5 running, 11 blocked, 1,160 done, 25 dead; 1,205 attempt(s); $1.2050"
    assert "running:" in out and "blocked (the newest 10 of 11; all of them: --all --state blocked):" in out
    assert "daily budget reached (limit $1.00)" in out
    assert "dead, most recent (the newest 10 of 25; all of them: --all --state dead):" in out
    dead = [line for line in lines if line.startswith("T-01200")]
    assert dead and dead[0].endswith("…") and "x" * 80 not in dead[0]  # cut with an ellipsis
    assert "T-00001" not in out  # done tasks are counted, not listed
    code, out, _ = invoke("status", "--config", str(cfg), "--json")
    view = json.loads(out)
    assert view["tasks"] == 1205 and view["attempts"] == 1205 and view["cost_usd"] == "1.205"
    assert view["states"] == {"queued": 4, "running": 5, "blocked": 11, "done": 1160, "dead": 25}
    assert [t["task"] for t in view["listed"]["dead"]][:2] == ["T-01200", "T-01150"]
    assert len(view["listed"]["dead"]) == 10 and set(view["listed"]) == {"running", "blocked", "dead"}
    code, out, _ = invoke("status", "--config", str(cfg), "--state", "queued", "--json")
    assert [t["task"] for t in json.loads(out)["listed"]["queued"]] == [f"T-{i:05d}" for i in range(1204, 1200, -1)]


def test_status_all_streams_every_task_in_pages(tmp_path: Path, ledger_url: str) -> None:
    cfg, ledger = make(tmp_path, ledger_url)
    ledger.close()
    code, out, err = invoke("status", "--config", str(cfg), "--all", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["task"] for r in rows] == [f"T-{i:05d}" for i in range(1205)]  # past one page of 1000, none twice
    assert rows[50]["state"] == "dead" and rows[50]["attempts"] == 1 and rows[50]["models"] == ["m"]
    code, out, _ = invoke("status", "--config", str(cfg), "--all", "--state", "dead", "--state", "blocked")
    lines = out.splitlines()
    assert len(lines) == 2 + 25 + 11 and lines[0].split()[:2] == ["task", "state"]
    assert all("…" in line for line in lines[2:27])
    code, out, _ = invoke("status", "--config", str(cfg), "--all", "--state", "cancelled", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out, err = invoke("status", "--config", str(cfg), "--state", "daed")
    assert (code, out) == (2, "") and "error: --state daed: not a task state (did you mean 'dead'?)" in err


def test_status_of_an_empty_ledger(tmp_path: Path) -> None:
    cfg, ledger = make(tmp_path, str(tmp_path / "l.db"), tasks=0)
    ledger.close()
    assert invoke("status", "--config", str(cfg))[:2] == (
        0,
        "no tasks yet: queue some with `switchyard run --tasks FILE`\n",
    )
    assert json.loads(invoke("status", "--config", str(cfg), "--json")[1])["tasks"] == 0


def test_log_shows_the_newest_hundred_and_all_streams(tmp_path: Path, ledger_url: str) -> None:
    cfg, ledger = make(tmp_path, ledger_url)
    ledger.close()
    code, out, _ = invoke("log", "--config", str(cfg))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 + 100 + 1
    assert "T-01105" in lines[2] and "T-01204" in lines[101]  # the newest 100, oldest first
    assert lines[-1] == "(the newest 100 of 1,205 attempts; --limit N for more, --all for every one)"
    code, out, _ = invoke("log", "--config", str(cfg), "--json", "--limit", "3")
    assert [a["task_id"] for a in json.loads(out)] == ["T-01202", "T-01203", "T-01204"]
    code, out, _ = invoke("log", "--config", str(cfg), "--all", "--json")
    assert [a["attempt_id"] for a in json.loads(out)] == [f"T-{i:05d}:a" for i in range(1205)]
    code, out, _ = invoke("log", "--config", str(cfg), "--all")
    assert len(out.splitlines()) == 2 + 1205 and "server_error" in out
    code, out, _ = invoke("log", "--config", str(cfg), "--task", "T-00050")
    assert len(out.splitlines()) == 3 and "(the newest" not in out
    code, _, err = invoke("log", "--config", str(cfg), "--all", "--limit", "5")
    assert code == 2 and "--all and --limit cannot be combined" in err


def _labelled(ledger: Ledger, now_ms: int) -> None:
    recs = [
        AttemptRecord(
            f"L-{i}", f"L-{i}", "sim", "m", "ok", now_ms - 1000 * i, now_ms - 1000 * i + 5, labels=labels, first=True
        )
        for i, labels in enumerate([("bug",), ("bug", "ui"), (), (), ("ui",)])
    ]
    with ledger.db.transaction():
        ledger.record_many(recs)


def test_report_by_label_counts_unlabelled_attempts_as_none(tmp_path: Path, ledger_url: str) -> None:
    import time

    from switchyard.report import Window, report

    cfg, ledger = make(tmp_path, ledger_url, tasks=0)
    now = int(time.time() * 1000)
    _labelled(ledger, now)
    for window in (Window(), Window(now - 3_600_000, None)):  # from the rollups, and from a scan of a partial day
        groups = {g.key["label"]: g.attempts for g in report(ledger.db, window, ("label",)).groups}
        assert groups == {"bug": 2, "ui": 2, "(none)": 2}, window
    ledger.close()
    code, out, err = invoke("report", "--config", str(cfg), "--by", "label")
    assert code == 0, err
    assert any(line.startswith("(none)") for line in out.splitlines()), out


def test_the_label_rollups_of_an_older_ledger_get_its_unlabelled_attempts(tmp_path: Path, ledger_url: str) -> None:
    import time

    from switchyard.report import Window, report

    with Ledger.open(ledger_url) as ledger:
        _labelled(ledger, int(time.time() * 1000))
        # As a ledger written before 0031 has it: no `(none)` rows, the migration not applied.
        ledger.db.execute("DELETE FROM rollup_labels WHERE label = '(none)'")
        ledger.db.execute("DELETE FROM rollup_latency WHERE dim = 'label' AND value = '(none)'")
        ledger.db.execute("DELETE FROM _migrations WHERE name = '0031_unlabelled_rollups'")
        assert {g.key["label"] for g in report(ledger.db, Window(), ("label",)).groups} == {"bug", "ui"}
    with Ledger.open(ledger_url) as ledger:  # applies 0031
        groups = {g.key["label"]: g.attempts for g in report(ledger.db, Window(), ("label",)).groups}
        assert groups == {"bug": 2, "ui": 2, "(none)": 2}
        row = ledger.db.one("SELECT SUM(n) FROM rollup_latency WHERE dim = 'label' AND value = '(none)'")
        assert row is not None and int(row[0]) == 2


def test_a_config_warning_is_printed_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cfg, ledger = make(tmp_path, str(tmp_path / "l.db"), tasks=0)
    ledger.close()
    cfg.write_text(cfg.read_text() + "[coordinator]\nmax_concurrent_workers = 2\n")
    tasks = tmp_path / "t.jsonl"
    tasks.write_text('{"id": "a", "title": "t"}\n{"id": "b", "title": "u"}\n')
    exe = str(Path(sys.executable).parent / "switchyard")
    for args in (["run", "--tasks", str(tasks), "--once"], ["status"], ["log"], ["show", "a"], ["providers"]):
        proc = subprocess.run(
            [exe, *args, "--config", str(cfg)], capture_output=True, text=True, env=dict(os.environ), check=False
        )
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stderr.count("coordinator.max_concurrent_workers is deprecated") == 1, (args, proc.stderr)


def test_the_starters_and_the_readme_say_what_the_agent_inherits() -> None:
    from importlib import resources

    from switchyard.providers.command import BASE_ENV

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    texts = {"README.md": " ".join(readme.split())}
    for name in ("starter.toml", "starter-codex.toml", "starter-gemini.toml"):
        text = resources.files("switchyard.examples").joinpath(name).read_text()
        texts[name] = " ".join(line.lstrip("# ") for line in text.splitlines())
    for name, text in texts.items():
        # Every variable the child keeps is named, and so is how to hand it another one.
        assert all(v in text for v in BASE_ENV), name
        assert "pass_env" in text and "does not inherit" in text.replace("does NOT inherit", "does not inherit"), name
