"""Peer benchmark: LiteLLM's router pick and cost lookup, measured in its own venv.

LiteLLM is never imported into switchyard's environment. This module creates
(or reuses) a dedicated virtual environment under ``<repo>/.bench-venv/litellm``
with ``python3 -m venv`` + pip, installs ``litellm==VERSION`` there only when
that exact version is not already present, then runs ``bench/_litellm_probe.py``
with the venv's interpreter and parses the one JSON object it prints.

Stdlib only.  Usage::

    python bench/peer_litellm.py                # prints the JSON result
    python bench/peer_litellm.py --version 1.110.2 --iterations 20000

or from Python::

    from bench.peer_litellm import measure_litellm
    result = measure_litellm("1.110.2")

Every subprocess runs with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so LiteLLM
reads the cost map bundled in the wheel instead of fetching it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_VERSION = "1.110.2"

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PROBE = BENCH_DIR / "_litellm_probe.py"
DEFAULT_VENV = REPO_ROOT / ".bench-venv" / "litellm"

PIP_TIMEOUT_S = 900
PROBE_TIMEOUT_S = 900
IMPORT_TIMEOUT_S = 120


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


# ------------------------------------------------------------------- measuring


def measure_import_ms(py: Path | str, runs: int = 5) -> dict:
    """Wall time of ``python -c 'import litellm'`` (fresh process each run)."""
    py = str(py)
    env = _child_env()
    # One untimed run first: it writes any missing .pyc and warms the page
    # cache, so the median reflects a normal, already-installed import.
    warm = _run([py, "-c", "import litellm"], timeout=IMPORT_TIMEOUT_S, env=env, what="import litellm")
    if warm.returncode != 0:
        raise LiteLLMBenchError(f"`import litellm` failed:\n{_tail(warm.stderr)}")
    baseline = []
    samples = []
    cpu_samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        proc = _run([py, "-c", "pass"], timeout=IMPORT_TIMEOUT_S, env=env, what="python -c pass")
        baseline.append((time.perf_counter_ns() - t0) / 1e6)
        ru0 = _children_cpu_s()
        t0 = time.perf_counter_ns()
        proc = _run([py, "-c", "import litellm"], timeout=IMPORT_TIMEOUT_S, env=env, what="import litellm")
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        ru1 = _children_cpu_s()
        if ru0 is not None and ru1 is not None:
            cpu_samples.append((ru1 - ru0) * 1000.0)
        if proc.returncode != 0:
            raise LiteLLMBenchError(f"`import litellm` failed:\n{_tail(proc.stderr)}")
    return {
        "median": round(statistics.median(samples), 1),
        "samples": [round(s, 1) for s in samples],
        # user+sys CPU of the child: steadier than wall time on a busy host
        "cpu_median": round(statistics.median(cpu_samples), 1) if cpu_samples else None,
        "bare_interpreter_median": round(statistics.median(baseline), 1),
        "runs": runs,
    }


def _children_cpu_s():
    try:
        import resource
    except ImportError:  # pragma: no cover - non-POSIX
        return None
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_probe(py: Path | str, iterations: int = 20_000, warmup: int = 2_000) -> dict:
    proc = _run(
        [py, str(PROBE), "--iterations", str(iterations), "--warmup", str(warmup)],
        timeout=PROBE_TIMEOUT_S,
        what="litellm probe",
    )
    if proc.returncode != 0:
        raise LiteLLMBenchError(f"probe exited {proc.returncode}:\n{_tail(proc.stderr)}\n{_tail(proc.stdout)}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise LiteLLMBenchError(f"probe printed no JSON:\n{_tail(proc.stdout)}\n{_tail(proc.stderr)}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise LiteLLMBenchError(f"probe JSON did not parse: {exc}\n{lines[-1][:500]}") from None
    stderr_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    result["probe_stderr_lines"] = len(stderr_lines)
    if stderr_lines:
        result["probe_stderr_head"] = stderr_lines[:5]
    return result


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def measure_litellm(
    version: str = DEFAULT_VERSION,
    *,
    iterations: int = 20_000,
    warmup: int = 2_000,
    import_runs: int = 5,
    venv: Path | str = DEFAULT_VENV,
) -> dict:
    """Build/reuse the peer venv, run the probe and time ``import litellm``.

    Returns the probe's JSON (``pick_us``, ``cost_us``, ``litellm_version``,
    ...) plus ``import_ms`` and ``install`` metadata.
    """
    install = ensure_venv(version, venv)
    py = install["python"]
    load_before = _loadavg()
    result = run_probe(py, iterations=iterations, warmup=warmup)
    if result.get("litellm_version") != version:
        raise LiteLLMBenchError(f"probe ran litellm {result.get('litellm_version')!r}, expected {version!r}")
    result["import_ms"] = measure_import_ms(py, runs=import_runs)
    result["install"] = install
    result["requested_version"] = version
    # The machine is shared: record how busy it was, to judge noisy p99s.
    result["host"] = {"cpu_count": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": _loadavg()}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default=DEFAULT_VERSION)
    ap.add_argument("--iterations", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--import-runs", type=int, default=5)
    ap.add_argument("--venv", default=str(DEFAULT_VENV))
    args = ap.parse_args(argv)
    try:
        res = measure_litellm(
            args.version, iterations=args.iterations, warmup=args.warmup, import_runs=args.import_runs, venv=args.venv
        )
    except LiteLLMBenchError as exc:
        print(f"peer_litellm: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(res, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
