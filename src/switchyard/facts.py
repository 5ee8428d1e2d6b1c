"""The facts a routing rule may read: their declared types, and the runtime object.

`build_schema()` declares names and types for the rule checker, using the
config's providers, models and workflows to validate `provider_status[...]`
and `budget[...]` keys. `Facts` is what compiled conditions read at decision
time; expensive facts (the local hour, the bucket hash) are computed only when
a rule reads them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchyard._records import record
from switchyard.errors import did_you_mean

try:  # the blake2 module alone; `hashlib` would also load OpenSSL (~5 ms per process)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - other Pythons
    from hashlib import blake2b
from switchyard.rules.types import ANY, NUMBER, TEXT, ListOf, MapOf, Record, Scalar
from switchyard.task import Task

__all__ = [
    "DEPRECATED_FACTS",
    "OUTCOMES",
    "PROVIDER_STATUSES",
    "WEEKDAYS",
    "BudgetView",
    "Facts",
    "PeriodFacts",
    "build_schema",
    "local_zone",
    "routing_zone",
    "stable_hash",
]

PROVIDER_STATUSES = frozenset({"up", "down", "degraded", "disabled"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERIODS = ("day", "week", "month")
# How the task's last attempt ended (`last_outcome`): "" before its first. `verified` and `rejected`
# come from `[verify]`; `ok` is a success nothing verified.
OUTCOMES = frozenset({"", "ok", "verified", "rejected", "failed", "timeout", "interrupted", "error"})
# Old bare names the schema still reads, and what to write instead (the loader warns where a rule uses one).
DEPRECATED_FACTS = {"estimated_tokens": "task.estimated_tokens"}


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same on every machine and run."""
    return int.from_bytes(blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


# `hour`, `weekday` and the budget periods are read in one zone: the config's, else this machine's.
def routing_zone(name: str | None) -> tzinfo | None:
    """The `[routing] timezone` (an IANA name), else this machine's zone."""
    return ZoneInfo(name) if name else local_zone()


def local_zone() -> tzinfo | None:
    """This machine's IANA zone ($TZ, else /etc/localtime); None lets Python ask the OS each time."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return None


@record
class PeriodFacts:
    """Spend against one limit in its current period. `remaining_usd` is None when unlimited."""

    spent_usd: Decimal = Decimal(0)
    held_usd: Decimal = Decimal(0)
    limit_usd: Decimal | None = None

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return max(Decimal(0), self.limit_usd - self.spent_usd - self.held_usd)

    @property
    def fraction(self) -> Decimal:
        """Share of the limit used (spent + held); 0 when there is no limit."""
        if not self.limit_usd:
            return Decimal(0)
        return (self.spent_usd + self.held_usd) / self.limit_usd


_UNLIMITED = PeriodFacts()


@record
class BudgetView:
    """Budget facts: `day`/`week`/`month` for the global limits, and scopes by key."""

    day: PeriodFacts = _UNLIMITED
    week: PeriodFacts = _UNLIMITED
    month: PeriodFacts = _UNLIMITED
    scopes: Mapping[str, PeriodFacts] = field(default_factory=dict)

    def get(self, key: str, default: PeriodFacts = _UNLIMITED) -> PeriodFacts:
        """Facts for a scope such as `provider:openrouter` (`default`, unlimited, when no limit names it)."""
        return self.scopes.get(key, default)


EMPTY_BUDGET = BudgetView()


class Facts:
    """Everything a condition can read about one decision."""

    __slots__ = (
        "_bucket",
        "_local",
        "budget",
        "labels",
        "last_outcome",
        "loop_count",
        "now",
        "priority",
        "provider_status",
        "rejected_count",
        "retry_count",
        "stage",
        "task",
        "tz",
        "workflow",
    )

    def __init__(
        self,
        task: Task,
        *,
        now: datetime,
        tz: tzinfo | None,
        stage: str | None = None,
        workflow: str | None = None,
        provider_status: Mapping[str, str] | None = None,
        budget: BudgetView | None = None,
        loop_count: int = 0,
        last_outcome: str = "",
        rejected_count: int = 0,
    ) -> None:
        self.task = task
        self.priority = task.priority
        self.labels = task.labels
        self.retry_count = task.retry_count
        self.now = now
        self.tz = tz
        self.stage = stage
        self.workflow = workflow
        self.provider_status = provider_status if provider_status is not None else {}
        self.budget = budget if budget is not None else EMPTY_BUDGET
        self.loop_count = loop_count
        self.last_outcome = last_outcome
        self.rejected_count = rejected_count
        self._local: datetime | None = None
        self._bucket: int | None = None

    @property
    def local_time(self) -> datetime:
        """`now` in the routing time zone."""
        if self._local is None:
            self._local = self.now.astimezone(self.tz)
        return self._local

    @property
    def hour(self) -> int:
        return self.local_time.hour

    @property
    def weekday(self) -> str:
        return WEEKDAYS[self.local_time.weekday()]

    @property
    def estimated_tokens(self) -> int:
        """The bare name of `task.estimated_tokens` (deprecated: the seed system's)."""
        return self.task.tokens_estimate

    @property
    def bucket(self) -> int:
        """0–99, stable per task id: `bucket < 10` is a steady 10 % slice."""
        if self._bucket is None:
            self._bucket = stable_hash(self.task.id) % 100
        return self._bucket

    def snapshot(self) -> dict[str, Any]:
        """The plain facts, for `route --explain` and traces (the outcome facts once there was an attempt)."""
        outcome = (
            {"last_outcome": self.last_outcome, "rejected_count": self.rejected_count} if self.last_outcome else {}
        )
        return {
            "task.id": self.task.id,
            "priority": self.priority,
            "labels": list(self.labels),
            "retry_count": self.retry_count,
            "hour": self.hour,
            "weekday": self.weekday,
            "bucket": self.bucket,
            "stage": self.stage,
            "workflow": self.workflow,
            "loop_count": self.loop_count,
            "provider_status": dict(self.provider_status),
            **outcome,
        }


def _checker(noun: str, known: Iterable[str]) -> Any:
    names = frozenset(known)

    def check(key: str) -> str | None:
        if key in names:
            return None
        return f"unknown {noun} '{key}'" + did_you_mean(key, names)

    return check


def _budget_key_checker(providers: frozenset[str], models: frozenset[str], workflows: frozenset[str]) -> Any:
    kinds = {"provider": providers, "model": models, "workflow": workflows}

    def check(key: str) -> str | None:
        if key == "global" or key in PERIODS:
            return None
        kind, sep, name = key.partition(":")
        if not sep:
            return f"'{key}' is not a budget scope; write 'global', 'provider:NAME', 'model:NAME', 'label:NAME' or 'workflow:NAME'"
        if kind == "label":
            return None if name else "a label scope needs a label: 'label:NAME'"
        if kind not in kinds:
            return f"unknown budget scope kind '{kind}'" + did_you_mean(kind, [*kinds, "label"], "'{}:'".format)
        if name in kinds[kind]:
            return None
        return f"unknown {kind} '{name}' in budget scope" + did_you_mean(
            name, kinds[kind], lambda near: f"'{kind}:{near}'"
        )

    return check


def build_schema(
    *,
    providers: Iterable[str],
    models: Iterable[str],
    workflows: Iterable[str] = (),
) -> Record:
    """Declare every fact name and type, for checking conditions at load time."""
    provider_names = frozenset(providers)
    model_names = frozenset(models)
    workflow_names = frozenset(workflows)
    labels = ListOf(TEXT)
    task = Record(
        {
            "id": TEXT,
            "title": TEXT,
            "body": TEXT,
            "type": TEXT,
            "source": TEXT,
            "url": TEXT,
            "labels": labels,
            "priority": NUMBER,
            "retry_count": NUMBER,
            "estimated_tokens": NUMBER,
            "metadata": MapOf(ANY, "metadata key", dotted=True),
        },
        attr_names={"estimated_tokens": "tokens_estimate"},
    )
    period = Record(
        {"spent_usd": NUMBER, "remaining_usd": NUMBER, "fraction": NUMBER, "limit_usd": NUMBER, "held_usd": NUMBER}
    )
    budget = MapOf(
        period,
        "budget scope",
        check_key=_budget_key_checker(provider_names, model_names, workflow_names),
        record=Record({"day": period, "week": period, "month": period}),
        missing=_UNLIMITED,  # a scope no limit names reads as unlimited
    )
    status = Scalar("text", PROVIDER_STATUSES, "provider status")
    return Record(
        {
            "priority": NUMBER,
            "labels": labels,
            "retry_count": NUMBER,
            "hour": NUMBER,
            "weekday": Scalar("text", frozenset(WEEKDAYS), "weekday"),
            "task": task,
            "stage": TEXT,
            "workflow": TEXT,
            "loop_count": NUMBER,
            "last_outcome": Scalar("text", OUTCOMES, "outcome"),
            "rejected_count": NUMBER,
            "estimated_tokens": NUMBER,
            "provider_status": MapOf(status, "provider", check_key=_checker("provider", provider_names), missing="up"),
            "bucket": NUMBER,
            "budget": budget,
        }
    )
