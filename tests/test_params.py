"""Parameter resolution before an incident starts: CLI strings, alert-derived defaults, types, enums."""

from __future__ import annotations

import pytest

from incidentctl.dsl.plan import Plan
from incidentctl.params import ParameterError, parse_assignments, resolve_params

PLAN = Plan.from_json({
    "runbook": {"name": "params", "version": "1"},
    "parameters": {
        "namespace": {"type": "string", "required": True, "default": "${{ alert.labels.namespace }}"},
        "replicas": {"type": "integer", "required": False, "default": 2},
        "force": {"type": "boolean", "required": False, "default": None},
        "hosts": {"type": "array", "required": False, "default": None},
        "mode": {"type": "string", "required": False, "default": "safe", "enum": ["safe", "fast"]},
    },
})


def test_defaults_come_from_the_alert_and_strings_are_typed() -> None:
    alert = {"labels": {"namespace": "prod-eu"}}
    given = parse_assignments(["replicas=5", "force=yes", 'hosts=["a","b"]'])
    assert resolve_params(PLAN, given, alert) == {
        "namespace": "prod-eu", "replicas": 5, "force": True, "hosts": ["a", "b"], "mode": "safe",
    }


def test_every_problem_is_reported_in_one_refusal() -> None:
    with pytest.raises(ParameterError) as caught:
        resolve_params(PLAN, {"replicas": "many", "mode": "yolo", "colour": "red"}, alert=None)
    assert caught.value.problems == [
        "unknown parameter 'colour' (declared: force, hosts, mode, namespace, replicas)",
        "missing required parameter 'namespace'",
        "parameter 'replicas' must be an integer, got 'many'",
        "parameter 'mode' must be one of ['safe', 'fast'], got 'yolo'",
    ]


def test_bad_assignment_syntax() -> None:
    with pytest.raises(ParameterError, match="--param 'novalue' is not NAME=VALUE"):
        parse_assignments(["novalue"])
    assert parse_assignments(["url=http://x/?a=b"]) == {"url": "http://x/?a=b"}
