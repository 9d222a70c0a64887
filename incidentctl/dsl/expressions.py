"""The runbook expression language: `${{ steps.pods.output.count > 0 }}`.

Small, safe and deterministic. A hand-written tokenizer and Pratt parser build a tree of frozen dataclasses
and an evaluator walks it over plain data: dict keys and list indexes are the only way into a value, so no
Python attribute, builtin or import is ever reachable, and nothing reads a clock, randomness, I/O or the
environment. That is what lets Temporal workflow code evaluate expressions and replay them identically.
The only module state is the immutable function table and the `parse` cache.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from incidentctl.dsl.durations import format_duration, parse_duration
from incidentctl.dsl.regex import RegexError, compile_regex

MAX_EXPRESSION_LENGTH = 2000
MAX_DEPTH = 50
MAX_STRING_LENGTH = 1_000_000
MAX_PATTERN_LENGTH = 200
MAX_MATCH_INPUT = 100_000

# The names an expression can start from (docs/design.md, "Context roots"); a foreach `as:` adds its variable
# inside the loop, and the compiler enforces where each is known.
CONTEXT_ROOTS = ("params", "alert", "steps", "incident", "result", "loop")

_OPEN, _CLOSE = "${{", "}}"


class ExpressionError(Exception):
    """A syntax, type or limit problem; `position` is a 0-based offset into `expression`, or None."""

    def __init__(self, message: str, expression: str = "", position: int | None = None) -> None:
        # All three in args so the error survives pickling and copying with its position.
        super().__init__(message, expression, position)
        self.message = message
        self.expression = expression
        self.position = position

    def __str__(self) -> str:
        where = f" at column {self.position + 1}" if self.position is not None else ""
        shown = self.expression if len(self.expression) <= 80 else self.expression[:77] + "..."
        return f"{self.message}{where}" + (f" in {shown!r}" if shown else "")


class _Fault(Exception):
    """A runtime problem found by a helper that does not know where it is; the evaluator adds the place."""


# ---------------------------------------------------------------- tokens


class _Token(NamedTuple):
    kind: str  # "num", "str", "name", "op" or "end"
    value: Any
    pos: int
    text: str


_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_INTEGER = re.compile(r"[0-9]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR = re.compile(r"==|!=|<=|>=|[<>+\-*/%()\[\].,]")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_HINTS = {"=": " (use '==' to compare)", "!": " (use 'not' or '!=')", "&": " (use 'and')", "|": " (use 'or')"}


def _scan_string(text: str, start: int) -> tuple[str, int]:
    quote, pos, out = text[start], start + 1, []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            # Unknown escapes keep their backslash so regex patterns like '\d+' survive unharmed.
            out.append(_ESCAPES.get(text[pos + 1], "\\" + text[pos + 1]))
            pos += 2
        elif char == quote:
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise ExpressionError("unterminated string", text, start)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char in "'\"":
            value, end = _scan_string(text, pos)
            tokens.append(_Token("str", value, pos, text[pos:end]))
            pos = end
            continue
        # After '.' only an integer may follow, so `a.0.1` is two keys rather than the float 0.1.
        after_dot = bool(tokens) and tokens[-1].kind == "op" and tokens[-1].value == "."
        if match := (_INTEGER if after_dot else _NUMBER).match(text, pos):
            raw = match.group()
            if "." not in raw and len(raw.lstrip("0")) > 19:
                raise ExpressionError("a whole number beyond 64 bits", text, pos)
            tokens.append(_Token("num", float(raw) if "." in raw else int(raw), pos, raw))
        elif match := _NAME.match(text, pos):
            tokens.append(_Token("name", match.group(), pos, match.group()))
        elif match := _OPERATOR.match(text, pos):
            tokens.append(_Token("op", match.group(), pos, match.group()))
        else:
            raise ExpressionError(f"unexpected character {char!r}{_HINTS.get(char, '')}", text, pos)
        pos = match.end()
    tokens.append(_Token("end", None, len(text), ""))
    return tokens


# ---------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Literal:
    value: str | int | float | bool | None
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int
    end: int


@dataclass(frozen=True)
class Index:
    """`target.key` or `target[key]`; `pos` is the '.' or '[' and `end` is just past the key or ']'."""

    target: Node
    key: Node
    pos: int
    end: int


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int


Node = Literal | Name | Index | ListExpr | Unary | Binary | Call

_KEYWORDS: dict[str, bool | None] = {"true": True, "false": False, "null": None}
_RESERVED = frozenset({"and", "or", "not", "in"})
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})
_POWER = {"or": 1, "and": 2, **dict.fromkeys(_COMPARISONS, 4), "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_NOT_POWER = 3  # `not a == b` is `not (a == b)`, while `not a and b` is `(not a) and b`
_NEGATE_POWER = 6  # unary minus binds tighter than `*`, looser than postfix access


def _describe(token: _Token) -> str:
    return "end of expression" if token.kind == "end" else repr(token.text)


class _Parser:
    """Methods return (node, height); the height bounds evaluator recursion, which a 2000-character
    chain like `a.b.c...` or `1+1+...` would otherwise push past Python's recursion limit."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def is_op(self, value: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "op" and token.value == value

    def fail(self, message: str, token: _Token) -> ExpressionError:
        return ExpressionError(message, self.text, token.pos)

    def grown(self, height: int, token: _Token) -> int:
        if height > MAX_DEPTH:
            raise self.fail(f"expression nested deeper than {MAX_DEPTH} levels", token)
        return height

    def expect(self, value: str) -> _Token:
        token = self.advance()
        if token.kind != "op" or token.value != value:
            raise self.fail(f"expected {value!r} but found {_describe(token)}", token)
        return token

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExpressionError("empty expression", self.text, 0)
        node, _ = self.expression(0)
        if self.peek().kind != "end":
            raise self.fail(f"unexpected token {_describe(self.peek())}", self.peek())
        return node

    def binary_operator(self) -> tuple[str | None, int]:
        token = self.peek()
        if token.kind == "op" and token.value in _POWER:
            return token.value, 1
        if token.kind == "name" and token.value in ("and", "or", "in"):
            return token.value, 1
        if token.kind == "name" and token.value == "not" and self.peek(1)[:2] == ("name", "in"):
            return "not in", 2
        return None, 0

    def expression(self, min_power: int) -> tuple[Node, int]:
        self.depth += 1
        self.grown(self.depth, self.peek())
        left, height = self.prefix()
        after_comparison = False
        while True:
            op, width = self.binary_operator()
            if op is None or _POWER[op] <= min_power:
                break
            token = self.peek()
            if op in _COMPARISONS and after_comparison:
                # Python would chain `1 < x < 5`; silently comparing a boolean with 5 would mislead.
                raise self.fail("comparisons cannot be chained; combine them with 'and'", token)
            after_comparison = op in _COMPARISONS
            self.index += width
            right, right_height = self.expression(_POWER[op])
            left = Binary(op, left, right, token.pos)
            height = self.grown(max(height, right_height) + 1, token)
        self.depth -= 1
        return left, height

    def prefix(self) -> tuple[Node, int]:
        token = self.advance()
        if token.kind == "name" and token.value == "not":
            operand, height = self.expression(_NOT_POWER)
            return Unary("not", operand, token.pos), self.grown(height + 1, token)
        if token.kind == "op" and token.value == "-":
            operand, height = self.expression(_NEGATE_POWER)
            if isinstance(operand, Literal) and type(operand.value) in (int, float):
                # Fold `-1` into a literal so `a[-1]` counts as a literal index for references().
                return Literal(-operand.value, token.pos), height  # type: ignore[operator]
            return Unary("-", operand, token.pos), self.grown(height + 1, token)
        if token.kind == "op" and token.value == "(":
            inner, height = self.expression(0)
            self.expect(")")
            return self.postfix(inner, self.grown(height + 1, token))
        if token.kind == "op" and token.value == "[":
            items, height = self.sequence("]")
            return self.postfix(ListExpr(tuple(items), token.pos), self.grown(height + 1, token))
        if token.kind in ("num", "str"):
            return self.postfix(Literal(token.value, token.pos), 1)
        if token.kind == "name" and token.value in _KEYWORDS:
            return self.postfix(Literal(_KEYWORDS[token.value], token.pos), 1)
        if token.kind == "name" and token.value not in _RESERVED:
            if self.is_op("("):
                return self.call(token)
            return self.postfix(Name(token.value, token.pos, token.pos + len(token.text)), 1)
        raise self.fail(f"unexpected token {_describe(token)}", token)

    def call(self, name: _Token) -> tuple[Node, int]:
        if name.value not in _FUNCTIONS:
            raise self.fail(f"unknown function {name.value!r} (known: {', '.join(sorted(FUNCTIONS))})", name)
        self.advance()
        args, height = self.sequence(")")
        _, low, high = _FUNCTIONS[name.value]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = f"{low}" if low == high else f"{low} or more" if high is None else f"{low} or {high}"
            plural = "" if wanted == "1" else "s"
            raise self.fail(f"{name.value}() takes {wanted} argument{plural}, not {len(args)}", name)
        return self.postfix(Call(name.value, tuple(args), name.pos), self.grown(height + 1, name))

    def sequence(self, closing: str) -> tuple[list[Node], int]:
        items: list[Node] = []
        height = 0
        if self.is_op(closing):
            self.advance()
            return items, height
        while True:
            item, item_height = self.expression(0)
            items.append(item)
            height = max(height, item_height)
            token = self.advance()
            if token.kind == "op" and token.value == closing:
                return items, height
            if not (token.kind == "op" and token.value == ","):
                raise self.fail(f"expected ',' or {closing!r} but found {_describe(token)}", token)

    def postfix(self, node: Node, height: int) -> tuple[Node, int]:
        while True:
            token = self.peek()
            if self.is_op("."):
                self.advance()
                key = self.advance()
                if key.kind not in ("name", "num"):
                    raise self.fail(f"expected a key name after '.' but found {_describe(key)}", key)
                value = key.value if key.kind == "num" else str(key.value)
                node = Index(node, Literal(value, key.pos), token.pos, key.pos + len(key.text))
            elif self.is_op("["):
                self.advance()
                key_node, key_height = self.expression(0)
                close = self.expect("]")
                node = Index(node, key_node, token.pos, close.pos + 1)
                height = max(height, key_height)
            elif self.is_op("("):
                raise self.fail("only the built-in functions can be called", token)
            else:
                return node, height
            height = self.grown(height + 1, token)


