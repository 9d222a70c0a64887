"""Routing and matchers without a server: Alertmanager matcher semantics, priority, severity, keys."""

from __future__ import annotations

import pytest

from incidentctl.intake.matchers import parse_matcher
from incidentctl.intake.payloads import PayloadError, fingerprint, parse_alertmanager
from incidentctl.intake.routing import Router, incident_key
from incidentctl.intake.runner import severity_map_from_env


def plan(name: str, trigger: dict, severity: str = "SEV3") -> dict:
    return {"runbook": {"name": name, "severity": severity}, "trigger": trigger}


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('namespace="prod"', {"namespace": "prod"}, True),
        ('namespace="prod"', {"namespace": "prod-eu"}, False),
        ('namespace!="prod"', {}, True),
        ('namespace=~"prod-.*"', {"namespace": "prod-eu"}, True),
        ('namespace=~"prod"', {"namespace": "prod-eu"}, False),  # anchored, as in Alertmanager
        ('team!~"test.*"', {"team": "payments"}, True),
        ("severity=critical", {"severity": "critical"}, True),
        ('path="a\\"b"', {"path": 'a"b'}, True),
    ],
)
def test_matchers_follow_alertmanager_semantics(matcher: str, labels: dict, expected: bool) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


def test_bad_matchers_are_explained() -> None:
    with pytest.raises(ValueError, match="is not a label matcher like"):
        parse_matcher("namespace ~ prod")
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_matcher('pod=~"("')


def test_priority_then_name_and_severity_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    router = Router([
        plan("b-generic", {"alertname": "Down"}),
        plan("a-generic", {"alertname": "Down"}),
        plan("prod", {"alertname": "Down", "matchers": ['env="prod"'], "priority": 5}),
        plan("fixed", {"alertname": "Other", "severity": "SEV1"}, severity="SEV4"),
    ])
    assert router.route({"alertname": "Down", "env": "prod"}).runbook == "prod"
    assert router.route({"alertname": "Down", "env": "dev"}).runbook == "a-generic"
    assert router.route({"alertname": "Nope"}) is None
    down = router.route({"alertname": "Down"})
    assert router.severity(down, {"severity": "critical"}) == "SEV1"
    assert router.severity(down, {"severity": "Warning"}) == "SEV3"
    assert router.severity(down, {}) == "SEV3", "no label: the runbook's default"
    other = router.route({"alertname": "Other"})
    assert router.severity(other, {"severity": "info"}) == "SEV1", "a trigger's fixed severity wins"

    monkeypatch.setenv("INCIDENTCTL_SEVERITY_MAP", '{"p1": "SEV1", "p2": "SEV2"}')
    custom = Router([plan("x", {"alertname": "Down"})], severity_map=severity_map_from_env())
    assert custom.severity(custom.route({"alertname": "Down"}), {"severity": "P2"}) == "SEV2"
    monkeypatch.setenv("INCIDENTCTL_SEVERITY_MAP", '{"p1": "urgent"}')
    with pytest.raises(ValueError, match="must map label values to SEV1..SEV4"):
        severity_map_from_env()


def test_incident_keys_and_fingerprints() -> None:
    router = Router([plan("crash", {"alertname": "Crash", "group_by": ["namespace"]}),
                     plan("plain", {"alertname": "Plain"})])
    crash = router.route({"alertname": "Crash"})
    alert = {"fingerprint": "f1", "labels": {"alertname": "Crash", "namespace": "prod", "pod": "a"}}
    other_pod = {"fingerprint": "f2", "labels": {**alert["labels"], "pod": "b"}}
    assert incident_key(crash, alert, {}) == incident_key(crash, other_pod, {}), "grouped by namespace"
    assert incident_key(crash, alert, {}).startswith("prod-")
    plain = router.route({"alertname": "Plain"})
    assert incident_key(plain, alert, {}) == "f1", "no group labels: the fingerprint"
    assert incident_key(plain, alert, {"cluster": "eu"}) != incident_key(plain, alert, {"cluster": "us"})
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})


def test_alertmanager_payload_merges_common_labels_and_computes_fingerprints() -> None:
    delivery = parse_alertmanager({
        "groupLabels": {"alertname": "Down"}, "commonLabels": {"alertname": "Down", "cluster": "eu"},
        "commonAnnotations": {"runbook_url": "http://wiki"},
        "alerts": [{"labels": {"instance": "a"}}, {"status": "resolved", "labels": {"instance": "b"},
                                                   "fingerprint": "given"}],
    })
    first, second = delivery.alerts
    assert first["labels"] == {"alertname": "Down", "cluster": "eu", "instance": "a"}
    assert first["status"] == "firing" and first["fingerprint"] == fingerprint(first["labels"])
    assert first["annotations"] == {"runbook_url": "http://wiki"}
    assert (second["status"], second["fingerprint"]) == ("resolved", "given")
    with pytest.raises(PayloadError, match="body: 'alerts' is a required property"):
        parse_alertmanager({})
