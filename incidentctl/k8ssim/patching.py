"""Applying PATCH bodies as the Kubernetes API server does: JSON patch, merge patch and strategic merge patch.

`PatchError.status` is the HTTP status to answer with:
  400  the patch document itself is malformed: wrong shape, unknown op or directive, bad JSON pointer;
  415  the content type is not one of the three patch types;
  422  the patch is well formed but cannot be applied to this object: a `test` op fails, a path that must
       exist does not, an array index is out of range, or the result is not an object.

Strategic merge knows merge keys by field name only (the API server uses the schema), which is enough for
the pod template, container and status fields our actions touch.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
}
_IGNORED_DIRECTIVES = ("$setElementOrder/", "$retainKeys")
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_DELETE = object()  # what a map patch with `"$patch": "delete"` merges to: remove the key from its parent


class PatchError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def apply_patch(original: dict, patch: Any, content_type: str) -> dict:
    """A new object: `original` patched by the decoded `patch` body. Neither argument is modified."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == JSON_PATCH:
        result = _json_patch(copy.deepcopy(original), patch)
    elif media_type == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise PatchError(400, "a merge patch must be a JSON object")
        result = _merge(copy.deepcopy(original), patch)
    elif media_type == STRATEGIC_MERGE_PATCH:
        if not isinstance(patch, dict):
            raise PatchError(400, "a strategic merge patch must be a JSON object")
        result = _strategic_map(copy.deepcopy(original), patch)
        if result is _DELETE:
            raise PatchError(400, 'a strategic merge patch cannot delete the whole object with "$patch": "delete"')
    else:
        raise PatchError(415, f'unsupported patch content type "{content_type}"; use {JSON_PATCH}, '
                              f"{MERGE_PATCH} or {STRATEGIC_MERGE_PATCH}")
    if not isinstance(result, dict):
        raise PatchError(422, "the patched object must be a JSON object")
    return result


# --- JSON patch (RFC 6902); works in place on a private copy -------------------------------------------------


def _json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError(400, "a JSON patch must be a list of operations")
    for number, operation in enumerate(operations):
        doc = _apply_operation(doc, operation, number)
    return doc


def _apply_operation(doc: Any, operation: Any, number: int) -> Any:
    if not isinstance(operation, dict):
        raise PatchError(400, f"JSON patch operation {number} is not an object")
    op = operation.get("op")
    path = _pointer(operation, "path", number)
    if op in ("add", "replace", "test") and "value" not in operation:
        raise PatchError(400, f'JSON patch operation {number} ("{op}") has no "value"')
    if op == "add":
        return _add(doc, path, copy.deepcopy(operation["value"]))
    if op == "remove":
        _remove(doc, path)
        return doc
    if op == "replace":
        if not path:
            return copy.deepcopy(operation["value"])
        _remove(doc, path)
        return _add(doc, path, copy.deepcopy(operation["value"]))
    if op == "move":
        source = _pointer(operation, "from", number)
        if source == path:
            _get(doc, source)  # still an error if it does not exist
            return doc
        if path[:len(source)] == source:
            raise PatchError(400, f'JSON patch operation {number} moves "{_format(source)}" into itself')
        return _add(doc, path, _remove(doc, source))
    if op == "copy":
        return _add(doc, path, copy.deepcopy(_get(doc, _pointer(operation, "from", number))))
    if op == "test":
        if not _json_equal(_get(doc, path), operation["value"]):
            raise PatchError(422, f'JSON patch test failed: the value at "{_format(path)}" is not '
                                  f'{json.dumps(operation["value"])}')
        return doc
    raise PatchError(400, f"JSON patch operation {number} has unknown op {json.dumps(op)}; "
                          "expected add, remove, replace, move, copy or test")


def _pointer(operation: dict, field: str, number: int) -> list[str]:
    raw = operation.get(field)
    if not isinstance(raw, str):
        raise PatchError(400, f'JSON patch operation {number} needs a string "{field}"')
    if raw == "":
        return []
    if not raw.startswith("/"):
        raise PatchError(400, f'JSON pointer "{raw}" must be empty or start with "/"')
    tokens = raw[1:].split("/")
    if any(re.search(r"~([^01]|$)", token) for token in tokens):
        raise PatchError(400, f'JSON pointer "{raw}" has a "~" that is not "~0" or "~1"')
    # ~1 first, so "~01" becomes "~1" and not "/" (RFC 6901 section 4).
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _format(tokens: list[str]) -> str:
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in tokens)


