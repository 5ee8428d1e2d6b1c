"""Secrets never appear in argv, the ledger, logs or error text: run real failures and scan everything."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from servers.openai_wire import ErrorReply, OpenAIWireServer
from switchyard.redact import _SHAPES, MASK, Redactor, _masked

FAKE = str(Path(__file__).parent / "fakes" / "fake_agent.py")
AGENT_SECRET = "sk-agent-LEAKME-4f6b1c2d3e4f5a6b7c8d"
API_SECRET = "sk-or-v1-LEAKME-0a1b2c3d4e5f60718293"


def test_no_secret_in_argv_ledger_logs_or_errors(tmp_path: Path) -> None:
    record = tmp_path / "argv.json"
    with OpenAIWireServer(faults=[ErrorReply(401, message=f"bad key {API_SECRET}", times=None)]) as srv:
        cfg = tmp_path / "switchyard.toml"
        cfg.write_text(
            f"""
[providers.agent]
command_template = {json.dumps([sys.executable, FAKE, "--model", "{model}"])}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
api_key_env = "AGENT_KEY"
max_retries = 0
env = {{ FAKE_MODE = "exit2", FAKE_RECORD = "{record}" }}
pass_env = ["LEAK"]

[providers.api]
kind = "openai"
base_url = "{srv.base_url}"
api_key_env = "API_KEY"
max_retries = 0

[[models]]
name = "a"
provider = "agent"
[[models]]
name = "b"
provider = "api"

[routing]
default_model = "a"
[[routing.rules]]
condition = "true"
model = "a"
fallbacks = ["b"]
"""
        )
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "AGENT_KEY": AGENT_SECRET,
            "API_KEY": API_SECRET,
            # The agent echoes this into its stderr; it is the same secret under another name.
            "LEAK": AGENT_SECRET,
        }
        exe = Path(sys.executable).parent / "switchyard"
        outputs = []
        for args in (
            ["exec", "--task", '{"id": "T-1", "title": "leak test"}'],
            ["exec", "--task", '{"id": "T-2"}', "--json"],
            ["log", "--json"],
            ["providers", "--json"],
            ["route", "--task", '{"id": "T-3"}', "--explain"],
        ):
            proc = subprocess.run(
                [str(exe), *args, "--config", str(cfg)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            outputs.append(proc.stdout + proc.stderr)
        requests = srv.chat_requests()
    everything = "\n".join(outputs)
    assert "exited with status 2" in everything or "upstream rejected key" in everything  # the failures really happened
    assert "credentials rejected" in everything or "HTTP 401" in everything
    assert requests and requests[0].has_auth  # the key was sent, in a header
    argv = json.loads(record.read_text())["argv"]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("argv.json",)]
    blobs = {str(p): p.read_bytes() for p in files}
    for secret in (AGENT_SECRET, API_SECRET):
        assert secret not in " ".join(argv), "secret in argv"
        assert secret not in everything, "secret in CLI output (stdout/stderr)"
        for name, blob in blobs.items():  # run dirs too: the agent's own stdout/stderr are redacted on save
            assert secret.encode() not in blob, f"secret in {name}"
    ledger = (tmp_path / ".switchyard" / "ledger.db").read_bytes()
    assert AGENT_SECRET.encode() not in ledger and API_SECRET.encode() not in ledger
    assert MASK.encode() in ledger  # the agent's error text was kept, redacted


def test_redactor_masks_known_values_and_key_shapes() -> None:
    r = Redactor(["my-very-secret-value"])
    text = r.redact("a my-very-secret-value b Bearer abcdefghijklmnop sk-abcdefghijklmnop1234 x-api-key: zzzzzzzzzzzz")
    assert "my-very-secret-value" not in text
    assert "abcdefghijklmnop" not in text
    assert "zzzzzzzzzzzz" not in text
    assert r.redact(None) == ""


_PIECES = [
    *("sk-", "pk-", "rk-", "xai-", "ghp_", "ghs_", "gh", "Bearer ", "bEaReR\t", "api_key", "API-KEY", "apikey"),
    *(
        "x-api-key",
        "Authorization",
        ":",
        "=",
        '"',
        "'",
        " ",
        "\n",
        "abcdefghijkl",
        "0123456789AB",
        "ZZZZZZZZZZZZZZZZZZZZ",
    ),
    *("_", "-", ".", "x", "}", ",", "é", "\u212a", "\u0130", "\u017f"),  # Kelvin sign, dotted I, long s
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_masking_finds_every_match_the_regex_engine_finds(text: str) -> None:
    """The anchored search (str.find, then a match where an anchor starts) masks exactly what
    re.sub over each shape would: it is only faster."""
    expected = text
    for shape in _SHAPES:
        expected = shape.pattern.sub(_masked, expected)
    assert Redactor().redact(text) == expected


def test_an_agent_echoing_its_key_leaves_it_in_no_saved_file(tmp_path: Path) -> None:
    """Into its answer (result.txt), its output file (output.txt) and its stdout: all masked, all private."""
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(
        f"""
[providers.agent]
command_template = {json.dumps([sys.executable, FAKE, "--out", "{output_file}"])}
stdin = "{{prompt_file}}"
usage_format = "claude-json"
api_key_env = "AGENT_KEY"
env = {{ FAKE_MODE = "leak" }}
pass_env = ["LEAK"]

[[models]]
name = "a"
provider = "agent"

[routing]
default_model = "a"
"""
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AGENT_KEY": AGENT_SECRET, "LEAK": AGENT_SECRET}
    exe = Path(sys.executable).parent / "switchyard"
    proc = subprocess.run(
        [str(exe), "exec", "--task", '{"id": "T-1", "title": "leak"}', "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert AGENT_SECRET not in proc.stdout + proc.stderr
    runs = tmp_path / ".switchyard" / "runs"
    saved = {p.name: p for p in runs.rglob("*") if p.is_file()}
    assert {"result.txt", "output.txt", "stdout.txt"} <= set(saved)
    assert "my key is [REDACTED]" in saved["result.txt"].read_text()
    for path in saved.values():
        assert AGENT_SECRET.encode() not in path.read_bytes(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in [p for p in runs.rglob("*") if p.is_dir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
