"""The worker and the receiver started the way deploy/kubernetes/ and docker-compose.yml start them (the same
command, the same variables, the ConfigMaps as files) against the test's Temporal dev server, coming up healthy;
then an alert through them, whose Kubernetes calls the generated RBAC allows.

What differs from a cluster, and only that: host and ports (free local ones instead of 0.0.0.0:8080), mount paths
(under a temporary directory), the task queue (one per test), and the kubeconfig (the simulated cluster's,
instead of the pod's service account)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from activities.catalog import load_all
from incidentctl import client as incidents
from incidentctl import rbac
from incidentctl.devserver import DevServer, free_port
from incidentctl.identity import new_signing_key, signing_key_line
from incidentctl.k8ssim.process import crash_looping_pod
from incidentctl.payload_codec import new_key
from tests.conftest import eventually
from tests.install_files import ROOT, compose, container, container_env, interpolate, k8s_object

BIN = Path(sys.executable).parent
MOUNT_ROOT = "/etc/incidentctl/"


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    args: list[str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Launcher:
    """Starts a container's command as a local process, with local ports and paths, and stops it by PID."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Started] = []

    def local_path(self, path: str) -> str:
        return str(self.tmp_path / "mounts" / path.removeprefix(MOUNT_ROOT)) if path.startswith(MOUNT_ROOT) else path

    def start(self, name: str, command: list[str], env: dict[str, str], overrides: dict[str, str]) -> Started:
        env = {key: self.local_path(value) for key, value in env.items()}
        for key, value in env.items():
            if re.fullmatch(r"0\.0\.0\.0:\d+", value):  # a bind address: a free local port instead
                env[key] = f"127.0.0.1:{free_port()}"
        env.update(overrides)
        args = ["127.0.0.1" if arg == "0.0.0.0" else arg for arg in command]
        if "--port" in args:
            args[args.index("--port") + 1] = str(free_port())
        executable = {"python": sys.executable, "incidentctl": str(BIN / "incidentctl")}[args[0]]
        return self.spawn(name, [executable, *args[1:]], env, args)

    def spawn(self, name: str, argv: list[str], env: dict[str, str], args: list[str] | None = None) -> Started:
        log = self.tmp_path / f"{name}.log"
        base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
        process = subprocess.Popen(argv, cwd=ROOT, env={**base, **env}, stdout=log.open("wb"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        started = Started(process, log, env, args or argv)
        self.started.append(started)
        return started

    def write_config_map(self, config_map: str, mount_path: str) -> None:
        """The ConfigMap laid out as the kubelet mounts it: the data in a hidden timestamped directory, `..data`
        linking to it, and each key a link through `..data` (so an update swaps one link)."""
        directory = Path(self.local_path(mount_path))
        if directory.exists():  # the worker's and the receiver's pods mount the same one
            return
        version = directory / "..2026_12_01_08_00_00.000000001"
        version.mkdir(parents=True)
        (directory / "..data").symlink_to(version.name)
        for key, text in k8s_object("ConfigMap", config_map)["data"].items():
            (version / key).write_text(text)
            (directory / key).symlink_to(f"..data/{key}")

    def stop_all(self) -> None:
        for started in self.started:
            if started.process.poll() is None:
                os.killpg(started.process.pid, signal.SIGTERM)
                try:
                    started.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(started.process.pid, signal.SIGKILL)
                    started.process.wait(timeout=10)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    running = Launcher(tmp_path)
    yield running
    running.stop_all()


async def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession() as session, session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status, await response.text()
    except aiohttp.ClientError as exc:
        return 0, str(exc)


async def _healthy(url: str, process: Started) -> str:
    async def probe() -> tuple[int, str]:
        assert process.process.poll() is None, f"exited {process.process.returncode}:\n{process.output()}"
        return await _get(url)
    status, body = await eventually(probe, lambda answer: answer[0] == 200, timeout=90, interval=0.5)
    return body


def _mounts(deployment: str) -> dict[str, str]:
    pod = k8s_object("Deployment", deployment)["spec"]["template"]["spec"]
    config_maps = {volume["name"]: volume["configMap"]["name"] for volume in pod["volumes"] if "configMap" in volume}
    return {config_maps[m["name"]]: m["mountPath"] for m in container(deployment)["volumeMounts"]
            if m["name"] in config_maps}


# ------------------------------------------------------------------ what RBAC a request needs


def rbac_need(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str, str]:
    """(verb, api group, resource[/subresource], namespace) of an API request, as the API server authorizes it."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")
    if method == "GET":
        verb = ("watch" if query.get("watch") in ("true", "1") else "list") if not name else "get"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    if method == "POST" and sub:  # e.g. POST pods/NAME/eviction creates the subresource
        verb = "create"
    return verb, group, f"{resource}/{sub}" if sub else resource, namespace


def allowed(need: tuple[str, str, str, str], documents: list[dict[str, Any]]) -> bool:
    verb, group, resource, namespace = need
    for document in documents:
        if document["kind"] == "Role" and document["metadata"]["namespace"] != namespace:
            continue
        if document["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in document["rules"]:
            if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
                return True
    return False


def test_request_to_rbac_mapping() -> None:
    assert rbac_need("GET", "/apis/apps/v1/namespaces/shop/deployments/cart", {}) == (
        "get", "apps", "deployments", "shop")
    assert rbac_need("GET", "/api/v1/namespaces/shop/pods", {"labelSelector": "app"}) == ("list", "", "pods", "shop")
    assert rbac_need("GET", "/api/v1/namespaces/shop", {}) == ("get", "", "namespaces", "")
    assert rbac_need("GET", "/api/v1/namespaces/shop/pods/p/log", {"previous": "true"}) == (
        "get", "", "pods/log", "shop")
    assert rbac_need("POST", "/api/v1/namespaces/shop/pods/p/eviction", {}) == ("create", "", "pods/eviction", "shop")
    assert rbac_need("PATCH", "/api/v1/nodes/node-1", {}) == ("patch", "", "nodes", "")
    assert rbac_need("GET", "/api/v1/pods", {"watch": "true"}) == ("watch", "", "pods", "")


# ------------------------------------------------------------------ the tests


async def test_worker_and_receiver_started_as_the_manifests_say_run_an_alert_within_the_generated_rbac(
    dev_server: DevServer, client: Client, launcher: Launcher, k8s_sim: Any, unique: str
) -> None:
    token = f"token-{unique}"
    identity = new_signing_key("k1")  # as `incidentctl identity key` makes it: the Secret and the ConfigMap's halves
    secrets = {"INCIDENTCTL_RECEIVER_TOKEN": token, "INCIDENTCTL_PLAN_KEYS": new_key("k1"),
               "INCIDENTCTL_IDENTITY_SIGNING_KEY": signing_key_line(identity)}
    with k8s_sim("bad-rollout") as sim:
        overrides = {"TEMPORAL_ADDRESS": dev_server.address, "INCIDENTCTL_TASK_QUEUE": unique,
                     "INCIDENTCTL_IDENTITY_KEYS": identity.public_line()}
        for deployment in ("incidentctl-worker", "incidentctl-receiver"):
            for config_map, mount_path in _mounts(deployment).items():
                launcher.write_config_map(config_map, mount_path)
        spec = container("incidentctl-worker")
        assert container_env(spec, secrets)["INCIDENTCTL_KUBECONFIG"] == "in-cluster"
        worker = launcher.start("worker", spec["command"], container_env(spec, secrets),
                                {**overrides, "INCIDENTCTL_KUBECONFIG": str(sim.kubeconfig)})
        spec = container("incidentctl-receiver")
        receiver = launcher.start("receiver", spec["command"], container_env(spec, secrets), overrides)

        health = worker.env["INCIDENTCTL_WORKER_HEALTH_ADDRESS"]
        probes = {probe: container("incidentctl-worker")[probe]["httpGet"]["path"]
                  for probe in ("livenessProbe", "readinessProbe")}
        await _healthy(f"http://{health}{probes['readinessProbe']}", worker)
        assert (await _get(f"http://{health}{probes['livenessProbe']}"))[0] == 200
        receiver_url = f"http://127.0.0.1:{receiver.args[receiver.args.index('--port') + 1]}"
        answer = json.loads(await _healthy(receiver_url + container("incidentctl-receiver")["livenessProbe"]
                                           ["httpGet"]["path"], receiver))
        assert answer["runbooks_routed"] == len(k8s_object("ConfigMap", "incidentctl-runbooks")["data"])

        # An alert as Alertmanager sends it (docs/alerts.md), with the Secret's token.
        labels = {"alertname": "KubePodCrashLooping", "namespace": "shop", "severity": "warning",
                  "pod": crash_looping_pod(sim.url, "shop", "app=cart")}
        body = {"version": "4", "groupKey": f"{{}}:{unique}", "truncatedAlerts": 0, "status": "firing",
                "receiver": "incidentctl", "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
                "externalURL": "http://alertmanager:9093",
                "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                            "startsAt": "2026-12-01T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}
        async with aiohttp.ClientSession() as session, session.post(
                receiver_url + "/alertmanager", data=json.dumps(body),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as response:
            report = await response.json()
            assert response.status == 200, report
        incident_id = report["incidents"][0]["incident_id"]
        summary = await incidents.wait_for_runbook(client, incident_id)
        assert summary["outcome"] == "succeeded", summary
        assert summary["steps"]["owner"]["output"]["name"] == "cart"
        assert summary["steps"]["logs"]["status"] == "succeeded"

        # Every call the worker made is one the generated rbac.yaml allows, for a Role in `shop`.
        documents = [doc for doc in yaml.safe_load_all(rbac.render(load_all(), ["shop"])) if doc]
        needs = {rbac_need(r["method"], r["path"], r["query"]) for r in sim.requests()}
        assert needs, "the runbook called the API server"
        assert {need for need in needs if not allowed(need, documents)} == set()

        # The worker's Temporal SDK metrics, where the manifest's annotations tell Prometheus to scrape.
        annotations = k8s_object("Deployment", "incidentctl-worker")["spec"]["template"]["metadata"]["annotations"]
        metrics = worker.env["INCIDENTCTL_WORKER_METRICS_ADDRESS"]
        status, text = await _get(f"http://{metrics}{annotations['prometheus.io/path']}")
        assert status == 200
        assert re.search(r"^temporal_\w+", text, re.M), text[:500]
        assert 'task_queue="' + unique + '"' in text


async def test_worker_and_receiver_started_as_compose_says_come_up_healthy(
    dev_server: DevServer, launcher: Launcher, tmp_path: Path, unique: str
) -> None:
    dotenv = {"POSTGRES_PASSWORD": "pw", "INCIDENTCTL_RECEIVER_TOKEN": f"token-{unique}"}
    services = yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text(), dotenv))["services"]
    overrides = {"TEMPORAL_ADDRESS": dev_server.address, "INCIDENTCTL_TASK_QUEUE": unique}
    started = {}
    for name in ("incidentctl-worker", "incidentctl-receiver"):
        service = services[name]
        for volume in service["volumes"]:
            source, target = volume.split(":")[:2]
            local = Path(launcher.local_path(target))
            local.parent.mkdir(parents=True, exist_ok=True)
            if source.startswith("./") and not local.exists():
                local.symlink_to(ROOT / source)
        env = {key: str(value) for key, value in service["environment"].items()}
        started[name] = launcher.start(name, service["command"], env, overrides)

    worker, receiver = started["incidentctl-worker"], started["incidentctl-receiver"]
    # Compose's health checks, as URLs: the same paths on the local ports.
    worker_check = re.search(r"http://127\.0\.0\.1:\d+(/\w+)",
                             services["incidentctl-worker"]["healthcheck"]["test"][-1])
    await _healthy(f"http://{worker.env['INCIDENTCTL_WORKER_HEALTH_ADDRESS']}{worker_check.group(1)}", worker)
    receiver_check = re.search(r"http://127\.0\.0\.1:\d+(/\w+)",
                               services["incidentctl-receiver"]["healthcheck"]["test"][-1])
    port = receiver.args[receiver.args.index("--port") + 1]
    answer = json.loads(await _healthy(f"http://127.0.0.1:{port}{receiver_check.group(1)}", receiver))
    assert answer["runbooks_routed"] >= 1, "the runbooks directory compose mounts"
    assert (await _get(f"http://127.0.0.1:{port}/metrics"))[0] == 401, "the token is required"
    assert (await _get(f"http://127.0.0.1:{port}/metrics", dotenv["INCIDENTCTL_RECEIVER_TOKEN"]))[0] == 200

    # Debian's Prometheus with compose's prometheus.yml scrapes both, the receiver with the token from its file.
    if not shutil.which("prometheus"):
        pytest.skip("Debian's prometheus is not installed (scripts/setup.sh)")
    metrics_address = worker.env["INCIDENTCTL_WORKER_METRICS_ADDRESS"]
    prometheus_port = free_port()
    jobs = await _scrape_with_compose_prometheus(launcher, tmp_path, {
        "incidentctl-receiver:9095": f"127.0.0.1:{port}", "incidentctl-worker": metrics_address,
    }, dotenv["INCIDENTCTL_RECEIVER_TOKEN"], prometheus_port)
    assert jobs["incidentctl-receiver"] == "up" and jobs["incidentctl-worker"] == "up", jobs


async def _scrape_with_compose_prometheus(launcher: Launcher, tmp_path: Path, targets: dict[str, str], token: str,
                                          port: int) -> dict[str, str]:
    """Run Prometheus on compose's config with local targets (DNS discovery becomes a static target) and a 1s
    scrape interval; the health of each job once every one of ours has been scraped."""
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config.pop("rule_files")  # checked by promtool in tests/test_install.py; not what this test is about
    for job in config["scrape_configs"]:
        if "dns_sd_configs" in job:
            job["static_configs"] = [{"targets": [targets[name] for name in job.pop("dns_sd_configs")[0]["names"]]}]
        for static in job["static_configs"]:
            static["targets"] = [targets.get(target, target) for target in static["targets"]]
        credentials = job.get("authorization", {}).get("credentials_file")
        if credentials:
            local = tmp_path / credentials.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(token)
            job["authorization"]["credentials_file"] = str(local)
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    prometheus = launcher.spawn("prometheus", [shutil.which("prometheus") or "prometheus",
                                               f"--config.file={config_file}",
                                               f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                               f"--web.listen-address=127.0.0.1:{port}"], {})

    async def health() -> dict[str, str]:
        assert prometheus.process.poll() is None, prometheus.output()
        status, body = await _get(f"http://127.0.0.1:{port}/api/v1/targets")
        if status != 200:
            return {}
        return {target["labels"]["job"]: target["health"] for target in json.loads(body)["data"]["activeTargets"]}

    ours = ("incidentctl-receiver", "incidentctl-worker")
    return await eventually(health, lambda jobs: all(jobs.get(job) in ("up", "down") for job in ours)
                            and any(jobs.get(job) == "up" for job in ours), timeout=60, interval=0.5)


async def test_compose_namespace_script_creates_the_namespace_once(dev_server: DevServer, client: Client,
                                                                   unique: str) -> None:
    """deploy/compose/temporal-namespace.sh with the Temporal CLI admin-tools carries (the same CLI as ours)."""
    from incidentctl.devserver import find_temporal_binary

    service = compose()["services"]["temporal-namespace"]
    script = ROOT / service["volumes"][0].split(":")[0]
    env = {"PATH": f"{find_temporal_binary().parent}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/tmp"),
           "TEMPORAL_ADDRESS": dev_server.address, "TEMPORAL_NAMESPACE": f"ns-{unique}", "NAMESPACE_RETENTION": "30d"}
    assert set(env) - {"PATH", "HOME"} == set(service["environment"])
    first = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"namespace ns-{unique} created (retention 30d)" in first.stdout
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=f"ns-{unique}"))
    assert described.config.workflow_execution_retention_ttl.ToSeconds() == 30 * 86400
    again = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and f"namespace ns-{unique} exists" in again.stdout
