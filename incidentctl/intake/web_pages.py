"""The web page's HTML: small server-rendered pages, no framework, nothing from other sites.

Every value that came from outside (alert labels, notes, runbook parameters, step outputs, incident ids) goes
through `_e` (html.escape, quotes included): alert labels are whatever a sender wrote.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from incidentctl.client import ENDED, SEVERITIES
from incidentctl.intake.web_report import chart_svg, report_table
from incidentctl.report import GROUPINGS
from workflows import model

# The statuses an incident can be listed by: the workflow's own, and how one ended from outside.
STATUSES = (model.OPEN, model.MITIGATING, model.WAITING_APPROVAL, model.ROLLING_BACK, model.MITIGATED,
            model.NEEDS_ATTENTION, model.MONITORING, model.RESOLVED, model.CLOSED, model.FAILED,
            *(s for s in ENDED.values() if s != model.FAILED))
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#1d2733;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#fff}header form{margin-left:auto}main{padding:16px;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d5d9e0;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#eef0f4}.note{background:#fff6d6;padding:6px 10px}
.error{background:#fde2e1;padding:6px 10px}.approval{background:#fff;border:2px solid #c77700;padding:8px;
margin:8px 0}pre{white-space:pre-wrap;margin:0}button{padding:4px 12px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _json(value: Any) -> str:
    return _e(json.dumps(value, indent=1, sort_keys=True, default=str))


def incident_url(incident: str) -> str:
    return f"/ui/incidents/{quote(incident, safe='')}"


def page(title: str, body: str, person: str | None = None, csrf: str = "", live: bool = False) -> str:
    signed = (f'<span>signed in as <b>{_e(person)}</b></span><form method="post" action="/ui/logout">'
              f'<input type="hidden" name="csrf" value="{_e(csrf)}"><button>Sign out</button></form>'
              if person else "")
    script = '<script src="/ui/static/live.js" defer></script>' if live else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)} · incidentctl</title>'
            f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style>{script}</head><body>'
            f'<header><b>incidentctl</b><a href="/ui">Incidents</a><a href="/ui/pending">Pending approvals</a>'
            f'<a href="/ui/report">Report</a>'
            f'{signed}</header><main><h1>{_e(title)}</h1>{body}</main></body></html>')


def same_site_reload(path: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" '
            f'content="0;url={_e(path)}"><title>incidentctl</title></head><body><a href="{_e(path)}">Continue</a>'
            '</body></html>')


def sign_in(nonce: str, next_page: str, problem: str | None = None) -> str:
    error = f'<p class="error">{_e(problem)}</p>' if problem else ""
    return page("Sign in", f"""{error}
<form method="post" action="/ui/login">
<input type="hidden" name="csrf" value="{_e(nonce)}"><input type="hidden" name="next" value="{_e(next_page)}">
<p><label>Personal token or sign-in token (JWT)<br>
<input type="password" name="token" id="token" size="60" autocomplete="off" required></label></p>
<p><button id="sign-in">Sign in</button></p></form>
<p>Make a personal token with <code>incidentctl people token NAME</code>.</p>""")


def problem(title: str, reason: str, person: str | None, csrf: str, back: str = "/ui") -> str:
    return page(title, f'<p class="error">{_e(reason)}</p><p><a href="{_e(back)}">Back</a></p>', person, csrf)


def _select(name: str, options: Iterable[str], chosen: str | None) -> str:
    shown = "".join(f'<option{" selected" if o == chosen else ""}>{_e(o)}</option>' for o in options)
    return f'<label>{name} <select name="{name}"><option value="">any</option>{shown}</select></label>'


def incident_list(rows: list[dict[str, Any]], filters: dict[str, str], runbooks: list[str], person: str,
                  csrf: str) -> str:
    filter_form = (f'<form method="get" action="/ui">{_select("status", STATUSES, filters.get("status"))} '
                   f'{_select("severity", SEVERITIES, filters.get("severity"))} '
                   f'{_select("runbook", runbooks, filters.get("runbook"))} <button>Filter</button></form>')
    lines = "".join(
        f'<tr><td><a href="{_e(incident_url(r["incident_id"]))}">{_e(r["incident_id"])}</a></td>'
        f'<td>{_e(r["status"])}</td><td>{_e(r["severity"])}</td><td>{_e(r["runbook"])}</td><td>{_e(r["service"])}'
        f'</td><td>{_e(r["started_at"])}</td></tr>' for r in rows)
    table = (f'<table id="incidents"><tr><th>incident</th><th>status</th><th>severity</th><th>runbook</th>'
             f'<th>service</th><th>started</th></tr>{lines}</table>' if rows else "<p>No incidents match.</p>")
    return page("Incidents", filter_form + table, person, csrf)


def _approval_form(incident: str, pending: dict[str, Any], csrf: str) -> str:
    votes = ", ".join(f'{v.get("approver")}: {"approve" if v.get("approve") else "reject"}'
                      for v in pending.get("votes") or [])
    who = ", ".join([*(pending.get("approvers") or []), *(f"group {g}" for g in pending.get("groups") or [])])
    will_run = (f'<p>Then runs: <code>{_e(pending["will_run"].get("action"))}</code> '
                f'<pre>{_json(pending["will_run"].get("params"))}</pre></p>' if pending.get("will_run") else "")
    return f"""<div class="approval" id="approval-{_e(pending["step"])}">
