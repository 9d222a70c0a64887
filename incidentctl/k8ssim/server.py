"""HTTP face of the simulated cluster: the Kubernetes REST paths the official client calls, plus `/_sim/` controls.

Paths: `/api/v1/...` and `/apis/<group>/<version>/...`, namespaced (`namespaces/<ns>/<plural>[/<name>[/<sub>]]`)
or cluster-wide (`<plural>[/<name>]`). Verbs map as the real server does: GET list/get, POST create, PUT update,
PATCH patch, DELETE delete. Errors are `Status` objects with the real reasons and codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from incidentctl.k8ssim.cluster import Cluster, Fault, Identity
from incidentctl.k8ssim.controllers import POD
from incidentctl.k8ssim.images import ImageBehaviour
from incidentctl.k8ssim.metrics import add_routes as add_metrics_routes
from incidentctl.k8ssim.store import BY_PATH, ApiError, Obj, Resource

CLUSTER_KEY: web.AppKey[Cluster] = web.AppKey("cluster", Cluster)
TICK_S = 0.2


def _route(path: str) -> tuple[Resource | None, str, str, str, str]:
    """(resource, namespace, name, subresource, api group/version) for an API path; resource None if unknown."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None, "", "", "", ""
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural, name, sub = (rest + ["", "", ""])[:3]
    return BY_PATH.get((group, version, plural)), namespace, name, sub, f"{group}/{version}".strip("/")


def _status(error: ApiError) -> web.Response:
    return web.json_response(error.status(), status=error.code)


def _dry_run(request: web.Request) -> bool:
    value = request.query.get("dryRun")
    if value not in (None, "All"):
        raise ApiError(400, "BadRequest", f'invalid dry run option "{value}": only "All" is supported')
    return value == "All"


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "BadRequest", f"{name}: invalid integer {raw!r}") from None


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "BadRequest", f"the request body is not valid JSON: {exc}") from None


_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


async def handle_api(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER_KEY]
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or None
    cluster.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                             "content_type": request.headers.get("Content-Type", ""),
                             "accept": request.headers.get("Accept", ""), "token": token, "at": time.time()})
    try:
        fault = cluster.take_fault(request.method, request.path)
        if fault is not None:
            await asyncio.sleep(fault.delay_s)
            if fault.status:
                raise ApiError(fault.status, "InternalError" if fault.status == 500 else "ServiceUnavailable",
                               f"injected fault: {fault.status}")
        who = cluster.identity(token)
        if fault is not None and fault.answer_delay_s:
            answer = await _dispatch(request, cluster, who)
            await asyncio.sleep(fault.answer_delay_s)
            return answer
        return await _dispatch(request, cluster, who)
    except ApiError as error:
        return _status(error)
    except Exception as exc:  # a simulator bug: answer like a real server would (a Status), and keep serving
        logging.getLogger(__name__).exception("simulator error on %s %s", request.method, request.path)
        return _status(ApiError(500, "InternalError", f"simulator error: {type(exc).__name__}: {exc}"))


async def _dispatch(request: web.Request, cluster: Cluster, who: Identity) -> web.StreamResponse:
    path = request.path
    if path == "/version":
        return web.json_response({"major": "1", "minor": "31", "gitVersion": "v1.31.0-incidentctl-sim",
                                  "platform": "linux/amd64"})
    if path.startswith("/apis/metrics.k8s.io/"):
        namespace = _route(path)[1] or None
        return web.json_response(cluster.pod_metrics(namespace))
    resource, namespace, name, sub, api = _route(path)
    if resource is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    verb = _VERBS.get(request.method)
    if verb is None:
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported")
    if request.method == "GET" and not name:
        verb = "list"
    if request.query.get("watch") in ("true", "1"):
        raise ApiError(400, "BadRequest", "watch is not supported by the incidentctl simulator")
    cluster.authorize(who, verb, resource, sub, namespace, name)
    if resource.namespaced and namespace == "" and name:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if sub:
        return await _subresource(request, cluster, resource, namespace, name, sub)
    dry_run = _dry_run(request)
    if request.method == "GET" and not name:
        listed = cluster.list(resource, namespace or None, request.query.get("labelSelector", ""),
                              request.query.get("fieldSelector", ""))
        if "as=PartialObjectMetadataList" in request.headers.get("Accept", ""):
            listed = _metadata_only(listed)
        return web.json_response(listed)
    if request.method == "GET":
        return web.json_response(cluster.get(resource, namespace, name))
    if request.method == "POST" and not name:
        return web.json_response(cluster.create(resource, namespace, _object(await _body(request)), dry_run=dry_run),
                                 status=201)
    if request.method == "PUT" and name:
        return web.json_response(cluster.replace(resource, namespace, name, _object(await _body(request)),
                                                 dry_run=dry_run))
    if request.method == "PATCH" and name:
        content_type = request.headers.get("Content-Type", "")
        return web.json_response(cluster.patch(resource, namespace, name, await _body(request), content_type,
                                               dry_run=dry_run))
    if request.method == "DELETE" and name:
        return web.json_response(cluster.delete(resource, namespace, name, dry_run=dry_run))
    raise ApiError(405, "MethodNotAllowed", f"{request.method} {path} is not supported")


