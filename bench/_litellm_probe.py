"""Micro-benchmark probe run INSIDE the LiteLLM venv (stdlib + litellm only).

Launched by ``bench/peer_litellm.py`` with the venv's interpreter; prints ONE
JSON object on stdout:

* ``pick_us``   - ``Router.get_available_deployment(model=..., messages=[...])``
  on a Router with 6 deployments (3 model groups x 2 deployments: openai
  gpt-4o, anthropic claude-sonnet-4-5, deepseek deepseek-chat; fake keys,
  api_base on 127.0.0.1:9 so a stray request could never leave the host).
  The timed loop cycles over the three groups.
* ``pick_us_one_group_of_6`` - same call on one group of all 6 deployments.
* ``cost_us``   - ``litellm.cost_per_token(model="gpt-4o", 1000, 500)``.
* ``cost_us_anthropic_cache`` - claude-sonnet-4-5 with cache read/creation tokens.
* ``litellm_version`` and an ``io_check`` section.

Each call is timed on its own with ``time.perf_counter_ns``; medians and p99
are in microseconds (wall clock).  ``cpu_mean`` is the thread's CPU time over
the loop divided by the iterations (steadier than wall time on a shared host).

No-I/O check: before litellm is imported, socket connect/getaddrinfo are
replaced by guards that record and REFUSE any attempt (so nothing can reach
the network even if litellm tried).  After the timed loops (so timing is not
perturbed) an audit hook, a logging counter and a warnings recorder watch a
further batch of calls; socket file descriptors and OS threads are compared
before/after.  Everything found is reported in ``io_check``.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import logging
import os
import platform
import socket
import sys
import threading
import time
import warnings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# --------------------------------------------------------------- network guard

_PHASE = "pre-import"
_NET_ATTEMPTS: list[dict] = []


def _guard(name, original):
    def blocked(*args, **kwargs):
        _NET_ATTEMPTS.append(
            {"phase": _PHASE, "call": name, "args": repr(args[1:] if name.startswith("socket.socket") else args)[:200]}
        )
        raise OSError(f"network access blocked by _litellm_probe ({name})")

    blocked.__wrapped__ = original
    return blocked


socket.socket.connect = _guard("socket.socket.connect", socket.socket.connect)
socket.socket.connect_ex = _guard("socket.socket.connect_ex", socket.socket.connect_ex)
socket.getaddrinfo = _guard("socket.getaddrinfo", socket.getaddrinfo)
socket.create_connection = _guard("socket.create_connection", socket.create_connection)


def _fd_kinds() -> dict:
    kinds = collections.Counter()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            kinds[
                "socket"
                if target.startswith("socket:")
                else "pipe"
                if target.startswith("pipe:")
                else "anon"
                if target.startswith("anon_inode:")
                else "file"
            ] += 1
    except OSError:
        pass
    return dict(kinds)


def _os_threads() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ------------------------------------------------------------------- helpers


def _stats_us(samples_ns: list[int]) -> dict:
    s = sorted(samples_ns)
    n = len(s)

    def pct(p: float) -> float:
        # nearest-rank percentile
        k = max(0, min(n - 1, round(p / 100.0 * n + 0.5) - 1))
        return s[k] / 1000.0

    mid = n // 2
    median = (s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2) / 1000.0
    return {
        "median": round(median, 2),
        "p90": round(pct(90), 2),
        "p99": round(pct(99), 2),
        "min": round(s[0] / 1000.0, 2),
        "max": round(s[-1] / 1000.0, 2),
        "mean": round(sum(s) / n / 1000.0, 2),
        "n": n,
    }


def _time_calls(fn, args_cycle, iterations: int, warmup: int) -> dict:
    k = len(args_cycle)
    for i in range(warmup):
        fn(*args_cycle[i % k])
    samples = [0] * iterations
    clock = time.perf_counter_ns
    cpu0 = time.thread_time_ns()
    for i in range(iterations):
        a = args_cycle[i % k]
        t0 = clock()
        fn(*a)
        samples[i] = clock() - t0
    cpu = time.thread_time_ns() - cpu0
    stats = _stats_us(samples)
    # CPU time of this thread over the whole loop / n: unaffected by the
    # process being descheduled, so it is the steadier figure on a busy host.
    stats["cpu_mean"] = round(cpu / iterations / 1000.0, 2)
    return stats


MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the attached changelog in three bullet points."},
]

FAKE_BASE = "http://127.0.0.1:9"  # discard port: a stray request fails locally


def _deployment(group: str, model: str, n: int) -> dict:
    return {
        "model_name": group,
        "litellm_params": {
            "model": model,
            "api_key": f"sk-fake-{group}-{n}",
            "api_base": f"{FAKE_BASE}/{group}/{n}",
        },
    }


GROUPS = {
    "gpt-4o": "openai/gpt-4o",
    "claude-sonnet-4-5": "anthropic/claude-sonnet-4-5",
    "deepseek-chat": "deepseek/deepseek-chat",
}


def model_list_3x2() -> list[dict]:
    return [_deployment(g, m, n) for g, m in GROUPS.items() for n in (1, 2)]


def model_list_1x6() -> list[dict]:
    return [_deployment("chat", m, f"{g}-{n}") for g, m in GROUPS.items() for n in (1, 2)]


# ---------------------------------------------------------------------- main


def main() -> None:
    global _PHASE
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--verify-calls", type=int, default=2_000)
    args = ap.parse_args()

    fds_start = _fd_kinds()
    threads_start = _os_threads()

    _PHASE = "import"
    t0 = time.perf_counter_ns()
    import litellm
    from litellm import Router

    import_ms_in_process = (time.perf_counter_ns() - t0) / 1e6
    from importlib.metadata import version as _dist_version

    out: dict = {
        "litellm_version": _dist_version("litellm"),
        "python": platform.python_version(),
        "platform": f"{os.uname().sysname}-{os.uname().release}-{os.uname().machine}",
        "iterations": args.iterations,
        "warmup": args.warmup,
        "import_ms_in_process": round(import_ms_in_process, 1),
        "local_cost_map_env": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP"),
    }

    # ---- routers
    _PHASE = "router-init"
    t0 = time.perf_counter_ns()
    router = Router(model_list=model_list_3x2())
    out["router_init_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 2)
    router6 = Router(model_list=model_list_1x6())
    out["routing_strategy"] = "simple-shuffle (Router default)"
    out["deployments"] = {
        "pick_us": "3 groups x 2 (gpt-4o, claude-sonnet-4-5, deepseek-chat)",
        "pick_us_one_group_of_6": "1 group 'chat' x 6",
    }

    # sanity: every group resolves to one of its own deployments
    picked = {}
    for g in GROUPS:
        d = router.get_available_deployment(model=g, messages=MESSAGES)
        if not d or d.get("model_name") != g:
            raise SystemExit(f"get_available_deployment({g!r}) returned {d!r}")
        picked[g] = d["litellm_params"]["model"]
    out["sample_picks"] = picked

    cost = litellm.cost_per_token(model="gpt-4o", prompt_tokens=1000, completion_tokens=500)
    cost_anth = litellm.cost_per_token(
        model="claude-sonnet-4-5",
        prompt_tokens=1000,
        completion_tokens=500,
        cache_read_input_tokens=2000,
        cache_creation_input_tokens=500,
    )
    out["cost_values_usd"] = {
        "gpt-4o": [round(c, 8) for c in cost],
        "claude-sonnet-4-5+cache": [round(c, 8) for c in cost_anth],
    }

    fds_before = _fd_kinds()
    threads_before = _os_threads()

    # ---- timed loops
    _PHASE = "timed"
    pick = router.get_available_deployment
    pick6 = router6.get_available_deployment

    def pick_call(model):
        return pick(model=model, messages=MESSAGES)

    def pick6_call(model):
        return pick6(model=model, messages=MESSAGES)

    def cost_call(model, p, c):
        return litellm.cost_per_token(model=model, prompt_tokens=p, completion_tokens=c)

    def cost_cache_call(model):
        return litellm.cost_per_token(
            model=model,
            prompt_tokens=1000,
            completion_tokens=500,
            cache_read_input_tokens=2000,
            cache_creation_input_tokens=500,
        )

    it, wu = args.iterations, args.warmup
    gc_before = sum(s["collections"] for s in gc.get_stats())
    t_wall = time.perf_counter()
    out["pick_us"] = _time_calls(pick_call, [(g,) for g in GROUPS], it, wu)
    out["pick_us_one_group_of_6"] = _time_calls(pick6_call, [("chat",)], it, wu)
    out["cost_us"] = _time_calls(cost_call, [("gpt-4o", 1000, 500)], it, wu)
    out["cost_us_anthropic_cache"] = _time_calls(cost_cache_call, [("claude-sonnet-4-5",)], it, wu)
    out["timed_wall_s"] = round(time.perf_counter() - t_wall, 2)
    out["gc_collections_during_timing"] = sum(s["collections"] for s in gc.get_stats()) - gc_before

    # ---- I/O verification (after timing, so hooks don't perturb numbers)
    _PHASE = "verify"
    audit = collections.Counter()
    recording = [True]

    def hook(event, _args):
        if recording[0]:
            audit[event] += 1

    sys.addaudithook(hook)
    log_records = collections.Counter()
    orig_handle = logging.Logger.handle

    def counting_handle(self, record):
        log_records[f"{self.name}:{record.levelname}"] += 1
        return orig_handle(self, record)

    logging.Logger.handle = counting_handle
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(args.verify_calls):
            pick_call(list(GROUPS)[i % 3])
            pick6_call("chat")
            cost_call("gpt-4o", 1000, 500)
            cost_cache_call("claude-sonnet-4-5")
    recording[0] = False
    logging.Logger.handle = orig_handle

    io_prefixes = (
        "open",
        "os.",
        "socket.",
        "http.",
        "urllib.",
        "subprocess.",
        "shutil.",
        "sqlite3.",
        "ftplib.",
        "smtplib.",
        "ctypes.",
        "mmap.",
        "fcntl.",
        "pty.",
    )
    io_events = {e: n for e, n in audit.items() if e.startswith(io_prefixes)}
    fds_after = _fd_kinds()
    threads_after = _os_threads()
    out["io_check"] = {
        "verify_calls_each": args.verify_calls,
        "network_attempts": _NET_ATTEMPTS[:20],
        "network_attempts_total": len(_NET_ATTEMPTS),
        "network_attempts_by_phase": dict(collections.Counter(a["phase"] for a in _NET_ATTEMPTS)),
        "audit_events_io": io_events,
        "audit_events_other": dict(
            sorted(((e, n) for e, n in audit.items() if e not in io_events), key=lambda kv: -kv[1])[:15]
        ),
        "log_records": dict(log_records),
        "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:150]}" for w in caught})[:10],
        "fds": {"start": fds_start, "before_timing": fds_before, "after_verify": fds_after},
        "os_threads": {"start": threads_start, "before_timing": threads_before, "after_verify": threads_after},
        "python_threads": threading.active_count(),
    }
    out["io_check"]["clean"] = (
        not _NET_ATTEMPTS
        and not io_events
        and not log_records
        and fds_after.get("socket", 0) == fds_before.get("socket", 0)
    )
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
