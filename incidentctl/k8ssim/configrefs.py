"""What the kubelet checks before it creates a container: every ConfigMap and Secret its env refers to exists and
has the key asked for. The first miss is the CreateContainerConfigError message, worded as the kubelet words it.

Optional references (`optional: true`) may be missing, as in real clusters. Volumes are not checked: a missing
ConfigMap volume keeps a real pod in ContainerCreating, which the simulator does not model.
"""

from __future__ import annotations

from collections.abc import Callable

from incidentctl.k8ssim.store import Obj

# (kind, name) -> the object's data keys, or None when there is no such object in the pod's namespace.
KeysOf = Callable[[str, str], set[str] | None]


def missing_reference(container: Obj, namespace: str, keys_of: KeysOf) -> str | None:
    """The kubelet's message for the first reference that cannot be resolved, or None when all resolve."""
    for source in container.get("envFrom") or []:
        for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = source.get(field)
            if ref and not ref.get("optional") and keys_of(kind, ref.get("name", "")) is None:
                return f'{kind.lower()} "{ref.get("name", "")}" not found'
    for variable in container.get("env") or []:
        value_from = variable.get("valueFrom") or {}
        for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            ref = value_from.get(field)
            if not ref or ref.get("optional"):
                continue
            name, key = ref.get("name", ""), ref.get("key", "")
            keys = keys_of(kind, name)
            if keys is None:
                return f'{kind.lower()} "{name}" not found'
            if key not in keys:
                return f"couldn't find key {key} in {kind} {namespace}/{name}"
    return None
