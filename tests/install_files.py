"""Reading the install files (docker-compose.yml, deploy/kubernetes/) for the tests that check them."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DEV_COMPOSE = ROOT / "docker-compose.dev.yml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
# `${NAME}`, `${NAME:-default}`, `${NAME:?error}`: compose's interpolation.
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def compose(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def interpolate(text: str, values: dict[str, str]) -> str:
    """What compose makes of `text` given `values` (as from .env): defaults apply to unset or empty names."""
    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        given = values.get(name, "")
        if given:
            return given
        if operator and operator.endswith("?"):
            raise KeyError(f"{name}: {argument}")
        return argument or ""
    return INTERPOLATION.sub(value, text)


def kustomized_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file, object) for every object of every file kustomization.yaml lists, in its order."""
    resources = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    return [(name, doc) for name in resources for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]


@cache
def _documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple(kustomized_documents())


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in _documents() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(deployment: str) -> dict[str, Any]:
    containers = k8s_object("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_env(spec: dict[str, Any], secret_values: dict[str, str]) -> dict[str, str]:
    """The environment Kubernetes gives a container: envFrom ConfigMaps and Secrets (values from `secret_values`,
    as the operator fills the template), then env."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s_object("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            keys = k8s_object("Secret", source["secretRef"]["name"])["stringData"]
            env.update({key: secret_values.get(key, "") for key in keys})
    # A value from a Secret's key (valueFrom.secretKeyRef) is filled from `secret_values` by the variable's name.
    env.update({item["name"]: item["value"] if "value" in item else secret_values.get(item["name"], "")
                for item in spec.get("env", [])})
    return env


def names_the_code_reads() -> set[str]:
    """Every environment variable name our code mentions (INCIDENTCTL_*, TEMPORAL_ADDRESS/NAMESPACE)."""
    names: set[str] = set()
    for path in [ROOT / "worker.py", *(ROOT / "incidentctl").rglob("*.py"), *(ROOT / "activities").rglob("*.py")]:
        names |= set(re.findall(r"\b(INCIDENTCTL_[A-Z0-9_]*[A-Z0-9]|TEMPORAL_ADDRESS|TEMPORAL_NAMESPACE)\b",
                                path.read_text()))
    return names