@functools.lru_cache(maxsize=2048)
def parse(expression: str) -> Node:
    """Parse a bare expression (no `${{ }}`); cached because workflows re-evaluate the same text often."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", expression,
                              MAX_EXPRESSION_LENGTH)
    return _Parser(expression).parse()


# ---------------------------------------------------------------- values


def truthy(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | float):
        return str(value)
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python will print
            raise _Fault("number too large to turn into text") from None
    if isinstance(value, list | tuple | Mapping):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise _Fault(f"cannot write a {_type_name(value)} as JSON: {exc}") from None
    raise _Fault(f"cannot turn a {_type_name(value)} into text")


def _sized(value: Any) -> Any:
    if isinstance(value, str | list) and len(value) > MAX_STRING_LENGTH:
        raise _Fault(f"result longer than {MAX_STRING_LENGTH} characters")
    return value


def _equal(left: Any, right: Any) -> bool:
    # Unlike Python, true is not 1, also inside lists and objects.
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    return bool(left == right)


def _ordered(op: str, left: Any, right: Any) -> bool:
    if not ((_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))):
        hint = " (default() can replace a missing value)" if left is None or right is None else ""
        raise _Fault(f"cannot compare {_type_name(left)} {op} {_type_name(right)}{hint}")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    return bool(left > right) if op == ">" else bool(left >= right)


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        if not isinstance(item, str):
            raise _Fault(f"cannot look for a {_type_name(item)} in a string")
        return item in container
    if isinstance(container, list | tuple):
        return any(_equal(item, element) for element in container)
    if isinstance(container, Mapping):
        return isinstance(item, str | int | float) and not isinstance(item, bool) and item in container
    raise _Fault(f"cannot look inside a {_type_name(container)}")


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    both_str = isinstance(left, str) and isinstance(right, str)
    if op == "+" and (both_str or (isinstance(left, list) and isinstance(right, list))):
        if len(left) + len(right) > MAX_STRING_LENGTH:  # refuse before building a huge value
            raise _Fault(f"result longer than {MAX_STRING_LENGTH} characters")
        return left + right
    if not (_is_number(left) and _is_number(right)):
        raise _Fault(f"cannot apply {op!r} to {_type_name(left)} and {_type_name(right)}")
    if op in ("/", "%") and right == 0:
        raise _Fault("division by zero")
    try:
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        else:
            result = left / right if op == "/" else left % right
    except OverflowError:  # a huge integer mixed with a float
        raise _Fault("arithmetic result is too large") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise _Fault("arithmetic result is not a finite number")
    return _bounded(result)


# Whole numbers stay within 64 bits, as every other Temporal SDK and JSON reader can hold them (and Python
# refuses to print one of over 4,300 digits, which would fail the workflow task instead of the step).
MAX_INT = 2**63 - 1


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise _Fault("a whole number beyond 64 bits (about 9.2e18)")
    return value


def _index(target: Any, key: Any) -> Any:
    # Only data is reachable: dict keys and list indexes. Anything else, strings included, yields null.
    if isinstance(key, bool):
        return None
    if isinstance(target, Mapping):
        if isinstance(key, str | int | float) and key in target:
            return target[key]
        return target.get(str(key)) if isinstance(key, int) else None
    whole = isinstance(key, int) or (isinstance(key, float) and key.is_integer())
    if isinstance(target, list | tuple) and whole:
        position = int(key)
        return target[position] if -len(target) <= position < len(target) else None
    return None


# ---------------------------------------------------------------- functions


def _len(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise _Fault(f"len() needs a string, list or object, not a {_type_name(value)}")


def _affix(method: str) -> Callable[[Any, Any], bool]:
    def check(text: Any, affix: Any) -> bool:
        if text is None:
            return False
        if not (isinstance(text, str) and isinstance(affix, str)):
            raise _Fault(f"{method}() needs two strings, not {_type_name(text)} and {_type_name(affix)}")
        return bool(getattr(text, method)(affix))

    return check


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise _Fault(f"{name}() gives {value}, which is not a finite number")
    return value


def _to_float(value: Any) -> float:
    if _is_number(value):
        return _finite(float(value), "float")
    if isinstance(value, str):
        try:
            return _finite(float(value.strip()), "float")
        except ValueError:
            pass
    raise _Fault(f"float() cannot convert {_type_name(value)} {_show(value)}")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        if len(value.strip().lstrip("+-").lstrip("0")) > 19:
            raise _Fault(f"int() of {_show(value)}: a whole number beyond 64 bits")
        return _bounded(int(value))
    try:
        return _bounded(int(_to_float(value)))
    except _Fault:
        raise _Fault(f"int() cannot convert {_type_name(value)} {_show(value)}") from None


def _join(items: Any, separator: Any = ",") -> str:
    if items is None:
        return ""
    if not isinstance(items, list | tuple) or not isinstance(separator, str):
        raise _Fault(f"join() needs a list and a string, not {_type_name(items)} and {_type_name(separator)}")
    parts = [_text(item) for item in items]
    if sum(map(len, parts)) + len(separator) * len(parts) > MAX_STRING_LENGTH:
        raise _Fault(f"result longer than {MAX_STRING_LENGTH} characters")
    return separator.join(parts)


def _keys(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise _Fault(f"keys() needs an object, not a {_type_name(value)}")
    return sorted(value, key=str)


def _extreme(name: str, pick: Callable[[list[Any]], Any]) -> Callable[..., Any]:
    def choose(*args: Any) -> Any:
        values = args[0] if len(args) == 1 else list(args)
        if not isinstance(values, list | tuple):
            raise _Fault(f"{name}() needs a list or several values, not a {_type_name(values)}")
        if not values:
            raise _Fault(f"{name}() of an empty list")
        if not (all(map(_is_number, values)) or all(isinstance(v, str) for v in values)):
            raise _Fault(f"{name}() needs all numbers or all strings")
        return pick(list(values))

    return choose


def _each(name: str, combine: Callable[[Iterator[bool]], bool]) -> Callable[[Any], bool]:
    def test(items: Any) -> bool:
        if items is None:
            items = []
        if not isinstance(items, list | tuple):
            raise _Fault(f"{name}() needs a list, not a {_type_name(items)}")
        return combine(truthy(item) for item in items)

    return test


def _matches(text: Any, pattern: Any) -> bool:
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_LENGTH:
        raise _Fault(f"matches() needs a pattern string of at most {MAX_PATTERN_LENGTH} characters")
    if text is None:
        return False
    if not isinstance(text, str | int | float):
        raise _Fault(f"matches() needs a string, not a {_type_name(text)}")
    try:
        compiled = compile_regex(pattern)
    except RegexError as exc:
        raise _Fault(str(exc)) from None
    return compiled.search(_text(text)[:MAX_MATCH_INPUT]) is not None


def _duration(value: Any) -> float:
    if not (_is_number(value) or isinstance(value, str)):
        raise _Fault(f"duration() needs text like '5m' or a number of seconds, not a {_type_name(value)}")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _Fault(str(exc)) from None


def _number_argument(name: str, value: Any) -> int | float:
    if not _is_number(value):
        raise _Fault(f"{name}() needs a number, not a {_type_name(value)}")
    return value


def _round(value: Any, digits: Any = None) -> int | float:
    number = _finite(float(_number_argument("round", value)), "round")
    if digits is None:
        return round(number)
    if isinstance(digits, bool) or not isinstance(digits, int):
        raise _Fault(f"round() needs a whole number of digits, not {_show(digits)}")
    return round(value, digits)


def _format_duration(seconds: Any) -> str:
    return format_duration(_finite(float(_number_argument("format_duration", seconds)), "format_duration"))


# name -> (implementation, fewest arguments, most arguments or None); arity is checked when parsing.
_FUNCTIONS: Mapping[str, tuple[Callable[..., Any], int, int | None]] = MappingProxyType({
    "len": (_len, 1, 1),
    "lower": (lambda value: _text(value).lower(), 1, 1),
    "upper": (lambda value: _text(value).upper(), 1, 1),
    "contains": (_contains, 2, 2),
    "startswith": (_affix("startswith"), 2, 2),
    "endswith": (_affix("endswith"), 2, 2),
    "default": (lambda value, fallback: fallback if value is None else value, 2, 2),
    "int": (_to_int, 1, 1),
    "float": (_to_float, 1, 1),
    "str": (_text, 1, 1),
    "join": (_join, 1, 2),
    "keys": (_keys, 1, 1),
    "min": (_extreme("min", min), 1, None),
    "max": (_extreme("max", max), 1, None),
    "any": (_each("any", any), 1, 1),
    "all": (_each("all", all), 1, 1),
    "matches": (_matches, 2, 2),
    "duration": (_duration, 1, 1),
    "round": (_round, 1, 2),
    "abs": (lambda value: abs(_number_argument("abs", value)), 1, 1),
    "format_duration": (_format_duration, 1, 1),
})
FUNCTIONS = frozenset(_FUNCTIONS)


# ---------------------------------------------------------------- evaluation


def _eval(node: Node, context: Mapping[str, Any], text: str) -> Any:
    try:
        match node:
            case Literal(value=value):
                return value
            case Name(name=name):
                return context.get(name)
            case Index(target=target, key=key):
                return _index(_eval(target, context, text), _eval(key, context, text))
            case ListExpr(items=items):
                return [_eval(item, context, text) for item in items]
            case Unary(op="not", operand=operand):
                return not truthy(_eval(operand, context, text))
            case Unary(operand=operand):
                value = _eval(operand, context, text)
                if not _is_number(value):
                    raise _Fault(f"cannot negate a {_type_name(value)}")
                return -value
            case Binary(op="and", left=left, right=right):
                return truthy(_eval(left, context, text)) and truthy(_eval(right, context, text))
            case Binary(op="or", left=left, right=right):
                return truthy(_eval(left, context, text)) or truthy(_eval(right, context, text))
            case Binary(op=op, left=left, right=right):
                a, b = _eval(left, context, text), _eval(right, context, text)
                if op == "==" or op == "!=":
                    return _equal(a, b) == (op == "==")
                if op == "in" or op == "not in":
                    return _contains(b, a) == (op == "in")
                return _ordered(op, a, b) if op in _COMPARISONS else _sized(_arithmetic(op, a, b))
            case Call(name="default", args=(first, fallback)):
                # Lazy like `or`, so `default(x, 1/0)` only fails when x is null.
                value = _eval(first, context, text)
                return _eval(fallback, context, text) if value is None else value
            case Call(name=name, args=args):
                values = [_eval(arg, context, text) for arg in args]
                try:
                    return _sized(_FUNCTIONS[name][0](*values))
                except (TypeError, ValueError, ArithmeticError) as exc:  # a safety net; helpers validate
                    raise _Fault(f"{name}(): {exc}") from None
    except _Fault as fault:
        raise ExpressionError(str(fault), text, node.pos) from None
    raise ExpressionError(f"cannot evaluate a {type(node).__name__}", text, None)


def evaluate(expression: str | bool, context: Mapping[str, Any]) -> Any:
    """The value of a bare or `${{ }}`-wrapped expression; booleans (allowed by the schema) are themselves."""
    if isinstance(expression, bool):
        return expression
    if not isinstance(expression, str):
        raise ExpressionError(f"an expression must be text, not a {_type_name(expression)}")
    text = unwrap(expression)
    node = parse(text)
    try:
        return _eval(node, context, text)
    except RecursionError:  # only reachable through absurdly deep data, since parse() bounds the tree
        raise ExpressionError("value nested too deeply to evaluate", text, None) from None


def condition(expression: str | bool, context: Mapping[str, Any]) -> bool:
    return truthy(evaluate(expression, context))


# ---------------------------------------------------------------- templates


class _Piece(NamedTuple):
    text: str
    offset: int  # where `text` starts in the template
    is_expression: bool


# A quoted string (which may hold `}}`), the `}}` that closes a template, or a quote never closed.
_TEMPLATE_END = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\}\}|['"]""", re.S)


