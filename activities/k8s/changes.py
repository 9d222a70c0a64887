"""Change correlation for `k8s.what_changed`: Kubernetes API objects in, ranked suspects out.

Pure logic: the caller fetches the objects (raw JSON dicts as the API returns them) and passes them to
`correlate`. Nothing here does I/O, so it is cheap to test and deterministic to replay.

What counts as a change (only those with window_start <= time <= alert_time are reported):

* rollout    - a ReplicaSet of the alerting Deployment becoming revision N. Normally that is its
               `creationTimestamp`; a rollback re-uses an old ReplicaSet and only bumps its revision
               annotation, so for a ReplicaSet created before a lower revision we use its newest
               `managedFields[].time` instead (capped at the next higher revision's time, because a later
               scale-down also touches managedFields).
* config_map / secret - max(creationTimestamp, managedFields[].time). Only names and times are read;
               Secret `data`/`stringData` are never looked at.
* scaling    - `ScalingReplicaSet` events of the Deployment and `SuccessfulRescale` events of HPAs in the
               namespace (an HPA's target is not in the event, so every HPA in the namespace counts).
* node       - a Node's Ready condition transition, its cordon taint's `timeAdded`, and Node events.

Ranking. Each change gets score = base * max(0.5, 1 - age_minutes / 100): linear decay over 100 minutes,
floored at half the base so an old change never drops below the next weaker class by much. Bases:

    100  rollout of the alerting workload       (score 100 - age, floor 50)
     70  ConfigMap/Secret the workload's pod template references
     60  node change on a node running the workload's pods
     30  other ConfigMap/Secret change in the namespace
     20  scaling
     10  node change on other nodes

Scores are only meaningful relative to each other. Ties go to the newer change. Bands overlap on purpose: a
ConfigMap the workload reads, changed a minute ago, is a better suspect than a rollout from two hours ago.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.k8s.fields import as_dict, as_list, dig, format_time, parse_time

__all__ = ["correlate"]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
# The deployment controller stamps this label per ReplicaSet, so it always differs between revisions.
IGNORED_TEMPLATE_LABELS = frozenset({"pod-template-hash"})
IGNORED_TEMPLATE_ANNOTATIONS = frozenset({RESTARTED_AT_ANNOTATION})
CORDON_TAINT = "node.kubernetes.io/unschedulable"

BASE_ROLLOUT = 100.0
BASE_CONFIG_REFERENCED = 70.0
BASE_NODE_WORKLOAD = 60.0
BASE_CONFIG_OTHER = 30.0
BASE_SCALING = 20.0
BASE_NODE_OTHER = 10.0
DECAY_MINUTES = 100.0
SCORE_FLOOR_FRACTION = 0.5

# A node condition change and the kubelet/controller event announcing it are the same fact; within this
# distance the event is dropped so one outage does not take two suspect slots.
NODE_EVENT_DEDUP = timedelta(seconds=120)

# Literal env values are shown in diffs (LOG_LEVEL info -> debug is the point), but a literal that looks like a
# credential is masked: the output lands in chat channels and incident records.
SENSITIVE_ENV_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|AUTH", re.IGNORECASE)
REDACTED = "<redacted>"
MAX_TEXT_VALUE = 200

KIND_ORDER = {"rollout": 0, "config_map": 1, "secret": 2, "node": 3, "scaling": 4}

CONTAINER_FIELDS_HANDLED = frozenset({"name", "image", "env", "envFrom", "resources", "command", "args"})
POD_FIELDS_HANDLED = frozenset({"containers", "initContainers", "volumes"})


# ---------------------------------------------------------------------------------------------------------
# Small accessors and time handling


def _name(obj: dict[str, Any]) -> str:
    return str(dig(obj, "metadata", "name") or "")


def _managed_times(obj: dict[str, Any], *, skip_status: bool = False) -> list[datetime]:
    times: list[datetime] = []
    for entry in as_list(dig(obj, "metadata", "managedFields")):
        if skip_status and dig(entry, "subresource") == "status":
            continue
        parsed = parse_time(dig(entry, "time"))
        if parsed is not None:
            times.append(parsed)
    return times


def _latest_manager(obj: dict[str, Any]) -> str | None:
    """Field manager of the newest managedFields entry: tells kubectl from helm from argocd."""
    best: tuple[datetime, str] | None = None
    for entry in as_list(dig(obj, "metadata", "managedFields")):
        parsed = parse_time(dig(entry, "time"))
        manager = dig(entry, "manager")
        if parsed is not None and isinstance(manager, str) and (best is None or parsed > best[0]):
            best = (parsed, manager)
    return best[1] if best else None


def _age_minutes(at: datetime, alert_time: datetime) -> float:
    return round((alert_time - at).total_seconds() / 60.0, 1)


def _score(base: float, age_minutes: float) -> float:
    return base * max(SCORE_FLOOR_FRACTION, 1.0 - max(age_minutes, 0.0) / DECAY_MINUTES)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _paren(text: str) -> str:
    return f" ({text})" if text else ""


# ---------------------------------------------------------------------------------------------------------
# Internal change record


@dataclass
class _Change:
    kind: str
    at: datetime
    object: str
    headline: str  # "Deployment shop/cart rolled out revision 7": subject + verb, no time
    detail: str  # "image a -> b": what exactly, shown in parentheses; may be empty
    base: float
    details: dict[str, Any] = field(default_factory=dict)
    # Node changes that mirror a node event, so the duplicate event can be dropped.
    mirrors_event: str | None = None

    def age(self, alert_time: datetime) -> float:
        return _age_minutes(self.at, alert_time)

    def score(self, alert_time: datetime) -> float:
        return _score(self.base, (alert_time - self.at).total_seconds() / 60.0)

    def to_output(self, alert_time: datetime) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": format_time(self.at),
            "age_minutes": self.age(alert_time),
            "object": self.object,
            "summary": f"{self.headline}{_paren(self.detail)}.",
            "details": copy.deepcopy(self.details),
        }

    def to_suspect(self, rank: int, alert_time: datetime) -> dict[str, Any]:
        age = self.age(alert_time)
        return {
            "rank": rank,
            "kind": self.kind,
            "object": self.object,
            "at": format_time(self.at),
            "age_minutes": age,
            "score": round(self.score(alert_time), 1),
            "reason": f"{self.headline}{_paren(self.detail)} {age:.1f} minutes before the alert.",
        }


# ---------------------------------------------------------------------------------------------------------
# Pod template diff


def _render_env(var: dict[str, Any]) -> str | None:
    """Plain values as-is; references by name only, so a secret's value never enters the output."""
    name = str(var.get("name") or "")
    value_from = as_dict(var.get("valueFrom"))
    if value_from:
        return _render_value_from(value_from)
    value = var.get("value")
    if value is None:
        return ""
    return REDACTED if SENSITIVE_ENV_NAME.search(name) else str(value)


