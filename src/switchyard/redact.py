"""Keep secrets out of everything we print or store.

A `Redactor` knows the values of the environment variables that hold API keys
(every provider's `api_key_env`, plus any variable whose name looks like a key)
and a few shapes keys take (`sk-...`, `Bearer ...`). Every error text, stderr
excerpt and log line passes through `redact()` before it leaves the process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

__all__ = ["MASK", "Redactor", "secret_env_names"]

MASK = "[REDACTED]"
_SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_PATTERNS = [
    re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{12,}"),  # OpenAI / Anthropic / OpenRouter style keys
    re.compile(r"\bxai-[A-Za-z0-9_\-]{12,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{12,}"),
    re.compile(r"(?i)((?:x-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{8,}"),
]


def secret_env_names(env: Mapping[str, str], extra: Iterable[str] = ()) -> set[str]:
    """Names of variables that hold secrets: those named in config, and those that look like keys."""
    names = {n for n in extra if n}
    names.update(n for n in env if _SECRETISH.search(n))
    return names


class Redactor:
    """Replaces known secret values and key-shaped strings with `[REDACTED]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first so a key that contains another is masked whole; ignore trivially short values.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    @classmethod
    def from_env(cls, names: Iterable[str] = (), env: Mapping[str, str] | None = None) -> Redactor:
        """Mask the values of `names` and of every key-like variable in `env`."""
        env = os.environ if env is None else env
        return cls(env[n] for n in secret_env_names(env, names) if n in env)

    def redact(self, text: str | None) -> str:
        """`text` with every secret masked ('' for None)."""
        if not text:
            return ""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            if pattern.groups:
                text = pattern.sub(lambda m: m.group(1) + MASK, text)
            else:
                text = pattern.sub(MASK, text)
        return text
