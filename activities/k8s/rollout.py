"""`k8s.rollout_restart` and `k8s.rollout_undo`: kubectl's rollout restart and undo on a Deployment.

Idempotent under Temporal retries: restart stamps the activity's scheduled time (a retry stamps the same value,
so no second restart); undo marks the deployment with the step's `ActionInput.retry_key()` and a retry that finds
its own mark reports the rollback already done instead of undoing again (which would flip back to the bad
revision).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import JSON_PATCH, STRATEGIC_MERGE_PATCH, Target, must
from activities.k8s.changes import revision_of
from activities.k8s.deployments import RESTARTED_AT, change_record, patch_deployment, read_deployment, state
from activities.k8s.fields import format_time
from activities.k8s.schemas import DEPLOYMENT_LEASE, NAME, NAMESPACE, k8s_params

ROLLBACK_MARK = "incidentctl.dev/rollback"
HASH_LABEL = "pod-template-hash"


@action(
    "k8s.rollout_restart",
    kube_access=(rule("get,patch deployments.apps"),),
    params=k8s_params({"namespace": NAMESPACE, "deployment": NAME}, ["namespace", "deployment"]),
    mutates=True, idempotent=True, lease=DEPLOYMENT_LEASE,
    description="kubectl rollout restart: new pods for the same template (restartedAt annotation).",
)
async def rollout_restart(inp: ActionInput) -> dict[str, Any]:
    from temporalio import activity  # here, not at module import: building the action catalog must not load it

    p = inp.params
    before = await read_deployment(p)
    stamp = (activity.info().scheduled_time if activity.in_activity() else datetime.now(UTC))
    value = format_time(stamp)
    if state(before)["restarted_at"] == value:
        return change_record(p, before, before, inp.dry_run, note="already restarted by this step")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}}
    after = await patch_deployment(p, body, STRATEGIC_MERGE_PATCH, inp.dry_run)
    return change_record(p, before, after, inp.dry_run)


def _owned_sets(listed: dict[str, Any], deployment: dict[str, Any]) -> list[dict[str, Any]]:
    uid = deployment["metadata"]["uid"]
    return [rs for rs in listed.get("items", [])
            if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences", []))]


def _bare_template(rs: dict[str, Any]) -> dict[str, Any]:
    template = json.loads(json.dumps(rs["spec"]["template"]))
    labels = template.get("metadata", {}).get("labels", {})
    labels.pop(HASH_LABEL, None)
    return template


@action(
    "k8s.rollout_undo",
    kube_access=(rule("get,patch deployments.apps"), rule("list replicasets.apps")),
    params=k8s_params({"namespace": NAMESPACE, "deployment": NAME,
                       "to_revision": {"type": ["integer", "null"], "minimum": 1,
                                       "description": "revision to go back to (default, or null: the previous one)"},
                       "expect_revision": {"type": ["integer", "null"], "minimum": 1,
                                           "description": "refuse unless the deployment is still at this revision "
                                                          "(the one the diagnosis and the approval saw; null: any)"}},
                      ["namespace", "deployment"]),
    mutates=True, idempotent=True, lease=DEPLOYMENT_LEASE,
    description="kubectl rollout undo: put the pod template of an earlier ReplicaSet back on the deployment.",
)
async def rollout_undo(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    before = await read_deployment(p)
    mark = inp.retry_key()
    annotations = before["metadata"].get("annotations", {})
    if inp.incident_id and annotations.get(ROLLBACK_MARK) == mark:
        return change_record(p, before, before, inp.dry_run, to_revision=None,
                             note="already rolled back by this step")
    current = state(before)["revision"] or 0
    wanted = p.get("to_revision")
    expected = p.get("expect_revision")
    if expected is not None and current != expected:
        # Someone else rolled out or rolled back since: "previous" is no longer what was approved.
        raise ActionError(f"deployment {p['namespace']}/{p['deployment']} changed since the approval: current "
                          f"revision {current}, approved going from {expected} to {wanted or 'the previous one'}",
                          type="RevisionChanged", non_retryable=True)
    listed = await must(p, Target("list", "replicasets.apps", p["namespace"]), "apps",
                        "list_namespaced_replica_set", p["namespace"])
    sets = sorted(_owned_sets(listed, before), key=lambda rs: revision_of(rs) or 0)
    revisions = {revision_of(rs): rs for rs in sets}
    if wanted is None:
        earlier = [r for r in revisions if r is not None and r < current]
        if not earlier:
            raise ActionError(f"deployment {p['namespace']}/{p['deployment']} has no revision before "
                              f"{current} to roll back to", type="NoPreviousRevision", non_retryable=True)
        wanted = max(earlier)
    target = revisions.get(wanted)
    if target is None:
        known = ", ".join(str(r) for r in sorted(r for r in revisions if r is not None))
        raise ActionError(f"deployment {p['namespace']}/{p['deployment']} has no revision {wanted} "
                          f"(known: {known})", type="UnknownRevision", non_retryable=True)
    template = _bare_template(target)
    if template == before["spec"]["template"]:
        return change_record(p, before, before, inp.dry_run, to_revision=wanted,
                             note=f"already at revision {wanted}'s template")
    # As kubectl does: one JSON patch replacing the template and the annotations (plus our retry mark).
    new_annotations = {**annotations, ROLLBACK_MARK: mark} if inp.incident_id else dict(annotations)
    body = [{"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": new_annotations}]
    after = await patch_deployment(p, body, JSON_PATCH, inp.dry_run)
    if not inp.dry_run:
        after = await read_deployment(p)  # the controller has now given the re-used ReplicaSet its new revision
    return change_record(p, before, after, inp.dry_run, to_revision=wanted, replica_set=target["metadata"]["name"])
