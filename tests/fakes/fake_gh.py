"""A stand-in for the GitHub CLI (`gh`) and beads (`bd`), for tests: GitHub itself is not reachable here.

Run as `gh ...` or `bd ...` (a wrapper script execs this file with its name as the first
argument). Every call is appended, with its arguments and the text of any `--body-file`,
to $FAKE_GH_LOG (JSON lines, fsynced: a test may kill us right after). State that a real
GitHub would keep (pull requests, comments, labels) lives in $FAKE_GH_STATE (JSON).

gh:  issue list (prints $FAKE_GH_ISSUES), issue view N --json=comments, issue comment N --body-file=F,
     issue edit N --add-label=L --remove-label=L, pr list --head=B, pr create --head=B --base=X --title=T --body-file=F
bd:  ready --json (prints $FAKE_BD_ISSUES), update, close, comments add (recorded only)

$FAKE_GH_BLOCK names a call ("pr list", "pr create", ...): that call does its work, writes
its pid to $FAKE_GH_BLOCKED and then sleeps until it is killed. $FAKE_GH_FAIL names a call
that fails (exit 1, a message on stderr).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _flags(args: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    positional: list[str] = []
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            positional += args[i + 1 :]
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if not eq:
                if i + 1 < len(args) and not args[i + 1].startswith("--") and name not in ("draft", "json"):
                    value = args[i + 1]
                    i += 1
                else:
                    value = ""
            flags.setdefault(name, []).append(value)
        elif a.startswith("-") and len(a) == 2 and i + 1 < len(args):
            flags.setdefault(a[1:], []).append(args[i + 1])
            i += 1
        else:
            positional.append(a)
        i += 1
    return positional, flags


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, ValueError):
        return {"prs": [], "comments": {}, "labels": {}}


def _save(path: str, state: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _log(entry: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_GH_LOG")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _block(call: str) -> None:
    if os.environ.get("FAKE_GH_BLOCK") == call:
        with open(os.environ["FAKE_GH_BLOCKED"], "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
        while True:
            time.sleep(60)


def gh(args: list[str]) -> int:
    positional, flags = _flags(args)
    call = " ".join(positional[:2])
    body = None
    if "body-file" in flags:
        with open(flags["body-file"][0], encoding="utf-8") as fh:
            body = fh.read()
    _log({"tool": "gh", "call": call, "args": args, "body": body, "cwd": os.getcwd()})
    if os.environ.get("FAKE_GH_FAIL") == call:
        sys.stderr.write(f"gh: {call} failed: HTTP 502\n")
        return 1
    state_path = os.environ.get("FAKE_GH_STATE", "gh-state.json")
    state = _load(state_path)
    repo = (flags.get("repo") or flags.get("R") or [""])[0]
    if call == "issue list":
        sys.stdout.write(os.environ.get("FAKE_GH_ISSUES", "[]"))
    elif call == "pr list":
        head = flags.get("head", [""])[0]
        found = [
            {"number": p["number"], "url": p["url"]} for p in state["prs"] if p["head"] == head and p["repo"] == repo
        ]
        sys.stdout.write(json.dumps(found))
    elif call == "pr create":
        number = len(state["prs"]) + 100
        url = f"https://github.com/{repo}/pull/{number}"
        state["prs"].append(
            {
                "number": number,
                "url": url,
                "repo": repo,
                "head": flags["head"][0],
                "base": flags["base"][0],
                "title": flags["title"][0],
                "body": body,
            }
        )
        _save(state_path, state)
        print(url)
    elif call == "issue view":
        comments = state["comments"].get(f"{repo}#{positional[2]}", [])
        sys.stdout.write(json.dumps({"comments": [{"body": c} for c in comments]}))
    elif call == "issue comment":
        state["comments"].setdefault(f"{repo}#{positional[2]}", []).append(body)
        _save(state_path, state)
        print(f"https://github.com/{repo}/issues/{positional[2]}#issuecomment-1")
    elif call == "issue edit":
        key = f"{repo}#{positional[2]}"
        labels = set(state["labels"].get(key, []))
        labels |= set(flags.get("add-label", []))
        labels -= set(flags.get("remove-label", []))
        state["labels"][key] = sorted(labels)
        _save(state_path, state)
    else:
        sys.stderr.write(f"fake gh: unknown call {call!r}\n")
        return 2
    _block(call)
    return 0


def bd(args: list[str]) -> int:
    positional, _ = _flags(args)
    call = positional[0] if positional else ""
    _log({"tool": "bd", "call": call, "args": args})
    if call == "ready":
        sys.stdout.write(os.environ.get("FAKE_BD_ISSUES", "[]"))
    return 0


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    return gh(args) if tool == "gh" else bd(args)


if __name__ == "__main__":
    sys.exit(main())
