"""Tokenizer and recursive-descent parser for rule conditions.

Grammar (precedence from loosest to tightest: `or` < `and` < `not` < comparison):

    expr     := and_expr ('or' and_expr)*
    and_expr := not_expr ('and' not_expr)*
    not_expr := 'not' not_expr | compare
    compare  := value (OP value)?
    OP       := '==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'contains'
              | 'starts_with' | 'ends_with' | 'matches'
              | 'not' ('in' | 'contains' | 'starts_with' | 'ends_with' | 'matches')
    value    := primary ('.' NAME | '[' literal ']')*
    primary  := NUMBER | STRING | 'true' | 'false' | NAME | '(' expr ')' | '[' literals ']'

Every failure is a `ConfigError` whose problem carries the source and the span to
underline; nothing else escapes (a hypothesis test holds us to that).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from switchyard.errors import ConfigError, Problem
from switchyard.rules.ast import (
    Attr,
    BoolOp,
    Compare,
    Index,
    ListLit,
    Literal,
    Name,
    Node,
    Not,
    Span,
)

__all__ = ["COMPARISON_OPS", "parse"]

MAX_DEPTH = 64
MAX_LENGTH = 4000

WORD_OPS = frozenset({"in", "contains", "starts_with", "ends_with", "matches"})
SYMBOL_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
COMPARISON_OPS = WORD_OPS | SYMBOL_OPS
KEYWORDS = frozenset({"and", "or", "not", "true", "false"}) | WORD_OPS

# Spellings from other languages, and what to write instead.
_FOREIGN = {
    "=": "==",
    "&&": "and",
    "||": "or",
    "!": "not",
    "===": "==",
    "!==": "!=",
    "<>": "!=",
}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # NUM STR NAME OP PUNCT END
    text: str
    value: object
    start: int
    end: int


def _fail(source: str, message: str, span: Span, hint: str | None = None) -> NoReturn:
    start, end = span
    end = max(end, start + 1)
    raise ConfigError([Problem(message, source=source, span=(start, end), hint=hint)])


def _tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
            continue
        start = i
        if c.isdigit() or (c == "-" and i + 1 < n and src[i + 1].isdigit()):
            i += 1
            while i < n and (src[i].isdigit() or src[i] in "._"):
                i += 1
            text = src[start:i]
            if i < n and (src[i].isalpha()):
                j = i
                while j < n and (src[j].isalnum() or src[j] == "_"):
                    j += 1
                _fail(src, f"'{src[start:j]}' is neither a number nor a name", (start, j))
            try:
                clean = text.replace("_", "")
                value: object = Decimal(clean) if "." in clean else int(clean)
                if "." in clean and not clean.replace("-", "").replace(".", "", 1).isdigit():
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                _fail(src, f"'{text}' is not a number", (start, i))
            tokens.append(Token("NUM", text, value, start, i))
            continue
        if c.isalpha() or c == "_":
            while i < n and (src[i].isalnum() or src[i] == "_"):
                i += 1
            text = src[start:i]
            kind = "OP" if text in WORD_OPS else "NAME"
            tokens.append(Token(kind, text, text, start, i))
            continue
        if c in "'\"":
            i += 1
            buf: list[str] = []
            while True:
                if i >= n or src[i] == "\n":
                    _fail(src, "unterminated string", (start, i), hint=f"close it with {c}")
                ch = src[i]
                if ch == c:
                    i += 1
                    break
                if ch == "\\":
                    if i + 1 >= n:
                        _fail(src, "unterminated string", (start, i + 1), hint=f"close it with {c}")
                    esc = src[i + 1]
                    mapped = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}.get(esc)
                    if mapped is None:
                        # Keep unknown escapes verbatim so regexes like '\d' read naturally.
                        buf.append("\\" + esc)
                    else:
                        buf.append(mapped)
                    i += 2
                    continue
                buf.append(ch)
                i += 1
            tokens.append(Token("STR", src[start:i], "".join(buf), start, i))
            continue
        two = src[i : i + 2]
        three = src[i : i + 3]
        if three in _FOREIGN:
            _fail(src, f"'{three}' is not an operator here", (i, i + 3), hint=f"write '{_FOREIGN[three]}'")
        if two in SYMBOL_OPS:
            tokens.append(Token("OP", two, two, i, i + 2))
            i += 2
            continue
        if two in _FOREIGN:
            _fail(src, f"'{two}' is not an operator here", (i, i + 2), hint=f"write '{_FOREIGN[two]}'")
        if c in "<>":
            tokens.append(Token("OP", c, c, i, i + 1))
            i += 1
            continue
        if c in _FOREIGN:
            _fail(src, f"'{c}' is not an operator here", (i, i + 1), hint=f"write '{_FOREIGN[c]}'")
        if c in "()[],.":
            tokens.append(Token("PUNCT", c, c, i, i + 1))
            i += 1
            continue
        _fail(src, f"unexpected character {c!r}", (i, i + 1))
    tokens.append(Token("END", "", None, n, n))
    return tokens


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokenize(src)
        self.k = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.k]

    def advance(self) -> Token:
        t = self.toks[self.k]
        if t.kind != "END":
            self.k += 1
        return t

    def fail(self, message: str, tok: Token | None = None, hint: str | None = None) -> NoReturn:
        t = tok or self.tok
        _fail(self.src, message, (t.start, t.end), hint)

    def describe(self, t: Token) -> str:
        return "the end of the condition" if t.kind == "END" else f"'{t.text}'"

    def is_word(self, word: str) -> bool:
        t = self.tok
        return t.kind in ("NAME", "OP") and t.text == word

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"condition nested more than {MAX_DEPTH} levels deep")

    # grammar -------------------------------------------------------------
    def parse(self) -> Node:
        if len(self.src) > MAX_LENGTH:
            _fail(self.src, f"condition longer than {MAX_LENGTH} characters", (0, 1))
        if self.tok.kind == "END":
            self.fail("empty condition", hint="write an expression such as \"priority == 0\", or 'true'")
        node = self.expr()
        if self.tok.kind != "END":
            t = self.tok
            hint = None
            if t.kind == "NAME" and t.text not in KEYWORDS:
                hint = "join conditions with 'and' or 'or'"
            self.fail(f"unexpected {self.describe(t)} after a complete expression", hint=hint)
        return node

    def expr(self) -> Node:
        self.enter()
        operands = [self.and_expr()]
        while self.is_word("or"):
            self.advance()
            operands.append(self.and_expr())
        self.depth -= 1
        if len(operands) == 1:
            return operands[0]
        return BoolOp("or", tuple(operands), (_span(operands[0])[0], _span(operands[-1])[1]))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.is_word("and"):
            self.advance()
            operands.append(self.not_expr())
        if len(operands) == 1:
            return operands[0]
        return BoolOp("and", tuple(operands), (_span(operands[0])[0], _span(operands[-1])[1]))

    def not_expr(self) -> Node:
        if self.is_word("not"):
            t = self.advance()
            self.enter()
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand, (t.start, _span(operand)[1]))
        return self.compare()

    def compare(self) -> Node:
        left = self.value()
        t = self.tok
        negated = False
        op_start = t.start
        if t.kind == "NAME" and t.text == "not":
            nxt = self.toks[self.k + 1]
            if nxt.kind == "OP" and nxt.text in WORD_OPS:
                self.advance()
                negated = True
                t = self.tok
            else:
                self.fail(
                    "'not' here must be followed by in, contains, starts_with, ends_with or matches",
                    nxt,
                )
        if t.kind != "OP":
            if negated:  # pragma: no cover - guarded above
                self.fail("expected an operator")
            return left
        self.advance()
        if self.tok.kind == "OP" and self.tok.text in SYMBOL_OPS and t.text in SYMBOL_OPS:
            self.fail(f"unexpected {self.describe(self.tok)}")
        right = self.value(after=t)
        nxt = self.tok
        if nxt.kind == "OP":
            self.fail(
                f"comparisons cannot be chained: unexpected {self.describe(nxt)}",
                hint="combine two comparisons with 'and'",
            )
        return Compare(t.text, left, right, negated, (_span(left)[0], _span(right)[1]), (op_start, t.end))

    def value(self, after: Token | None = None) -> Node:
        node = self.primary(after)
        while True:
            t = self.tok
            if t.kind == "PUNCT" and t.text == ".":
                self.advance()
                name = self.tok
                if name.kind not in ("NAME", "OP"):
                    self.fail(f"expected a field name after '.', found {self.describe(name)}")
                self.advance()
                node = Attr(node, name.text, (_span(node)[0], name.end), (name.start, name.end))
            elif t.kind == "PUNCT" and t.text == "[":
                self.advance()
                key = self.tok
                if key.kind not in ("STR", "NUM"):
                    self.fail(f"expected a quoted key inside [ ], found {self.describe(key)}")
                self.advance()
                close = self.tok
                if not (close.kind == "PUNCT" and close.text == "]"):
                    self.fail(f"expected ']', found {self.describe(close)}")
                self.advance()
                lit = Literal(key.value, (key.start, key.end))  # type: ignore[arg-type]
                node = Index(node, lit, (_span(node)[0], close.end))
            else:
                return node

    def primary(self, after: Token | None = None) -> Node:
        t = self.tok
        if t.kind == "NUM" or t.kind == "STR":
            self.advance()
            return Literal(t.value, (t.start, t.end))  # type: ignore[arg-type]
        if t.kind == "NAME":
            if t.text in ("true", "false"):
                self.advance()
                return Literal(t.text == "true", (t.start, t.end))
            if t.text in ("and", "or", "not"):
                where = f" after '{after.text}'" if after else ""
                self.fail(f"expected a value{where}, found '{t.text}'")
            self.advance()
            return Name(t.text, (t.start, t.end))
        if t.kind == "PUNCT" and t.text == "(":
            self.advance()
            inner = self.expr()
            close = self.tok
            if not (close.kind == "PUNCT" and close.text == ")"):
                self.fail(f"expected ')', found {self.describe(close)}", hint="every '(' needs a matching ')'")
            self.advance()
            return inner
        if t.kind == "PUNCT" and t.text == "[":
            return self.list_literal()
        where = f" after '{after.text}'" if after else ""
        self.fail(f"expected a value{where}, found {self.describe(t)}")

    def list_literal(self) -> ListLit:
        open_tok = self.advance()
        items: list[Literal] = []
        while True:
            t = self.tok
            if t.kind == "PUNCT" and t.text == "]":
                self.advance()
                return ListLit(tuple(items), (open_tok.start, t.end))
            if t.kind in ("NUM", "STR"):
                self.advance()
                items.append(Literal(t.value, (t.start, t.end)))  # type: ignore[arg-type]
            elif t.kind == "NAME" and t.text in ("true", "false"):
                self.advance()
                items.append(Literal(t.text == "true", (t.start, t.end)))
            else:
                self.fail(f"a list holds only numbers, strings, true or false; found {self.describe(t)}")
            sep = self.tok
            if sep.kind == "PUNCT" and sep.text == ",":
                self.advance()
            elif not (sep.kind == "PUNCT" and sep.text == "]"):
                self.fail(f"expected ',' or ']' in the list, found {self.describe(sep)}")


def _span(node: Node) -> Span:
    return node.span


def parse(source: str) -> Node:
    """Parse a condition into a tree; raise `ConfigError` with a caret on any mistake."""
    if not isinstance(source, str):  # defensive: configs are validated before this
        raise ConfigError([Problem("a condition must be a string")])
    return _Parser(source).parse()