def _closing(text: str, pos: int) -> int:
    """Offset of the `}}` that ends a template, skipping quoted strings, which may contain `}}`."""
    while found := _TEMPLATE_END.search(text, pos):
        token = found.group()
        if token == _CLOSE:
            return found.start()
        if len(token) == 1:
            return -1  # a quote left open
        pos = found.end()
    return -1


def _scan_template(text: str) -> tuple[list[_Piece], ExpressionError | None]:
    """Literal and expression pieces in order, plus the error for an unclosed `${{` (pieces stop there)."""
    pieces: list[_Piece] = []
    pos = 0
    while (start := text.find(_OPEN, pos)) >= 0:
        if start > pos:
            pieces.append(_Piece(text[pos:start], pos, False))
        inner = start + len(_OPEN)
        end = _closing(text, inner)
        if end < 0:
            unclosed = "'${{' is never closed with '}}' (or a quote is left open)"
            return pieces, ExpressionError(unclosed, text, start)
        pieces.append(_Piece(text[inner:end], inner, True))
        pos = end + len(_CLOSE)
    if pos < len(text):
        pieces.append(_Piece(text[pos:], pos, False))
    return pieces, None


def _split_template(text: str) -> list[_Piece]:
    pieces, problem = _scan_template(text)
    if problem is not None:
        raise problem
    return pieces