<p><b>{_e(pending["step"])}</b>: {_e(pending.get("message"))}</p>
<p>May approve: {_e(who)} (needs {_e(pending.get("required"))}); votes so far: {_e(votes or "none")};
requested {_e(pending.get("requested_at"))}{f"; deadline {_e(pending['deadline'])}" if pending.get("deadline") else ""}
</p>{will_run}
<form method="post" action="{_e(incident_url(incident))}/approvals">
<input type="hidden" name="csrf" value="{_e(csrf)}"><input type="hidden" name="step" value="{_e(pending["step"])}">
<label>Comment <input name="comment" size="40"></label>
<button name="decision" value="approve" class="approve">Approve</button>
<button name="decision" value="reject" class="reject">Reject</button></form></div>"""


def _steps(steps: dict[str, Any]) -> str:
    if not steps:
        return "<p>No steps yet.</p>"
    lines = "".join(
        f'<tr><td>{_e(key)}</td><td>{_e(s.get("kind"))} {_e(s.get("action") or "")}</td><td>{_e(s.get("status"))}'
        f'</td><td>{_e(s.get("started_at"))}</td><td>{_e(s.get("finished_at"))}</td>'
        f'<td>{_e(s.get("error") or "")}</td></tr>' for key, s in steps.items())
    return (f'<table id="steps"><tr><th>step</th><th>what</th><th>status</th><th>started</th><th>finished</th>'
            f'<th>error</th></tr>{lines}</table>')


def _timeline(entries: list[dict[str, Any]]) -> str:
    lines = "".join(
        f'<tr><td>{_e(t.get("at"))}</td><td>{_e(t.get("kind"))}</td><td>{_e(t.get("step") or "")}</td>'
        f'<td><pre>{_json(t["detail"]) if t.get("detail") else ""}</pre></td></tr>' for t in entries)
    return f'<table id="timeline"><tr><th>at</th><th>what</th><th>step</th><th>detail</th></tr>{lines}</table>'


def _alerts(alerts: dict[str, Any]) -> str:
    if not alerts:
        return ""
    lines = "".join(f'<tr><td>{_e(a.get("status"))}</td><td><pre>{_json(a.get("labels"))}</pre></td></tr>'
                    for a in alerts.values())
    return f'<h2>Alerts</h2><table id="alerts"><tr><th>status</th><th>labels</th></tr>{lines}</table>'


def _review(review: dict[str, Any]) -> str:
    to_do = "".join(f"<li>{_e(item)}</li>" for item in review.get("to_do") or [])
    rows = "".join(f"<tr><th>{_e(name)}</th><td>{_e(review.get(name))}</td></tr>"
                   for name in ("summary", "impact", "root_cause", "outcome"))
    return (f'<h2>Review</h2><table id="review">{rows}</table>'
            + (f"<p>Still to do:</p><ul>{to_do}</ul>" if to_do else ""))


def incident(incident_id: str, state: dict[str, Any], timeline: list[dict[str, Any]], notes: list[str],
             review: dict[str, Any] | None, person: str, csrf: str) -> str:
    notice = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    pending = state.get("pending_approvals") or []
    approvals = ("<h2>Waiting for approval</h2>" + "".join(_approval_form(incident_id, p, csrf) for p in pending)
                 if pending else "")
    summary = "".join(f"<tr><th>{name}</th><td>{_e(state.get(key))}</td></tr>" for name, key in (
        ("status", "status"), ("severity", "severity"), ("runbook", "runbook"), ("service", "service"),
        ("started", "started_at"), ("finished", "finished_at"), ("outcome", "outcome")))
    live = (f'<div id="live" data-running="{"yes" if state.get("workflow_status") == "RUNNING" else "no"}">'
            f'{notice}<table id="summary">{summary}</table>{approvals}<h2>Steps</h2>{_steps(state.get("steps") or {})}'
            f'{_alerts(state.get("alerts") or {})}<h2>Timeline</h2>{_timeline(timeline)}'
            f'{_review(review) if review else ""}</div>')
    return page(f"Incident {incident_id}", live, person, csrf, live=True)


def pending_list(rows: list[dict[str, Any]], unanswered: list[str], person: str, csrf: str) -> str:
    notice = "".join(f'<p class="note">{_e(i)} is waiting but no worker answered: its approvals cannot be shown'
                     "</p>" for i in unanswered)
    blocks = "".join(f'<h2><a href="{_e(incident_url(r["incident_id"]))}">{_e(r["incident_id"])}</a> '
                     f'({_e(r["runbook"])}, {_e(r["severity"])})</h2>{_approval_form(r["incident_id"], r, csrf)}'
                     for r in rows)
    return page("Pending approvals", notice + (blocks or "<p>Nothing is waiting for approval.</p>"), person, csrf)


# While an incident runs, the page reloads its live part every few seconds (the forms outside stay as typed).
LIVE_JS = """
(function () {
  function refresh() {
    var live = document.getElementById("live");
    if (!live || live.dataset.running !== "yes" || document.activeElement && document.activeElement.form) {
      return;
    }
    fetch(location.href, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        if (fresh) { live.replaceWith(fresh); }
      });
  }
  setInterval(refresh, 5000);
})();
"""


def report(figures: dict[str, Any], since: str, by: str, person: str, csrf: str, problem_text: str | None = None
           ) -> str:
    """`incidentctl report` as a page: the period's times as a chart and a table."""
    form = (f'<form method="get" action="/ui/report"><label>since <input name="since" value="{_e(since)}" size="8">'
            f'</label> {_select("by", GROUPINGS, by)} <button>Show</button></form>')
    if problem_text:
        return page("Report", form + f'<p class="error">{_e(problem_text)}</p>', person, csrf)
    summary = (f'<p>{figures["incidents"]} incidents from {_e(figures["since"][:16])} to {_e(figures["until"][:16])} '
               f'UTC; {len(figures["without_summary"])} could not be read.</p>')
    return page("Report", form + summary + chart_svg(figures) + report_table(figures), person, csrf)

