"""PATCH bodies in the Kubernetes simulator: JSON patch, merge patch, strategic merge patch, and refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from incidentctl.k8ssim.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
)

DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "cart", "labels": {"app": "cart", "a/b": "slash", "m~n": "tilde"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "cart:1",
                        "env": [{"name": "MODE", "value": "safe"}, {"name": "DEBUG", "value": "0"}],
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "args": ["--serve"],
                    },
                    {"name": "sidecar", "image": "proxy:1"},
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        },
    },
    "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]},
}


def patched(patch: Any, content_type: str) -> dict[str, Any]:
    before = copy.deepcopy(DEPLOYMENT)
    frozen_patch = copy.deepcopy(patch)
    result = apply_patch(DEPLOYMENT, patch, content_type)
    assert DEPLOYMENT == before, "the original must not be mutated"
    assert patch == frozen_patch, "the patch must not be mutated"
    return result


def refusal(patch: Any, content_type: str) -> PatchError:
    with pytest.raises(PatchError) as caught:
        apply_patch(DEPLOYMENT, patch, content_type)
    return caught.value


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


# --- JSON patch -------------------------------------------------------------------------------------------


def test_json_patch_add_replace_remove() -> None:
    result = patched(
        [
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata/annotations", "value": {"restartedAt": "now"}},
            {"op": "remove", "path": "/spec/template/spec/volumes"},
        ],
        JSON_PATCH,
    )
    assert result["spec"]["replicas"] == 5
    assert result["metadata"]["annotations"] == {"restartedAt": "now"}
    assert "volumes" not in result["spec"]["template"]["spec"]


def test_json_patch_array_insert_append_and_remove_by_index() -> None:
    result = patched(
        [
            {"op": "add", "path": "/spec/template/spec/containers/0/args/0", "value": "--first"},
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--last"},
            {"op": "remove", "path": "/spec/template/spec/containers/1"},
        ],
        JSON_PATCH,
    )
    assert containers(result)[0]["args"] == ["--first", "--serve", "--last"]
    assert [c["name"] for c in containers(result)] == ["app"]


def test_json_patch_pointer_escapes() -> None:
    result = patched(
        [
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "replaced"},
            {"op": "remove", "path": "/metadata/labels/m~0n"},
            {"op": "add", "path": "/metadata/labels/x~01", "value": "literal"},
        ],
        JSON_PATCH,
    )
    assert result["metadata"]["labels"] == {"app": "cart", "a/b": "replaced", "x~1": "literal"}


def test_json_patch_move_copy_and_passing_test() -> None:
    result = patched(
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/component"},
            {"op": "move", "from": "/spec/template/spec/containers/1", "path": "/spec/template/spec/containers/0"},
        ],
        JSON_PATCH,
    )
    assert result["metadata"]["labels"]["component"] == "cart"
    assert [c["name"] for c in containers(result)] == ["sidecar", "app"]


def test_json_patch_copy_is_independent() -> None:
    result = patched([{"op": "copy", "from": "/spec/template", "path": "/spec/old"}], JSON_PATCH)
    result["spec"]["old"]["spec"]["containers"][0]["image"] = "changed"
    assert containers(result)[0]["image"] == "cart:1"


def test_json_patch_failing_test_op_is_422_and_applies_nothing() -> None:
    error = refusal(
        [{"op": "replace", "path": "/spec/replicas", "value": 0}, {"op": "test", "path": "/spec/replicas", "value": 2}],
        JSON_PATCH,
    )
    assert error.status == 422
    assert str(error) == 'JSON patch test failed: the value at "/spec/replicas" is not 2'
    assert DEPLOYMENT["spec"]["replicas"] == 2


def test_json_patch_test_distinguishes_true_from_one() -> None:
    assert refusal([{"op": "test", "path": "/spec/replicas", "value": True}], JSON_PATCH).status == 422
    assert patched([{"op": "test", "path": "/spec/replicas", "value": 2.0}], JSON_PATCH) == DEPLOYMENT


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ({"op": "remove", "path": "/spec/paused"}, 'path "/spec/paused" does not exist'),
        ({"op": "replace", "path": "/nope/x", "value": 1}, 'path "/nope" does not exist'),
        ({"op": "add", "path": "/spec/template/spec/containers/5", "value": {}},
         '"/spec/template/spec/containers/5": index 5 is out of range for an array of 2'),
        ({"op": "remove", "path": "/spec/template/spec/containers/first"},
         '"/spec/template/spec/containers/first": "first" is not an array index'),
    ],
)
def test_json_patch_paths_that_do_not_exist_are_422(operation: dict[str, Any], message: str) -> None:
    error = refusal([operation], JSON_PATCH)
    assert (error.status, str(error)) == (422, message)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"spec": {"replicas": 3}}, "a JSON patch must be a list of operations"),
        ([{"op": "upsert", "path": "/spec"}], 'JSON patch operation 0 has unknown op "upsert"; '
                                              "expected add, remove, replace, move, copy or test"),
        ([{"op": "add", "path": "/spec/x"}], 'JSON patch operation 0 ("add") has no "value"'),
        ([{"op": "remove", "path": "spec"}], 'JSON pointer "spec" must be empty or start with "/"'),
        ([{"op": "remove", "path": "/a~2"}], 'JSON pointer "/a~2" has a "~" that is not "~0" or "~1"'),
        ([{"op": "move", "from": "/spec", "path": "/spec/inner"}], 'JSON patch operation 0 moves "/spec" into itself'),
        (["add"], "JSON patch operation 0 is not an object"),
    ],
)
def test_malformed_json_patches_are_400(patch: Any, message: str) -> None:
    error = refusal(patch, JSON_PATCH)
    assert (error.status, str(error)) == (400, message)


# --- merge patch ------------------------------------------------------------------------------------------


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists() -> None:
    result = patched(
        {
            "metadata": {"labels": {"app": None, "team": "shop"}},
            "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "only", "image": "x:2"}]}}},
        },
        MERGE_PATCH,
    )
    assert result["metadata"] == {"name": "cart", "labels": {"a/b": "slash", "m~n": "tilde", "team": "shop"}}
    assert result["spec"]["replicas"] == 4
    assert containers(result) == [{"name": "only", "image": "x:2"}]
    assert result["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_merge_patch_result_shares_nothing_with_its_inputs() -> None:
    patch = {"metadata": {"annotations": {"a": "1"}}}
    result = patched(patch, MERGE_PATCH)
    result["metadata"]["annotations"]["a"] = "2"
    result["status"]["conditions"].clear()
    assert patch == {"metadata": {"annotations": {"a": "1"}}}
    assert len(DEPLOYMENT["status"]["conditions"]) == 2


def test_merge_patch_must_be_an_object() -> None:
    error = refusal([{"op": "add", "path": "/x", "value": 1}], MERGE_PATCH)
    assert (error.status, str(error)) == (400, "a merge patch must be a JSON object")


# --- strategic merge patch --------------------------------------------------------------------------------


def test_strategic_merge_changes_one_container_and_keeps_the_other() -> None:
    result = patched(
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "cart:2"}]}}}},
        STRATEGIC_MERGE_PATCH,
    )
    assert [(c["name"], c["image"]) for c in containers(result)] == [("app", "cart:2"), ("sidecar", "proxy:1")]
    assert containers(result)[0]["env"] == DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["env"]


def test_strategic_merge_env_by_name_appends_new_items_in_patch_order() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "app",
        "env": [{"name": "NEW_B", "value": "b"}, {"name": "MODE", "value": "fast"}, {"name": "NEW_A", "value": "a"}],
    }]}}}}
    env = containers(patched(patch, STRATEGIC_MERGE_PATCH))[0]["env"]
    assert env == [
        {"name": "MODE", "value": "fast"},
        {"name": "DEBUG", "value": "0"},
        {"name": "NEW_B", "value": "b"},
        {"name": "NEW_A", "value": "a"},
    ]


def test_strategic_merge_other_merge_keys_and_replaced_lists() -> None:
    patch = {
        "spec": {"template": {"spec": {"containers": [{
            "name": "app",
            "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}],
            "args": ["--other"],
        }]}}},
        "status": {"conditions": [{"type": "Progressing", "status": "False"}]},
    }
    result = patched(patch, STRATEGIC_MERGE_PATCH)
    app = containers(result)[0]
    assert app["ports"] == [{"containerPort": 8080, "protocol": "TCP", "name": "http"}, {"containerPort": 9090}]
    assert app["args"] == ["--other"]
    assert result["status"]["conditions"] == [
        {"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"},
    ]


def test_strategic_merge_service_ports_merge_by_port() -> None:
    service = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
    result = apply_patch(service, {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}, STRATEGIC_MERGE_PATCH)
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}]


def test_strategic_merge_patch_delete_removes_the_matching_item() -> None:
    patch = {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}, {"name": "app", "env": [
            {"name": "DEBUG", "$patch": "delete"}]}],
        "volumes": [{"name": "absent", "$patch": "delete"}],
    }}}}
    result = patched(patch, STRATEGIC_MERGE_PATCH)
    assert [c["name"] for c in containers(result)] == ["app"]
    assert containers(result)[0]["env"] == [{"name": "MODE", "value": "safe"}]
    assert result["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_strategic_merge_patch_replace_swaps_a_whole_map() -> None:
    result = patched(
        {"metadata": {"labels": {"$patch": "replace", "app": "cart-v2"}}, "spec": {"replicas": None}},
        STRATEGIC_MERGE_PATCH,
    )
    assert result["metadata"]["labels"] == {"app": "cart-v2"}
    assert "replicas" not in result["spec"]


def test_strategic_merge_list_replace_directive_and_ignored_directives() -> None:
    patch = {
        "$retainKeys": ["spec"],
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "volumes": [{"$patch": "replace"}, {"name": "cache", "emptyDir": {}}],
        }}},
    }
    result = patched(patch, STRATEGIC_MERGE_PATCH)
    assert result["spec"]["template"]["spec"]["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert "$retainKeys" not in result
    assert not any(key.startswith("$") for key in result["spec"]["template"]["spec"])
    assert [c["name"] for c in containers(result)] == ["app", "sidecar"]


def test_strategic_merge_primitive_lists_replace() -> None:
    result = patched({"metadata": {"finalizers": ["b"]}}, STRATEGIC_MERGE_PATCH)
    assert result["metadata"]["finalizers"] == ["b"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ([], "a strategic merge patch must be a JSON object"),
        ({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
         'an item in "containers" has no "name" to merge by'),
        ({"metadata": {"$patch": "upsert"}}, 'unknown "$patch" directive "upsert"; expected replace, delete or merge'),
        ({"$bogus": 1}, 'unsupported strategic merge patch directive "$bogus"'),
    ],
)
def test_malformed_strategic_merge_patches_are_400(patch: Any, message: str) -> None:
    error = refusal(patch, STRATEGIC_MERGE_PATCH)
    assert (error.status, str(error)) == (400, message)


# --- content types ----------------------------------------------------------------------------------------


def test_content_type_parameters_are_ignored() -> None:
    result = patched({"spec": {"replicas": 9}}, "Application/Merge-Patch+JSON; charset=utf-8")
    assert result["spec"]["replicas"] == 9


def test_unsupported_content_type_is_415() -> None:
    error = refusal({"spec": {"replicas": 9}}, "application/json")
    assert error.status == 415
    assert str(error) == (
        'unsupported patch content type "application/json"; use application/json-patch+json, '
        "application/merge-patch+json or application/strategic-merge-patch+json"
    )
