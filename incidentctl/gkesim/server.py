"""HTTP face of the fake: the container.googleapis.com v1 REST paths (location form), plus `/_sim/` controls.

  GET  /v1/projects/{p}/locations/{l}/clusters/{c}
  GET  /v1/projects/{p}/locations/{l}/clusters/{c}/nodePools[/{np}]
  POST /v1/projects/{p}/locations/{l}/clusters/{c}/nodePools/{np}:setSize | :setAutoscaling | :rollback
  GET  /v1/projects/{p}/locations/{l}/operations[/{op}]
Controls: POST /_sim/faults {method, match, code, status, times} answers the next `times` matching calls with that
error; GET /_sim/requests lists the calls received; GET /_sim/pools/{p}/{l}/{c}/{np} shows a pool as the fake
holds it (its per-zone node count, which GKE's API does not report); POST /_sim/clusters/{p}/{l}/{c}/endpoint
{endpoint, ca_certificate} moves a cluster's Kubernetes API (a test points it at the simulated cluster).
POST /token: an OAuth2 token endpoint for service-account credentials whose token_uri names it; it hands out the
`--access-token` the fake was started with, whatever the assertion (it checks no signature).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from incidentctl.gkesim.world import GkeApiError, World, cluster_json, operation_json, pool_json

WORLD_KEY: web.AppKey[World] = web.AppKey("world", World)
TOKEN_KEY: web.AppKey[str] = web.AppKey("token", str)
TOKEN_LIFETIME_S = 3600
FAULTS_KEY: web.AppKey[list] = web.AppKey("faults", list)
REQUESTS_KEY: web.AppKey[list] = web.AppKey("requests", list)


@dataclass
class Fault:
    method: str  # "*" for any
    match: str  # a substring of the path
    code: int
    status: str
    times: int

    def catches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and self.match in path


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except json.JSONDecodeError as exc:
        raise GkeApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload: {exc}") from None
    if not isinstance(body, dict):
        raise GkeApiError(400, "INVALID_ARGUMENT", "The request body must be a JSON object.")
    return body


def _field(body: dict[str, Any], camel: str, snake: str) -> Any:
    return body[camel] if camel in body else body.get(snake)


async def _answer(request: web.Request, world: World) -> dict[str, Any]:
    path, verb = request.path, ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, verb = path.rsplit(":", 1)
    parts = [p for p in path.split("/") if p]
    if parts[:2] != ["v1", "projects"] or len(parts) < 5 or parts[3] != "locations":
        raise GkeApiError(404, "NOT_FOUND", f"Unknown path {request.path}.")
    project, location, rest = parts[2], parts[4], parts[5:]
    now = time.monotonic()
    world.tick(now)
    method = request.method
    if rest[:1] == ["operations"]:
        if method != "GET" or len(rest) > 2:
            raise GkeApiError(405, "UNIMPLEMENTED", f"{method} {request.path} is not served by the fake.")
        if len(rest) == 2:
            return operation_json(world.operation(project, location, rest[1]))
        return {"operations": [operation_json(op) for op in world.operations_in(project, location)]}
    if rest[:1] != ["clusters"] or len(rest) < 2:
        raise GkeApiError(404, "NOT_FOUND", f"Unknown path {request.path}.")
    cluster = rest[1]
    if len(rest) == 2 and method == "GET" and not verb:
        return cluster_json(world.cluster(project, location, cluster))
    if rest[2:3] != ["nodePools"]:
        raise GkeApiError(404, "NOT_FOUND", f"Unknown path {request.path}.")
    if len(rest) == 3 and method == "GET":
        owner = world.cluster(project, location, cluster)
        return {"nodePools": [pool_json(owner, p) for p in owner.pools.values()]}
    if len(rest) != 4:
        raise GkeApiError(404, "NOT_FOUND", f"Unknown path {request.path}.")
    pool = rest[3]
    if method == "GET" and not verb:
        return pool_json(*world.pool(project, location, cluster, pool))
    if method == "POST" and verb == "setSize":
        body = await _body(request)
        return operation_json(world.set_size(project, location, cluster, pool,
                                             _field(body, "nodeCount", "node_count") or 0, now))
    if method == "POST" and verb == "setAutoscaling":
        body = await _body(request)
        return operation_json(world.set_autoscaling(project, location, cluster, pool,
                                                    body.get("autoscaling") or {}, now))
    if method == "POST" and verb == "rollback":
        await _body(request)
        return operation_json(world.rollback(project, location, cluster, pool, now))
    raise GkeApiError(405, "UNIMPLEMENTED", f"{method} {request.path} is not served by the fake.")


async def handle_api(request: web.Request) -> web.Response:
    request.app[REQUESTS_KEY].append({"method": request.method, "path": request.path,
                                      "authorization": request.headers.get("Authorization", "")})
    try:
        fault = next((f for f in request.app[FAULTS_KEY] if f.catches(request.method, request.path)), None)
        if fault is not None:
            fault.times -= 1
            raise GkeApiError(fault.code, fault.status, f"Injected {fault.status} for {request.path}.")
        return web.json_response(await _answer(request, request.app[WORLD_KEY]))
    except GkeApiError as exc:
        return web.json_response(exc.body(), status=exc.code)


async def add_fault(request: web.Request) -> web.Response:
    spec = await request.json()
    fault = Fault(method=spec.get("method", "*"), match=spec.get("match", ""), code=int(spec["code"]),
                  status=spec["status"], times=int(spec.get("times", 1)))
    request.app[FAULTS_KEY].append(fault)
    return web.json_response({"ok": True})


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[REQUESTS_KEY])


async def show_pool(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    world.tick(time.monotonic())
    m = request.match_info
    try:
        _, pool = world.pool(m["project"], m["location"], m["cluster"], m["pool"])
    except GkeApiError as exc:
        return web.json_response(exc.body(), status=exc.code)
    return web.json_response({"node_count": pool.node_count, "version": pool.version, "status": pool.status,
                              "autoscaling": pool.autoscaling.to_json()})


async def move_endpoint(request: web.Request) -> web.Response:
    spec = await request.json()
    m = request.match_info
    try:
        cluster = request.app[WORLD_KEY].cluster(m["project"], m["location"], m["cluster"])
    except GkeApiError as exc:
        return web.json_response(exc.body(), status=exc.code)
    cluster.endpoint = spec["endpoint"]
    cluster.ca_certificate = spec.get("ca_certificate", cluster.ca_certificate)
    return web.json_response({"ok": True})


async def issue_token(request: web.Request) -> web.Response:
    form = await request.post()
    request.app[REQUESTS_KEY].append({"method": "POST", "path": request.path, "authorization": "",
                                      "grant_type": str(form.get("grant_type", ""))})
    if "assertion" not in form:
        return web.json_response({"error": "invalid_request", "error_description": "no assertion"}, status=400)
    return web.json_response({"access_token": request.app[TOKEN_KEY], "token_type": "Bearer",
                              "expires_in": TOKEN_LIFETIME_S})


def make_app(world: World, access_token: str) -> web.Application:
    app = web.Application()
    app[WORLD_KEY] = world
    app[TOKEN_KEY] = access_token
    app[FAULTS_KEY] = []
    app[REQUESTS_KEY] = []
    app.router.add_post("/_sim/faults", add_fault)
    app.router.add_get("/_sim/requests", list_requests)
    app.router.add_get("/_sim/pools/{project}/{location}/{cluster}/{pool}", show_pool)
    app.router.add_post("/_sim/clusters/{project}/{location}/{cluster}/endpoint", move_endpoint)
    app.router.add_post("/token", issue_token)
    app.router.add_route("*", "/v1/{tail:.*}", handle_api)
    return app
