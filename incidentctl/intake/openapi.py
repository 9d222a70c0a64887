"""The receiver's OpenAPI 3.1 description, built around the payload schemas in schemas/."""

from __future__ import annotations

import functools
from typing import Any

from incidentctl.dsl.resources import load_schema


@functools.cache
def openapi_document() -> dict[str, Any]:
    def schema(name: str) -> dict[str, Any]:
        document = dict(load_schema(name))
        document.pop("$schema", None)
        return document

    error = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    refusals = {
        "401": "missing or wrong credentials", "408": "body not received in time",
        "413": "body over the limit (4 MiB by default)", "415": "not application/json",
        "400": "not valid JSON (or nested too deeply, or an integer too long)",
        "422": "not a notification, or no alert of it could be accepted",
        "503": "nothing recorded (Temporal unreachable, no worker, too many connections): retry",
    }
    responses = {"200": {"description": "every routed alert was delivered to its incident; malformed alerts "
                                        "are listed under `rejected`, alerts no runbook took under `unrouted`",
                         "content": {"application/json": {"schema": {"type": "object"}}}}}
    responses.update({code: {"description": text, "content": {"application/json": {"schema": error}}}
                      for code, text in refusals.items()})
    security = [{"bearer": []}, {"hmac": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "incidentctl alert receiver", "version": "1"},
        "components": {
            "schemas": {"AlertmanagerWebhook": schema("alertmanager-webhook.schema.json"),
                        "Alert": schema("alert.schema.json")},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "hmac": {"type": "apiKey", "in": "header", "name": "X-Incidentctl-Signature"}},
        },
        "paths": {
            "/alertmanager": {"post": {
                "summary": "Alertmanager webhook (version 4): start, update or resolve incidents",
                "security": security,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/AlertmanagerWebhook"}}}},
                "responses": responses}},
            "/alerts": {"post": {
                "summary": "One alert from any tool that can POST JSON",
                "security": security,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Alert"}}}},
                "responses": responses}},
            "/incidents/{incident}/approvals": {"post": {
                "summary": "Approve or reject a waiting approval step (validated: refusals never enter history)",
                "security": security,
                "parameters": [{"name": "incident", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["approver", "decision"],
                    "properties": {"approver": {"type": "string"}, "decision": {"enum": ["approve", "reject"]},
                                   "step": {"type": "string"}, "comment": {"type": "string"}}}}}},
                "responses": {"200": {"description": "vote recorded; body is the receipt"},
                              "409": {"description": "refused, with the reason"},
                              "404": {"description": "no such incident"},
                              "422": {"description": "malformed body"},
                              "401": {"description": "missing or wrong credentials"}}}},
            "/alerts/unrouted": {"get": {"summary": "Recent alerts no runbook took", "security": security,
                                         "responses": {"200": {"description": "newest last"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
    }
