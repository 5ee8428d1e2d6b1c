"""`switchyard config migrate`: the seed system's coordinator config, converted, loads and routes as it meant to."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchyard.config import load_config, loads_config
from switchyard.config.migrate import migrate_text, to_toml
from switchyard.errors import ConfigError
from switchyard.router import Router
from switchyard.task import Task

EXE = str(Path(sys.executable).parent / "switchyard")

# The old system's config, every key the issue lists: its [coordinator], [github] and [worktree] tables, the
# bare `estimated_tokens` fact, provider `enabled`, a Claude template with -p {prompt_file} and stream-json,
# a curl template with ${VAR} in its argv and -d @{prompt_file}, an `openai api chat.completions.create` one.
OLD = """\
# adws/config.toml of the system switchyard replaces
[coordinator]
max_concurrent_workers = 3
poll_interval_seconds = 30
worker_timeout_hours = 2
log_level = "debug"

[github]
repo_owner = "acme"
repo_name = "widgets"
issue_label = "agent"

[worktree]
base_dir = "../worktrees"

[providers.claude-cli]
enabled = true
command_template = ["claude", "-p", "{prompt_file}", "--model", "{model}", "--output-format", "stream-json"]

[providers.openrouter]
enabled = true
command_template = ["curl", "-s", "-X", "POST", "https://openrouter.ai/api/v1/chat/completions", "-H", "Authorization: Bearer ${OPENROUTER_API_KEY}", "-H", "Content-Type: application/json", "-H", "HTTP-Referer: https://acme.dev", "-d", "@{prompt_file}"]

[providers.openai]
enabled = true
command_template = ["openai", "api", "chat.completions.create", "-m", "{model}", "-g", "user", "{prompt_file}"]

[providers.sketch]
enabled = false
command_template = ["curl", "-X", "POST", "https://example.invalid/...", "-H", "x-api-key: ${SKETCH_KEY}"]

[[models]]
name = "claude-sonnet-4-5"
provider = "claude-cli"
cost_per_million_input = 3.0
cost_per_million_output = 15.0

[[models]]
name = "claude-opus-4"
provider = "claude-cli"
cost_per_million_input = 15.0
cost_per_million_output = 75.0

[[models]]
name = "deepseek/deepseek-chat"
provider = "openrouter"
cost_per_million_input = 0.14
cost_per_million_output = 0.28

[[models]]
name = "gpt-4o-mini"
provider = "openai"
cost_per_million_input = 0.15
cost_per_million_output = 0.6

[[models]]
name = "sketchy"
provider = "sketch"

[routing]
default_model = "claude-sonnet-4-5"

[[routing.rules]]
condition = "priority == 0 or estimated_tokens > 50000"
model = "claude-opus-4"
reason = "Critical or big tasks get the best model"

[[routing.rules]]
condition = "labels contains 'documentation'"
model = "gpt-4o-mini"
reason = "Docs don't need an expensive model"

