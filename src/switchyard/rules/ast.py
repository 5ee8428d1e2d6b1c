"""Syntax tree of the condition language. Every node carries its span in the source.

Plain slotted classes rather than dataclasses: they are built once per rule at
load time, and a dataclass costs ~1 ms of class creation each, which every
`switchyard route` would pay.
"""

from __future__ import annotations

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


class _Node:
    __slots__ = ()

    def _fields(self) -> tuple[str, ...]:
        names: tuple[str, ...] = type(self).__slots__
        return names

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(getattr(self, k) == getattr(other, k) for k in self._fields())

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(getattr(self, k) for k in self._fields())))


class Literal(_Node):
    """A number, a string, `true` or `false`."""

    __slots__ = ("span", "value")

    def __init__(self, value: LiteralValue, span: Span) -> None:
        self.value = value
        self.span = span


class ListLit(_Node):
    """`['a', 'b']`."""

    __slots__ = ("items", "span")

    def __init__(self, items: tuple[Literal, ...], span: Span) -> None:
        self.items = items
        self.span = span


class Name(_Node):
    """A bare identifier: `priority`, `labels`, `task`."""

    __slots__ = ("name", "span")

    def __init__(self, name: str, span: Span) -> None:
        self.name = name
        self.span = span


class Attr(_Node):
    """`obj.name`."""

    __slots__ = ("name", "name_span", "obj", "span")

    def __init__(self, obj: Node, name: str, span: Span, name_span: Span) -> None:
        self.obj = obj
        self.name = name
        self.span = span
        self.name_span = name_span


class Index(_Node):
    """`obj['key']`."""

    __slots__ = ("key", "obj", "span")

    def __init__(self, obj: Node, key: Literal, span: Span) -> None:
        self.obj = obj
        self.key = key
        self.span = span


class Not(_Node):
    """`not operand`."""

    __slots__ = ("operand", "span")

    def __init__(self, operand: Node, span: Span) -> None:
        self.operand = operand
        self.span = span


class BoolOp(_Node):
    """`a and b and c` / `a or b` (operands flattened)."""

    __slots__ = ("op", "operands", "span")

    def __init__(self, op: str, operands: tuple[Node, ...], span: Span) -> None:
        self.op = op
        self.operands = operands
        self.span = span


class Compare(_Node):
    """`left OP right`, where OP is `==`, `<`, `contains`, `in`, `matches`…; `negated` for `not in` etc."""

    __slots__ = ("left", "negated", "op", "op_span", "right", "span")

    def __init__(self, op: str, left: Node, right: Node, negated: bool, span: Span, op_span: Span) -> None:
        self.op = op
        self.left = left
        self.right = right
        self.negated = negated
        self.span = span
        self.op_span = op_span


Node = Literal | ListLit | Name | Attr | Index | Not | BoolOp | Compare
