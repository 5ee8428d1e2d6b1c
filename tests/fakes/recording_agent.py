"""A stand-in agent that notes every real start and finish durably: the chaos tests' witness.

Run as `python recording_agent.py --out {output_file}` with the prompt on stdin. It
appends one JSON line to $AGENT_LOG when it starts (its pid, its parent: the
coordinator process that ran it, the attempt's run directory) and one when it
finishes, each written with O_APPEND and fsync before going on, then prints what
Claude Code prints. $AGENT_SLEEP seconds of work; with $AGENT_BEAT set it rewrites
`beat.<pid>` next to the log every 50 ms while it works (the partition test reads
when it last lived).
"""

from __future__ import annotations

import json
import os
import sys
import time


def note(path: str, event: dict[str, object]) -> None:
    line = (json.dumps(event) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> int:
    sys.stdin.read()
    out = sys.argv[sys.argv.index("--out") + 1]
    attempt = os.path.basename(os.path.dirname(out))
    log = os.environ["AGENT_LOG"]
    me = {"pid": os.getpid(), "ppid": os.getppid(), "attempt": attempt}
    note(log, {"event": "start", "t": time.time(), **me})
    end = time.monotonic() + float(os.environ.get("AGENT_SLEEP", "0.2"))
    beat = os.path.join(os.path.dirname(log), f"beat.{os.getpid()}") if os.environ.get("AGENT_BEAT") else None
    while (left := end - time.monotonic()) > 0:
        if beat is not None:
            with open(beat, "w", encoding="utf-8") as fh:
                fh.write(repr(time.time()))
        time.sleep(min(left, 0.05))
    note(log, {"event": "finish", "t": time.time(), **me})
    usage = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 4000,
    }
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "done", "usage": usage}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
