"""One table that says what to do about every kind of failure.

| kind            | examples                                   | action   | breaker | may have spent |
|-----------------|--------------------------------------------|----------|---------|----------------|
| rate_limited    | 429 (honour Retry-After up to a cap)       | retry    | no      | unless status  |
| overloaded      | 529, 503, 502                              | retry    | yes     | unless status  |
| server_error    | other 5xx, 200 with an error body          | retry    | yes     | unless status  |
| timeout         | no answer within timeout_s                 | retry    | yes     | yes            |
| connection      | refused, DNS, the request not sent         | retry    | yes     | no             |
| truncated       | body cut mid-way, connection reset         | retry    | yes     | yes            |
| malformed       | not the JSON we expected                   | retry    | yes     | yes            |
| cli_error       | agent CLI exited non-zero / is_error       | retry    | yes     | yes            |
| out_of_credits  | 402, insufficient_quota, spend limit       | failover | yes     | unless status  |
| not_found       | 404: this provider lacks the model         | failover | no      | no             |
| bad_request     | 400, 413, 422                              | fatal    | no      | unless status  |
| auth            | 401, 403, a rejected key (Gemini's 400)    | disable  | yes     | no             |
| config_error    | executable not found, a CLI usage error    | disable  | yes     | no             |
| interrupted     | we were asked to stop                      | fatal    | no      | yes            |
| unresolved      | an answer that did not resolve the task    | fatal    | no      | yes            |
| rejected        | `[verify]` rejected the attempt's change   | fatal    | no      | yes            |
| verify_error    | a `[verify]` check could not run           | fatal    | no      | yes            |

`retry` tries the same provider again (up to its `max_retries`), then fails
over to the next candidate; `failover` moves on at once; `fatal` ends the
route: `exec` stops there (another model would get the same bad request), and
the coordinator, as after any route that failed, escalates the task
(`retry_count + 1`) and routes it again, up to `[coordinator] max_attempts`;
`disable` marks the provider disabled until `switchyard providers reset NAME`
(a configuration error: until its config or environment changes), then fails over: `route`, `status` and `providers` show it disabled with the
reason, and no task calls it again (a failure that would repeat on every call,
such as a missing executable or a command line the CLI rejects, `classify_exit`,
is a configuration error, not something to retry).

"may have spent" is what a failed call whose usage cannot be read (no usage, no reported
cost) is charged, `may_have_spent`: `yes`, the call ran and may have done paid work, so it is
recorded unpriced (`cost_basis = "unknown"`, charged its worst case, the budget hold); `no`,
no model work can have happened (the executable is missing, the CLI rejected its command line,
the request never reached the provider, the key was refused, no such model), so it is $0 and
its hold is released; `unless status`, $0 when the provider refused the request with this
error as its status (an HTTP status >= 400, or the API status an agent CLI reports: a 429, a
529 before any work), else (an error in a 200 body, after output had started) unpriced.

`unresolved` is a wrong answer, not a broken provider: the call worked and its
tokens are paid, but the work did not resolve the task (today only the
simulated provider's quality model says so, see `providers/simulated.py`).
Retrying the same candidate or its fallbacks would ask the same question of
the same kind of model; escalating lets the rules (`retry_count >= 1`) pick a
stronger one. It never counts against the breaker. `rejected` is the same
judgement made by `[verify]` on a change in the task's worktree (the attempt is
recorded `rejected`, with the failing check). `verify_error`, a check that could
not run, is not the model's doing: the coordinator ends the task instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "POLICY",
    "Failure",
    "FailureKind",
    "Policy",
    "classify_exit",
    "classify_http",
    "may_have_spent",
    "usage_error",
]

Action = Literal["retry", "failover", "fatal", "disable"]
Spent = Literal["yes", "no", "unless_status"]


class FailureKind(StrEnum):
    """What went wrong, independent of which provider it was."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    CLI_ERROR = "cli_error"
    OUT_OF_CREDITS = "out_of_credits"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    CONFIG_ERROR = "config_error"
    INTERRUPTED = "interrupted"
    UNRESOLVED = "unresolved"
    REJECTED = "rejected"
    VERIFY_ERROR = "verify_error"


@dataclass(frozen=True)
class Policy:
    """What to do about a failure kind."""

    action: Action
    breaker: bool
    hint: str
    spent: Spent  # may a call that failed so, its usage unread, have spent? (`may_have_spent`)


