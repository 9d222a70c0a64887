"""Label and field selectors of the Kubernetes simulator: syntax, Kubernetes matching semantics, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from incidentctl.k8ssim.selectors import (
    SelectorError,
    label_selector_from_spec,
    label_selector_to_string,
    parse_field_selector,
    parse_label_selector,
)

CART = {"app": "cart", "tier": "web"}
API = {"app": "api", "tier": "backend"}
BARE: dict[str, str] = {}


def matching(selector: str) -> list[str]:
    candidates = {"cart": CART, "api": API, "bare": BARE}
    parsed = parse_label_selector(selector)
    return [name for name, labels in candidates.items() if parsed.matches(labels)]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=cart", ["cart"]),
        ("app==cart", ["cart"]),
        ("app!=cart", ["api", "bare"]),  # no key at all also satisfies !=
        ("app in (cart,api)", ["cart", "api"]),
        ("app notin (cart)", ["api", "bare"]),  # ...and notin
        ("tier", ["cart", "api"]),
        ("!tier", ["bare"]),
        ("app=cart,tier=web", ["cart"]),
        ("app=cart,tier=backend", []),
        ("", ["cart", "api", "bare"]),
        ("   ", ["cart", "api", "bare"]),
    ],
)
def test_each_operator_with_kubernetes_semantics(selector: str, expected: list[str]) -> None:
    assert matching(selector) == expected


def test_whitespace_is_tolerated_everywhere() -> None:
    spaced = parse_label_selector("  app  in  ( cart ,  api )  ,  ! canary , tier != db ")
    assert str(spaced) == "app in (api,cart),!canary,tier!=db"
    assert spaced.matches(CART)
    assert not spaced.matches({**CART, "canary": "true"})


def test_empty_value_and_prefixed_keys() -> None:
    selector = parse_label_selector("app.kubernetes.io/name=cart,release=")
    assert selector.matches({"app.kubernetes.io/name": "cart", "release": ""})
    assert not selector.matches({"app.kubernetes.io/name": "cart"})
    assert not selector.matches({"app.kubernetes.io/name": "cart", "release": "v1"})


def test_none_labels_are_no_labels() -> None:
    assert parse_label_selector("!app").matches(None)
    assert not parse_label_selector("app").matches(None)


def test_canonical_string_is_sorted_and_normalised() -> None:
    selector = parse_label_selector("tier notin (web, api),app==cart,zone,!canary")
    assert str(selector) == "app=cart,!canary,tier notin (api,web),zone"
    assert str(parse_label_selector(str(selector))) == str(selector)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a in b", 'invalid label selector "a in b": expected "(" after "in"'),
        ("a in (b", 'invalid label selector "a in (b": expected "," or ")" in the "in" list, found the end'),
        ("a in ()", 'invalid label selector "a in ()": expected a value in the "in" list, found ")"'),
        ("a=b,", 'invalid label selector "a=b,": expected a label key, found the end'),
        ("a=b c", 'invalid label selector "a=b c": expected "," between requirements, found "c"'),
        ("a b", 'invalid label selector "a b": expected an operator (=, ==, !=, in, notin), "," or the end after '
                '"a", found "b"'),
        ("=b", 'invalid label selector "=b": expected a label key, found "="'),
        ("!", 'invalid label selector "!": expected a label key after "!", found the end'),
        ("-app=x", 'invalid label selector "-app=x": key "-app" is not a valid label key: the name must be 1-63 '
                   "characters of [-_.A-Za-z0-9], starting and ending with a letter or digit"),
        ("Example.com/app=x", 'invalid label selector "Example.com/app=x": key "Example.com/app" is not a valid '
                              'label key: the part before "/" must be a lowercase DNS subdomain'),
        ("app=x@y", 'invalid label selector "app=x@y": value "x@y" is not a valid label value: it must be at most '
                    "63 characters of [-_.A-Za-z0-9], starting and ending with a letter or digit"),
    ],
)
def test_invalid_label_selectors_are_refused_with_a_sentence(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(selector)
    assert str(caught.value) == message


def test_length_limits() -> None:
    parse_label_selector("a" * 63 + "=" + "b" * 63)
    with pytest.raises(SelectorError, match="not a valid label key"):
        parse_label_selector("a" * 64)
    with pytest.raises(SelectorError, match="not a valid label value"):
        parse_label_selector("a=" + "b" * 64)


def test_object_form_selector() -> None:
    spec = {
        "matchLabels": {"app": "cart"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "track", "operator": "NotIn", "values": ["canary"]},
            {"key": "zone", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist", "values": []},
        ],
    }
    selector = label_selector_from_spec(spec)
    assert selector.matches({"app": "cart", "tier": "web", "zone": "a"})
    assert not selector.matches({"app": "cart", "tier": "web", "zone": "a", "track": "canary"})
    assert not selector.matches({"app": "cart", "tier": "web"})
    assert not selector.matches({"app": "cart", "tier": "web", "zone": "a", "legacy": "1"})
    assert label_selector_to_string(spec) == "app=cart,!legacy,tier in (api,web),track notin (canary),zone"


def test_object_form_empty_matches_everything_and_none_matches_nothing() -> None:
    assert label_selector_from_spec({}).matches(CART)
    assert label_selector_from_spec({}).empty
    assert label_selector_from_spec({"matchLabels": {}}).matches(None)
    assert not label_selector_from_spec(None).matches(CART)
    assert not label_selector_from_spec(None).matches({})
    assert label_selector_to_string({"matchLabels": {"app": "cart"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web"]}]}) == "app=cart,tier in (web)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
         'invalid label selector: operator "Gt" for key "a" is not one of In, NotIn, Exists, DoesNotExist'),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
         'invalid label selector: operator In for key "a" needs at least one value'),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
         'invalid label selector: operator Exists for key "a" takes no values'),
        ({"matchLabels": {"app": 3}}, "invalid label selector: value 3 is not a string"),
        ({"matchlabels": {"app": "cart"}},
         'invalid label selector: unknown field "matchlabels" (expected matchLabels and/or matchExpressions)'),
    ],
)
def test_invalid_object_form_selectors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        label_selector_from_spec(spec)
    assert str(caught.value) == message


POD_A = {
    "metadata": {"name": "cart-1", "namespace": "shop"},
    "spec": {"nodeName": "node-1", "hostNetwork": False},
    "status": {"phase": "Running"},
}
POD_PENDING = {"metadata": {"name": "cart-2", "namespace": "shop"}, "spec": {}, "status": {"phase": "Pending"}}
EVENT = {
    "metadata": {"name": "cart-1.17a", "namespace": "shop"},
    "involvedObject": {"kind": "Pod", "name": "cart-1", "uid": "u-1"},
    "type": "Warning",
    "reason": "BackOff",
}


def test_field_selector_on_nested_fields() -> None:
    selector = parse_field_selector("metadata.namespace=shop,status.phase==Running")
    assert selector.matches(POD_A)
    assert not selector.matches(POD_PENDING)
    assert selector.paths == {"metadata.namespace", "status.phase"}
    events = parse_field_selector("involvedObject.kind=Pod,involvedObject.name=cart-1,type=Warning,reason=BackOff")
    assert events.matches(EVENT)
    assert not events.matches({**EVENT, "reason": "Pulled"})


def test_missing_field_compares_as_empty_string() -> None:
    unscheduled = parse_field_selector("spec.nodeName=")
    assert unscheduled.matches(POD_PENDING)
    assert not unscheduled.matches(POD_A)
    scheduled = parse_field_selector("spec.nodeName!=")
    assert scheduled.matches(POD_A)
    assert not scheduled.matches(POD_PENDING)
    assert parse_field_selector("involvedObject.uid!=u-1").matches(POD_A)


def test_field_values_compare_as_strings() -> None:
    assert parse_field_selector("spec.hostNetwork=false").matches(POD_A)
    assert not parse_field_selector("spec.hostNetwork=False").matches(POD_A)
    assert parse_field_selector("spec.replicas=3").matches({"spec": {"replicas": 3}})


def test_empty_field_selector_matches_everything() -> None:
    assert parse_field_selector("").matches(POD_A)
    assert parse_field_selector(" ").matches({})
    assert str(parse_field_selector(" metadata.name = cart-1 ,")) == "metadata.name=cart-1"


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("metadata.name", 'invalid field selector "metadata.name": "metadata.name" is not PATH=VALUE, '
                          "PATH==VALUE or PATH!=VALUE"),
        ("=cart", 'invalid field selector "=cart": "" is not a dotted field path like metadata.name'),
        ("metadata..name=x", 'invalid field selector "metadata..name=x": "metadata..name" is not a dotted field '
                             "path like metadata.name"),
        ("a!b=c", 'invalid field selector "a!b=c": "a!b=c" is not PATH=VALUE, PATH==VALUE or PATH!=VALUE'),
    ],
)
def test_invalid_field_selectors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(selector)
    assert str(caught.value) == message