def _single(pieces: list[_Piece]) -> _Piece | None:
    """The one expression when the template is exactly `${{ expr }}` give or take whitespace."""
    expressions = [piece for piece in pieces if piece.is_expression]
    if len(expressions) == 1 and all(piece.is_expression or not piece.text.strip() for piece in pieces):
        return expressions[0]
    return None


def is_template(value: Any) -> bool:
    return isinstance(value, str) and _OPEN in value


def unwrap(expression: str) -> str:
    """The bare expression in `expr` or `${{ expr }}`; anything else comes back stripped, to fail parsing."""
    stripped = expression.strip()
    if stripped.startswith(_OPEN):
        pieces, problem = _scan_template(stripped)
        single = _single(pieces) if problem is None else None
        if single is not None:
            return single.text.strip()
    return stripped


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Templates inside dicts, lists and strings evaluated; a lone `${{ expr }}` keeps its value's type."""
    if isinstance(value, str):
        if _OPEN not in value:
            return value
        pieces = _split_template(value)
        single = _single(pieces)
        if single is not None:
            return evaluate(single.text, context)
        out = []
        for piece in pieces:
            if not piece.is_expression:
                out.append(piece.text)
                continue
            result = evaluate(piece.text, context)
            try:
                out.append(_text(result))
            except _Fault as fault:
                raise ExpressionError(str(fault), piece.text.strip(), None) from None
        rendered = "".join(out)
        if len(rendered) > MAX_STRING_LENGTH:
            raise ExpressionError(f"rendered text longer than {MAX_STRING_LENGTH} characters", value[:80])
        return rendered
    if isinstance(value, Mapping):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, context) for item in value]
    return value


