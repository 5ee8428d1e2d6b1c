"""The LiteLLM peer's virtual environment, for bench_core.py.

LiteLLM is never imported into switchyard's environment. This module creates
(or reuses) a dedicated virtual environment under ``<repo>/.bench-venv/litellm``
with ``python3 -m venv`` + pip and installs ``litellm==VERSION`` there only when
that exact version is not already present; bench_core.py then runs
``bench/_litellm_probe.py`` with the venv's interpreter as LiteLLM's side.

Stdlib only.  Usage::

    python bench/peer_litellm.py                # builds/reuses the venv, prints what it did
    python bench/peer_litellm.py --version 1.110.2

Every subprocess runs with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so LiteLLM
reads the cost map bundled in the wheel instead of fetching it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_VERSION = "1.110.2"

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_VENV = REPO_ROOT / ".bench-venv" / "litellm"

PIP_TIMEOUT_S = 900


class LiteLLMBenchError(RuntimeError):
    """Raised when the peer venv cannot be built or the probe fails."""


# --------------------------------------------------------------------------- env


def _child_env() -> dict[str, str]:
    """Environment for every venv subprocess: offline cost map, no leakage of
    the caller's venv/PYTHONPATH into the peer interpreter."""
    env = dict(os.environ)
    for var in (
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "PYTHONSTARTUP",
        "PYTHONNOUSERSITE",
        "PYTHONDONTWRITEBYTECODE",
    ):
        env.pop(var, None)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["LITELLM_LOG"] = env.get("LITELLM_LOG_BENCH", "ERROR")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":  # pragma: no cover - not a target, kept for clarity
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


@contextlib.contextmanager
def _lock(venv: Path):
    """Serialise venv creation/installs between concurrent bench runs."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / (venv.name + ".lock")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd, *, timeout, env=None, what):
    try:
        return subprocess.run(
            [str(c) for c in cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env if env is not None else _child_env(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LiteLLMBenchError(f"{what} timed out after {timeout}s: {cmd!r}") from exc
    except OSError as exc:
        raise LiteLLMBenchError(f"{what} could not start ({exc}): {cmd!r}") from exc


def _tail(text: str, n: int = 25) -> str:
    lines = (text or "").strip().splitlines()
    return "\n".join(ln if len(ln) <= 500 else ln[:500] + " ..." for ln in lines[-n:])


def _release_tuple(v: str):
    m = re.fullmatch(r"(\d+(?:\.\d+)*)(?:\.post\d+)?", v)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def _closest_versions(requested: str, available: list[str]) -> list[str]:
    """Nearest final releases below and above ``requested``."""
    want = _release_tuple(requested)
    finals = [(t, v) for v in available if (t := _release_tuple(v)) is not None]
    if want is None or not finals:
        return []
    below = [tv for tv in finals if tv[0] <= want]
    above = [tv for tv in finals if tv[0] > want]
    out = []
    if below:
        out.append(max(below)[1])
    if above:
        out.append(min(above)[1])
    return out


# ------------------------------------------------------------------------- venv


def _installed_version(py: Path) -> str | None:
    """litellm's installed version in the venv, without importing litellm."""
    if not py.exists():
        return None
    proc = _run(
        [
            py,
            "-c",
            "import importlib.metadata as m\n"
            "try:\n print(m.version('litellm'))\n"
            "except m.PackageNotFoundError:\n print('')",
        ],
        timeout=60,
        what="version check",
    )
    if proc.returncode != 0:
        return None  # broken interpreter: caller rebuilds the venv
    return proc.stdout.strip() or None


def _venv_is_healthy(py: Path) -> bool:
    if not py.exists():
        return False
    proc = _run([py, "-c", "import pip, sys; print(sys.prefix)"], timeout=60, what="venv health check")
    return proc.returncode == 0


def _create_venv(venv: Path) -> None:
    base_python = os.environ.get("BENCH_BASE_PYTHON") or sys.executable or "python3"
    if venv.exists():
        import shutil

        shutil.rmtree(venv)
    proc = _run([base_python, "-m", "venv", venv], timeout=300, what="python3 -m venv")
    if proc.returncode != 0:
        raise LiteLLMBenchError(
            f"creating the venv at {venv} with `{base_python} -m venv` failed "
            f"(exit {proc.returncode}):\n{_tail(proc.stderr or proc.stdout)}"
        )
    # Keep git from ever seeing the venv, even without a repo-level .gitignore
    # entry (Python >= 3.13 venv does this itself).
    (venv / ".gitignore").write_text("# created by bench/peer_litellm.py\n*\n")


def ensure_venv(version: str = DEFAULT_VERSION, venv: Path | str = DEFAULT_VENV) -> dict:
    """Create/reuse the venv and make sure ``litellm==version`` is installed.

    Returns install metadata: whether anything was installed and how long the
    venv creation and the pip install took.
    """
    venv = Path(venv)
    py = _venv_python(venv)
    info = {
        "venv": str(venv),
        "python": str(py),
        "created_venv": False,
        "installed_now": False,
        "venv_create_s": None,
        "pip_install_s": None,
        "previous_version": None,
    }
    with _lock(venv):
        current = _installed_version(py)
        info["previous_version"] = current
        if current == version:
            return info

        if not _venv_is_healthy(py):
            t0 = time.perf_counter()
            _create_venv(venv)
            info["venv_create_s"] = round(time.perf_counter() - t0, 2)
            info["created_venv"] = True

        cmd = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", f"litellm=={version}"]
        t0 = time.perf_counter()
        proc = _run(cmd, timeout=PIP_TIMEOUT_S, what="pip install")
        info["pip_install_s"] = round(time.perf_counter() - t0, 2)
        if proc.returncode != 0:
            out = (proc.stdout or "") + "\n" + (proc.stderr or "")
            hint = ""
            m = re.search(r"\(from versions: ([^)]*)\)", out)
            if m:
                seen = [v.strip() for v in m.group(1).split(",") if v.strip()]
                out = out.replace(m.group(0), f"(from versions: {len(seen)} versions, newest {', '.join(seen[-5:])})")
                hint = (
                    f"\nlitellm=={version} does not exist on the index. Closest "
                    f"releases: {', '.join(_closest_versions(version, seen)) or 'none'}"
                    " - rerun with --version <one of them>."
                )
            elif "No matching distribution" in out:
                hint = f"\nlitellm=={version} is not available from the configured index."
            elif "Could not fetch URL" in out or "NewConnectionError" in out:
                hint = "\nPyPI looks unreachable from this machine."
            raise LiteLLMBenchError(
                f"pip install litellm=={version} into {venv} failed "
                f"(exit {proc.returncode}) after {info['pip_install_s']}s:\n"
                f"{_tail(out)}{hint}"
            )
        got = _installed_version(py)
        if got != version:
            raise LiteLLMBenchError(f"pip reported success but the venv has litellm {got!r}, expected {version!r}")
        info["installed_now"] = True
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default=DEFAULT_VERSION)
    ap.add_argument("--venv", default=str(DEFAULT_VENV))
    args = ap.parse_args(argv)
    try:
        info = ensure_venv(args.version, args.venv)
    except LiteLLMBenchError as exc:
        print(f"peer_litellm: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
