"""The runbook expression language: `${{ steps.pods.output.count > 0 }}`.

Small, safe and deterministic: a hand-written tokenizer and Pratt parser, an evaluator over dicts and lists
only (no Python attribute access, no eval), no clock, randomness or I/O, so workflow code may evaluate it.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION_LENGTH = 2000
MAX_DEPTH = 50
MAX_STRING_LENGTH = 1_000_000
MAX_PATTERN_LENGTH = 200
MAX_MATCH_INPUT = 100_000

ROOTS = frozenset({"params", "alert", "steps", "incident", "result", "item", "loop", "vars"})

_TEMPLATE_OPEN = "${{"


class ExpressionError(Exception):
    def __init__(self, message: str, expression: str = "", position: int | None = None) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        where = f" at column {position + 1}" if position is not None else ""
        quoted = f" in {expression!r}" if expression else ""
        super().__init__(f"{message}{where}{quoted}")


# ---------------------------------------------------------------- tokens

@dataclass(frozen=True)
class Token:
    kind: str  # num, str, name, op, end
    value: Any
    pos: int


_TOKEN_RE = re.compile(
    r"""(?P<ws>\s+)
      |(?P<num>\d+\.\d+|\d+)
      |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<op>==|!=|<=|>=|[<>+\-*/%()\[\].,])""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise ExpressionError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "num":
            tokens.append(Token("num", float(raw) if "." in raw else int(raw), pos))
        elif kind == "str":
            tokens.append(Token("str", _unescape(raw[1:-1]), pos))
        elif kind in ("name", "op"):
            tokens.append(Token(kind, raw, pos))
        pos = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


# ---------------------------------------------------------------- AST

@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Index:
    target: Any
    key: Any  # a node; attribute access uses a Literal key
    pos: int


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Any
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: Any
    right: Any
    pos: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]
    pos: int


Node = Literal | Name | Index | ListExpr | Unary | Binary | Call

_KEYWORDS = {"true": True, "false": False, "null": None}
_BINARY_POWER = {
    "or": 1, "and": 2,
    "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4, "not in": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: Token) -> ExpressionError:
        return ExpressionError(message, self.text, token.pos)

    def expect(self, value: str) -> Token:
        token = self.advance()
        if token.value != value or token.kind not in ("op", "name"):
            shown = "end of expression" if token.kind == "end" else repr(token.value)
            raise self.error(f"expected {value!r} but found {shown}", token)
        return token

    def parse(self) -> Node:
        if not self.text.strip():
            raise ExpressionError("empty expression", self.text, 0)
        node = self.expression(0)
        token = self.peek()
        if token.kind != "end":
            raise self.error(f"unexpected token {token.value!r}", token)
        return node

    def binary_op(self) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.value in _BINARY_POWER:
            return str(token.value)
        if token.kind == "name" and token.value in ("and", "or", "in"):
            return str(token.value)
        if token.kind == "name" and token.value == "not" and self.peek(1).value == "in":
            return "not in"
        return None

    def expression(self, min_power: int) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels", self.peek())
        left = self.prefix()
        while True:
            op = self.binary_op()
            if op is None or _BINARY_POWER[op] <= min_power:
                break
            token = self.advance()
            if op == "not in":
                self.advance()
            right = self.expression(_BINARY_POWER[op])
            left = Binary(op, left, right, token.pos)
        self.depth -= 1
        return left

    def prefix(self) -> Node:
        token = self.advance()
        if token.kind == "name" and token.value == "not":
            return Unary("not", self.expression(3), token.pos)
        if token.kind == "op" and token.value == "-":
            return Unary("-", self.expression(6), token.pos)
        if token.kind == "op" and token.value == "(":
            node = self.expression(0)
            self.expect(")")
            return self.postfix(node)
        if token.kind == "op" and token.value == "[":
            items = self.arguments("]")
            return self.postfix(ListExpr(tuple(items)))
        if token.kind in ("num", "str"):
            return self.postfix(Literal(token.value))
        if token.kind == "name":
            if token.value in _KEYWORDS:
                return Literal(_KEYWORDS[token.value])
            if self.peek().kind == "op" and self.peek().value == "(":
                self.advance()
                if token.value not in FUNCTIONS:
                    known = ", ".join(sorted(FUNCTIONS))
                    raise self.error(f"unknown function {token.value!r} (known: {known})", token)
                return self.postfix(Call(str(token.value), tuple(self.arguments(")")), token.pos))
            return self.postfix(Name(str(token.value)))
        shown = "end of expression" if token.kind == "end" else repr(token.value)
        raise self.error(f"unexpected token {shown}", token)

    def arguments(self, closing: str) -> list[Node]:
        items: list[Node] = []
        if self.peek().value == closing and self.peek().kind == "op":
            self.advance()
            return items
        while True:
            items.append(self.expression(0))
            token = self.advance()
            if token.kind == "op" and token.value == closing:
                return items
            if not (token.kind == "op" and token.value == ","):
                shown = "end of expression" if token.kind == "end" else repr(token.value)
                raise self.error(f"expected ',' or {closing!r} but found {shown}", token)

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.kind == "op" and token.value == ".":
                self.advance()
                name = self.advance()
                if name.kind not in ("name", "num"):
                    raise self.error("expected a key name after '.'", name)
                node = Index(node, Literal(str(name.value)), name.pos)
            elif token.kind == "op" and token.value == "[":
                self.advance()
                key = self.expression(0)
                self.expect("]")
                node = Index(node, key, token.pos)
            else:
                return node


@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> Node:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", expression[:40] + "…")
    return _Parser(expression).parse()


# ---------------------------------------------------------------- evaluation

def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "", [], {}) if not isinstance(value, float) else value != 0.0


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_duration(value: Any) -> float:
    if _is_number(value):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"a duration must be text like '5m', not {_type_name(value)}")
    text = value.strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"{value!r} is not a duration like '90s', '5m', '1h30m'")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return sum(float(n) * scale[u] for n, u in parts)


