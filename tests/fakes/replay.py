"""Print what a real agent CLI printed, recorded, and exit as it did.

    python replay.py STDOUT_FILE STDERR_FILE EXIT_CODE

Either file may be "-" for nothing. The prompt on stdin is read and ignored.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    out, err, code = argv
    if not sys.stdin.isatty():
        sys.stdin.read()
    if out != "-":
        with open(out, encoding="utf-8") as fh:
            sys.stdout.write(fh.read())
    if err != "-":
        with open(err, encoding="utf-8") as fh:
            sys.stderr.write(fh.read())
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
