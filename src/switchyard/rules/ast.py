"""Syntax tree of the condition language. Every node carries its span in the source."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "Attr",
    "BoolOp",
    "Compare",
    "Index",
    "ListLit",
    "Literal",
    "Name",
    "Node",
    "Not",
    "Span",
]

Span = tuple[int, int]
LiteralValue = int | Decimal | str | bool


@dataclass(frozen=True, slots=True)
class Literal:
    """A number, a string, `true` or `false`."""

    value: LiteralValue
    span: Span


@dataclass(frozen=True, slots=True)
class ListLit:
    """`['a', 'b']`."""

    items: tuple[Literal, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    """A bare identifier: `priority`, `labels`, `task`."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    """`obj.name`."""

    obj: Node
    name: str
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Index:
    """`obj['key']`."""

    obj: Node
    key: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    """`not operand`."""

    operand: Node
    span: Span


@dataclass(frozen=True, slots=True)
class BoolOp:
    """`a and b and c` / `a or b` (operands flattened)."""

    op: str
    operands: tuple[Node, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    """`left OP right`, where OP is `==`, `<`, `contains`, `in`, `matches`…; `negated` for `not in` etc."""

    op: str
    left: Node
    right: Node
    negated: bool
    span: Span
    op_span: Span


Node = Literal | ListLit | Name | Attr | Index | Not | BoolOp | Compare
