"""Check a parsed condition against the fact schema and compile it to a closure.

One pass does both: every node is resolved to a type (a mismatch is a
`ConfigError` with a caret under the offending part) and to a Python callable
taking the `Facts` object. Evaluation never parses and never calls `eval`;
`matches` runs its pattern with RE2 (`switchyard.patterns`), in linear time.

Missing values (a stage when no stage is set, an absent metadata key) read as
`None`: a positive comparison with `None` is false, a negated one (`!=`,
`not in`, `not contains`) is true. Evaluation never raises.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NoReturn

from switchyard._records import record
from switchyard.errors import ConfigError, Problem, did_you_mean
from switchyard.patterns import PatternError, compile_pattern
from switchyard.rules.ast import Attr, BoolOp, Compare, Index, ListLit, Literal, Name, Node, Not, Span
from switchyard.rules.parse import parse
from switchyard.rules.types import ANY, BOOL, NUMBER, TEXT, FactType, ListOf, MapOf, Record, Scalar, describe

__all__ = ["Condition", "compile_condition"]

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]


@record
class Condition:
    """A compiled condition: call `test(facts)`; `reads` names the facts it looks at, with getters."""

    source: str
    test: Predicate
    reads: tuple[tuple[str, Getter], ...]
    constant: bool | None = None  # set when the condition does not depend on any fact

    def read_values(self, facts: Any) -> dict[str, Any]:
        """The value of every fact this condition reads, for traces."""
        return {name: get(facts) for name, get in self.reads}


@record
class _Val:
    """A compiled value: its type, a getter, and its constant value when it has one."""

    type: FactType
    get: Getter
    span: Span
    path: str | None = None  # a fact path such as "task.id"; None for literals and expressions
    const: object = None
    is_const: bool = False
    attrs: tuple[str, ...] | None = None  # Python attribute chain, when the value is one (fast getter)


def _kind(t: FactType) -> str:
    if isinstance(t, Scalar):
        return t.kind
    if isinstance(t, ListOf):
        return "list"
    return "record"


class _Compiler:
    def __init__(self, source: str, schema: Record) -> None:
        self.source = source
        self.schema = schema
        self.reads: dict[str, Getter] = {}

    def fail(self, message: str, span: Span, hint: str | None = None) -> NoReturn:
        start, end = span
        raise ConfigError([Problem(message, source=self.source, span=(start, max(end, start + 1)), hint=hint)])

    # values ----------------------------------------------------------------
    def value(self, node: Node) -> _Val:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, ListLit):
            return self.list_literal(node)
        if isinstance(node, (Name, Attr, Index)):
            return self.fact(node)
        # A boolean sub-expression used as a value: `(a == 1) == true`.
        pred = self.predicate(node)
        return _Val(BOOL, pred, node.span)

    def literal(self, node: Literal) -> _Val:
        v = node.value
        t = BOOL if isinstance(v, bool) else NUMBER if isinstance(v, (int, Decimal)) else TEXT
        return _Val(t, _const_getter(v), node.span, const=v, is_const=True)

    def list_literal(self, node: ListLit) -> _Val:
        kinds = {_kind(self.literal(item).type) for item in node.items}
        if len(kinds) > 1:
            self.fail("a list must hold values of one type", node.span, hint="use only strings, or only numbers")
        item_kind = kinds.pop() if kinds else "any"
        item = {"number": NUMBER, "text": TEXT, "bool": BOOL}.get(item_kind, ANY)
        values = tuple(i.value for i in node.items)
        return _Val(ListOf(item), _const_getter(values), node.span, const=values, is_const=True)

    def fact(self, node: Name | Attr | Index) -> _Val:
        if isinstance(node, Name):
            t = self.schema.fields.get(node.name)
            if t is None:
                mean = did_you_mean(node.name, self.schema.fields)
                hint = None if mean else "known names: " + ", ".join(sorted(self.schema.fields))
                self.fail(f"unknown name '{node.name}'{mean}", node.span, hint)
            attr = self.schema.attr(node.name)
            get: Getter = operator.attrgetter(attr)
            return self.remember(_Val(t, get, node.span, path=node.name, attrs=(attr,)))
        base = self.fact_base(node.obj)
        if isinstance(node, Attr):
            return self.member(base, node.name, node.name_span, node.span, dotted=True)
        key = node.key.value
        if not isinstance(key, str):
            self.fail("keys are written as quoted strings", node.key.span, hint=f"write ['{key}']")
        return self.member(base, key, node.key.span, node.span, dotted=False)

    def fact_base(self, node: Node) -> _Val:
        if not isinstance(node, (Name, Attr, Index)):
            self.fail("only facts have fields", node.span)
        return self.fact(node)

    def member(self, base: _Val, key: str, key_span: Span, span: Span, *, dotted: bool) -> _Val:
        t = base.type
        bget = base.get
        shown = f".{key}" if dotted else f"['{key}']"
        path = f"{base.path}{shown}"
        if isinstance(t, Record) or (isinstance(t, MapOf) and t.record is not None and key in t.record.fields):
            rec = t if isinstance(t, Record) else t.record
            assert rec is not None
            ft = rec.fields.get(key)
            if ft is None:
                mean = did_you_mean(key, rec.fields, lambda near: f"'{base.path}.{near}'")
                hint = None if mean else "fields: " + ", ".join(sorted(rec.fields))
                self.fail(f"'{base.path}' has no field '{key}'{mean}", key_span, hint)
            if base.attrs is not None:  # one C-level getter for the whole chain: attrgetter("task.id")
                attrs = (*base.attrs, rec.attr(key))
                return self.remember(_Val(ft, operator.attrgetter(".".join(attrs)), span, path=path, attrs=attrs))
            return self.remember(_Val(ft, _attr_getter(bget, rec.attr(key)), span, path=path))
        if isinstance(t, MapOf):
            if dotted and not t.dotted:
                self.fail(
                    f"'{base.path}' is read with a quoted key",
                    key_span,
                    hint=f"write {base.path}['{key}']",
                )
            if t.check_key is not None:
                problem = t.check_key(key)
                if problem is not None:
                    self.fail(problem, key_span)
            get = _key_getter(bget, key, t.missing)
            return self.remember(_Val(t.value, get, span, path=path))
        self.fail(f"'{base.path}' is a {describe(t)}; it has no fields", key_span)

    def remember(self, v: _Val) -> _Val:
        if v.path is not None and isinstance(v.type, (Scalar, ListOf)):
            self.reads.setdefault(v.path, v.get)
        return v

    # predicates --------------------------------------------------------------
    def predicate(self, node: Node) -> Predicate:
        if isinstance(node, BoolOp):
            parts = [self.predicate(op) for op in node.operands]
            return _chain(node.op, parts)
        if isinstance(node, Not):
            inner = self.predicate(node.operand)
            return lambda f: not inner(f)
        if isinstance(node, Compare):
            return self.compare(node)
        v = self.value(node)
        if v.type == BOOL:
            if v.is_const:
                c = bool(v.const)
                return lambda _f: c
            g = v.get
            return lambda f: g(f) is True
        if v.type == ANY:
            g = v.get
            return lambda f: bool(g(f))
        what = f"'{v.path}'" if v.path else "this value"
        self.fail(
            f"{what} is a {describe(v.type)}, not a condition",
            node.span,
            hint="compare it with something, e.g. " + _example(v),
        )

    def compare(self, node: Compare) -> Predicate:
        left = self.value(node.left)
        right = self.value(node.right)
        for side in (left, right):
            if isinstance(side.type, (Record, MapOf)):
                self.fail(f"{_what(side)} is a group of facts; compare one of its fields", side.span)
        op = node.op
        if op in ("==", "!="):
            self.check_same(left, right, node)
            self.check_choice(left, right)
            self.check_choice(right, left)
            fn = _binary(left, right, operator.eq)
            return _negate(fn) if op == "!=" else fn
        if op in ("<", "<=", ">", ">="):
            for side in (left, right):
                if side.type not in (NUMBER, ANY):
                    self.fail(
                        f"'{op}' compares numbers, but {_what(side)} is {describe(side.type)}",
                        side.span,
                    )
            pyop = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]
            return _binary(left, right, pyop, guard=left.type == ANY or right.type == ANY)
        if op == "contains":
            if isinstance(left.type, ListOf):
                self.check_item(left.type.item, right, node)
                self.check_choice(_Val(left.type.item, left.get, left.span, left.path), right)
            elif left.type not in (TEXT, ANY):
                self.fail(
                    f"'contains' needs a list or text on its left, but {_what(left)} is {describe(left.type)}",
                    left.span,
                )
            elif right.type not in (TEXT, ANY):
                self.fail(f"text can only contain text, not {describe(right.type)}", right.span)
            fn = _binary(left, right, operator.contains, guard=ANY in (left.type, right.type))
            return _negate(fn) if node.negated else fn
        if op == "in":
            if isinstance(right.type, ListOf):
                self.check_item(right.type.item, left, node)
                self.check_choice(left, right)
            elif right.type not in (TEXT, ANY):
                self.fail(
                    f"'in' needs a list or text on its right, but {_what(right)} is {describe(right.type)}",
                    right.span,
                    hint="write a list such as ['bug', 'docs']",
                )
            elif left.type not in (TEXT, ANY):
                self.fail(f"only text can be in text, not {describe(left.type)}", left.span)
            fn = _binary(right, left, operator.contains, guard=ANY in (left.type, right.type))
            return _negate(fn) if node.negated else fn
        if op in ("starts_with", "ends_with"):
            for side in (left, right):
                if side.type not in (TEXT, ANY):
                    self.fail(f"'{op}' works on text, but {_what(side)} is {describe(side.type)}", side.span)
            method = str.startswith if op == "starts_with" else str.endswith
            fn = _binary(left, right, method, guard=ANY in (left.type, right.type))
            return _negate(fn) if node.negated else fn
        if op == "matches":
            if left.type not in (TEXT, ANY):
                self.fail(f"'matches' works on text, but {_what(left)} is {describe(left.type)}", left.span)
            if not (right.is_const and isinstance(right.const, str)):
                self.fail("'matches' needs a regular expression in quotes on its right", right.span)
            try:
                search = compile_pattern(str(right.const)).search  # RE2: linear in the text, never backtracks
            except PatternError as exc:
                self.fail(f"invalid regular expression: {exc.reason}", right.span, exc.hint)
            g = left.get

            def matches(f: Any) -> bool:
                v = g(f)
                return isinstance(v, str) and search(v)

            return _negate(matches) if node.negated else matches
        self.fail(f"unknown operator '{op}'", node.op_span)  # pragma: no cover - parser rejects it

    # type checks -------------------------------------------------------------
    def check_same(self, left: _Val, right: _Val, node: Compare) -> None:
        lk, rk = _kind(left.type), _kind(right.type)
        if "any" in (lk, rk) or lk == rk:
            return
        bad = right if right.is_const or not left.is_const else left
        other = left if bad is right else right
        hint = None
        if other.type == NUMBER and isinstance(bad.const, str):
            hint = "numbers are written without quotes"
            if other.path in ("priority", "task.priority") and bad.const.upper().startswith("P"):
                hint = f"priorities are numbers 0-4: write {other.path} == {bad.const[1:] or 0}"
        self.fail(
            f"cannot compare {_what(other)} ({describe(other.type)}) with {_what(bad)} ({describe(bad.type)})",
            bad.span,
            hint,
        )

    def check_item(self, item: Scalar, v: _Val, node: Compare) -> None:
        if item.kind == "any" or v.type == ANY or _kind(v.type) == item.kind:
            return
        self.fail(f"{_what(v)} is {describe(v.type)}, but the list holds {item.kind}", v.span)

    def check_choice(self, typed: _Val, lit: _Val) -> None:
        t = typed.type
        if not (isinstance(t, Scalar) and t.choices and lit.is_const):
            return
        values = lit.const if isinstance(lit.const, tuple) else (lit.const,)
        for value in values:
            if isinstance(value, str) and value not in t.choices:
                mean = did_you_mean(value, t.choices)
                self.fail(
                    f"'{value}' is not a {t.choice_noun}{mean}", lit.span, "one of: " + ", ".join(sorted(t.choices))
                )


def _const_getter(value: object) -> Getter:
    return lambda _f: value


def _attr_getter(base: Getter, attr: str) -> Getter:
    return lambda f: getattr(base(f), attr)


def _key_getter(base: Getter, key: str, missing: object) -> Getter:
    return lambda f: base(f).get(key, missing)


def _what(v: _Val) -> str:
    if v.path:
        return f"'{v.path}'"
    if v.is_const:
        return repr(v.const) if not isinstance(v.const, Decimal) else str(v.const)
    return "the expression"


def _example(v: _Val) -> str:
    if isinstance(v.type, ListOf):
        return f"{v.path} contains 'x'"
    if v.type == NUMBER:
        return f"{v.path} == 0"
    return f"{v.path} == 'x'"


def _binary(left: _Val, right: _Val, op: Callable[[Any, Any], Any], *, guard: bool = False) -> Predicate:
    """Build `op(left, right)` with `None` (missing) reading as false, specialised for constants."""
    lg, rg = left.get, right.get
    if left.is_const and right.is_const:
        try:
            c = bool(op(left.const, right.const))
        except TypeError:
            c = False
        return lambda _f: c
    if right.is_const:
        rc = right.const
        if not guard:
            if op is operator.eq:
                return lambda f: lg(f) == rc

            def const_op(f: Any) -> bool:
                v = lg(f)
                return v is not None and bool(op(v, rc))

            return const_op

        def guarded_const(f: Any) -> bool:
            v = lg(f)
            if v is None:
                return False
            try:
                return bool(op(v, rc))
            except TypeError:
                return False

        return guarded_const

    if left.is_const and not guard:
        lc = left.const

        def const_left(f: Any) -> bool:  # `x in ['a', 'b']` arrives here as contains(list, x)
            v = rg(f)
            return v is not None and bool(op(lc, v))

        return const_left

    def general(f: Any) -> bool:
        a, b = lg(f), rg(f)
        if a is None or b is None:
            return a is b if op is operator.eq else False
        try:
            return bool(op(a, b))
        except TypeError:
            return False

    return general


def _negate(fn: Predicate) -> Predicate:
    return lambda f: not fn(f)


def _chain(op: str, parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        if op == "and":
            return lambda f: a(f) and b(f)
        return lambda f: a(f) or b(f)
    head, rest = parts[0], _chain(op, parts[1:])
    if op == "and":
        return lambda f: head(f) and rest(f)
    return lambda f: head(f) or rest(f)


def compile_condition(source: str, schema: Record) -> Condition:
    """Parse, check and compile `source` against `schema`; raise `ConfigError` on any problem."""
    tree = parse(source)
    compiler = _Compiler(source, schema)
    test = compiler.predicate(tree)
    constant: bool | None = None
    if not compiler.reads:
        constant = bool(test(None))
    return Condition(source, test, tuple(compiler.reads.items()), constant)
