"""The worker side of bench_core.py: one library measured in a process of its own (stdlib only).

Both sides (switchyard in its venv, LiteLLM in .bench-venv/litellm) run this same loop, so
the timing code is the same. The driver sends one JSON command per line on stdin; the
worker answers one JSON line on the protocol stream (the process's original stdout; what
the library prints goes to stderr):

    {"op": "time", "name": NAME, "n": N}  ->  {"ns": [N per-call times in nanoseconds]}
    {"op": "answer", "name": NAME}        ->  {"answer": ...}   (for the driver's equality checks)
    {"op": "quit"}                        ->  {"peak_rss_kib": N}, then exits

The first line a worker sends is {"ready": true, ...} with what it wants to tell the driver.

Peak RSS is the process's own high-water mark (VmHWM): wait4's ru_maxrss would also count
the parent's memory, which a vforked child runs on until it execs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any


def protocol_stream() -> IO[str]:
    """Take the process's stdout for the protocol; anything printed from now on goes to stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def serve(
    stream: IO[str],
    ops: dict[str, Callable[[], object]],
    answers: dict[str, Callable[[], Any]],
    info: dict[str, Any],
) -> None:
    """Answer the driver's commands until it says quit (or closes stdin)."""
    stream.write(json.dumps({"ready": True, **info}) + "\n")
    clock = time.perf_counter_ns
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            stream.write(json.dumps({"peak_rss_kib": peak_rss_kib()}) + "\n")
            return
        if cmd["op"] == "time":
            fn = ops[cmd["name"]]
            samples = [0] * cmd["n"]
            for i in range(cmd["n"]):
                t0 = clock()
                fn()
                samples[i] = clock() - t0
            reply: dict[str, Any] = {"ns": samples}
        elif cmd["op"] == "answer":
            reply = {"answer": answers[cmd["name"]]()}
        else:
            reply = {"error": f"unknown op {cmd['op']!r}"}
        stream.write(json.dumps(reply) + "\n")


def peak_rss_kib() -> int:
    """This process's peak resident memory since it started (VmHWM), in KiB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
