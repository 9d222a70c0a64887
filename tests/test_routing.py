"""Routing and matchers without a server: Alertmanager matcher semantics, priority, severity, keys."""

from __future__ import annotations

import json

import pytest

from incidentctl.dsl.matchers import parse_matcher
from incidentctl.dsl.plan import Plan
from incidentctl.intake.payloads import PayloadError, fingerprint, parse_alertmanager
from incidentctl.intake.routing import Router, incident_key
from incidentctl.intake.runner import severity_map_from_env


def plan(name: str, trigger: dict, severity: str = "SEV3") -> Plan:
    return Plan.from_json({"runbook": {"name": name, "version": "1", "severity": severity}, "trigger": trigger})


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


def test_cluster_always_splits_incidents_and_operators_can_add_labels() -> None:
    crash = Router([plan("crash", {"alertname": "Crash", "group_by": ["namespace"]})]).route({"alertname": "Crash"})
    eu = {"fingerprint": "f1", "labels": {"alertname": "Crash", "namespace": "prod", "cluster": "eu"}}
    us = {"fingerprint": "f2", "labels": {**eu["labels"], "cluster": "us"}}
    assert incident_key(crash, eu, {}) != incident_key(crash, us, {}), "one incident per cluster"
    assert incident_key(crash, eu, {}, key_labels=()) == incident_key(crash, us, {}, key_labels=())
    grouped = {"namespace": "prod"}  # Alertmanager grouped by namespace only: the cluster still splits
    assert incident_key(crash, eu, grouped) != incident_key(crash, us, grouped)
    eu_a = {"fingerprint": "f3", "labels": {**eu["labels"], "region": "a"}}
    eu_b = {"fingerprint": "f4", "labels": {**eu["labels"], "region": "b"}}
    assert incident_key(crash, eu_a, {}) == incident_key(crash, eu_b, {})
    assert incident_key(crash, eu_a, {}, ("cluster", "region")) != incident_key(crash, eu_b, {}, ("cluster", "region"))
    no_cluster = {"fingerprint": "f5", "labels": {"alertname": "Crash", "namespace": "prod"}}
    assert incident_key(crash, no_cluster, {}) == incident_key(crash, no_cluster, {}, key_labels=()), \
        "keys of alerts without the label are unchanged"


def test_key_labels_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from incidentctl.intake.runner import key_labels_from_env

    monkeypatch.delenv("INCIDENTCTL_INCIDENT_KEY_LABELS", raising=False)
    assert key_labels_from_env() == ("cluster",)
    monkeypatch.setenv("INCIDENTCTL_INCIDENT_KEY_LABELS", "cluster, region,")
    assert key_labels_from_env() == ("cluster", "region")
    monkeypatch.setenv("INCIDENTCTL_INCIDENT_KEY_LABELS", "")
    assert key_labels_from_env() == ()


def test_a_bad_alert_is_rejected_alone_and_the_others_go_on() -> None:
    good = {"labels": {"alertname": "Down", "instance": "a"}, "startsAt": "2026-11-23T08:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z"}
    delivery = parse_alertmanager({"alerts": [
        good,
        {"labels": {"instance": "no-name"}},                                    # falcosidekick, Rancher
        {"labels": {"alertname": "Down"}, "startsAt": "yesterday"},
        {"labels": {"alertname": "Down"}, "endsAt": "2026-02-30T00:00:00Z"},
        {"labels": {"alertname": "Down", "n": 1}, "status": "resolved", "fingerprint": "fp"},
        "not an alert",
    ]})
    assert [a["labels"]["instance"] for a in delivery.alerts] == ["a"]
    reasons = {r.index: r.reason for r in delivery.rejected}
    assert reasons[1] == "body.alerts[1].labels: every alert needs an alertname label"
    assert "body.alerts[2].startsAt: 'yesterday' is not an RFC 3339 time" in reasons[2]
    assert "body.alerts[3].endsAt: '2026-02-30T00:00:00Z' is not a real time" in reasons[3]
    assert reasons[4] == "body.alerts[4].labels.n: 1 is not of type 'string'"
    assert "body.alerts[5]: 'not an alert' is not of type 'object'" in reasons[5]
    fifth = delivery.rejected[3]
    assert (fifth.labels, fifth.status, fifth.fingerprint) == ({"alertname": "Down", "n": "1"}, "resolved", "fp")
    for offset in ("+02:00", "-05:30", "z"):
        assert parse_alertmanager({"alerts": [{**good, "startsAt": "2026-11-23T08:00:00" + offset}]}).alerts


