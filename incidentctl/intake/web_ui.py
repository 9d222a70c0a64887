"""The receiver's web page (`/ui`): incidents, one incident live, pending approvals, and Approve/Reject.

Reading and acting both need a signed-in person (web_session.py); a vote from the page is the same command as
`POST /incidents/{id}/approvals` (people_api.run_command: checked, signed for the incident), so workers that
require verified people take it. The incident page reads like `incident show`: from the workflow when a worker
answers, else from the history (incident_view.read_state), saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from temporalio.service import RPCError

from incidentctl import client as incidents
from incidentctl.incident_view import read_state, read_timeline
from incidentctl.intake import web_pages, web_session
from incidentctl.intake.delivery import AlertIntake
from incidentctl.intake.http import INTAKE, Refused
from incidentctl.intake.people_api import COMMANDS, person_of, run_command
from incidentctl.report import ReportError, build_report, collect_figures, parse_since
from incidentctl.review import load_review
from workflows import model

log = logging.getLogger("incidentctl.receiver")
# A page waits this long for a worker's answer before it shows the history instead.
QUERY_TIMEOUT = timedelta(seconds=3)
# Statuses in which the incident's review is worth showing on its page (the runbook has done its part).
REVIEWED = (model.MITIGATED, model.MONITORING, model.RESOLVED, model.CLOSED)
SECURITY_HEADERS = {
    # Nothing but our own page and script; never framed (clickjacking an Approve button).
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Page = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS})


def _signed_in_page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Runs `handler` with the signed-in person; sends everyone else to the sign-in form."""
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            who = await web_session.signed_in(request)
        except Refused as refused:
            if refused.status == 503:
                return _html(web_pages.problem("Cannot sign in", refused.reason, None, ""), 503)
            who = None  # a token that names nobody any more: sign in again
        if who is None:
            if request.method == "GET" and request.headers.get("Sec-Fetch-Site") == "cross-site":
                # A link from elsewhere (a Slack message) arrives without the SameSite=Strict cookie: load the
                # page once more from here, which sends it, before asking to sign in again.
                return _html(web_pages.same_site_reload(web_session.safe_next(request.path_qs)))
            response = _redirect(web_session.sign_in_url(request))
            web_session.forget_cookie(response, web_session.SESSION_COOKIE)
            return response
        try:
            return await handler(request, who)
        except Refused as refused:
            return _html(web_pages.problem("Refused", refused.reason, who, _csrf(request)), refused.status)
        except incidents.IncidentError as exc:
            status = 404 if exc.kind == "not_found" else 503
            return _html(web_pages.problem("Cannot read the incident", str(exc), who, _csrf(request)), status)
        except RPCError as exc:
            return _html(web_pages.problem("Temporal did not answer", f"{exc.message}; try again", who,
                                           _csrf(request)), 503)
    return handle


def _csrf(request: web.Request) -> str:
    return web_session.csrf_token(web_session.session_token(request))


def _intake(request: web.Request) -> AlertIntake:
    return request.app[INTAKE]


async def _list(request: web.Request, who: str) -> web.Response:
    filters = {name: request.query.get(name, "").strip() for name in ("status", "severity", "runbook")}
    rows = await incidents.list_incidents(_intake(request).client, **{k: v or None for k, v in filters.items()})
    runbooks = sorted(_intake(request).router.plans)
    return _html(web_pages.incident_list(rows, filters, runbooks, who, _csrf(request)))


async def _incident(request: web.Request, who: str) -> web.Response:
    incident = request.match_info["incident"]
    client = _intake(request).client
    view = await read_state(client, incident, QUERY_TIMEOUT)
    timeline = await read_timeline(client, incident, QUERY_TIMEOUT)
    state = view.state or {}
    review = None
    if state.get("status") in REVIEWED:
        review, _ = await load_review(client, incident)
    notes = [n for n in (view.note, timeline.note if timeline.note != view.note else None) if n]
    return _html(web_pages.incident(incident, state, timeline.timeline, notes, review, who, _csrf(request)))


