"""The real agent CLIs the integration tests run, pinned, and how they get into `.ci-cache/`.

One definition of each pin: `.ci/run` installs them with ``python tests/agent_clis.py install``
before the suite, and each CLI's test fixture installs its CLI on first use when it is missing.
With SWITCHYARD_REQUIRE_REAL_CLI=1 (set by `.ci/run`) a CLI that is still missing fails the
tests that need it instead of skipping them.

The environments the tests give each CLI are built here too, so every test runs the CLIs the
same way: offline, with a scratch HOME, telemetry and update checks off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from switchyard.cli.config_cmd import starter_text

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".ci-cache"

__all__ = [
    "CLAUDE",
    "CLIS",
    "CODEX",
    "GEMINI",
    "KEYS",
    "OPENAI_URL",
    "AgentCli",
    "cli_env",
    "gemini_home",
    "require",
    "starter",
    "starter_provider",
]


@dataclass(frozen=True)
class AgentCli:
    """One pinned npm package that provides an agent CLI."""

    name: str
    package: str
    version: str
    folder: str  # under .ci-cache/
    bin: str

    @property
    def prefix(self) -> Path:
        return CACHE / self.folder

    @property
    def path(self) -> Path:
        return self.prefix / "node_modules" / ".bin" / self.bin

    def installed_version(self) -> str | None:
        """The version npm installed (its package.json; running `--version` costs seconds), or None."""
        manifest = self.prefix / "node_modules" / self.package / "package.json"
        if not self.path.exists() or not manifest.exists():
            return None
        try:
            version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError):
            return None
        return version if isinstance(version, str) else None

    def install(self) -> bool:
        """Install the pinned version with npm unless it is there; returns whether it is there now."""
        if self.installed_version() == self.version:
            return True
        npm = shutil.which("npm")
        if npm is None:
            return False
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(self.prefix),
                f"{self.package}@{self.version}",
                "--save-exact",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
            capture_output=True,
            timeout=900,
            check=False,
        )
        return self.installed_version() == self.version


CLAUDE = AgentCli("Claude Code", "@anthropic-ai/claude-code", "2.1.332", "claude-code", "claude")
CODEX = AgentCli("Codex CLI", "@openai/codex", "0.171.0", "codex", "codex")
GEMINI = AgentCli("Gemini CLI", "@google/gemini-cli", "0.61.0", "gemini", "gemini")
CLIS = (CLAUDE, CODEX, GEMINI)


def require(cli: AgentCli) -> Path:
    """The CLI's executable, installed on first use; fails (under CI) or skips when it cannot be."""
    if not cli.install():
        message = f"{cli.name} {cli.version} is not installed in {cli.prefix} (and npm could not install it)"
        if os.environ.get("SWITCHYARD_REQUIRE_REAL_CLI") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return cli.path


def gemini_home(home: Path, *, max_attempts: int = 1) -> Path:
    """Make `home` a HOME for the Gemini CLI: API-key auth (needed with GOOGLE_GEMINI_BASE_URL,
    else the CLI picks its gateway auth and refuses to run headless), no telemetry, no update
    check, and its own retries off (`general.maxAttempts`: it retries a 429 up to 10 times)."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True, "maxAttempts": max_attempts},
    }
    folder = home / ".gemini"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return home


#: The API keys the tests give the CLIs (the stand-ins check them when told to).
KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-test-key-for-the-stand-in",
    "OPENAI_API_KEY": "sk-openai-test-key-for-the-stand-in",
    "GEMINI_API_KEY": "gemini-test-key-for-the-stand-in",
}

#: The base URL in the Codex starter (Codex takes none from the environment, see `starter`).
OPENAI_URL = "https://api.openai.com/v1"


def starter(agent: str, *, openai_base_url: str | None = None) -> str:
    """The config `switchyard init --agent AGENT` writes, as written (the pinned CLIs are found on
    the PATH `cli_env` gives). Only for Codex, which reads no base URL from the environment (0.171
    ignores OPENAI_BASE_URL), `openai_base_url` replaces the one URL in its argv."""
    text = starter_text(agent)
    if openai_base_url is not None:
        assert text.count(OPENAI_URL) == 1, "the Codex starter names its base URL once"
        text = text.replace(OPENAI_URL, openai_base_url)
    return text


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def starter_provider(agent: str, *, openai_base_url: str | None = None, **overrides: Any) -> str:
    """The agent CLI's `[providers.NAME]` table from its starter (as `starter` gives it), as TOML,
    with `overrides` (e.g. ``max_retries=0``) on top: to put several agents in one config."""
    data = tomllib.loads(starter(agent, openai_base_url=openai_base_url))
    [(name, table)] = [(n, t) for n, t in data["providers"].items() if "command_template" in t]
    table = {**table, **overrides}
    return f"[providers.{name}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in table.items())


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for `switchyard` running the agent CLIs in a test: the pinned CLIs first on
    PATH, a scratch HOME (set up for the Gemini CLI), a scratch TMPDIR (Gemini writes error reports
    there), test keys for the three."""
    home = gemini_home(tmp_path / "home")
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    bins = [str(cli.path.parent) for cli in CLIS]
    env = {
        "PATH": os.pathsep.join([*bins, os.environ["PATH"]]),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        **KEYS,
    }
    env.update(extra)
    return env


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python tests/agent_clis.py install", file=sys.stderr)
        return 2
    missing = []
    for cli in CLIS:
        ok = cli.install()
        print(f"{cli.name} {cli.version}: {'ok' if ok else 'NOT INSTALLED'} ({cli.path})")
        if not ok:
            missing.append(cli.name)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
