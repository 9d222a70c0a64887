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
                                "personalToken": {"type": "http", "scheme": "bearer",
                                                  "description": "a person's token (incidentctl people token), or "
                                                                 "a JWT from the OIDC identity provider"},
                                "hmac": {"type": "apiKey", "in": "header", "name": "X-Incidentctl-Signature"},
                                "basic": {"type": "http", "scheme": "basic",
                                          "description": "the receiver token as the password (/gcm only)"},
                                "authToken": {"type": "apiKey", "in": "query", "name": "auth_token",
                                              "description": "the receiver token (/gcm only)"}},
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
            "/sns": {"post": {
                "summary": "Amazon SNS HTTPS subscription (CloudWatch alarms): confirmations and notifications, "
                           "proven by SNS's signature and the topic allow-list, not by our credentials",
                "security": [],
                "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}},
                "responses": {**responses,
                              "403": {"description": "topic not allowed, signature refused, stale message, or the "
                                                     "endpoint is off", "content": {"application/json": {
                                                         "schema": error}}}}}},
            "/gcm": {"post": {
                "summary": "Google Cloud Monitoring webhook (schema 1.2): incident open/closed",
                "security": [*security, {"basic": []}, {"authToken": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": responses}},
            "/alerts/unrouted": {"get": {"summary": "Recent alerts no runbook took", "security": security,
                                         "responses": {"200": {"description": "newest last"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
            **_people_paths(error),
            "/slack/interactions": {"post": {
                "summary": "A click on a Slack Approve/Reject button, signed by the Slack app "
                           "(X-Slack-Signature, X-Slack-Request-Timestamp); decided as the person whose `slack:` "
                           "user id clicked",
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": {"payload": {"type": "string"}},
                               "required": ["payload"]}}}},
                "responses": {"200": {"description": "{text}: what happened (approved as ..., refused: ...)"},
                              "400": {"description": "not a Slack interaction"},
                              "401": {"description": "wrong, stale or replayed Slack signature"},
                              "404": {"description": "INCIDENTCTL_SLACK_SIGNING_SECRET is not set"}}}},
        },
    }


_JSON_TYPES = {str: "string", bool: "boolean", dict: "object", int: "integer"}


def _people_paths(error: dict[str, Any]) -> dict[str, Any]:
    """One path per people's command (incidentctl/intake/people_api.py), from the same field table it checks."""
    from incidentctl.intake.people_api import COMMANDS, START

    incident = [{"name": "incident", "in": "path", "required": True, "schema": {"type": "string"}}]
    answers = {code: {"description": text, "content": {"application/json": {"schema": error}}} for code, text in {
        "401": "no personal token, or one nobody in the people file owns (webhook credentials are refused); "
               "a sign-in JWT that is expired, for another audience or issuer, badly signed or by an unknown key",
        "403": "the body names someone other than the token's owner; a valid sign-in JWT whose claim is nobody's",
        "404": "no such incident or command",
        "409": "refused by the incident, with the reason", "422": "malformed body",
        "503": "Temporal or the worker did not answer"}.items()}
    paths: dict[str, Any] = {}
    for name, command in {"": START, **COMMANDS}.items():
        body = {"type": "object", "additionalProperties": False,
                "properties": {field: {"type": _JSON_TYPES[kind]} for field, (kind, _) in command.fields.items()},
                "required": [field for field, (_, required) in command.fields.items() if required]}
        if not name:
            paths["/incidents"] = {"post": {
                "summary": "`incident start` with a runbook the receiver loaded, as the person the token names",
                "security": [{"personalToken": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "{by, receipt: {incident_id, run_id, created}}"}, **answers}}}
            continue
        paths[f"/incidents/{{incident}}/{name}"] = {"post": {
            "summary": f"`incident {name}` as the person the token names (who acts is never read from the body)",
            "security": [{"personalToken": []}], "parameters": incident,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "done: {by, receipt}"}, **answers}}}
    paths["/incidents/{incident}"] = {"get": {"summary": "The incident's state (incident show -o json)",
                                              "security": [{"personalToken": []}], "parameters": incident,
                                              "responses": {"200": {"description": "state"}, **answers}}}
    return paths
