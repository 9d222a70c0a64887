"""The simulated API server honours what our actions rely on, seen through the official client over HTTP."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from incidentctl.k8ssim.controllers import Controllers
from incidentctl.k8ssim.images import ImageTable
from incidentctl.k8ssim.kubelet import Timing
from incidentctl.k8ssim.scenarios import WORKER_TOKEN, build
from incidentctl.k8ssim.store import BY_KIND, Store
from incidentctl.localhttp import write_ready_file


async def test_selectors_dry_run_and_patch_types_over_the_wire(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        api = sim.api()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        cart = core.list_namespaced_pod("shop", label_selector="app=cart").items
        not_cart = core.list_namespaced_pod("shop", label_selector="app notin (cart)").items
        on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1").items
        dry = apps.patch_namespaced_deployment("cart", "shop", {"spec": {"replicas": 5}}, dry_run="All",
                                               _content_type="application/merge-patch+json")
        stored = apps.read_namespaced_deployment("cart", "shop")
        with pytest.raises(client.ApiException) as bad_selector:
            core.list_namespaced_pod("shop", label_selector="app in cart")
    assert {p.metadata.labels["app"] for p in cart} == {"cart"} and len(cart) == 4
    assert {p.metadata.labels["app"] for p in not_cart} == {"checkout"}
    assert on_node and all(p.spec.node_name == "node-1" for p in on_node)
    assert dry.spec.replicas == 5 and stored.spec.replicas == 3
    assert bad_selector.value.status == 400


async def test_raw_json_patch_with_an_object_body_is_refused(k8s_sim: Any) -> None:
    # The Python client quietly switches a dict body to strategic merge; the server itself must refuse it.
    with k8s_sim() as sim:
        request = urllib.request.Request(
            f"{sim.url}/apis/apps/v1/namespaces/shop/deployments/checkout", method="PATCH",
            data=json.dumps({"spec": {"replicas": 5}}).encode(),
            headers={"Content-Type": "application/json-patch+json", "Authorization": f"Bearer {WORKER_TOKEN}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        status = json.loads(refused.value.read())
    assert refused.value.code == 400 and status["kind"] == "Status"
    assert "list of operations" in status["message"]


def test_a_crash_looping_rollout_stalls_with_the_old_pods_serving() -> None:
    cluster = build(["bad-rollout"])
    cart = cluster.store.require(BY_KIND["Deployment"], "shop", "cart")
    progressing = next(c for c in cart["status"]["conditions"] if c["type"] == "Progressing")
    assert cart["status"]["availableReplicas"] == 3 and cart["status"]["updatedReplicas"] == 1
    assert progressing["reason"] == "ProgressDeadlineExceeded"


def test_crash_loop_back_off_doubles_up_to_its_cap() -> None:
    controllers = Controllers(Store(lambda: None), ImageTable(), lambda: None,  # type: ignore[arg-type]
                              Timing(backoff_base_s=1, backoff_cap_s=8))
    assert [controllers.kubelet.restarts_after(t) for t in (0.5, 1, 3, 7, 15, 23, 31)] == [0, 1, 2, 3, 4, 5, 6]


async def test_metadata_only_lists_carry_no_data(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        request = urllib.request.Request(
            f"{sim.url}/api/v1/namespaces/shop/secrets",
            headers={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                     "Authorization": f"Bearer {WORKER_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            listed = json.loads(answer.read())
    assert listed["kind"] == "PartialObjectMetadataList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["cart-db"]
    assert all(set(item) == {"kind", "apiVersion", "metadata"} for item in listed["items"])


def test_the_ready_file_a_parent_polls_is_never_seen_half_written(tmp_path: Path) -> None:
    """The parent polls for the ready file and reads it at once: it must never find it empty or cut."""
    ready = tmp_path / "ready.json"
    content = {"url": "http://127.0.0.1:12345", "kubeconfig": str(tmp_path / "kubeconfig.yaml") * 50}
    done = threading.Event()
    seen: list[str] = []

    def read_while_written() -> None:
        while not done.is_set():
            if ready.exists():
                seen.append(ready.read_text())

    reader = threading.Thread(target=read_while_written)
    reader.start()
    try:
        for _ in range(300):
            write_ready_file(ready, content)
    finally:
        done.set()
        reader.join()
    assert seen, "the reader saw the file"
    assert all(json.loads(text) == content for text in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"], "no partial file is left behind"