def _metadata_only(listed: Obj) -> Obj:
    """What `Accept: ...;as=PartialObjectMetadataList` asks for: the items' metadata, nothing else."""
    return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": listed["metadata"],
            "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]}
                      for item in listed["items"]]}


def _object(body: Any) -> Obj:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return body


async def _subresource(request: web.Request, cluster: Cluster, resource: Resource, namespace: str, name: str,
                       sub: str) -> web.StreamResponse:
    if resource is POD and sub == "log" and request.method == "GET":
        text = cluster.pod_log(namespace, name, request.query.get("container"),
                               request.query.get("previous") in ("true", "1"), _int_query(request, "tailLines"),
                               _int_query(request, "limitBytes"))
        return web.Response(text=text, content_type="text/plain")
    if resource is POD and sub == "eviction" and request.method == "POST":
        body = _object(await _body(request))
        if body.get("metadata", {}).get("name", name) != name:
            raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        dry_run = _dry_run(request) or "All" in body.get("deleteOptions", {}).get("dryRun", [])
        return web.json_response(cluster.evict(namespace, name, dry_run=dry_run), status=201)
    raise ApiError(404, "NotFound", "the server could not find the requested resource")


# -- /_sim/: test and demo controls (no auth; the simulator listens on 127.0.0.1 only) -----------------------

async def sim_node_condition(request: web.Request) -> web.Response:
    body = await request.json()
    node = request.app[CLUSTER_KEY].set_node_condition(request.match_info["name"], body.get("type", "Ready"),
                                                       body["status"], body.get("reason", ""),
                                                       body.get("message", ""))
    return web.json_response(node)


async def sim_image(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[CLUSTER_KEY].images.set(body["image"], ImageBehaviour.from_dict(body))
    return web.json_response({"ok": True})


async def sim_fault(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[CLUSTER_KEY].faults.append(Fault(**body))
    return web.json_response({"ok": True})


async def sim_token_prefix(request: web.Request) -> web.Response:
    """Accept every bearer token starting with `prefix` as `user` (a test of a client whose tokens change)."""
    body = await request.json()
    request.app[CLUSTER_KEY].token_prefixes[body["prefix"]] = Identity(body["user"])
    return web.json_response({"ok": True})


async def sim_requests(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[CLUSTER_KEY].requests))


async def _tick(app: web.Application) -> Any:
    async def loop() -> None:
        while True:
            await asyncio.sleep(TICK_S)
            app[CLUSTER_KEY].controllers.reconcile()

    task = asyncio.create_task(loop())
    yield
    task.cancel()


def make_app(cluster: Cluster) -> web.Application:
    app = web.Application(client_max_size=4 << 20)
    app[CLUSTER_KEY] = cluster
    app.router.add_post("/_sim/nodes/{name}/condition", sim_node_condition)
    app.router.add_post("/_sim/images", sim_image)
    app.router.add_post("/_sim/faults", sim_fault)
    app.router.add_post("/_sim/token-prefixes", sim_token_prefix)
    app.router.add_get("/_sim/requests", sim_requests)
    add_metrics_routes(app, cluster)  # before the catch-all API route
    app.router.add_route("*", "/{tail:.*}", handle_api)
    app.cleanup_ctx.append(_tick)
    return app