# ---------------------------------------------------------------- static analysis


@dataclass(frozen=True)
class Reference:
    root: str
    path: tuple[str | int, ...]
    text: str  # the source of the path, e.g. "steps.pods.output['count']"


def _templates(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if _OPEN in value:
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _templates(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _templates(item)


def check_syntax(value: Any) -> list[ExpressionError]:
    """Every syntax error in the templates inside `value`, without evaluating anything."""
    errors: list[ExpressionError] = []
    for template in _templates(value):
        pieces, problem = _scan_template(template)
        for piece in pieces:
            if piece.is_expression:
                try:
                    parse(piece.text.strip())
                except ExpressionError as exc:
                    errors.append(exc)
        if problem is not None:
            errors.append(problem)
    return errors


def _is_static_key(node: Node) -> bool:
    return isinstance(node, Literal) and (isinstance(node.value, str) or type(node.value) is int)


def _collect(node: Node, text: str, out: list[Reference]) -> None:
    match node:
        case Name() | Index():
            chain: list[Index] = []
            current: Node = node
            while isinstance(current, Index):
                chain.append(current)
                current = current.target
            chain.reverse()
            if isinstance(current, Name):
                path: list[str | int] = []
                end = current.end
                for link in chain:
                    if not _is_static_key(link.key):
                        break  # a computed key: only what precedes it is known statically
                    path.append(link.key.value)  # type: ignore[union-attr]
                    end = link.end
                out.append(Reference(current.name, tuple(path), text[current.pos:end]))
            else:
                _collect(current, text, out)
            for link in chain:
                _collect(link.key, text, out)
        case ListExpr(items=items) | Call(args=items):
            for item in items:
                _collect(item, text, out)
        case Unary(operand=operand):
            _collect(operand, text, out)
        case Binary(left=left, right=right):
            _collect(left, text, out)
            _collect(right, text, out)


def references_in_expression(expression: str) -> list[Reference]:
    """Paths used by a bare or wrapped expression, in source order; raises ExpressionError on bad syntax."""
    text = unwrap(expression)
    out: list[Reference] = []
    _collect(parse(text), text, out)
    return out


def references(value: Any) -> list[Reference]:
    """Paths used by every template inside `value` (strings without `${{` are plain text)."""
    out: list[Reference] = []
    for template in _templates(value):
        for piece in _split_template(template):
            if piece.is_expression:
                text = piece.text.strip()
                _collect(parse(text), text, out)
    return out
