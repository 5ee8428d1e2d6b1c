"""A stand-in agent CLI: prints what Claude Code prints, behaves as FAKE_MODE says.

Run as `python fake_agent.py [args...]` with the prompt on stdin. It records its
argv, environment and prompt to $FAKE_RECORD (JSON) when that is set.

FAKE_MODE: ok | error529 | is_error_text | exit2 | no_usage | usage_error | other_model | hang | garbage | truncated | sleep | fail_then_ok | echo | review
| escape | leak | flood | swap | threads | edit | judge | slow_fail | crash | refused
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> int:
    prompt = sys.stdin.read() if not sys.stdin.isatty() else ""
    mode = os.environ.get("FAKE_MODE", "ok")
    record = os.environ.get("FAKE_RECORD")
    if record:
        with open(record, "w", encoding="utf-8") as fh:
            json.dump(
                {"argv": sys.argv, "env": dict(os.environ), "prompt": prompt, "cwd": os.getcwd(), "pid": os.getpid()},
                fh,
            )
    usage = {
        "input_tokens": int(os.environ.get("FAKE_IN", "1000")),
        "output_tokens": int(os.environ.get("FAKE_OUT", "500")),
        "cache_creation_input_tokens": int(os.environ.get("FAKE_CW", "2000")),
        "cache_read_input_tokens": int(os.environ.get("FAKE_CR", "4000")),
    }
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 10,
        "num_turns": 1,
        "result": "done: " + prompt[:40],
        "session_id": "s-1",
        "total_cost_usd": float(os.environ.get("FAKE_COST", "0.0192")),
        "usage": usage,
    }
    if mode == "ok":
        print(json.dumps(result))
        return 0
    if mode == "judge":  # a reviewer: APPROVE when $FAKE_JUDGE_FILE (in its working directory) has $FAKE_JUDGE_WANT
        try:
            with open(os.environ["FAKE_JUDGE_FILE"], encoding="utf-8") as fh:
                good = os.environ["FAKE_JUDGE_WANT"] in fh.read()
        except OSError:
            good = False
        print(json.dumps({**result, "result": "APPROVE" if good else "REJECT: wrong value"}))
        return 0
    if mode == "edit":  # edits files in its working directory: FAKE_EDITS = {"MODEL" or "*": {"path": "text"}}
        model = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else ""
        edits = json.loads(os.environ.get("FAKE_EDITS", "{}"))
        for path, text in (edits.get(model) or edits.get("*") or {}).items():
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        print(json.dumps({**result, "result": f"edited as {model}"}))
        return 0
    if mode == "sleep":
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0.2")))
        finished = os.environ.get("FAKE_FINISHED")
        if finished:
            # The attempt really finished: note it (by its output file, which names the attempt) durably.
            out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "?"
            with open(finished, "a", encoding="utf-8") as fh:
                fh.write(out + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        print(json.dumps(result))
        return 0
    if mode == "echo":  # answers with its whole prompt: lets a test see what each stage was given
        print(json.dumps({**result, "result": prompt}))
        return 0
    if mode == "review":  # rejects the first time round (the prompt says loop=0), approves after
        verdict = "REJECT: needs tests" if "loop=0" in prompt else "APPROVE"
        print(json.dumps({**result, "result": verdict}))
        return 0
    if mode == "fail_then_ok":
        # Fails (529) on the cheap model, succeeds on any other: exercises escalation.
        model = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else ""
        if model == os.environ.get("FAKE_FAIL_MODEL", "cheap"):
            zero = {k: 0 for k in usage}
            print(
                json.dumps(
                    {**result, "is_error": True, "api_error_status": 529, "result": "API Error: 529", "usage": zero}
                )
            )
            return 1
        print(json.dumps(result))
        return 0
    if mode == "slow_fail":  # takes FAKE_SLEEP seconds, then fails as error529 does: a call to cancel mid-way
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0.2")))
        mode = "error529"
    if mode == "crash":  # works FAKE_SLEEP seconds, then dies saying nothing of what it spent
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0.2")))
        sys.stderr.write("fatal: the agent crashed\n")
        return 1
    if mode == "refused":  # the API refused the request (status FAKE_STATUS) before any work: no usage
        status = int(os.environ.get("FAKE_STATUS", "429"))
        refused = {k: v for k, v in result.items() if k not in ("usage", "total_cost_usd")}
        print(json.dumps({**refused, "is_error": True, "api_error_status": status, "result": f"API Error: {status}"}))
        return 1
    if mode == "error529":
        zero = {k: 0 for k in usage}
        print(
            json.dumps(
                {
                    **result,
                    "is_error": True,
                    "api_error_status": 529,
                    "result": "API Error: 529 overloaded",
                    "usage": zero,
                }
            )
        )
        return 1
    if mode == "is_error_text":
        print(json.dumps({**result, "is_error": True, "result": "could not finish: " + os.environ.get("LEAK", "")}))
        return 1
    if mode == "exit2":
        sys.stderr.write("fatal: upstream rejected key " + os.environ.get("LEAK", "") + "\n")
        return 2
    if mode == "no_usage":  # a result that says nothing of what the run cost
        print(json.dumps({k: v for k, v in result.items() if k not in ("usage", "total_cost_usd")}))
        return 0
    if mode == "usage_error":  # how a CLI answers an option it does not know: usage text, exit 2
        sys.stderr.write("error: unknown option '--bogus'\n\nUsage: fake [options] [command]\n  -p, --print\n")
        return 2
    if mode == "other_model":  # ran another model than the one asked for, and says what it cost
        model = os.environ.get("FAKE_REPORTED_MODEL", "claude-haiku-4-5")
        entry = {"inputTokens": usage["input_tokens"], "outputTokens": usage["output_tokens"], "costUSD": 0.01}
        cost = float(os.environ.get("FAKE_COST", "0.0117"))
        print(json.dumps({**result, "total_cost_usd": cost, "modelUsage": {model: entry}}))
        return 0
    if mode == "garbage":
        print("this is not json {{{")
        return 0
    if mode == "truncated":
        print(json.dumps(result)[:60])
        return 0
    if mode == "hang":
        # A grandchild in the same process group that would outlive us if only we were killed.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        pidfile = os.environ.get("FAKE_PIDFILE")
        if pidfile:
            with open(pidfile, "w", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {child.pid}")
        time.sleep(600)
        return 0
    if mode == "escape":
        return escape()
    if mode == "leak":  # echoes its key into its answer and into the output file
        leak = os.environ.get("LEAK", "")
        out = sys.argv[sys.argv.index("--out") + 1]
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(f"notes\nkey={leak}\n")
        print(json.dumps({**result, "result": f"done; my key is {leak}"}))
        return 0
    if mode == "flood":
        flood(result, usage)
        return 0
    if mode == "swap":
        # Prints its real answer, then puts a bill of its own at stdout.txt in its working directory
        # (the run directory), where the output it printed would have been read back from.
        print(json.dumps(result))
        sys.stdout.flush()
        bogus = {**result, "usage": {**usage, "input_tokens": 999_999_999}, "total_cost_usd": 9999}
        with open("stdout.txt.new", "w", encoding="utf-8") as fh:
            fh.write(json.dumps(bogus) + "\n")
        os.replace("stdout.txt.new", "stdout.txt")
        return 0
    if mode == "threads":  # reports how many threads its parent has while it runs
        threads = len(os.listdir(f"/proc/{os.getppid()}/task"))
        print(json.dumps({**result, "result": str(threads)}))
        return 0
    print(f"unknown FAKE_MODE {mode}", file=sys.stderr)
    return 3


def escape() -> int:
    """Start processes that try to outlive the agent, note their pids in $FAKE_PIDFILE, then hang.

    A child in the agent's process group, one in a session of its own (setsid), one that drops
    its whole environment, and a daemon (fork, setsid, fork) whose parent exits at once, so it
    is an orphan in no session of ours.
    """
    pids = [os.getpid()]
    for kind in ("group", "setsid", "noenv"):
        pid = os.fork()
        if pid == 0:
            if kind == "setsid":
                os.setsid()
            if kind == "noenv":
                os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)"], {})
            time.sleep(600)
            os._exit(0)
        pids.append(pid)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork():
            os._exit(0)
        os.write(w, str(os.getpid()).encode())
        time.sleep(600)
        os._exit(0)
    os.waitpid(pid, 0)  # the daemon's parent is gone: it is an orphan now
    os.close(w)
    pids.append(int(os.read(r, 64)))
    pidfile = os.environ["FAKE_PIDFILE"]
    with open(pidfile + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(" ".join(map(str, pids)))
    os.replace(pidfile + ".tmp", pidfile)  # all at once: a reader never sees half the list
    time.sleep(600)
    return 0


def flood(result: dict, usage: dict) -> None:  # type: ignore[type-arg]
    """FAKE_FLOOD_BYTES of filler lines, then a line with $LEAK, then the answer (claude-json, or opencode-jsonl
    steps at both ends when FAKE_FLOOD_FORMAT=opencode)."""
    out = sys.stdout.buffer
    step = {"type": "step_finish", "part": {"type": "step-finish", "tokens": {"input": 10, "output": 5}}}
    opencode = os.environ.get("FAKE_FLOOD_FORMAT") == "opencode"
    if opencode:
        out.write(json.dumps(step).encode() + b"\n")
    line = b"." * 1023 + b"\n"
    chunk = line * 1024
    left = int(os.environ["FAKE_FLOOD_BYTES"])
    while left > 0:
        out.write(chunk[:left])
        left -= len(chunk)
    out.write(b"\nkey " + os.environ.get("LEAK", "").encode() + b"\n")
    if opencode:
        out.write(json.dumps(step).encode() + b"\n")
    else:
        out.write(json.dumps({**result, "usage": usage}).encode() + b"\n")
    out.flush()


if __name__ == "__main__":
    raise SystemExit(main())