async def _pending(request: web.Request, who: str) -> web.Response:
    unanswered: list[str] = []
    rows = await incidents.pending_approvals(_intake(request).client, unanswered=unanswered)
    return _html(web_pages.pending_list(rows, unanswered, who, _csrf(request)))


REPORT_LIMIT = 300  # incidents read for the page's report (the CLI's `report --limit` reads more)


async def _report(request: web.Request, who: str) -> web.Response:
    since_text = request.query.get("since", "30d").strip() or "30d"
    by = request.query.get("by", "").strip()
    until = datetime.now(UTC)
    try:
        since = parse_since(since_text, until)
        figures = build_report(await collect_figures(_intake(request).client, since, limit=REPORT_LIMIT),
                               by or None, since, until)
    except ReportError as exc:
        return _html(web_pages.report({}, since_text, by, who, _csrf(request), str(exc)), 422)
    return _html(web_pages.report(figures, since_text, by, who, _csrf(request)))


async def _decide(request: web.Request, who: str) -> web.Response:
    incident = request.match_info["incident"]
    form = await request.post()
    web_session.check_csrf(request, str(form.get(web_session.CSRF_FIELD, "")))
    body: dict[str, Any] = {"decision": str(form.get("decision", "")), "step": str(form.get("step", ""))}
    if form.get("comment"):
        body["comment"] = str(form["comment"])
    await run_command(request, "approvals", COMMANDS["approvals"], incident, who, body)
    return _redirect(web_pages.incident_url(incident))


async def _sign_in_form(request: web.Request) -> web.Response:
    nonce = web_session.new_sign_in_nonce()
    next_page = web_session.safe_next(request.query.get("next", web_session.UI_ROOT))
    response = _html(web_pages.sign_in(nonce, next_page))
    web_session.set_cookie(request, response, web_session.SIGN_IN_COOKIE, nonce, web_session.SIGN_IN_MAX_AGE_S)
    return response


async def _sign_in(request: web.Request) -> web.Response:
    form = await request.post()
    next_page = web_session.safe_next(str(form.get("next", web_session.UI_ROOT)))
    token = str(form.get("token", "")).strip()
    try:
        web_session.check_sign_in_form(request, str(form.get(web_session.CSRF_FIELD, "")))
        if not token:
            raise Refused(401, "give your personal token (or sign-in token)", "unauthorized")
        who = await person_of(token)
    except Refused as refused:
        nonce = web_session.new_sign_in_nonce()
        response = _html(web_pages.sign_in(nonce, next_page, refused.reason), refused.status)
        web_session.set_cookie(request, response, web_session.SIGN_IN_COOKIE, nonce, web_session.SIGN_IN_MAX_AGE_S)
        return response
    log.info("%s signed in to the web page", who)
    response = _redirect(next_page)
    web_session.set_cookie(request, response, web_session.SESSION_COOKIE, token, web_session.SESSION_MAX_AGE_S)
    web_session.forget_cookie(response, web_session.SIGN_IN_COOKIE)
    return response


async def _sign_out(request: web.Request, who: str) -> web.Response:
    form = await request.post()
    web_session.check_csrf(request, str(form.get(web_session.CSRF_FIELD, "")))
    response = _redirect(f"{web_session.UI_ROOT}/login")
    web_session.forget_cookie(response, web_session.SESSION_COOKIE)
    return response


async def _live_js(_: web.Request) -> web.Response:
    return web.Response(text=web_pages.LIVE_JS, content_type="text/javascript", headers=SECURITY_HEADERS)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui", _signed_in_page(_list))
    app.router.add_get("/ui/pending", _signed_in_page(_pending))
    app.router.add_get("/ui/report", _signed_in_page(_report))
    app.router.add_get("/ui/incidents/{incident}", _signed_in_page(_incident))
    app.router.add_post("/ui/incidents/{incident}/approvals", _signed_in_page(_decide))
    app.router.add_get("/ui/login", _sign_in_form)
    app.router.add_post("/ui/login", _sign_in)
    app.router.add_post("/ui/logout", _signed_in_page(_sign_out))
    app.router.add_get("/ui/static/live.js", _live_js)