def _index(token: str, length: int, tokens: list[str], *, inserting: bool) -> int:
    if inserting and token == "-":
        return length
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchError(422, f'"{_format(tokens)}": "{token}" is not an array index')
    index = int(token)
    if index > length or (index == length and not inserting):
        raise PatchError(422, f'"{_format(tokens)}": index {index} is out of range for an array of {length}')
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for depth, token in enumerate(tokens, start=1):
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(token, len(current), tokens[:depth], inserting=False)]
        else:
            raise PatchError(422, f'path "{_format(tokens[:depth])}" does not exist')
    return current


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(tokens[-1], len(parent), tokens, inserting=True), value)
    else:
        raise PatchError(422, f'cannot add "{_format(tokens)}": its parent is not an object or array')
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    """Removes and returns the value at `tokens`."""
    if not tokens:
        raise PatchError(422, "cannot remove the whole object")
    parent = _get(doc, tokens[:-1])
    if isinstance(parent, list):
        return parent.pop(_index(tokens[-1], len(parent), tokens, inserting=False))
    if not isinstance(parent, dict) or tokens[-1] not in parent:
        raise PatchError(422, f'path "{_format(tokens)}" does not exist')
    return parent.pop(tokens[-1])


def _json_equal(left: Any, right: Any) -> bool:
    # Python says True == 1; JSON does not.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and left == right


# --- merge patch (RFC 7386) -----------------------------------------------------------------------------------


def _merge(target: Any, patch: Any) -> Any:
    """`target` is a private copy and is updated in place; patch values are copied in."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


# --- strategic merge patch (the Kubernetes flavour) -----------------------------------------------------------


def _strategic_map(target: Any, patch: dict) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        # Merging the rest into nothing drops nulls and nested directives, as the API server does.
        return _strategic_map({}, {key: value for key, value in patch.items() if key != "$patch"})
    if directive == "delete":
        return _DELETE
    if directive not in (None, "merge"):
        raise PatchError(400, f'unknown "$patch" directive {json.dumps(directive)}; expected replace, delete or merge')
    result = target if isinstance(target, dict) else {}
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key == "$patch" or key.startswith(_IGNORED_DIRECTIVES):
            continue
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            deletions.append((key[len(_DELETE_FROM_PRIMITIVE_LIST):], value))
            continue
        if key.startswith("$"):
            raise PatchError(400, f'unsupported strategic merge patch directive "{key}"')
        merged = _DELETE if value is None else _strategic_value(key, result.get(key), value)
        if merged is _DELETE:
            result.pop(key, None)
        else:
            result[key] = merged
    for key, unwanted in deletions:
        if not isinstance(unwanted, list):
            raise PatchError(400, f'"{_DELETE_FROM_PRIMITIVE_LIST}{key}" must be a list')
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in unwanted]
    return result


def _strategic_value(field: str, target: Any, patch: Any) -> Any:
    if isinstance(patch, dict):
        return _strategic_map(target, patch)
    if isinstance(patch, list) and field in _MERGE_KEYS and all(isinstance(item, dict) for item in patch):
        merge_key = _MERGE_KEYS[field]
        # Service ports have no containerPort and merge by port.
        if field == "ports" and not any("containerPort" in item for item in patch):
            merge_key = "port"
        return _merge_list(field, target if isinstance(target, list) else [], patch, merge_key)
    return copy.deepcopy(patch)


def _merge_list(field: str, target: list, patch: list[dict], merge_key: str) -> list:
    if {"$patch": "replace"} in patch:
        return [_strategic_map({}, item) for item in patch if item != {"$patch": "replace"}]
    result = list(target)
    for item in patch:
        if merge_key not in item:
            raise PatchError(400, f'an item in "{field}" has no "{merge_key}" to merge by')
        wanted = item[merge_key]
        if item.get("$patch") == "delete":
            result = [old for old in result if not (isinstance(old, dict) and old.get(merge_key) == wanted)]
            continue
        position = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(merge_key) == wanted),
                        None)
        if position is None:
            result.append(_strategic_map({}, item))
        else:
            result[position] = _strategic_map(result[position], item)
    return result