def test_bodies_are_decoded_safely() -> None:
    from incidentctl.intake.payloads import MAX_DEPTH, decode_json

    with pytest.raises(PayloadError, match=f"nested deeper than {MAX_DEPTH} levels"):
        decode_json(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(PayloadError, match=f"nested deeper than {MAX_DEPTH} levels"):
        decode_json(b'{"a": ' * 100 + b"1" + b"}" * 100)
    with pytest.raises(PayloadError, match="not valid JSON: Exceeds the limit"):
        decode_json(b'{"n": ' + b"9" * 5000 + b"}")
    with pytest.raises(PayloadError, match="not UTF-8"):
        decode_json(b'{"a": "\xff"}')
    value = decode_json(b'{"labels": {"pod\\ud800": "x\\udfffy", "ok": "\\ud83d\\ude00"}}')
    assert value == {"labels": {"pod\ufffd": "x\ufffdy", "ok": "\U0001F600"}}
    json.dumps(value).encode("utf-8")  # what broke `incident show` before
    "".join(value["labels"]).encode("utf-8")


def test_a_trigger_can_map_the_alerts_severity_label() -> None:
    router = Router([plan("mapped", {"alertname": "Down", "severity": {"warning": "SEV2", "Critical": "SEV1"}},
                          severity="SEV4")])
    down = router.route({"alertname": "Down"})
    assert router.severity(down, {"severity": "warning"}) == "SEV2"
    assert router.severity(down, {"severity": "CRITICAL"}) == "SEV1", "label values compare case-insensitively"
    assert router.severity(down, {"severity": "info"}) == "SEV4", "a label the map lacks: the receiver's map"
    assert router.severity(down, {"severity": "unheard-of"}) == "SEV4", "then the runbook's default"
    assert router.severity(down, {}) == "SEV4"
    custom = Router([plan("mapped", {"alertname": "Down", "severity": {"warning": "SEV2"}})],
                    severity_map={"p1": "SEV1"})
    assert custom.severity(custom.route({"alertname": "Down"}), {"severity": "p1"}) == "SEV1"


def test_severity_maps_are_checked_when_the_runbook_compiles() -> None:
    from incidentctl.dsl.errors import RunbookErrors
    from incidentctl.library import compile_text

    def runbook(trigger: str) -> str:
        return f"name: r\nversion: 1\ntrigger: {trigger}\nsteps:\n  - id: a\n    notify: {{message: hi}}\n"

    assert compile_text(runbook("{alertname: A, severity: {warning: SEV2}}"), "r.yaml").trigger == {
        "alertname": "A", "severity": {"warning": "SEV2"}}
    assert compile_text(runbook("{alertname: A, severity: SEV1}"), "r.yaml").trigger == {"alertname": "A",
                                                                                          "severity": "SEV1"}
    for bad in ("{alertname: A, severity: {warning: urgent}}", "{alertname: A, severity: {}}",
                "{alertname: A, severity: SEV9}", "{priority: 3}", "{matchers: []}"):
        with pytest.raises(RunbookErrors) as refused:
            compile_text(runbook(bad), "r.yaml")
        assert "$.trigger" in str(refused.value), bad


def test_a_trigger_without_alertname_routes_on_its_matchers() -> None:
    router = Router([plan("falco", {"matchers": ['source="falco"', 'priority=~"Critical|Alert"']}),
                     plan("named", {"alertname": "Terminal shell in container", "priority": -1})])
    assert router.route({"alertname": "Terminal shell in container", "source": "falco",
                         "priority": "Critical"}).runbook == "falco"
    assert router.route({"alertname": "Terminal shell in container", "source": "falco",
                         "priority": "Warning"}).runbook == "named"
    assert router.route({"alertname": "Other", "source": "falco", "priority": "Warning"}) is None


def test_the_http_demo_takes_its_base_url_from_the_alert() -> None:
    from incidentctl.library import compile_file
    from incidentctl.params import ParameterError, resolve_params
    from tests.runbook_run import RUNBOOKS

    router = Router([compile_file(RUNBOOKS / "demo-http-service.yaml")])
    labels = {"alertname": "ServiceHealthCheckFailing", "job": "demo", "service": "checkout"}
    route = router.route(labels)
    assert route is not None and route.runbook == "demo-http-service"
    alert = {"labels": labels, "annotations": {"base_url": "http://checkout.shop:8080"}}
    assert resolve_params(route.plan, {}, alert) == {"service": "checkout", "base_url": "http://checkout.shop:8080"}
    with pytest.raises(ParameterError, match="missing required parameter 'base_url'"):
        resolve_params(route.plan, {}, {"labels": labels, "annotations": {}})
