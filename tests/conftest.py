"""Shared fixtures: a clean environment for every test (no real keys, no stray config)."""

from __future__ import annotations

import os

import pytest

_SCRUB = ("SWITCHYARD_", "OPENAI_", "OPENROUTER_", "ANTHROPIC_", "GEMINI_", "XAI_", "DEEPSEEK_", "GROQ_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove API keys and switchyard settings so no test can reach a real provider or a user's config."""
    for name in list(os.environ):
        if name.startswith(_SCRUB):
            monkeypatch.delenv(name, raising=False)


# PostgreSQL fixtures (`pg_url`, `ledger_url`): see tests/pg.py.
from pg import ledger_url, pg_url  # noqa: E402, F401
