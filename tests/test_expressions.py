"""The expression language: operators, functions, templates, references, errors and limits."""

from __future__ import annotations

import pytest

from incidentctl.dsl.expressions import (
    ExpressionError,
    Reference,
    check_syntax,
    condition,
    evaluate,
    references,
    references_in_expression,
    render,
    unwrap,
)

CTX = {
    "params": {"namespace": "prod", "limit": 3, "hosts": ["a", "b"], "ratio": 0.5},
    "steps": {"pods": {"output": {"count": 4, "names": ["p1", "p2"], "ok": True}, "status": "succeeded"}},
    "alert": {"labels": {"severity": "critical"}},
}


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 % 4 - 1", 2),
        ("10 / 4", 2.5),
        ("-params.limit + 1", -2),
        ("'a' + \"b\"", "ab"),
        ("[1] + [2]", [1, 2]),
        ("steps.pods.output.count > params.limit", True),
        ("steps.pods.output.count <= 3", False),
        ("params.namespace == 'prod' and not false", True),
        ("false or params.limit >= 3", True),
        ("'p1' in steps.pods.output.names", True),
        ("'p9' not in steps.pods.output.names", True),
        ("'rod' in params.namespace", True),
        ("alert.labels['severity']", "critical"),
        ("params.hosts[0]", "a"),
        ("params.hosts[-1]", "b"),
        ("params.hosts[5]", None),
        ("params.nothing.deeper", None),
        ("nothing", None),
        ("1 == 1.0", True),
        ("1 == true", False),
        ("null == null", True),
        ("[1, 'x', null]", [1, "x", None]),
        ("'it\\'s'", "it's"),
    ],
)
def test_operators_and_paths(expr: str, value: object) -> None:
    assert evaluate(expr, CTX) == value


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("len(params.hosts)", 2),
        ("len(null)", 0),
        ("lower('ABC') + upper('d')", "abcD"),
        ("contains(params.hosts, 'a')", True),
        ("contains(alert.labels, 'severity')", True),
        ("startswith(params.namespace, 'pr') and endswith(params.namespace, 'od')", True),
        ("default(params.missing, 'fallback')", "fallback"),
        ("default(params.limit, 9)", 3),
        ("int('42') + int(2.9)", 44),
        ("float('1.5')", 1.5),
        ("str(true) + str(null) + str(1)", "true1"),
        ("join(params.hosts, '-')", "a-b"),
        ("keys(alert.labels)", ["severity"]),
        ("min(3, 1, 2)", 1),
        ("max(params.hosts)", "b"),
        ("any([0, '', 'x'])", True),
        ("all([1, true, 'x'])", True),
        ("matches(params.namespace, '^pr.d$')", True),
        ("duration('1h30m')", 5400.0),
        ("duration('500ms')", 0.5),
        ("format_duration(3725)", "1h2m5s"),
        ("round(2.567, 2)", 2.57),
        ("abs(-3)", 3),
    ],
)
def test_functions(expr: str, value: object) -> None:
    assert evaluate(expr, CTX) == value


def test_and_or_short_circuit() -> None:
    assert evaluate("false and (1 / 0)", CTX) is False
    assert evaluate("true or (1 / 0)", CTX) is True


def test_render_keeps_types_for_whole_templates_and_interpolates_otherwise() -> None:
    value = {
        "count": "${{ steps.pods.output.count }}",
        "spaced": "  ${{ params.hosts }}  ",
        "text": "ns=${{ params.namespace }} n=${{ steps.pods.output.count }} ok=${{ steps.pods.output.ok }}",
        "nested": ["${{ params.limit * 2 }}", {"x": "${{ params.missing }}-end"}],
        "plain": "no template",
        "number": 5,
        "json": "hosts: ${{ params.hosts }}",
    }
    assert render(value, CTX) == {
        "count": 4,
        "spaced": ["a", "b"],
        "text": "ns=prod n=4 ok=true",
        "nested": [6, {"x": "-end"}],
        "plain": "no template",
        "number": 5,
        "json": 'hosts: ["a","b"]',
    }


def test_strings_may_contain_closing_braces() -> None:
    assert render("${{ 'a}}b' }}", CTX) == "a}}b"
    assert references("x ${{ steps.pods.output['}}'] }}") == [
        Reference("steps", ("pods", "output", "}}"), "steps.pods.output['}}']")
    ]


def test_unwrap_and_condition_accept_bare_or_wrapped() -> None:
    assert unwrap("${{ a.b }}") == "a.b"
    assert unwrap("  a.b ") == "a.b"
    assert condition("${{ steps.pods.output.ok }}", CTX) is True
    assert condition("steps.pods.output.names", CTX) is True
    assert condition("params.missing", CTX) is False


def test_references_lists_static_paths() -> None:
    refs = references({"a": ["${{ steps.pods.output.count > params.limit }}"],
                       "b": "${{ len(steps[params.namespace].x) }} ${{ item }}"})
    assert [(r.root, r.path) for r in refs] == [
        ("steps", ("pods", "output", "count")),
        ("params", ("limit",)),
        ("params", ("namespace",)),
        ("steps", ()),
        ("item", ()),
    ]
    assert [(r.root, r.path) for r in references_in_expression("params.hosts[0] == 'a'")] == [
        ("params", ("hosts", 0))
    ]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("1 +", "unexpected token end of expression at column 4 in '1 +'"),
        ("a + )", "unexpected token ')' at column 5 in 'a + )'"),
        ("(1", "expected ')' but found end of expression at column 3"),
        ("f(1)", "unknown function 'f'"),
        ("'a' < 1", "cannot compare string < number at column 5"),
        ("'a' + 1", "cannot apply + to string and number"),
        ("1 / 0", "division by zero"),
        ("-'a'", "cannot negate a string"),
        ("1 $ 2", "unexpected character '$' at column 3"),
        ("matches('x', '(')", "bad regular expression"),
        ("", "empty expression"),
    ],
)
def test_errors_say_what_and_where(expr: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expr, CTX)
    assert message in str(caught.value)


def test_limits_on_length_and_depth() -> None:
    with pytest.raises(ExpressionError, match="longer than 2000 characters"):
        evaluate("1 + " * 600 + "1", CTX)
    with pytest.raises(ExpressionError, match="nested deeper than 50 levels"):
        evaluate("(" * 60 + "1" + ")" * 60, CTX)
    with pytest.raises(ExpressionError, match="longer than 1000000"):
        evaluate("x + x", {"x": "a" * 600_000})


def test_no_python_access() -> None:
    # Attribute syntax only reads dict keys: dunders and builtins are plain missing data.
    assert evaluate("params.__class__", CTX) is None
    assert evaluate("__import__", CTX) is None
    with pytest.raises(ExpressionError, match="unknown function '__import__'"):
        evaluate("__import__('os')", CTX)
    with pytest.raises(ExpressionError, match="unknown function 'eval'"):
        evaluate("eval('1')", CTX)


def test_check_syntax_reports_every_bad_template() -> None:
    problems = check_syntax({"a": "${{ 1 + }}", "b": ["ok ${{ x }}", "${{ y ( }}"], "c": "${{ unclosed"})
    assert len(problems) == 3
    assert any("never closed" in str(p) for p in problems)
