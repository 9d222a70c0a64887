"""A kubeconfig for the simulated cluster: context `sim` (the worker's token) and `sim-readonly` (403 on writes)."""

from __future__ import annotations

from pathlib import Path

import yaml

from incidentctl.k8ssim.scenarios import READONLY_TOKEN, WORKER_TOKEN


def kubeconfig(url: str) -> dict:
    users = {"sim": WORKER_TOKEN, "sim-readonly": READONLY_TOKEN}
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "sim", "preferences": {},
        "clusters": [{"name": "sim", "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": token}} for name, token in users.items()],
        "contexts": [{"name": name, "context": {"cluster": "sim", "user": name, "namespace": "shop"}}
                     for name in users],
    }


def write_kubeconfig(path: Path, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(url), sort_keys=False))
