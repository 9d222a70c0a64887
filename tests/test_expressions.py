"""The expression language: operators, functions, templates, references, errors and limits."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from incidentctl.dsl.expressions import (
    CONTEXT_ROOTS,
    FUNCTIONS,
    MAX_DEPTH,
    Binary,
    ExpressionError,
    Literal,
    Reference,
    check_syntax,
    condition,
    evaluate,
    is_template,
    parse,
    references,
    references_in_expression,
    render,
    truthy,
    unwrap,
)

CTX: dict[str, Any] = {
    "params": {"namespace": "prod", "limit": 3, "hosts": ["a", "b"], "ratio": 0.5, "empty": []},
    "steps": {"pods": {"output": {"count": 4, "names": ["p1", "p2"], "ok": True}, "status": "succeeded"}},
    "alert": {"labels": {"severity": "critical", "app-name": "web"}},
    "item": {"0": "zero-key"},
}


def error_of(expr: str, context: dict[str, Any] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expr, CTX if context is None else context)
    return caught.value


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        # arithmetic and its precedence
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("7 % 4 - 1", 2),
        ("10 / 4", 2.5),
        ("-2 * 3", -6),
        ("- -2", 2),
        ("-params.limit + 1", -2),
        ("2 - -params.limit", 5),
        ("1.5 + 1", 2.5),
        # concatenation
        ("'a' + \"b\"", "ab"),
        ("[1] + [2, 3]", [1, 2, 3]),
        # comparisons
        ("steps.pods.output.count > params.limit", True),
        ("steps.pods.output.count >= 4", True),
        ("steps.pods.output.count < 4", False),
        ("steps.pods.output.count <= 3", False),
        ("'abc' < 'abd'", True),
        ("1 != 2", True),
        ("1 == 1.0", True),
        ("1 == true", False),
        ("[1] == [true]", False),
        ("'1' == 1", False),
        ("null == null", True),
        ("params.hosts == ['a', 'b']", True),
        ("alert.labels == alert.labels", True),
        # membership
        ("'p1' in steps.pods.output.names", True),
        ("'p9' not in steps.pods.output.names", True),
        ("'rod' in params.namespace", True),
        ("'severity' in alert.labels", True),
        ("[1] in [[1], 2]", True),
        ("'x' in null", False),
        # boolean logic and its precedence
        ("params.namespace == 'prod' and not false", True),
        ("false or params.limit >= 3", True),
        ("true or false and false", True),  # and binds tighter than or
        ("not true or true", True),  # not binds tighter than or
        ("not 1 == 2", True),  # comparisons bind tighter than not
        ("not 1 + 1 == 3", True),
        ("1 + 2 == 3 and 2 * 2 == 4", True),
        ("'a' and 1", True),  # and/or return booleans, not operands
        ("'' or 0", False),
        ("not params.empty", True),
        # literals
        ("[1, 'x', null, true, 2.5]", [1, "x", None, True, 2.5]),
        ("[]", []),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'a\\nb\\tc'", "a\nb\tc"),
        ("'\\d+'", "\\d+"),  # unknown escapes keep their backslash, for regexes
        ("'a}}b'", "a}}b"),
        ("007", 7),
    ],
)
def test_operators_literals_and_precedence(expr: str, value: object) -> None:
    result = evaluate(expr, CTX)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("alert.labels['severity']", "critical"),
        ("alert.labels[\"app-name\"]", "web"),  # keys that are not names need brackets
        ("params.hosts[0]", "a"),
        ("params.hosts[-1]", "b"),
        ("params.hosts.1", "b"),
        ("params.hosts[1.0]", "b"),
        ("item[0]", "zero-key"),  # a numeric key finds a dict's string key
        ("steps['pods'].output['names'][0]", "p1"),
        ("steps[params.namespace]", None),
        ("[10, 20][params.limit - 2]", 20),
        # missing data is null, never an error
        ("params.hosts[5]", None),
        ("params.hosts[-3]", None),
        ("params.nothing", None),
        ("params.nothing.deeper[0].still", None),
        ("nothing", None),
        ("nothing.at.all", None),
        ("params.hosts['a']", None),
        ("params.hosts[true]", None),
        ("params.namespace[0]", None),  # strings are not indexable
        ("params.limit.real", None),
        ("steps.pods.output.count > 3 and params.missing == null", True),
    ],
)
def test_paths_and_missing_data(expr: str, value: object) -> None:
    assert evaluate(expr, CTX) == value


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("len(params.hosts)", 2),
        ("len('abc')", 3),
        ("len(alert.labels)", 2),
        ("len(null)", 0),
        ("lower('ABC') + upper('d')", "abcD"),
        ("lower(null)", ""),
        ("contains(params.hosts, 'a')", True),
        ("contains(params.hosts, 'z')", False),
        ("contains(alert.labels, 'severity')", True),
        ("contains('payments', 'men')", True),
        ("contains(null, 'x')", False),
        ("startswith(params.namespace, 'pr')", True),
        ("endswith(params.namespace, 'od')", True),
        ("startswith(params.missing, 'pr')", False),
        ("default(params.missing, 'fallback')", "fallback"),
        ("default(params.limit, 9)", 3),
        ("default(false, 9)", False),  # only null is replaced
        ("int('42') + int(2.9)", 44),
        ("int(' -7 ')", -7),
        ("int('2.5')", 2),
        ("float('1.5')", 1.5),
        ("float(2)", 2.0),
        ("str(true) + str(null) + str(1) + str(2.5)", "true12.5"),
        ("str(params.hosts)", '["a","b"]'),
        ("str(alert.labels)", '{"app-name":"web","severity":"critical"}'),
        ("join(params.hosts, '-')", "a-b"),
        ("join(params.hosts)", "a,b"),
        ("join([1, null, true], '|')", "1||true"),
        ("keys(alert.labels)", ["app-name", "severity"]),
        ("keys(null)", []),
        ("min(3, 1, 2)", 1),
        ("min([2.5, 7])", 2.5),
        ("max(params.hosts)", "b"),
        ("max(1, 4)", 4),
        ("any([0, '', 'x'])", True),
        ("any([])", False),
        ("all([1, true, 'x'])", True),
        ("all([1, null])", False),
        ("matches(params.namespace, '^pr.d$')", True),
        ("matches(params.namespace, 'PROD')", False),
        ("matches(503, '^5\\d\\d$')", True),
        ("matches(null, '.')", False),
        ("duration('5m')", 300.0),
        ("duration('90s')", 90.0),
        ("duration('1h30m')", 5400.0),
        ("duration('2d')", 172800.0),
        ("duration('500ms')", 0.5),
        ("duration(30)", 30.0),
        ("format_duration(3725)", "1h2m5s"),
        ("format_duration(90061)", "1d1h1m1s"),
        ("format_duration(0)", "0s"),
        ("format_duration(duration('1h'))", "1h"),
        ("round(2.567, 2)", 2.57),
        ("round(2.4)", 2),
        ("abs(-3)", 3),
        ("abs(-1.5)", 1.5),
    ],
)
def test_functions(expr: str, value: object) -> None:
    result = evaluate(expr, CTX)
    assert result == value
    assert type(result) is type(value)


def test_function_whitelist_and_roots() -> None:
    assert FUNCTIONS == {
        "len", "lower", "upper", "contains", "startswith", "endswith", "default", "int", "float", "str",
        "join", "keys", "min", "max", "any", "all", "matches", "duration", "round", "abs", "format_duration",
    }
    assert CONTEXT_ROOTS == ("params", "alert", "steps", "incident", "result", "loop")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("len(1)", "len() needs a string, list or object, not a number"),
        ("int('x')", "int() cannot convert string 'x'"),
        ("int(true)", "int() cannot convert boolean"),
        ("float('nan')", "not a finite number"),
        ("float(null)", "float() cannot convert null"),
        ("join('ab', ',')", "join() needs a list and a string"),
        ("keys([1])", "keys() needs an object"),
        ("min([])", "min() of an empty list"),
        ("max(1, 'a')", "max() needs all numbers or all strings"),
        ("any(1)", "any() needs a list"),
        ("startswith(1, 'a')", "startswith() needs two strings"),
        ("contains(5, 1)", "cannot look inside a number"),
        ("contains('abc', 1)", "cannot look for a number in a string"),
        ("matches('x', '(')", "bad regular expression"),
        ("matches('x', '" + "a" * 201 + "')", "pattern string of at most 200 characters"),
        ("matches(['x'], 'x')", "matches() needs a string"),
        ("duration('soon')", "is not a duration"),
        ("duration(true)", "duration() needs text like '5m'"),
        ("round('1')", "round() needs a number"),
        ("round(1.5, 'x')", "round() needs a whole number of digits"),
        ("abs('x')", "abs() needs a number"),
        ("format_duration('1h')", "format_duration() needs a number"),
    ],
)
def test_function_errors(expr: str, message: str) -> None:
    error = error_of(expr)
    assert message in error.message
    assert error.position == 0  # the function's name


def test_matches_truncates_huge_input() -> None:
    text = "a" * 150_000 + "needle"
    assert evaluate("matches(x, 'needle')", {"x": text}) is False
    assert evaluate("matches(x, '^a+$')", {"x": text}) is True


def test_and_or_and_default_short_circuit() -> None:
    assert evaluate("false and (1 / 0)", CTX) is False
    assert evaluate("true or (1 / 0)", CTX) is True
    assert evaluate("params.missing and params.missing.x > 1", CTX) is False
    assert evaluate("default(params.limit, 1 / 0)", CTX) == 3
    with pytest.raises(ExpressionError, match="division by zero"):
        evaluate("true and (1 / 0)", CTX)
    with pytest.raises(ExpressionError, match="division by zero"):
        evaluate("default(null, 1 / 0)", CTX)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), (False, False), (0, False), (0.0, False), ("", False), ([], False), ({}, False),
     (True, True), (-1, True), (0.1, True), ("0", True), ("false", True), ([0], True), ({"a": None}, True)],
)
def test_truthy(value: object, expected: bool) -> None:
    assert truthy(value) is expected
    assert condition("x", {"x": value}) is expected


def test_render_keeps_types_for_whole_templates_and_interpolates_otherwise() -> None:
    value = {
        "count": "${{ steps.pods.output.count }}",
        "spaced": "  ${{ params.hosts }}  ",
        "missing": "${{ params.missing }}",
        "text": "ns=${{ params.namespace }} n=${{ steps.pods.output.count }} ok=${{ steps.pods.output.ok }}",
        "falsy": "[${{ false }}|${{ null }}|${{ 0 }}|${{ 2.5 }}]",
        "nested": ["${{ params.limit * 2 }}", {"x": "${{ params.missing }}-end", "y": ["${{ true }}"]}],
        "plain": "no template",
        "number": 5,
        "nothing": None,
        "json": "hosts: ${{ params.hosts }} labels: ${{ alert.labels }}",
        "two": "${{ 1 }}${{ 2 }}",
    }
    before = copy.deepcopy(value)
    assert render(value, CTX) == {
        "count": 4,
        "spaced": ["a", "b"],
        "missing": None,
        "text": "ns=prod n=4 ok=true",
        "falsy": "[false||0|2.5]",
        "nested": [6, {"x": "-end", "y": [True]}],
        "plain": "no template",
        "number": 5,
        "nothing": None,
        "json": 'hosts: ["a","b"] labels: {"app-name":"web","severity":"critical"}',
        "two": "12",
    }
    assert value == before  # rendering never mutates its input
    assert render(("${{ 1 + 1 }}", "x"), CTX) == [2, "x"]


def test_strings_may_contain_closing_braces() -> None:
    assert render("${{ 'a}}b' }}", CTX) == "a}}b"
    assert render("<${{ \"}}\" + '\\'}}' }}>", CTX) == "<}}'}}>"
    assert evaluate("${{ '}}' }}", CTX) == "}}"
    assert references("x ${{ steps.pods.output['}}'] }}") == [
        Reference("steps", ("pods", "output", "}}"), "steps.pods.output['}}']")
    ]


def test_unwrap_condition_and_is_template() -> None:
    assert unwrap("${{ a.b }}") == "a.b"
    assert unwrap("  ${{a.b}}  ") == "a.b"
    assert unwrap("  a.b ") == "a.b"
    assert unwrap("${{ '}}' }}") == "'}}'"
    # Not a single wrapper: returned as is, for parse to reject.
    assert unwrap("${{ a }} ${{ b }}") == "${{ a }} ${{ b }}"
    assert condition("${{ steps.pods.output.ok }}", CTX) is True
    assert condition("steps.pods.output.count > 3", CTX) is True
    assert condition("steps.pods.output.names", CTX) is True
    assert condition("params.missing", CTX) is False
    assert condition(True, CTX) is True
    assert condition(False, CTX) is False
    assert evaluate("${{ params.limit }}", CTX) == 3
    assert is_template("a ${{ b }}") and not is_template("a { b }") and not is_template(5)
    with pytest.raises(ExpressionError, match="unexpected character"):
        condition("${{ a }} and ${{ b }}", CTX)


def test_references_list_static_paths_in_nested_templates() -> None:
    refs = references({
        "a": ["${{ steps.pods.output.count > params.limit }}", {"deep": ["x ${{ incident.id }}"]}],
        "b": "${{ len(steps[params.namespace].x) }} and ${{ item }}",
        "c": "no template here: params.ignored",
        "d": 42,
    })
    assert [(r.root, r.path, r.text) for r in refs] == [
        ("steps", ("pods", "output", "count"), "steps.pods.output.count"),
        ("params", ("limit",), "params.limit"),
        ("incident", ("id",), "incident.id"),
        ("steps", (), "steps"),  # stops at the computed key
        ("params", ("namespace",), "params.namespace"),
        ("item", (), "item"),
    ]


def test_references_in_expression_bracket_access() -> None:
    refs = references_in_expression(
        "${{ params.hosts[0] == alert.labels['app-name'] and steps.pods[\"output\"].names[-1] "
        "in [loop.index, default(vars.x, 1)] and steps.pods.output[params.key].y }}"
    )
    assert [(r.root, r.path) for r in refs] == [
        ("params", ("hosts", 0)),
        ("alert", ("labels", "app-name")),
        ("steps", ("pods", "output", "names", -1)),
        ("loop", ("index",)),
        ("vars", ("x",)),
        ("steps", ("pods", "output")),
        ("params", ("key",)),
    ]
    assert refs[1].text == "alert.labels['app-name']"
    assert references_in_expression("1 + len('x') == true") == []
    assert references_in_expression("len(a.b)[0].c") == [Reference("a", ("b",), "a.b")]
    with pytest.raises(ExpressionError):
        references_in_expression("a +")
    with pytest.raises(ExpressionError, match="never closed"):
        references({"x": "${{ a"})


def test_check_syntax_reports_every_problem_without_evaluating() -> None:
    problems = check_syntax({
        "a": "${{ 1 + }} and ${{ ( }}",
        "b": ["ok ${{ x }}", "${{ y ) }}", {"c": "${{ unclosed"}],
        "d": "${{ 1 / 0 }} ${{ nothing.at.all }}",  # fine syntax; runtime errors are not its business
        "e": "plain ( text",
    })
    assert [(p.message, p.expression, p.position) for p in problems] == [
        ("unexpected token end of expression", "1 +", 3),
        ("unexpected token end of expression", "(", 1),
        ("unexpected token ')'", "y )", 2),
        ("'${{' is never closed with '}}' (or a quote is left open)", "${{ unclosed", 0),
    ]
    assert check_syntax({"fine": ["${{ a.b }}", "x ${{ len(c) }}"], "n": 1}) == []
    assert [p.message for p in check_syntax("${{ }}")] == ["empty expression"]


@pytest.mark.parametrize(
    ("expr", "message", "position"),
    [
        ("1 +", "unexpected token end of expression", 3),
        ("a + )", "unexpected token ')'", 4),
        ("(1", "expected ')' but found end of expression", 2),
        ("[1 2]", "expected ',' or ']' but found '2'", 3),
        ("f(1)", "unknown function 'f'", 0),
        ("a.b(1)", "only the built-in functions can be called", 3),
        ("len(1, 2)", "len() takes 1 argument, not 2", 0),
        ("round()", "round() takes 1 or 2 arguments, not 0", 0),
        ("min()", "min() takes 1 or more arguments, not 0", 0),
        ("a.", "expected a key name after '.' but found end of expression", 2),
        ("1 < x < 5", "comparisons cannot be chained", 6),
        ("'a' < 1", "cannot compare string < number", 4),
        ("null < 1", "cannot compare null < number (default() can replace a missing value)", 5),
        ("[1] < [2]", "cannot compare list < list", 4),
        ("'a' + 1", "cannot apply '+' to string and number", 4),
        ("[1] + 'a'", "cannot apply '+' to list and string", 4),
        ("'a' * 3", "cannot apply '*' to string and number", 4),
        ("true + 1", "cannot apply '+' to boolean and number", 5),
        ("1 / 0", "division by zero", 2),
        ("1 % 0.0", "division by zero", 2),
        ("-'a'", "cannot negate a string", 0),
        ("1 $ 2", "unexpected character '$'", 2),
        ("a = 1", "unexpected character '=' (use '==' to compare)", 2),
        ("a && b", "unexpected character '&' (use 'and')", 2),
        ("'abc", "unterminated string", 0),
        ("and", "unexpected token 'and'", 0),
        ("", "empty expression", 0),
        ("${{ }}", "empty expression", 0),
    ],
)
def test_errors_say_what_and_where(expr: str, message: str, position: int) -> None:
    error = error_of(expr)
    assert error.message == message or error.message.startswith(message)
    assert error.position == position
    assert error.expression == unwrap(expr)
    assert str(error).startswith(f"{error.message} at column {position + 1}")


def test_error_text_format_and_pickling() -> None:
    error = error_of("a + )")
    assert str(error) == "unexpected token ')' at column 5 in 'a + )'"
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.message, copied.expression, copied.position) == ("unexpected token ')'", "a + )", 4)
    assert str(ExpressionError("no place", "x")) == "no place in 'x'"
    assert str(ExpressionError("bare")) == "bare"
    with pytest.raises(ExpressionError, match="must be text"):
        evaluate(["not", "text"], CTX)  # type: ignore[arg-type]


def test_runtime_errors_in_templates_point_into_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        render({"msg": "count=${{ steps.pods.output.count + 'x' }}"}, CTX)
    assert caught.value.expression == "steps.pods.output.count + 'x'"
    assert caught.value.position == len("steps.pods.output.count ")


def test_limit_on_expression_length() -> None:
    text = "1 + " * 600 + "1"
    error = error_of(text)
    assert error.message == "expression longer than 2000 characters"
    assert error.position == 2000
    assert len(str(error)) < 200  # the expression is abbreviated in the text
    at_limit = "1 +" + " " * 1996 + "2"
    assert len(at_limit) == 2000 and evaluate(at_limit, CTX) == 3


def test_limit_on_nesting_depth() -> None:
    assert evaluate("(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1), CTX) == 1
    for deep in (
        "(" * 60 + "1" + ")" * 60,
        "-" * 60 + "1",
        "not " * 60 + "true",
        "len(" * 60 + "'x'" + ")" * 60,
        "[" * 60 + "]" * 60,
        # long flat chains build deep trees too; without the limit these hit Python's recursion limit
        "1" + "+1" * 999,
        "a" + ".b" * 999,
        "a" + "[0]" * 600,
    ):
        error = error_of(deep)
        assert error.message == "expression nested deeper than 50 levels"
        assert error.position is not None and 0 < error.position < len(deep)


def test_limit_on_result_size() -> None:
    big = {"x": "a" * 600_000, "items": ["a" * 1000] * 1500}
    with pytest.raises(ExpressionError, match="longer than 1000000"):
        evaluate("x + x", big)
    with pytest.raises(ExpressionError, match="longer than 1000000"):
        evaluate("join(items, '-')", big)
    with pytest.raises(ExpressionError, match="longer than 1000000"):
        render("${{ x }}${{ x }}", big)
    assert len(evaluate("x + 'b'", big)) == 600_001


def test_no_python_access() -> None:
    # Attribute syntax only reads dict keys: dunders, methods and builtins are plain missing data.
    class Secret:
        token = "s3cret"

    context = {**CTX, "obj": Secret(), "fn": print}
    for expr in ("params.__class__", "params.__class__.__mro__", "__import__", "__builtins__",
                 "params.namespace.upper", "params.hosts.append", "obj.token", "obj.__dict__",
                 "fn.__globals__", "params['__class__']", "params.items", "''.join"):
        assert evaluate(expr, context) is None, expr
    for expr in ("__import__('os')", "eval('1')", "exec('x')", "getattr(params, 'x')", "open('/etc/passwd')"):
        name = expr.split("(")[0]
        with pytest.raises(ExpressionError, match=f"unknown function '{name}'"):
            evaluate(expr, context)
    with pytest.raises(ExpressionError, match="only the built-in functions can be called"):
        evaluate("params.namespace.upper()", context)
    assert evaluate("params['items']", {"params": {"items": 1}}) == 1  # a real key is data


def test_parse_is_cached_and_the_tree_is_immutable() -> None:
    tree = parse("1 + 2")
    assert parse("1 + 2") is tree
    assert tree == Binary("+", Literal(1, 0), Literal(2, 4), 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.op = "-"  # type: ignore[misc]


def test_evaluation_is_deterministic_and_pure() -> None:
    context = copy.deepcopy(CTX)
    expr = "str(keys(alert.labels)) + join(params.hosts, ',') + str(max(params.hosts)) + format_duration(61)"
    first = evaluate(expr, context)
    assert all(evaluate(expr, context) == first for _ in range(5))
    assert first == '["app-name","severity"]a,bb1m1s'
    assert context == CTX
