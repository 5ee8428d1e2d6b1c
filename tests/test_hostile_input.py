"""Hostile and broken input: every one is a clear error with its location (exit 2), never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from switchyard.cli import cli
from switchyard.config import loads_config
from switchyard.errors import ConfigError, InputError
from switchyard.sources import SourceError, TasksFile
from switchyard.task import MAX_NESTING, Task, load_task_arg

CONFIG = """
[providers.sim]
kind = "simulated"
latency_ms = 0

[[models]]
name = "m"
provider = "sim"

[routing]
default_model = "m"
"""

DEEP = "[" * 200_000 + "]" * 200_000


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "switchyard.toml"
    path.write_text(CONFIG)
    return str(path)


# --- a task on the command line ------------------------------------------------------------------------------------------


def test_task_arg_nested_200k_deep_is_located(config: str, tmp_path: Path) -> None:
    code, out, err = run("route", "--config", config, "--task", DEEP)
    assert (code, out) == (2, "")
    assert f"error: --task: line 1, column {MAX_NESTING + 1}: nested more than {MAX_NESTING} levels deep" in err
    f = tmp_path / "deep.json"
    f.write_text('{"id": "a",\n "metadata": ' + DEEP + "}")
    code, _, err = run("route", "--config", config, "--task", f"@{f}")
    assert code == 2 and f"error: {f}:2:{13 + MAX_NESTING}: nested more than {MAX_NESTING} levels deep" in err


def test_task_nested_deeper_than_the_limit_but_readable_is_refused_too() -> None:
    # json.loads reads 100 levels; later steps (json.dumps, traces) must not meet them.
    with pytest.raises(InputError, match=rf"--task: task.metadata\[0\]\[0\]: nested more than {MAX_NESTING}"):
        load_task_arg('{"id": "a", "metadata": [' + "[" * 100 + "]" * 100 + "]}")
    assert load_task_arg('{"id": "a", "metadata": {"a": {"b": [1, [2]]}}}').metadata == {"a": {"b": [1, [2]]}}


def test_task_file_with_invalid_utf8_is_located(config: str, tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_bytes(b'{"id": "a",\n "title": "caf\xe9"}')
    code, out, err = run("route", "--config", config, "--task", f"@{f}")
    assert (code, out) == (2, "")
    assert f"error: {f}:2:15: not valid UTF-8 (byte 0xe9); save it as UTF-8" in err


def test_lone_surrogate_in_a_task_is_an_input_error(config: str) -> None:
    code, out, err = run("route", "--config", config, "--task", '{"id": "a\\ud800", "title": "x"}', "--explain")
    assert (code, out) == (2, "")
    assert "error: --task: task.id: not valid Unicode text (a lone surrogate at character 2)" in err
    with pytest.raises(InputError, match=r"task.metadata.k \(a key\): not valid Unicode"):
        Task.from_dict({"id": "a", "metadata": {"k": {"\ud800": 1}}})
    # A pair of escapes is one character, and fine.
    assert load_task_arg('{"id": "\\ud83d\\ude00"}').id == "\U0001f600"


def test_bad_json_names_line_and_column() -> None:
    with pytest.raises(InputError, match=r"^--task: line 2, column 1: not valid JSON: Expecting"):
        load_task_arg('{"id": "a",\n}')


# --- tasks files ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.json", b'[{"id": "a"},\n {"id": "b", "title": "\xff"}]', ":2:24: not valid UTF-8 (byte 0xff)"),
        ("t.jsonl", b'{"id": "a"}\n\n{"id": "\xc3"}\n', ":3:9: not valid UTF-8 (byte 0xc3)"),
        ("t.toml", b'[[tasks]]\nid = "\x80"\n', ":2:7: not valid UTF-8 (byte 0x80)"),
        ("t.json", DEEP.encode(), f":1:{MAX_NESTING + 1}: nested more than {MAX_NESTING} levels deep"),
        (
            "t.json",
            b'{"tasks": [{"id": "a"}], "x": ' + DEEP.encode() + b"}",
            f":1:{30 + MAX_NESTING}: nested more than",
        ),
        ("t.toml", b"[[tasks]]\nid = 'a'\nx = " + DEEP.encode() + b"\n", ": nested too deeply to read"),
        ("t.json", b'{"id": "a"}', ": expected a JSON list of tasks"),
    ],
)
def test_an_unreadable_tasks_file_is_one_located_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(SourceError) as info:
        TasksFile(f).fetch()
    assert str(info.value).startswith(str(f) + message)
    with pytest.raises(InputError, match="^" + str(f)):
        TasksFile(f).check()


def test_a_deep_line_in_a_jsonl_file_is_skipped_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text('{"id": "a"}\n' + DEEP + '\n{"id": "b"}\n')
    fetched = TasksFile(f).fetch()
    assert [t.id for t in fetched.tasks] == ["a", "b"]
    assert fetched.skipped == [
        f"{f}:2:{MAX_NESTING + 1}: nested more than {MAX_NESTING} levels deep; a task is an object of a few levels"
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.jsonl", '{"id": "a"}\n\n{"id": "b", "priority": "urgent"}\n{"id": "a"}\n{oops\n'),
        ("t.json", '[\n  {"id": "a"},\n\n  {"id": "b",\n   "priority": "urgent"},\n {"id": "a"}, {"x": [1, 2]}\n]'),
        (
            "t.json",
            '{"other": [{"id": "z"}], "tasks": [{"id": "a"},\n\n  {"id": "b", "priority": "urgent"},\n{"id": "a"}]}',
        ),
        ("t.toml", '[[tasks]]\nid = "a"\n\n[[tasks]]\nid = "b"\npriority = "urgent"\n[[tasks]]\nid = "a"\n'),
    ],
)
def test_skip_messages_name_entries_by_their_line_from_1(tmp_path: Path, name: str, content: str) -> None:
    f = tmp_path / name
    f.write_text(content)
    fetched = TasksFile(f).fetch()
    assert [t.id for t in fetched.tasks] == ["a"]
    lines = content.splitlines()
    urgent = next(n for n, line in enumerate(lines, 1) if '"b"' in line)
    again = max(n for n, line in enumerate(lines, 1) if '"a"' in line)
    if name.endswith(".toml"):  # a [[tasks]] entry is named by its header's line
        urgent, again = urgent - 1, again - 1
    assert fetched.skipped[0] == f"{f}:{urgent}: task.priority: expected an integer 0-4 or 'P0'-'P4', got 'urgent'"
    assert fetched.skipped[1] == f"{f}:{again}: duplicate task id 'a' (kept the first)"
    for message in fetched.skipped:
        assert message.startswith(f"{f}:") and "[" not in message.split(": ")[0]


def test_run_with_an_unreadable_tasks_file_exits_2_before_it_starts(config: str, tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_bytes(b'[{"id": "\xff"}]')
    proc = subprocess.run(
        [Path(sys.executable).parent / "switchyard", "run", "--config", config, "--tasks", str(f), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"error: {f}:1:10: not valid UTF-8 (byte 0xff)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / ".switchyard").exists()  # nothing started


# --- the config file -----------------------------------------------------------------------------------------------------


def test_a_config_nested_200k_deep_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nested too deeply to read"):
        loads_config(CONFIG + "\n[runner]\nruns_dir = " + DEEP + "\n", "cfg.toml")
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace('default_model = "m"', "default_model = " + DEEP))
    code, out, err = run("config", "check", "--config", str(path))
    assert (code, out) == (2, "") and f"{path}: arrays or inline tables are nested too deeply" in err


def test_json_helper_results_are_plain_json() -> None:
    # The nesting check skips brackets inside strings, escaped quotes included.
    text = json.dumps({"id": "a", "title": '[[[{{"\\' * 50})
    assert load_task_arg(text).title == '[[[{{"\\' * 50


# --- values inside a task -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"id": "a", "metadata": {"x": NaN}}', "--task: line 1, column 31: NaN is not a number JSON allows"),
        (
            '{"id": "a", "metadata": {"x": -Infinity}}',
            "--task: line 1, column 31: -Infinity is not a number JSON allows",
        ),
        ('{"id": "a", "metadata": {"x": 1e400}}', "--task: line 1, column 31: 1e400 is too large for a number"),
        (
            '{"id": "a", "estimated_tokens": 99999999999999999999}',
            "--task: task.estimated_tokens: at most 1,000,000,000",
        ),
        ('{"id": "a", "retry_count": 99999999999999999999}', "--task: task.retry_count: at most 1,000"),
        (
            '{"id": "a", "error_tracking": {"attempt_count": 10000}}',
            "--task: task.error_tracking.attempt_count: at most",
        ),
    ],
)
def test_numbers_in_a_task_that_would_break_later_are_input_errors(doc: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        load_task_arg(doc)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "0001-01-01"])
def test_an_at_time_at_the_edge_of_the_calendar_is_an_input_error(config: str, at: str) -> None:
    code, out, err = run("route", "--config", config, "--task", '{"id": "a"}', "--at", at)
    assert (code, out) == (2, "")
    assert f"error: --at {at}: too close to the ends of the calendar" in err


def test_a_toml_tasks_file_with_nan_skips_that_task_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "t.toml"
    f.write_text('[[tasks]]\nid = "a"\n\n[[tasks]]\nid = "b"\nmetadata = { x = nan }\n')
    fetched = TasksFile(f).fetch()
    assert [t.id for t in fetched.tasks] == ["a"]
    assert fetched.skipped == [
        f"{f}:4: task.metadata.x: nan is not a number a task can hold (JSON has no NaN or infinity)"
    ]