def _render_value_from(value_from: dict[str, Any]) -> str:
    for ref_kind in ("secretKeyRef", "configMapKeyRef"):
        ref = as_dict(value_from.get(ref_kind))
        if ref:
            return f"{ref_kind} {ref.get('name', '')}/{ref.get('key', '')}"
    if as_dict(value_from.get("fieldRef")):
        return f"fieldRef {dig(value_from, 'fieldRef', 'fieldPath') or ''}"
    if as_dict(value_from.get("resourceFieldRef")):
        return f"resourceFieldRef {dig(value_from, 'resourceFieldRef', 'resource') or ''}"
    return "valueFrom " + ",".join(sorted(value_from))


def _render_env_from(source: dict[str, Any]) -> str:
    prefix = source.get("prefix")
    for ref_kind in ("configMapRef", "secretRef"):
        ref = as_dict(source.get(ref_kind))
        if ref:
            text = f"{ref_kind} {ref.get('name', '')}"
            return f"{text} (prefix {prefix})" if prefix else text
    return "envFrom " + ",".join(sorted(source))


def _render_volume(volume: dict[str, Any]) -> str:
    name = str(volume.get("name") or "")
    sources = [key for key in sorted(volume) if key != "name"]
    if not sources:
        return name
    source = sources[0]
    spec = as_dict(volume.get(source))
    target = {
        "configMap": spec.get("name"),
        "secret": spec.get("secretName"),
        "persistentVolumeClaim": spec.get("claimName"),
        "hostPath": spec.get("path"),
    }.get(source)
    if source == "projected":
        parts = [_render_projection(p) for p in as_list(spec.get("sources"))]
        target = ", ".join(p for p in parts if p)
        return f"{name}: projected ({target})"
    return f"{name}: {source} {target}" if target else f"{name}: {source}"