POLICY: dict[FailureKind, Policy] = {
    FailureKind.RATE_LIMITED: Policy("retry", False, "the provider asked us to slow down", "unless_status"),
    FailureKind.OVERLOADED: Policy("retry", True, "the provider is overloaded; retrying with backoff", "unless_status"),
    FailureKind.SERVER_ERROR: Policy("retry", True, "the provider failed; retrying with backoff", "unless_status"),
    FailureKind.TIMEOUT: Policy("retry", True, "no answer in time; raise timeout_s if the task is long", "yes"),
    FailureKind.CONNECTION: Policy("retry", True, "could not reach the provider; check base_url and the network", "no"),
    FailureKind.TRUNCATED: Policy("retry", True, "the response was cut off", "yes"),
    FailureKind.MALFORMED: Policy("retry", True, "the response was not in the expected format", "yes"),
    FailureKind.CLI_ERROR: Policy("retry", True, "the agent CLI failed; its own error text is kept", "yes"),
    FailureKind.OUT_OF_CREDITS: Policy(
        "failover", True, "the account is out of credits or over its spend limit", "unless_status"
    ),
    FailureKind.NOT_FOUND: Policy(
        "failover", False, "this provider does not serve the model; check provider_model", "no"
    ),
    FailureKind.BAD_REQUEST: Policy(
        "fatal", False, "the request itself is wrong; another model would fail the same way", "unless_status"
    ),
    FailureKind.AUTH: Policy(
        "disable", True, "the key was rejected; fix it, then run 'switchyard providers reset NAME'", "no"
    ),
    FailureKind.CONFIG_ERROR: Policy(
        "disable",
        True,
        "the provider cannot run as configured; it is tried again once its config or environment changes",
        "no",
    ),
    FailureKind.INTERRUPTED: Policy("fatal", False, "stopped on request", "yes"),
    FailureKind.UNRESOLVED: Policy(
        "fatal", False, "the answer did not resolve the task; the coordinator escalates it (retry_count + 1)", "yes"
    ),
    FailureKind.REJECTED: Policy("fatal", False, "verification rejected the change; the task escalates", "yes"),
    FailureKind.VERIFY_ERROR: Policy("fatal", False, "a verification check could not run; fix [verify]", "yes"),
}


@dataclass(frozen=True)
class Failure:
    """A failed call: its kind, what the provider said (redacted), and when to retry."""

    kind: FailureKind
    message: str
    http_status: int | None = None
    retry_after_s: float | None = None
    exit_code: int | None = None

    @property
    def policy(self) -> Policy:
        return POLICY[self.kind]


def may_have_spent(failure: Failure | None) -> bool:
    """May a call that ended so have done paid model work? Asked of a call whose usage cannot be read.

    A success did. A failure, as the table's "may have spent" says: `unless_status` kinds spent
    nothing when the provider refused the request with that error as its status (HTTP >= 400, or
    the API status a CLI reports); the same error in a 200 body may come after work was done.
    """
    if failure is None:
        return True
    spent = failure.policy.spent
    if spent == "unless_status":
        return not (failure.http_status is not None and failure.http_status >= 400)
    return spent == "yes"


def classify_http(status: int, error_code: str | None = None, error_type: str | None = None) -> FailureKind:
    """The failure kind of an HTTP error status, refined by the body's error code/type."""
    code = (error_code or "").lower()
    etype = (error_type or "").lower()
    if code in ("insufficient_quota", "enforced_spend_limit_reached", "billing_hard_limit_reached"):
        return FailureKind.OUT_OF_CREDITS
    if code in ("invalid_api_key", "api_key_invalid"):  # Google answers a bad key with 400 API_KEY_INVALID
        return FailureKind.AUTH
    if status == 402:
        return FailureKind.OUT_OF_CREDITS
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status in (401, 403):
        return FailureKind.AUTH
    if status in (502, 503, 529) or etype == "overloaded_error":
        return FailureKind.OVERLOADED
    if status == 404:
        return FailureKind.NOT_FOUND
    if status == 408:
        return FailureKind.TIMEOUT
    if status >= 500:
        return FailureKind.SERVER_ERROR
    if status >= 400:
        return FailureKind.BAD_REQUEST
    return FailureKind.SERVER_ERROR  # an error reported with a 2xx/3xx status


# How agent CLIs reject their command line, as each prints it (Claude Code and Gemini exit 1,
# Codex, argparse and click exit 2): "error: unknown option '--x'" (commander), "Unknown arguments: x"
# (yargs), "error: unexpected argument '--x' found" (clap), "unrecognized arguments" (argparse),
# "No such option" (click), "option '--x <v>' argument 'y' is invalid" (commander).
_USAGE_ERROR = re.compile(
    r"^\s*(?:error:\s*)?(?:unknown option|unknown arguments?:|unexpected argument|unrecognized arguments?"
    r"|no such option|option '[^'\n]*' argument '[^'\n]*' is invalid|missing required argument"
    r"|required option '[^'\n]*' not specified)",
    re.IGNORECASE | re.MULTILINE,
)
_USAGE_TEXT = re.compile(r"^\s*usage:", re.IGNORECASE | re.MULTILINE)


def usage_error(exit_code: int, output: str) -> str | None:
    """The line where an agent CLI that exited `exit_code` says it rejected its command line, else None.

    `output` is what it printed (stderr, then stdout). Claude Code and Gemini exit 1 naming the bad
    option; Codex, argparse and click exit 2 with their usage text.
    """
    text = output[:8000]
    if exit_code <= 0:
        return None
    found = _USAGE_ERROR.search(text)
    if found is not None:
        end = text.find("\n", found.start())
        return text[found.start() : end if end >= 0 else None].strip()
    if exit_code == 2 and (usage := _USAGE_TEXT.search(text)) is not None:
        lines = [ln.strip() for ln in text[: usage.start()].splitlines() if ln.strip()]
        return lines[-1] if lines else "it printed its usage text"
    return None


def classify_exit(exit_code: int, output: str) -> FailureKind:
    """The failure kind of an agent CLI that exited `exit_code`, printed `output` and no result: a
    rejected command line is a configuration error (every call would fail the same way), anything
    else the CLI's own failure."""
    return FailureKind.CLI_ERROR if usage_error(exit_code, output) is None else FailureKind.CONFIG_ERROR