def _format_duration(seconds: Any) -> str:
    if not _is_number(seconds):
        raise ValueError("format_duration needs a number of seconds")
    remaining = int(round(seconds))
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size or (unit == "s" and not out):
            out.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(out)


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, str):
        if not isinstance(needle, str):
            raise ValueError(f"cannot look for a {_type_name(needle)} in a string")
        return needle in haystack
    if isinstance(haystack, list | dict):
        return needle in haystack
    if haystack is None:
        return False
    raise ValueError(f"cannot look inside a {_type_name(haystack)}")


def _matches(text: Any, pattern: Any) -> bool:
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"matches() needs a pattern string of at most {MAX_PATTERN_LENGTH} characters")
    if text is None:
        return False
    try:
        return re.search(pattern, str(text)[:MAX_MATCH_INPUT]) is not None
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | list | dict):
        return len(value)
    raise ValueError(f"len() of a {_type_name(value)}")


def _number(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            raise ValueError(f"cannot convert {_text(value) or 'null'} to a number")
        return kind(value)

    return convert


def _round(value: Any, digits: Any = 0) -> Any:
    return round(value, int(digits)) if digits else round(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _length,
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    "contains": _contains,
    "startswith": lambda s, p: isinstance(s, str) and s.startswith(_text(p)),
    "endswith": lambda s, p: isinstance(s, str) and s.endswith(_text(p)),
    "default": lambda value, fallback: fallback if value is None else value,
    "int": _number(lambda v: int(float(v)) if isinstance(v, str) else int(v)),
    "float": _number(float),
    "str": _text,
    "join": lambda items, sep=",": _text(sep).join(_text(i) for i in (items or [])),
    "keys": lambda obj: sorted(obj) if isinstance(obj, dict) else [],
    "min": lambda *args: min(args[0] if len(args) == 1 else args),
    "max": lambda *args: max(args[0] if len(args) == 1 else args),
    "any": lambda items: any(truthy(i) for i in (items or [])),
    "all": lambda items: all(truthy(i) for i in (items or [])),
    "matches": _matches,
    "duration": _parse_duration,
    "format_duration": _format_duration,
    "round": _round,
    "abs": abs,
}


def _compare(op: str, left: Any, right: Any, expr: str, pos: int) -> bool:
    if op == "==":
        return bool(left == right) and _is_number(left) == _is_number(right)
    if op == "!=":
        return not _compare("==", left, right, expr, pos)
    if op in ("in", "not in"):
        try:
            found = _contains(right, left)
        except ValueError as exc:
            raise ExpressionError(str(exc), expr, pos) from None
        return found if op == "in" else not found
    comparable = (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        raise ExpressionError(f"cannot compare {_type_name(left)} {op} {_type_name(right)}", expr, pos)
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _arithmetic(op: str, left: Any, right: Any, expr: str, pos: int) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        result: Any = left + right
    elif op == "+" and isinstance(left, list) and isinstance(right, list):
        result = left + right
    elif _is_number(left) and _is_number(right):
        if op in ("/", "%") and right == 0:
            raise ExpressionError("division by zero", expr, pos)
        result = {"+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
                  "/": lambda: left / right, "%": lambda: left % right}[op]()
        if isinstance(result, float) and not math.isfinite(result):
            raise ExpressionError("arithmetic result is not a finite number", expr, pos)
    else:
        raise ExpressionError(f"cannot apply {op} to {_type_name(left)} and {_type_name(right)}", expr, pos)
    if isinstance(result, str | list) and len(result) > MAX_STRING_LENGTH:
        raise ExpressionError(f"result longer than {MAX_STRING_LENGTH} elements", expr, pos)
    return result


def _index(target: Any, key: Any) -> Any:
    if isinstance(target, dict):
        return target.get(key) if isinstance(key, str) else target.get(str(key)) if _is_number(key) else None
    if isinstance(target, list | str) and _is_number(key) and int(key) == key:
        i = int(key)
        return target[i] if -len(target) <= i < len(target) else None
    return None


def _eval(node: Node, context: Mapping[str, Any], expr: str) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        return context.get(node.name)
    if isinstance(node, Index):
        return _index(_eval(node.target, context, expr), _eval(node.key, context, expr))
    if isinstance(node, ListExpr):
        return [_eval(item, context, expr) for item in node.items]
    if isinstance(node, Unary):
        value = _eval(node.operand, context, expr)
        if node.op == "not":
            return not truthy(value)
        if not _is_number(value):
            raise ExpressionError(f"cannot negate a {_type_name(value)}", expr, node.pos)
        return -value
    if isinstance(node, Binary):
        if node.op == "and":
            return truthy(_eval(node.left, context, expr)) and truthy(_eval(node.right, context, expr))
        if node.op == "or":
            return truthy(_eval(node.left, context, expr)) or truthy(_eval(node.right, context, expr))
        left = _eval(node.left, context, expr)
        right = _eval(node.right, context, expr)
        if node.op in ("==", "!=", "<", "<=", ">", ">=", "in", "not in"):
            return _compare(node.op, left, right, expr, node.pos)
        return _arithmetic(node.op, left, right, expr, node.pos)
    if isinstance(node, Call):
        args = [_eval(arg, context, expr) for arg in node.args]
        try:
            result = FUNCTIONS[node.name](*args)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ExpressionError(f"{node.name}(): {exc}", expr, node.pos) from None
        if isinstance(result, str) and len(result) > MAX_STRING_LENGTH:
            raise ExpressionError(f"result longer than {MAX_STRING_LENGTH} characters", expr, node.pos)
        return result
    raise ExpressionError(f"cannot evaluate {type(node).__name__}", expr)


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    text = unwrap(expression)
    return _eval(parse(text), context, text)


def condition(expression: str, context: Mapping[str, Any]) -> bool:
    return truthy(evaluate(expression, context))


# ---------------------------------------------------------------- templates

def _split_template(text: str) -> list[tuple[str, int]]:
    """Pieces of a template: ("literal text", -1) and ("expression", offset) in order."""
    pieces: list[tuple[str, int]] = []
    pos = 0
    while True:
        start = text.find(_TEMPLATE_OPEN, pos)
        if start < 0:
            if pos < len(text):
                pieces.append((text[pos:], -1))
            return pieces
        if start > pos:
            pieces.append((text[pos:start], -1))
        end = _closing(text, start + len(_TEMPLATE_OPEN))
        if end < 0:
            raise ExpressionError("'${{' is never closed with '}}'", text, start)
        pieces.append((text[start + len(_TEMPLATE_OPEN):end], start + len(_TEMPLATE_OPEN)))
        pos = end + 2


def _closing(text: str, pos: int) -> int:
    """Offset of the `}}` closing a template, skipping quoted strings that may contain `}}`."""
    quote = ""
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 1
            elif char == quote:
                quote = ""
        elif char in ("'", '"'):
            quote = char
        elif text.startswith("}}", pos):
            return pos
        pos += 1
    return -1


def is_template(value: Any) -> bool:
    return isinstance(value, str) and _TEMPLATE_OPEN in value


def unwrap(expression: str) -> str:
    """A bare expression from `expr` or `${{ expr }}`."""
    stripped = expression.strip()
    if stripped.startswith(_TEMPLATE_OPEN):
        pieces = _split_template(stripped)
        if len(pieces) == 1 and pieces[0][1] >= 0:
            return pieces[0][0].strip()
    return stripped


def render(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not is_template(value):
        return value
    pieces = _split_template(value.strip())
    if len(pieces) == 1 and pieces[0][1] >= 0:
        return evaluate(pieces[0][0].strip(), context)
    out = []
    for text, offset in _split_template(value):
        out.append(text if offset < 0 else _text(evaluate(text.strip(), context)))
    result = "".join(out)
    if len(result) > MAX_STRING_LENGTH:
        raise ExpressionError(f"rendered text longer than {MAX_STRING_LENGTH} characters", value[:40])
    return result


# ---------------------------------------------------------------- static analysis

@dataclass(frozen=True)
class Reference:
    root: str
    path: tuple[str | int, ...]
    text: str


def _expressions_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [e for v in value.values() for e in _expressions_in(v)]
    if isinstance(value, list):
        return [e for v in value for e in _expressions_in(v)]
    if is_template(value):
        return [text.strip() for text, offset in _split_template(value) if offset >= 0]
    return []


def check_syntax(value: Any) -> list[ExpressionError]:
    """Every syntax error in the templates inside `value`, without evaluating anything."""
    errors: list[ExpressionError] = []

    def visit(item: Any) -> None:
        if isinstance(item, dict):
            for v in item.values():
                visit(v)
        elif isinstance(item, list):
            for v in item:
                visit(v)
        elif is_template(item):
            try:
                for text in _expressions_in(item):
                    parse(text)
            except ExpressionError as exc:
                errors.append(exc)

    visit(value)
    return errors


def _collect(node: Node, text: str, out: list[Reference]) -> None:
    if isinstance(node, Index | Name):
        chain: list[str | int] = []
        current: Node = node
        while isinstance(current, Index):
            key = current.key
            if isinstance(key, Literal) and isinstance(key.value, str | int) and not isinstance(key.value, bool):
                chain.append(key.value)
            else:
                chain.clear()  # a computed key: only what precedes it is statically known
                _collect(key, text, out)
            current = current.target
        if isinstance(current, Name):
            out.append(Reference(current.name, tuple(reversed(chain)), text))
            return
        _collect(current, text, out)
    elif isinstance(node, ListExpr):
        for item in node.items:
            _collect(item, text, out)
    elif isinstance(node, Unary):
        _collect(node.operand, text, out)
    elif isinstance(node, Binary):
        _collect(node.left, text, out)
        _collect(node.right, text, out)
    elif isinstance(node, Call):
        for arg in node.args:
            _collect(arg, text, out)


def references_in_expression(expression: str) -> list[Reference]:
    text = unwrap(expression)
    out: list[Reference] = []
    _collect(parse(text), text, out)
    return out


def references(value: Any) -> list[Reference]:
    out: list[Reference] = []
    for text in _expressions_in(value):
        _collect(parse(text), text, out)
    return out