def _render_projection(source: Any) -> str:
    for kind, key in (("configMap", "name"), ("secret", "name")):
        ref = as_dict(dig(source, kind))
        if ref:
            return f"{kind} {ref.get(key, '')}"
    return ",".join(sorted(as_dict(source)))


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value} if value is not None else {}
    flat: dict[str, Any] = {}
    for key in sorted(value):
        flat.update(_flatten(value[key], f"{prefix}.{key}"))
    return flat


def _entry(container: str | None, field_name: str, old: Any, new: Any) -> dict[str, Any]:
    return {"container": container, "field": field_name, "from": old, "to": new}


def _by_name(items: Iterable[Any]) -> dict[str, dict[str, Any]]:
    return {str(item.get("name")): item for item in items if isinstance(item, dict) and item.get("name")}


def _union_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """New order first, then what disappeared: reads like the current spec."""
    return list(new) + [key for key in old if key not in new]


def _diff_env(label: str, old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    old_env, new_env = _by_name(as_list(old.get("env"))), _by_name(as_list(new.get("env")))
    diff = []
    for name in _union_keys(old_env, new_env):
        # Compare the raw specs, render afterwards: two different redacted literals still count as a change.
        if old_env.get(name) != new_env.get(name):
            before = _render_env(old_env[name]) if name in old_env else None
            after = _render_env(new_env[name]) if name in new_env else None
            diff.append(_entry(label, f"env.{name}", before, after))
    return diff


def _diff_container(label: str, old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    diff: list[dict[str, Any]] = []
    if old.get("image") != new.get("image"):
        diff.append(_entry(label, "image", old.get("image"), new.get("image")))
    diff.extend(_diff_env(label, old, new))
    old_res, new_res = _flatten(old.get("resources"), "resources"), _flatten(new.get("resources"), "resources")
    for key in _union_keys(old_res, new_res):
        if old_res.get(key) != new_res.get(key):
            diff.append(_entry(label, key, old_res.get(key), new_res.get(key)))
    for key in ("command", "args"):
        # An absent list and an empty one mean the same to the kubelet.
        if (old.get(key) or None) != (new.get(key) or None):
            diff.append(_entry(label, key, old.get(key) or None, new.get(key) or None))
    old_from = [_render_env_from(s) for s in as_list(old.get("envFrom")) if isinstance(s, dict)]
    new_from = [_render_env_from(s) for s in as_list(new.get("envFrom")) if isinstance(s, dict)]
    if old_from != new_from:
        diff.append(_entry(label, "envFrom", old_from, new_from))
    for key in sorted((set(old) | set(new)) - CONTAINER_FIELDS_HANDLED):
        # Probes, ports, mounts, securityContext: contain no secret values and can break a rollout on their own.
        if old.get(key) != new.get(key):
            diff.append(_entry(label, key, old.get(key), new.get(key)))
    return diff


def _diff_containers(old_list: Any, new_list: Any, suffix: str = "") -> list[dict[str, Any]]:
    old, new = _by_name(as_list(old_list)), _by_name(as_list(new_list))
    diff: list[dict[str, Any]] = []
    for name in _union_keys(old, new):
        label = f"{name}{suffix}"
        if name not in old:
            diff.append(_entry(label, "container", None, new[name].get("image")))
        elif name not in new:
            diff.append(_entry(label, "container", old[name].get("image"), None))
        else:
            diff.extend(_diff_container(label, old[name], new[name]))
    return diff


def _diff_volumes(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> list[dict[str, Any]]:
    old, new = _by_name(as_list(old_spec.get("volumes"))), _by_name(as_list(new_spec.get("volumes")))
    diff = []
    for name in _union_keys(old, new):
        if old.get(name) != new.get(name):
            before = _render_volume(old[name]) if name in old else None
            after = _render_volume(new[name]) if name in new else None
            if before == after:
                after = f"{after} (settings changed)"
            diff.append(_entry(None, "volumes", before, after))
    return diff


def _diff_metadata(kind: str, old: dict[str, Any], new: dict[str, Any], ignored: frozenset[str]) -> list[dict]:
    diff = []
    for key in _union_keys(old, new):
        if key not in ignored and old.get(key) != new.get(key):
            diff.append(_entry(None, f"{kind}.{key}", old.get(key), new.get(key)))
    return diff


def diff_templates(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """Differences between two pod templates, and whether the only difference is a `rollout restart`."""
    old_spec, new_spec = as_dict(old.get("spec")), as_dict(new.get("spec"))
    diff = _diff_containers(old_spec.get("containers"), new_spec.get("containers"))
    diff.extend(_diff_containers(old_spec.get("initContainers"), new_spec.get("initContainers"), " (init)"))
    diff.extend(_diff_volumes(old_spec, new_spec))
    for key in sorted((set(old_spec) | set(new_spec)) - POD_FIELDS_HANDLED):
        if old_spec.get(key) != new_spec.get(key):
            diff.append(_entry(None, f"spec.{key}", old_spec.get(key), new_spec.get(key)))
    old_meta, new_meta = as_dict(old.get("metadata")), as_dict(new.get("metadata"))
    old_ann, new_ann = as_dict(old_meta.get("annotations")), as_dict(new_meta.get("annotations"))
    diff.extend(_diff_metadata("labels", as_dict(old_meta.get("labels")), as_dict(new_meta.get("labels")),
                               IGNORED_TEMPLATE_LABELS))
    diff.extend(_diff_metadata("annotations", old_ann, new_ann, IGNORED_TEMPLATE_ANNOTATIONS))
    restarted = old_ann.get(RESTARTED_AT_ANNOTATION) != new_ann.get(RESTARTED_AT_ANNOTATION)
    return diff, restarted and not diff


def _text_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = text if text else '""'
    return text if len(text) <= MAX_TEXT_VALUE else text[: MAX_TEXT_VALUE - 3] + "..."


def _describe_entry(entry: dict[str, Any]) -> str:
    """'image a -> b', 'env LOG_LEVEL info -> debug', 'added (image x)'."""
    field_name, old, new = entry["field"], entry["from"], entry["to"]
    if field_name == "container":
        return f"added (image {_text_value(new)})" if old is None else f"removed (image {_text_value(old)})"
    if field_name.startswith("env."):
        field_name = "env " + field_name[4:]
    return f"{field_name} {_text_value(old)} -> {_text_value(new)}"


def diff_text(diff: list[dict[str, Any]], *, restart: bool, previous_revision: int | None) -> str:
    if previous_revision is None:
        return "  no earlier revision to compare with"
    if restart:
        return f"  rollout restart (only {RESTARTED_AT_ANNOTATION} changed)"
    if not diff:
        return "  pod template unchanged"
    lines = []
    for entry in diff:
        scope = f"container {entry['container']}" if entry["container"] else "pod"
        lines.append(f"  {scope}: {_describe_entry(entry)}")
    return "\n".join(lines)


def _short_diff(diff: list[dict[str, Any]], limit: int = 2) -> str:
    """The one or two entries worth a headline; images first since they are the usual culprit."""
    ordered = sorted(diff, key=lambda e: 0 if e["field"] == "image" else 1)
    parts = []
    for entry in ordered[:limit]:
        text = _describe_entry(entry)
        parts.append(f"container {entry['container']} {text}" if entry["field"] == "container" else text)
    if len(diff) > limit:
        parts.append(f"+{_plural(len(diff) - limit, 'more change')}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# Rollouts


@dataclass
class _Revision:
    revision: int
    name: str
    created: datetime | None
    rs: dict[str, Any]
    at: datetime | None = None
    rollback: bool = False
    time_source: str = "creationTimestamp"


def _owned_by(rs: dict[str, Any], deployment: dict[str, Any]) -> bool:
    uid, name = dig(deployment, "metadata", "uid"), _name(deployment)
    for ref in as_list(dig(rs, "metadata", "ownerReferences")):
        if dig(ref, "kind") not in (None, "Deployment"):
            continue
        if (uid and dig(ref, "uid") == uid) or (name and dig(ref, "name") == name):
            return True
    return False


def revision_of(obj: dict[str, Any]) -> int | None:
    """The `deployment.kubernetes.io/revision` annotation of a Deployment or ReplicaSet, as a number."""
    raw = dig(obj, "metadata", "annotations", REVISION_ANNOTATION)
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


def _revisions(replica_sets: list[dict[str, Any]], deployment: dict[str, Any]) -> list[_Revision]:
    by_revision: dict[int, _Revision] = {}
    for rs in replica_sets:
        revision = revision_of(rs) if isinstance(rs, dict) and _owned_by(rs, deployment) else None
        if revision is None:
            continue
        candidate = _Revision(revision, _name(rs), parse_time(dig(rs, "metadata", "creationTimestamp")), rs)
        current = by_revision.get(revision)
        # Duplicate revisions should not happen; if they do, the newer object is the live one.
        if current is None or (candidate.created or datetime.min.replace(tzinfo=UTC)) > (
            current.created or datetime.min.replace(tzinfo=UTC)
        ):
            by_revision[revision] = candidate
    revisions = [by_revision[r] for r in sorted(by_revision)]
    _time_revisions(revisions)
    return revisions


def _time_revisions(revisions: list[_Revision]) -> None:
    """Set when each revision became current (see module docstring for the rollback rule)."""
    newest_lower_created: list[datetime | None] = []
    running: datetime | None = None
    for rev in revisions:
        newest_lower_created.append(running)
        if rev.created is not None and (running is None or rev.created > running):
            running = rev.created
    next_at: datetime | None = None
    for index in range(len(revisions) - 1, -1, -1):
        rev, lower = revisions[index], newest_lower_created[index]
        rev.rollback = rev.created is not None and lower is not None and rev.created < lower
        if rev.rollback or rev.created is None:
            managed = _managed_times(rev.rs, skip_status=True) or _managed_times(rev.rs)
            if managed:
                rev.at, rev.time_source = max([*managed, *([rev.created] if rev.created else [])]), "managedFields"
                if next_at is not None and rev.at > next_at:
                    rev.at = next_at
            else:
                rev.at = rev.created
        else:
            rev.at = rev.created
        next_at = rev.at if rev.at is not None else next_at


def _rollout_details(rev: _Revision, previous: _Revision | None) -> dict[str, Any]:
    assert rev.at is not None
    diff: list[dict[str, Any]] = []
    restart = False
    if previous is not None:
        old_template, new_template = dig(previous.rs, "spec", "template"), dig(rev.rs, "spec", "template")
        diff, restart = diff_templates(as_dict(old_template), as_dict(new_template))
    prev_revision = previous.revision if previous else None
    return {
        "revision": rev.revision,
        "replica_set": rev.name,
        "created": format_time(rev.at),
        "previous_revision": prev_revision,
        "previous_replica_set": previous.name if previous else None,
        "diff": diff,
        "diff_text": diff_text(diff, restart=restart, previous_revision=prev_revision),
        "restart": restart,
        "rollback": rev.rollback,
        "time_source": rev.time_source,
    }


def _rollout_detail_phrase(details: dict[str, Any]) -> str:
    if details["restart"]:
        return "rollout restart"
    parts = []
    if details["rollback"]:
        parts.append(f"rollback re-using ReplicaSet {details['replica_set']}")
    if details["previous_revision"] is None:
        parts.append("first recorded revision")
    elif details["diff"]:
        parts.append(_short_diff(details["diff"]))
    return "; ".join(parts)


def _rollout_changes(ns: str, deployment: dict[str, Any], replica_sets: list[dict[str, Any]]) -> list[_Change]:
    name = _name(deployment)
    revisions = _revisions(replica_sets, deployment)
    changes = []
    for index, rev in enumerate(revisions):
        if rev.at is None:
            continue
        details = _rollout_details(rev, revisions[index - 1] if index else None)
        changes.append(_Change(
            kind="rollout", at=rev.at, object=f"Deployment/{name}",
            headline=f"Deployment {ns}/{name} rolled out revision {rev.revision}",
            detail=_rollout_detail_phrase(details), base=BASE_ROLLOUT, details=details,
        ))
    return changes


# ---------------------------------------------------------------------------------------------------------
# ConfigMaps and Secrets


def _template_references(deployment: dict[str, Any] | None) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) the Deployment's pod template reads."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    spec = as_dict(dig(deployment, "spec", "template", "spec"))
    for container in as_list(spec.get("containers")) + as_list(spec.get("initContainers")):
        for var in as_list(dig(container, "env")):
            _add(config_maps, dig(var, "valueFrom", "configMapKeyRef", "name"))
            _add(secrets, dig(var, "valueFrom", "secretKeyRef", "name"))
        for source in as_list(dig(container, "envFrom")):
            _add(config_maps, dig(source, "configMapRef", "name"))
            _add(secrets, dig(source, "secretRef", "name"))
    for volume in as_list(spec.get("volumes")):
        _add(config_maps, dig(volume, "configMap", "name"))
        _add(secrets, dig(volume, "secret", "secretName"))
        for source in as_list(dig(volume, "projected", "sources")):
            _add(config_maps, dig(source, "configMap", "name"))
            _add(secrets, dig(source, "secret", "name"))
    # A rotated pull secret breaks image pulls of the next pod, so it counts as a reference too.
    for ref in as_list(spec.get("imagePullSecrets")):
        _add(secrets, dig(ref, "name"))
    return config_maps, secrets


def _add(target: set[str], name: Any) -> None:
    if isinstance(name, str) and name:
        target.add(name)


def _config_change(ns: str, kind: str, label: str, obj: dict[str, Any], referenced: set[str]) -> _Change | None:
    # Only metadata is read: for Secrets this is what keeps values out of the output by construction.
    metadata = as_dict(obj.get("metadata")) if isinstance(obj, dict) else {}
    name = str(metadata.get("name") or "")
    created = parse_time(metadata.get("creationTimestamp"))
    times = [t for t in [created, *_managed_times({"metadata": metadata})] if t is not None]
    if not name or not times:
        return None
    at = max(times)
    is_referenced = name in referenced
    action = "created" if created is not None and at == created else "updated"
    who = ", referenced by the workload's pod template," if is_referenced else ""
    return _Change(
        kind=kind, at=at, object=f"{label}/{name}",
        headline=f"{label} {ns}/{name}{who} was {action}", detail="",
        base=BASE_CONFIG_REFERENCED if is_referenced else BASE_CONFIG_OTHER,
        details={"name": name, "change": action, "referenced_by_workload": is_referenced,
                 "changed_by": _latest_manager({"metadata": metadata})},
    )


# ---------------------------------------------------------------------------------------------------------
# Events: scaling and node events


def event_time(event: dict[str, Any]) -> datetime | None:
    for path in (("lastTimestamp",), ("series", "lastObservedTime"), ("eventTime",), ("firstTimestamp",),
                 ("metadata", "creationTimestamp")):
        parsed = parse_time(dig(event, *path))
        if parsed is not None:
            return parsed
    return None


def event_count(event: dict[str, Any]) -> int:
    """How many times the event was seen (`count`, or `series.count` for events.k8s.io-style events)."""
    for path in (("count",), ("series", "count")):
        value = dig(event, *path)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def _in_namespace(event: dict[str, Any], ns: str) -> bool:
    event_ns = dig(event, "involvedObject", "namespace") or dig(event, "metadata", "namespace")
    return event_ns in (None, "", ns)


def _scaling_change(ns: str, event: dict[str, Any], deployment_name: str | None) -> _Change | None:
    reason, obj = dig(event, "reason"), as_dict(dig(event, "involvedObject"))
    kind, name = obj.get("kind"), str(obj.get("name") or "")
    wanted = (
        (reason == "ScalingReplicaSet" and kind == "Deployment" and deployment_name in (None, name))
        or (reason == "SuccessfulRescale" and kind == "HorizontalPodAutoscaler")
    )
    at = event_time(event)
    if not wanted or not name or at is None or not _in_namespace(event, ns):
        return None
    verb = "scaled" if kind == "Deployment" else "rescaled its target"
    message = str(dig(event, "message") or "")
    return _Change(
        kind="scaling", at=at, object=f"{kind}/{name}", headline=f"{kind} {ns}/{name} {verb}",
        detail=message, base=BASE_SCALING,
        details={"reason": reason, "message": message, "count": event_count(event), "source": kind},
    )


def _node_details(node: str, pods_per_node: dict[str, int], **extra: Any) -> dict[str, Any]:
    count = pods_per_node.get(node, 0)
    return {"node": node, **extra, "runs_workload_pods": count > 0, "workload_pod_count": count}


def _node_headline(node: str, pods_per_node: dict[str, int], verb: str) -> str:
    count = pods_per_node.get(node, 0)
    runs = f", which runs {_plural(count, 'pod')} of the workload," if count else ""
    return f"Node {node}{runs} {verb}"


def _node_base(node: str, pods_per_node: dict[str, int]) -> float:
    return BASE_NODE_WORKLOAD if pods_per_node.get(node) else BASE_NODE_OTHER


def _node_object_changes(node_obj: dict[str, Any], pods_per_node: dict[str, int]) -> list[_Change]:
    node = _name(node_obj)
    if not node:
        return []
    changes = []
    for condition in as_list(dig(node_obj, "status", "conditions")):
        if dig(condition, "type") != "Ready":
            continue
        at = parse_time(dig(condition, "lastTransitionTime"))
        if at is None:
            continue
        status = str(dig(condition, "status") or "Unknown")
        became = "Ready" if status == "True" else "NotReady"
        reason, message = dig(condition, "reason"), dig(condition, "message")
        changes.append(_Change(
            kind="node", at=at, object=f"Node/{node}",
            headline=_node_headline(node, pods_per_node, f"became {became}"),
            detail=": ".join(str(p) for p in (reason, message) if p), base=_node_base(node, pods_per_node),
            details=_node_details(node, pods_per_node, change="ready_condition", status=status, reason=reason,
                                  message=message),
            mirrors_event="NodeReady" if became == "Ready" else "NodeNotReady",
        ))
    for taint in as_list(dig(node_obj, "spec", "taints")):
        at = parse_time(dig(taint, "timeAdded"))
        if dig(taint, "key") != CORDON_TAINT or at is None:
            continue
        changes.append(_Change(
            kind="node", at=at, object=f"Node/{node}",
            headline=_node_headline(node, pods_per_node, "was cordoned"), detail="unschedulable",
            base=_node_base(node, pods_per_node),
            details=_node_details(node, pods_per_node, change="cordoned", taint=CORDON_TAINT),
            mirrors_event="NodeNotSchedulable",
        ))
    return changes


def _node_event_change(event: dict[str, Any], pods_per_node: dict[str, int]) -> _Change | None:
    node, at = str(dig(event, "involvedObject", "name") or ""), event_time(event)
    reason = str(dig(event, "reason") or "event")
    if not node or at is None:
        return None
    message = str(dig(event, "message") or "")
    return _Change(
        kind="node", at=at, object=f"Node/{node}",
        headline=_node_headline(node, pods_per_node, f"reported {reason}"), detail=message,
        base=_node_base(node, pods_per_node),
        details=_node_details(node, pods_per_node, change="event", reason=reason, message=message,
                              count=event_count(event)),
    )


def _is_mirrored(change: _Change, object_changes: list[_Change]) -> bool:
    reason = change.details.get("reason")
    return any(
        other.mirrors_event == reason and other.object == change.object
        and abs(other.at - change.at) <= NODE_EVENT_DEDUP
        for other in object_changes
    )


def _node_changes(
    nodes: list[dict[str, Any]], events: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> list[_Change]:
    pods_per_node: dict[str, int] = {}
    for pod in pods:
        node = dig(pod, "spec", "nodeName")
        if isinstance(node, str) and node:
            pods_per_node[node] = pods_per_node.get(node, 0) + 1
    object_changes = [c for n in nodes if isinstance(n, dict) for c in _node_object_changes(n, pods_per_node)]
    event_changes = [
        change for event in events
        if isinstance(event, dict) and dig(event, "involvedObject", "kind") == "Node"
        and (change := _node_event_change(event, pods_per_node)) is not None
    ]
    return object_changes + [c for c in event_changes if not _is_mirrored(c, object_changes)]


# ---------------------------------------------------------------------------------------------------------
# Entry point


def _summary(changes: list[_Change], top: _Change | None, start: datetime, end: datetime) -> str:
    if top is None:
        return f"No changes found between {format_time(start)} and {format_time(end)}."
    others = len(changes) - 1
    tail = f"{_plural(others, 'other change')} in the window" if others else "no other changes in the window"
    return f"{top.headline} {top.age(end):.1f} minutes before the alert{_paren(top.detail)}; {tail}."


def correlate(
    *,
    namespace: str,
    deployment: dict | None,
    replica_sets: list[dict],
    events: list[dict],
    config_maps: list[dict],
    secrets: list[dict],
    nodes: list[dict],
    pods: list[dict],
    window_start: datetime,
    alert_time: datetime,
    max_changes: int = 50,
) -> dict:
    """Turn raw API objects into the changes in [window_start, alert_time] and rank them as suspects."""
    start, end = parse_time(window_start), parse_time(alert_time)
    deployment = deployment if isinstance(deployment, dict) and _name(deployment) else None
    deployment_name = _name(deployment) if deployment else None
    referenced_cms, referenced_secrets = _template_references(deployment)

    found: list[_Change | None] = []
    if deployment is not None:
        found.extend(_rollout_changes(namespace, deployment, replica_sets or []))
    for obj in config_maps or []:
        found.append(_config_change(namespace, "config_map", "ConfigMap", obj, referenced_cms))
    for obj in secrets or []:
        found.append(_config_change(namespace, "secret", "Secret", obj, referenced_secrets))
    for event in events or []:
        if isinstance(event, dict):
            found.append(_scaling_change(namespace, event, deployment_name))
    found.extend(_node_changes(nodes or [], events or [], pods or []))

    in_window = [c for c in found if c is not None and start <= c.at <= end]
    by_time = sorted(in_window, key=lambda c: (-c.at.timestamp(), KIND_ORDER[c.kind], c.object))
    by_score = sorted(in_window, key=lambda c: (-c.score(end), -c.at.timestamp(), KIND_ORDER[c.kind], c.object))
    limit = max(0, max_changes)
    suspects = [c.to_suspect(rank, end) for rank, c in enumerate(by_score[:limit], start=1)]
    newest_rollout = next((c for c in by_time if c.kind == "rollout"), None)
    return {
        "window": {"start": format_time(start), "end": format_time(end)},
        "workload": {"kind": "Deployment", "namespace": namespace, "name": deployment_name} if deployment else None,
        "changes": [c.to_output(end) for c in by_time[:limit]],
        "suspects": suspects,
        "top_suspect": suspects[0] if suspects else None,
        "rollout": copy.deepcopy(newest_rollout.details) if newest_rollout else None,
        "summary": _summary(in_window, by_score[0] if by_score else None, start, end),
    }
