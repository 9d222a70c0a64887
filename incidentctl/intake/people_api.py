"""People's commands over HTTP: the same validated updates as the CLI, as the person a personal token names.

`Authorization: Bearer <personal token>`; the token's sha256 is looked up in the people file's `people:`
section (incidentctl/people.py), so the receiver never stores a token. Or `Authorization: Bearer <JWT>` from
the organisation's identity provider where OIDC sign-in is configured (incidentctl/intake/oidc.py): the
configured claim's value must be given to a person in the same section. Who acts is the token's owner, never a
name in the body, and the alert senders' webhook token or HMAC is not accepted here: it proves a sender, not a
person. A refusal comes back as 409 with the workflow's reason; a bad body as 422 naming what is wrong.

Each command is signed for the incident it goes to (incidentctl/identity.py) with the receiver's
`INCIDENTCTL_IDENTITY_SIGNING_KEY`, so a worker that requires verified people knows this receiver checked who
acts; a receiver without the key sends commands unsigned, which only an `open` worker takes.
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

from aiohttp import web

from incidentctl import client as incidents
from incidentctl.dsl.plan import Plan
from incidentctl.identity import sign
from incidentctl.intake.auth import bearer_token
from incidentctl.intake.delivery import AlertIntake
from incidentctl.intake.http import INTAKE, LIMITS, Refused, read_body
from incidentctl.intake.http import refuse as _refuse
from incidentctl.intake.oidc import JwksCache, JwksUnavailable, OidcError, OidcSettings, looks_like_jwt, verified_claims
from incidentctl.intake.payloads import PayloadError, decode_json
from incidentctl.params import ParameterError
from incidentctl.people import PeopleConfigError, load_oidc_subjects, load_token_owners, token_digest
from workflows.model import (
    Acknowledgement,
    ApprovalDecision,
    Assignment,
    Closure,
    Note,
    Reopening,
    Resolution,
    ReviewEdit,
    SeverityChange,
)

Fields = dict[str, tuple[type, bool]]  # body key -> (type, required)


@dataclass(frozen=True)
class Command:
    fields: Fields
    run: Callable[[web.Request, str, str, dict[str, Any]], Awaitable[Any]]


async def person(request: web.Request) -> str:
    """The verified person behind the request (a personal token or an OIDC JWT), or Refused (401, 403, 503)."""
    given = bearer_token(request)
    if not given:
        raise Refused(401, "people's commands need a personal token or an OIDC sign-in token: Authorization: "
                           "Bearer <token> (make a personal one with `incidentctl people token NAME`)",
                      "unauthorized")
    return await person_of(given)


async def person_of(given: str) -> str:
    """The person a personal token or an OIDC JWT names, however it came (a header, the web page's cookie)."""
    return await _oidc_person(given) if looks_like_jwt(given) else _token_person(given)


def _token_person(given: str) -> str:
    try:
        owners = load_token_owners()
    except PeopleConfigError as exc:
        raise Refused(503, f"cannot check the token: {exc}", "people_file") from None
    digest = token_digest(given)
    for known, owner in owners.items():
        if hmac.compare_digest(known, digest):
            return owner
    raise Refused(401, "unknown token: it belongs to nobody in the people file (the alert senders' webhook "
                       "token is not a person's)", "unauthorized")


_JWKS: dict[OidcSettings, JwksCache] = {}  # one cache per configuration, for the receiver's lifetime


async def _oidc_person(given: str) -> str:
    try:
        settings = OidcSettings.from_env(os.environ)
    except ValueError as exc:
        raise Refused(503, f"cannot check the sign-in token: {exc}", "oidc_settings") from None
    if settings is None:
        raise Refused(401, "this receiver does not take OIDC sign-in tokens (INCIDENTCTL_OIDC_ISSUER, "
                           "INCIDENTCTL_OIDC_AUDIENCE and INCIDENTCTL_OIDC_JWKS_URL are not set): use a personal "
                           "token", "unauthorized")
    try:
        claims = await verified_claims(given, settings, _JWKS.setdefault(settings, JwksCache(settings)))
    except OidcError as exc:
        raise Refused(401, f"sign-in token refused: {exc}", "unauthorized") from None
    except JwksUnavailable as exc:
        raise Refused(503, f"cannot check the sign-in token: {exc}", "oidc_keys") from None
    value = claims.get(settings.claim)
    if not isinstance(value, str) or not value.strip():
        raise Refused(403, f"the sign-in token has no {settings.claim!r} claim to name a person by", "forbidden")
    if settings.claim == "email" and claims.get("email_verified") is False:
        raise Refused(403, f"the identity provider has not verified the email {value!r}", "forbidden")
    try:
        subjects = load_oidc_subjects()
    except PeopleConfigError as exc:
        raise Refused(503, f"cannot check the sign-in token: {exc}", "people_file") from None
    owner = subjects.get(value.strip())
    if owner is None:
        raise Refused(403, f"{settings.claim} {value!r} is signed in but belongs to nobody in the people file "
                           f"(give it to a person: `oidc: [{value}]` under `people:`)", "forbidden")
    return owner


def _checked(body: Any, fields: Fields, who: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(422, "the body must be a JSON object", "schema")
    claimed = body.get("approver", body.get("by"))
    if claimed is not None and claimed != who:
        raise Refused(403, f"the token is {who}'s; the body says {claimed!r}: who acts is the token's owner",
                      "forbidden")
    body = {k: v for k, v in body.items() if k not in ("approver", "by")}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise Refused(422, f"unknown field(s) {', '.join(unknown)}; expected {', '.join(fields) or 'none'}",
                      "schema")
    for name, (kind, required) in fields.items():
        if name not in body:
            if required:
                raise Refused(422, f"missing field {name!r}", "schema")
            continue
        if not isinstance(body[name], kind) or (kind is int and isinstance(body[name], bool)):
            raise Refused(422, f"field {name!r} must be {kind.__name__}", "schema")
    return body


def prover(intake: AlertIntake, incident: str) -> Callable[[Any], str] | None:
    """Signs a command for `incident` as verified here, or None when this receiver has no signing key."""
    return None if intake.signing_key is None else functools.partial(sign, intake.signing_key, incident)


def signed(intake: AlertIntake, incident: str, command: Any) -> Any:
    prove = prover(intake, incident)
    if prove is not None:
        command.proof = prove(command)
    return command


async def _decide(request: web.Request, incident: str, who: str, body: dict[str, Any]) -> Any:
    if body["decision"] not in ("approve", "reject"):
        raise Refused(422, 'field "decision" must be "approve" or "reject"', "schema")
    decision = ApprovalDecision(approver=who, approve=body["decision"] == "approve", step=body.get("step", ""),
                                comment=body.get("comment", ""))
    return await incidents.decide(request.app[INTAKE].client, incident, signed(request.app[INTAKE], incident, decision))


def _loaded_plan(request: web.Request, name: str) -> Plan:
    # Only runbooks the receiver loaded, by name: a body never names a file.
    plan = request.app[INTAKE].router.plans.get(name)
    if plan is None:
        raise Refused(422, f"no runbook named {name!r} is loaded by this receiver", "schema")
    return plan


async def _start(request: web.Request, _: str, who: str, body: dict[str, Any]) -> Any:
    """A person opens an incident with a loaded runbook, as themselves: the start is signed like their commands, so
    a worker that requires verified people knows who started it (and keeps them from approving its steps)."""
    intake = request.app[INTAKE]
    plan = _loaded_plan(request, body["runbook"])
    try:
        return await incidents.start_incident(
            intake.client, plan, params=body.get("params"), key=body.get("key") or None,
            severity=body.get("severity") or None, started_by=who, dry_run=body.get("dry_run", False),
            task_queue=intake.task_queue, eager_start=False,
            prove_start=None if intake.signing_key is None else functools.partial(sign, intake.signing_key))
    except ParameterError as exc:
        raise Refused(422, "; ".join(exc.problems), "schema") from None


async def _run(request: web.Request, incident: str, who: str, body: dict[str, Any]) -> Any:
    plan = _loaded_plan(request, body["runbook"])
    return await incidents.run_runbook(request.app[INTAKE].client, incident, plan, body.get("params"), who,
                                       prover(request.app[INTAKE], incident))


def _simple(make: Callable[[str, dict[str, Any]], Any], send: Callable[..., Awaitable[Any]]
            ) -> Callable[[web.Request, str, str, dict[str, Any]], Awaitable[Any]]:
    async def run(request: web.Request, incident: str, who: str, body: dict[str, Any]) -> Any:
        intake = request.app[INTAKE]
        return await send(intake.client, incident, signed(intake, incident, make(who, body)))
    return run


COMMANDS: dict[str, Command] = {
    "approvals": Command({"decision": (str, True), "step": (str, False), "comment": (str, False)}, _decide),
    "notes": Command({"text": (str, True)}, _simple(lambda who, b: Note(by=who, text=b["text"]),
                                                     incidents.add_note)),
    "severity": Command({"severity": (str, True), "reason": (str, False)}, _simple(
        lambda who, b: SeverityChange(by=who, severity=b["severity"], reason=b.get("reason", "")),
        incidents.change_severity)),
    "acknowledge": Command({}, _simple(lambda who, b: Acknowledgement(by=who), incidents.acknowledge_incident)),
    "assign": Command({"commander": (str, False), "assignee": (str, False)}, _simple(
        lambda who, b: Assignment(by=who, commander=b.get("commander", ""), assignee=b.get("assignee", "")),
        incidents.assign_incident)),
    "resolve": Command({"summary": (str, False)}, _simple(
        lambda who, b: Resolution(by=who, summary=b.get("summary", "")), incidents.resolve_incident)),
    "reopen": Command({"reason": (str, False)}, _simple(
        lambda who, b: Reopening(by=who, reason=b.get("reason", "")), incidents.reopen_incident)),
    "close": Command({"no_review": (bool, False), "reason": (str, False)}, _simple(
        lambda who, b: Closure(by=who, no_review=b.get("no_review", False), reason=b.get("reason", "")),
        incidents.close_incident)),
    "review": Command({"fields": (dict, True)}, _simple(lambda who, b: ReviewEdit(by=who, fields=b["fields"]),
                                                         incidents.update_review)),
    "runbooks": Command({"runbook": (str, True), "params": (dict, False)}, _run),
}


START = Command({"runbook": (str, True), "params": (dict, False), "severity": (str, False), "key": (str, False),
                 "dry_run": (bool, False)}, _start)


async def command(request: web.Request) -> web.Response:
    """POST /incidents/{incident}/{command}."""
    name = request.match_info["command"]
    return await _serve(request, name, request.match_info["incident"], COMMANDS.get(name))


async def start(request: web.Request) -> web.Response:
    """POST /incidents: open an incident (`incident start`) as the person the token names."""
    return await _serve(request, "start", "", START)


async def _serve(request: web.Request, name: str, incident: str, spec: Command | None) -> web.Response:
    intake = request.app[INTAKE]
    try:
        if spec is None:
            raise Refused(404, f"no command {name!r}; one of {', '.join(COMMANDS)}", "not_found")
        who = await person(request)
        raw = await read_body(request, request.app[LIMITS])
        if request.content_type != "application/json":
            raise Refused(415, f"content type must be application/json, not {request.content_type!r}",
                          "content_type")
        try:
            body = decode_json(raw) if raw.strip() else {}
        except PayloadError as exc:
            raise Refused(400, str(exc), "malformed_json") from None
        receipt = await run_command(request, name, spec, incident, who, body)
    except Refused as refused:
        return _refuse(intake, refused.status, refused.reason, refused.code)
    return web.json_response({"by": who, "receipt": asdict(receipt) if is_dataclass(receipt) else receipt})


async def run_command(request: web.Request, name: str, spec: Command, incident: str, who: str, body: Any) -> Any:
    """One person's command, checked and sent (signed for the incident): the JSON endpoints and the web page's
    forms both come here, so a form's vote is the same command as a token's. Refused when it cannot be."""
    checked = _checked(body, spec.fields, who)
    try:
        receipt = await spec.run(request, incident, who, checked)
    except incidents.IncidentError as exc:
        status = {"not_found": 404, "unreachable": 503, "refused": 409}.get(exc.kind, 422)
        raise Refused(status, str(exc), "command_refused" if status == 409 else "command_failed") from None
    request.app[INTAKE].metrics.inc("incidentctl_people_commands_total", command=name)
    return receipt


async def show(request: web.Request) -> web.Response:
    """GET /incidents/{incident}: `incident show -o json`, for a person."""
    intake = request.app[INTAKE]
    try:
        await person(request)
        try:
            state = await incidents.show_incident(intake.client, request.match_info["incident"])
        except incidents.IncidentError as exc:
            raise Refused(404 if exc.kind == "not_found" else 503, str(exc), "show_failed") from None
    except Refused as refused:
        return _refuse(intake, refused.status, refused.reason, refused.code)
    return web.json_response(state)
