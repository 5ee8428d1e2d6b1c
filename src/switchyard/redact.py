"""Keep secrets out of everything we print or store.

A `Redactor` knows the values of the environment variables that hold API keys
(every provider's `api_key_env`, plus any variable whose name looks like a key)
and a few shapes keys take (`sk-...`, `Bearer ...`). Every error text, stderr
excerpt and log line passes through `redact()` before it leaves the process.

Files we save (an agent's output, its answer) go through `redact()` too and are
written by `write_private` into directories made by `private_dir`: owner only.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

__all__ = ["MASK", "Redactor", "private_dir", "secret_env_names", "write_private"]

MASK = "[REDACTED]"
_SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)


class _Shape(NamedTuple):
    """A shape keys take. Every match starts with one of `anchors` (lower case when `fold`, the
    pattern then being case-insensitive): found with `str.find`, which is hundreds of times faster
    over a long output than letting the regex engine try every position."""

    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    fold: bool = False


_SHAPES = (
    _Shape(re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{12,}"), ("sk-", "pk-", "rk-")),  # OpenAI / Anthropic / OpenRouter
    _Shape(re.compile(r"\bxai-[A-Za-z0-9_\-]{12,}"), ("xai-",)),
    _Shape(re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),  # GitHub tokens
    _Shape(re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{12,}"), ("bearer",), fold=True),
    _Shape(
        re.compile(r"(?i)((?:x-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{8,}"),
        ("x-api-key", "api", "authorization"),
        fold=True,
    ),
)


# The shapes that name a key by its own look (a vendor prefix, a bearer token): in code, unlike in
# output, `api_key = ...` is usually a variable, so an assignment counts only with a token-like literal.
_TOKEN_SHAPES = _SHAPES[:4]
_LITERAL_KEY = re.compile(
    r"(?i)(?:api[_-]?key|secret|token|passw(?:or)?d|authorization|credentials?)[\"']?\s*[:=]\s*[\"']"
    r"[A-Za-z0-9_\-+/=.]{16,}[\"']"
)


def _masked(match: re.Match[str]) -> str:
    return match.group(1) + MASK if match.re.groups else MASK


def _mask_shape(text: str, shape: _Shape, hay: str) -> str:
    """`shape.pattern.sub(_masked, text)`, trying the pattern only where an anchor starts in `hay`
    (`text`, or `text.lower()` for a case-insensitive shape)."""
    if len(hay) != len(text):  # a character whose lower case is longer: positions would not line up
        return shape.pattern.sub(_masked, text)
    starts: list[int] = []
    for anchor in shape.anchors:
        at = hay.find(anchor)
        while at >= 0:
            starts.append(at)
            at = hay.find(anchor, at + 1)
    if not starts:
        return text
    starts.sort()
    pieces: list[str] = []
    end = 0
    for at in starts:
        if at < end:
            continue
        m = shape.pattern.match(text, at)
        if m is not None:
            pieces += (text[end:at], _masked(m))
            end = m.end()
    if not pieces:
        return text
    pieces.append(text[end:])
    return "".join(pieces)


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

    def looks_secret(self, text: str) -> bool:
        """Does `text` (a line of code someone added) hold a known secret's value, a token-shaped key,
        or a key written as a literal (`api_key = "..."` with 16+ token characters)?"""
        if any(secret in text for secret in self._secrets):
            return True
        lowered = text.lower()
        for shape in _TOKEN_SHAPES:
            hay = lowered if shape.fold else text
            if any(a in hay for a in shape.anchors) and shape.pattern.search(text):
                return True
        return _LITERAL_KEY.search(text) is not None

    def redact(self, text: str | None) -> str:
        """`text` with every secret masked ('' for None)."""
        if not text:
            return ""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        lowered = None
        for shape in _SHAPES:
            if shape.fold and lowered is None:
                lowered = text.lower()
            masked = _mask_shape(text, shape, lowered if shape.fold and lowered is not None else text)
            if masked is not text:
                text, lowered = masked, None
        return text


def private_dir(path: Path) -> bool:
    """Make `path` (and any missing parent) a directory only its owner can enter (0700).

    Returns True when it was made now (so it is empty), False when it was already there.
    """
    try:
        os.mkdir(path, 0o700)
    except FileNotFoundError:
        private_dir(path.parent)
        os.mkdir(path, 0o700)
    except FileExistsError:
        os.chmod(path, 0o700)  # made before, perhaps by an older version with the default mode
        return False
    return True


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_private(path: str | Path, data: bytes) -> None:
    """Save `data` as a new owner-only (0600) file at `path`.

    Whatever is already at `path` (a file an agent wrote, a symlink or hard link it
    planted) is replaced, never written through.
    """
    try:
        fd = os.open(path, _NEW_FILE, 0o600)
    except FileExistsError:
        head, name = os.path.split(path)
        tmp = os.path.join(head, f".{name}.{secrets.token_hex(6)}.tmp")
        _write_fd(os.open(tmp, _NEW_FILE, 0o600), data)
        try:
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise
        return
    _write_fd(fd, data)


def _write_fd(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
