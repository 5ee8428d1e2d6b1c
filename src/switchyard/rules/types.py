"""Types of the facts a condition may read, and the fact schema the checker uses.

A schema is a tree: records (fixed fields, read with `.name`), maps (keys given
with `['key']`, optionally restricted to a known set) and scalars. The router
fills a `Facts` object whose attributes mirror the record fields; the compiler
turns each path into plain attribute and dict lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field

from switchyard._records import record

__all__ = [
    "ANY",
    "BOOL",
    "NUMBER",
    "TEXT",
    "FactType",
    "ListOf",
    "MapOf",
    "Record",
    "Scalar",
    "describe",
]


@record
class Scalar:
    """A single value: `number`, `text`, `bool`, or `any` (unchecked metadata)."""

    kind: str
    choices: frozenset[str] | None = None  # for text: the only values it can take
    choice_noun: str = "value"


@record
class ListOf:
    """A list of scalars (`labels`)."""

    item: Scalar


@record
class Record:
    """A fixed set of named fields, read with `.field` (or `['field']`)."""

    fields: Mapping[str, FactType]
    attr_names: Mapping[str, str] = field(default_factory=dict)  # fact name -> Python attribute

    def attr(self, name: str) -> str:
        return self.attr_names.get(name, name)


@record
class MapOf:
    """Keys to values, read with `['key']` (and `.key` when `dotted`).

    `check_key` returns None for a good key or a message (with a suggestion) for a bad one.
    """

    value: FactType
    noun: str
    check_key: Callable[[str], str | None] | None = None
    dotted: bool = False
    # A record whose fields are also reachable directly (budget.day next to budget['provider:x']).
    record: Record | None = None
    # Value a missing key reads as (provider_status: a provider we know nothing of is "up").
    missing: object = None


FactType = Scalar | ListOf | Record | MapOf

NUMBER = Scalar("number")
TEXT = Scalar("text")
BOOL = Scalar("bool")
ANY = Scalar("any")


def describe(t: FactType) -> str:
    """Human name of a type, for error messages."""
    if isinstance(t, Scalar):
        return t.kind
    if isinstance(t, ListOf):
        return f"list of {t.item.kind}"
    if isinstance(t, Record):
        return "record"
    return "map"