[[routing.rules]]
condition = "(hour >= 22 or hour <= 6) and retry_count == 0"
model = "deepseek/deepseek-chat"
reason = "Night jobs use budget model"
"""


def old_select_model(priority: int, labels: list[str], retry_count: int, hour: int, estimated_tokens: int) -> str:
    """The old system's ModelRouter.select_model over OLD's rules, written out: first match wins, else the default."""
    if priority == 0 or estimated_tokens > 50000:
        return "claude-opus-4"
    if "documentation" in labels:
        return "gpt-4o-mini"
    if (hour >= 22 or hour <= 6) and retry_count == 0:
        return "deepseek/deepseek-chat"
    return "claude-sonnet-4-5"


def test_the_old_config_is_converted_and_loads(tmp_path: Path) -> None:
    old = tmp_path / "config.toml"
    old.write_text(OLD)
    proc = subprocess.run([EXE, "config", "migrate", str(old)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    new = tmp_path / "switchyard.toml"
    new.write_text(proc.stdout)
    check = subprocess.run([EXE, "config", "check", "--config", str(new)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    # What cannot be converted is a warning naming its line.
    warnings = proc.stderr.splitlines()
    assert (
        f"warning: {old}:6: coordinator.log_level: switchyard has no such setting; left out (unknown key 'log_level')"
        in warnings
    )
    assert any(w.startswith(f"warning: {old}:30: cannot convert provider 'sketch'") for w in warnings), warnings
    assert any(w.startswith(f"warning: {old}:22: curl header(s) not carried over: HTTP-Referer") for w in warnings)

    loaded = load_config(new)
    text = new.read_text()
    # Each change carries a comment saying what it was.
    for comment in (
        "# was coordinator.max_concurrent_workers\nmax_workers = 3",
        "# was coordinator.poll_interval_seconds\nwatch_s = 30",
        "# was coordinator.worker_timeout_hours (hours -> seconds)\ndefault_timeout_s = 7200",
        '# was worktree.base_dir\ndir = "../worktrees"',
        '# was [github]; delivery = "pr"',
        "# the prompt goes on stdin",
        '# usage_format = "claude-stream-json" reads the tokens and cost',
        "# was a curl command_template: an openai provider",
        "# was `openai api chat.completions.create`",
        "# condition was: priority == 0 or estimated_tokens > 50000",
        "# disabled: its curl template names no complete URL to call; left out: x-api-key: ${SKETCH_KEY}",
    ):
        assert comment in text, comment
    assert (loaded.coordinator.max_workers, loaded.coordinator.watch_s) == (3, 30)
    assert loaded.runner.default_timeout_s == 7200
    assert loaded.workspace.dir == "../worktrees"
    [source] = loaded.sources
    assert (source.kind, source.repo, source.label, source.delivers) == ("github", "acme/widgets", "agent", "pr")
    claude = loaded.providers["claude-cli"]
    assert claude.command_template == (  # type: ignore[attr-defined]
        "claude", "-p", "--model", "{model}", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits",
    )  # fmt: skip
    assert (claude.stdin, claude.usage_format) == ("{prompt_file}", "claude-stream-json")  # type: ignore[attr-defined]
    router = loaded.providers["openrouter"]
    assert (router.kind, router.base_url, router.api_key_env) == (  # type: ignore[attr-defined]
        "openai",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
    )
    assert (loaded.providers["openai"].kind, loaded.providers["openai"].api_key_env) == ("openai", "OPENAI_API_KEY")
    assert not loaded.providers["sketch"].enabled
    assert loaded.routing.rules[0].condition == "priority == 0 or task.estimated_tokens > 50000"
    # And it loads without a single deprecation warning: nothing old is left in it.
    assert not [w for w in loaded.warnings if "deprecated" in w.message]


@pytest.mark.parametrize(
    ("priority", "labels", "retry_count", "hour", "tokens"),
    [
        (0, [], 0, 12, 100),
        (2, [], 0, 12, 60000),
        (2, ["documentation"], 0, 23, 100),
        (3, ["bug"], 0, 23, 100),
        (3, ["bug"], 1, 23, 100),
        (1, [], 0, 3, 100),
        (1, ["bug"], 0, 12, 100),
        (4, ["documentation", "bug"], 2, 12, 50000),
    ],
)
def test_the_migrated_rules_route_as_the_old_ones_meant(
    priority: int, labels: list[str], retry_count: int, hour: int, tokens: int
) -> None:
    loaded = loads_config(migrate_text(OLD, "old.toml").text, "new.toml")
    router = Router(loaded)
    task = Task(
        id="gh-1", title="t", priority=priority, labels=tuple(labels), retry_count=retry_count, estimated_tokens=tokens
    )
    now = datetime(2026, 3, 4, hour, 30, tzinfo=router.tz or UTC)
    up = dict.fromkeys(loaded.providers, "up")  # as the old system saw them: every provider it loaded answered
    decision = router.decide(task, now=now, provider_status=up)
    assert decision.model == old_select_model(priority, labels, retry_count, hour, tokens)


def test_old_names_still_load_with_a_deprecation_warning(tmp_path: Path) -> None:
    # The old tables and the bare fact load as they are (the templates that cannot run as written are left out).
    text = OLD.split("[providers.openrouter]")[0] + OLD[OLD.index("[[models]]") :]
    text = "\n".join(line for line in text.splitlines() if "log_level" not in line)
    text = text.replace('provider = "openrouter"', 'provider = "claude-cli"').replace(
        'provider = "openai"', 'provider = "claude-cli"'
    )
    text = text.replace('provider = "sketch"', 'provider = "claude-cli"')
    text = text.replace('"stream-json"]', '"stream-json", "--verbose"]\nusage_format = "claude-stream-json"')
    loaded = loads_config(text, "old.toml")
    messages = [w.render() for w in loaded.warnings]
    for expected in (
        "old.toml:3:26: coordinator.max_concurrent_workers: coordinator.max_concurrent_workers is deprecated: it is now coordinator.max_workers",
        "old.toml:5:24: coordinator.worker_timeout_hours: coordinator.worker_timeout_hours is deprecated: it is now runner.default_timeout_s (hours -> seconds)",
        'github: [github] is deprecated: it is now [[sources]] kind = "github", repo = "acme/widgets", label = "agent"',
        "worktree.base_dir: worktree.base_dir is deprecated: it is now workspace.dir",
        "routing.rules[0].condition: the bare fact 'estimated_tokens' is deprecated: write task.estimated_tokens",
    ):
        assert any(expected in m for m in messages), (expected, messages)
    assert all("switchyard config migrate" in m for m in messages if "deprecated" in m)
    assert loaded.coordinator.max_workers == 3 and loaded.runner.default_timeout_s == 7200
    assert [s.name for s in loaded.sources] == ["github:acme/widgets:agent"]
    router = Router(loaded)
    big = Task(id="t", estimated_tokens=60000)
    assert router.decide(big, now=datetime(2026, 1, 1, 12, tzinfo=UTC)).model == "claude-opus-4"
    # switchyard's own pre-[workspace] keys too
    own = loads_config(
        '[providers.p]\nkind = "simulated"\n[[models]]\nname = "m"\nprovider = "p"\n[routing]\ndefault_model = "m"\n'
        '[coordinator]\nworktree = true\nrepo = "repo"\n',
        "c.toml",
    )
    assert (own.workspace.mode, own.workspace.repo) == ("worktree", "repo")
    assert any("coordinator.worktree is deprecated" in w.message for w in own.warnings)


def test_an_old_name_beside_its_new_one_is_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        loads_config(
            '[providers.p]\nkind = "simulated"\n[[models]]\nname = "m"\nprovider = "p"\n[routing]\ndefault_model = "m"\n'
            "[coordinator]\nmax_workers = 2\nmax_concurrent_workers = 3\n",
            "c.toml",
        )
    assert (
        "c.toml:10:26: coordinator.max_concurrent_workers: coordinator.max_concurrent_workers is the old name of "
        "coordinator.max_workers, which is set too"
    ) in str(err.value)


def test_to_toml_round_trips_what_it_writes() -> None:
    data = {
        "a": {"b": 1, "c": 'x"y\\z\u007f', "d": [1, 2], "e": {"f": True}, "g": {"h": {"i": 1}}},
        "providers": {"p q": {"kind": "simulated", "env": {}}},
        "rows": [{"x": 1, "sub": [{"y": 2}]}, {"x": 3}],
        "workflows": {"w": {"stages": [{"name": "s", "model": "m"}]}},
    }
    assert tomllib.loads(to_toml(data)) == data


def test_migrate_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    old = tmp_path / "c.toml"
    old.write_text(OLD)
    proc = subprocess.run(
        [EXE, "config", "migrate", str(old), "--out", str(old)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "that is the file being migrated" in proc.stderr
    assert old.read_text() == OLD
    bad = tmp_path / "bad.toml"
    bad.write_text("[coordinator\n")
    proc = subprocess.run([EXE, "config", "migrate", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr
