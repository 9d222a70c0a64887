"""The web page over real HTTP (real receiver, dev server, a worker requiring verified people): sign-in and its
cookie, every page, CSRF on every form, escaping of alert labels, and Approve/Reject as the signed-in person."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.intake import web_pages
from incidentctl.intake.runner import RunningReceiver
from incidentctl.intake.web_session import csrf_token, safe_next
from incidentctl.library import compile_text
from tests.conftest import eventually
from tests.test_oidc import AUDIENCE, ISSUER, PROVIDER_KEYS, STRANGER
from tests.test_oidc import token as sign_in_jwt
from tests.web_ui_setup import GATED, HOSTILE, WEBHOOK_TOKEN, browsing, form_csrf, hostile_incident


def test_after_sign_in_only_our_own_pages() -> None:
    assert safe_next("/ui/incidents/x?y=1") == "/ui/incidents/x?y=1"
    for elsewhere in ("//evil.example/ui", "https://evil.example", "/\\evil.example", "/ui\\..\\x", "/alerts"):
        assert safe_next(elsewhere) == "/ui", elsewhere


def test_every_value_on_every_page_is_escaped() -> None:
    """Unit check of the renderers: a hostile value in every field a page shows comes out as text."""
    evil = HOSTILE
    pending = {"step": evil, "message": evil, "approvers": [evil], "groups": [evil], "required": evil,
               "requested_at": evil, "deadline": evil, "votes": [{"approver": evil, "approve": True}],
               "will_run": {"action": evil, "params": {evil: evil}}}
    state = {key: evil for key in ("status", "severity", "runbook", "service", "started_at", "finished_at",
                                   "outcome")}
    state.update(pending_approvals=[pending], steps={evil: {k: evil for k in ("kind", "action", "status",
                                                                              "started_at", "finished_at",
                                                                              "error")}},
                 alerts={evil: {"status": evil, "labels": {evil: evil}}})
    timeline = [{"at": evil, "kind": evil, "step": evil, "detail": {evil: evil}}]
    review = {"summary": evil, "impact": evil, "root_cause": evil, "outcome": evil, "to_do": [evil]}
    row = {"incident_id": evil, "status": evil, "severity": evil, "runbook": evil, "service": evil,
           "started_at": evil}
    pages = [web_pages.incident(evil, state, timeline, [evil], review, evil, evil),
             web_pages.incident_list([row], {"status": evil}, [evil], evil, evil),
             web_pages.pending_list([{**pending, **row}], [evil], evil, evil),
             web_pages.sign_in(evil, evil, evil), web_pages.problem(evil, evil, evil, evil, evil),
             web_pages.same_site_reload(evil),
             web_pages.report({"incidents": 1, "since": evil, "until": evil, "without_summary": [],
                               "groups": [{"group": evil, "incidents": 1, "mttr_n": 1, "mttr_p50_s": 60.0,
                                           "mttr_p90_s": 90.0}]}, evil, evil, evil, evil)]
    for page in pages:
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert page.count("<script") == page.count('<script src="/ui/static/live.js" defer></script>')


async def test_pages_need_a_person_and_sign_in_keeps_the_token_in_a_strict_cookie(
        web_receiver: RunningReceiver, tokens: dict[str, str]) -> None:
    web = await browsing(web_receiver)
    async with web.session:
        for path in ("/ui", "/ui/pending", "/ui/incidents/anything"):
            status, _, response = await web.get(path)
            assert status == 303 and response.headers["Location"].startswith("/ui/login?next=%2Fui"), path
        status, page, _ = await web.get("/ui/pending?x=1", headers={"Sec-Fetch-Site": "cross-site"})
        assert status == 200 and 'http-equiv="refresh" content="0;url=/ui/pending?x=1"' in page, \
            "a link from another site is loaded once more from here, where the Strict cookie goes along"
        status, _, response = await web.post("/ui/incidents/anything/approvals", {"decision": "approve"})
        assert status == 303 and response.headers["Location"].startswith("/ui/login")

        status, page, response = await web.get("/ui/login?next=/ui/pending")
        assert status == 200 and 'name="next" value="/ui/pending"' in page
        assert "HttpOnly" in response.headers["Set-Cookie"] and "SameSite=Strict" in response.headers["Set-Cookie"]
        nonce = form_csrf(page)
        status, page, _ = await web.post("/ui/login", {"token": tokens["bob"], "csrf": "forged"})
        assert status == 403 and "did not come from this page" in page
        status, page, _ = await web.post("/ui/login", {"token": WEBHOOK_TOKEN, "csrf": form_csrf(page)})
        assert status == 401 and "webhook token is not a person&#x27;s" in page
        status, page, _ = await web.post("/ui/login", {"token": "ictl_nobody", "csrf": form_csrf(page)})
        assert status == 401 and "unknown token" in page
        assert nonce != form_csrf(page), "every sign-in form has a value of its own"

        status, page, _ = await web.get("/ui/login?next=//evil.example")
        status, _, response = await web.post("/ui/login", {"token": tokens["bob"], "csrf": form_csrf(page),
                                                           "next": "//evil.example"})
        assert status == 303 and response.headers["Location"] == "/ui"
        cookie = response.headers["Set-Cookie"]
        assert "incidentctl_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/ui" in cookie and "Secure" not in cookie, "plain http here: a Secure cookie would be lost"

        status, page, response = await web.get("/ui")
        assert status == 200 and "signed in as <b>bob</b>" in page
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]

        status, page, _ = await web.post("/ui/logout", {"csrf": "forged"})
        assert status == 403 and "CSRF" in page
        status, _, response = await web.post("/ui/logout", {"csrf": csrf_token(tokens["bob"])})
        assert status == 303 and response.headers["Location"] == "/ui/login"
        assert (await web.get("/ui"))[0] == 303, "signed out"

    behind_tls = await browsing(web_receiver)
    async with behind_tls.session:
        _, page, _ = await behind_tls.get("/ui/login", headers={"X-Forwarded-Proto": "https"})
        _, _, response = await behind_tls.post("/ui/login", {"token": tokens["mallory"], "csrf": form_csrf(page)},
                                               headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in response.headers["Set-Cookie"], "behind an https proxy the cookie is Secure"


async def test_pages_show_incidents_escaped_and_votes_need_the_pages_csrf(
        web_receiver: RunningReceiver, client: Client, tokens: dict[str, str]) -> None:
    incident = await hostile_incident(web_receiver, client)
    bob, mallory = await browsing(web_receiver), await browsing(web_receiver)
    async with bob.session, mallory.session:
        await bob.sign_in(tokens["bob"])
        await mallory.sign_in(tokens["mallory"])

        _, listed, _ = await bob.get("/ui?runbook=web-gated&status=waiting_approval&severity=SEV3")
        assert incident in listed
        _, listed, _ = await bob.get("/ui?runbook=web-gated&status=closed")
        assert incident not in listed
        _, listed, _ = await bob.get("/ui?severity=SEV1&runbook=" + "x'%20OR%20'1'='1")
        assert "No incidents match" in listed, "a filter is a quoted value, never query text"

        status, page, _ = await bob.get(f"/ui/incidents/{incident}")
        assert status == 200 and "waiting_approval" in page and "web-gated" in page
        assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "restart &lt;b&gt;now&lt;/b&gt;?" in page and 'value="approve"' in page
        assert 'id="timeline"' in page and "approval_requested" in page
        _, pending, _ = await bob.get("/ui/pending")
        assert incident in pending and "restart &lt;b&gt;now&lt;/b&gt;?" in pending
        status, missing, _ = await bob.get("/ui/incidents/incident-nope")
        assert status == 404 and "incident-nope" in missing

        vote = {"decision": "approve", "step": "strict", "comment": "go"}
        status, page, _ = await bob.post(f"/ui/incidents/{incident}/approvals", vote)
        assert status == 403 and "CSRF" in page
        status, page, _ = await bob.post(f"/ui/incidents/{incident}/approvals",
                                         {**vote, "csrf": csrf_token(tokens["mallory"])})
        assert status == 403, "another person's form token is not bob's"
        state = await incidents.show_incident(client, incident)
        assert state["pending_approvals"][0]["votes"] == [], "no refused form voted"

        _, page, _ = await mallory.get(f"/ui/incidents/{incident}")
        status, page, _ = await mallory.post(f"/ui/incidents/{incident}/approvals", {**vote, "csrf": form_csrf(page)})
        assert status == 409 and "&#x27;mallory&#x27; may not approve step &#x27;strict&#x27;" in page

        _, page, _ = await bob.get(f"/ui/incidents/{incident}")
        status, _, response = await bob.post(f"/ui/incidents/{incident}/approvals", {**vote, "csrf": form_csrf(page)})
        assert status == 303 and response.headers["Location"] == f"/ui/incidents/{incident}"
        state = await eventually(lambda: incidents.show_incident(client, incident),
                                 lambda s: s["outcome"] == "succeeded")
        assert state["approvals"][0]["approver"] == "bob", "the worker requiring verified people took the vote"

        status, page, _ = await bob.get(f"/ui/incidents/{incident}")
        assert status == 200 and "mitigated" in page and 'id="review"' in page and 'value="approve"' not in page


async def test_the_incident_page_reads_the_history_when_no_worker_answers(
        web_receiver: RunningReceiver, client: Client, tokens: dict[str, str]) -> None:
    started = await incidents.start_incident(client, compile_text(GATED, "web-gated.yaml"),
                                             key=uuid.uuid4().hex[:10], task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
                                             started_by="carol", severity="SEV2")
    web = await browsing(web_receiver)
    async with web.session:
        await web.sign_in(tokens["bob"])
        status, page, _ = await web.get(f"/ui/incidents/{started.incident_id}")
        assert status == 200 and "no worker polls task queue" in page and "from history" in page
        assert "SEV2" in page and "web-gated" in page
    await incidents.cancel_incident(client, started.incident_id)


async def test_reject_from_the_pending_page_is_the_signed_in_persons_vote(
        web_receiver: RunningReceiver, client: Client, tokens: dict[str, str]) -> None:
    incident = await hostile_incident(web_receiver, client)
    web = await browsing(web_receiver)
    async with web.session:
        await web.sign_in(tokens["bob"])
        _, page, _ = await web.get("/ui/pending")
        assert f'action="/ui/incidents/{incident}/approvals"' in page
        status, _, _ = await web.post(f"/ui/incidents/{incident}/approvals",
                                      {"decision": "reject", "step": "strict", "comment": "not now",
                                       "csrf": form_csrf(page), "approver": "alice"})
        assert status == 303, "a form field naming someone else is not read: the vote is the signed-in person's"
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["approvals"])
    assert state["approvals"][0] | {"at": None} == {"approver": "bob", "approve": False, "comment": "not now",
                                                     "step": "strict", "at": None}
    assert state["steps"].get("fix") is None, "rejected: the step it guarded never ran"


async def test_a_sign_in_jwt_signs_in_like_a_personal_token(
        web_receiver: RunningReceiver, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(PROVIDER_KEYS))
    people = tmp_path / "people-oidc.yaml"
    people.write_text("groups: {sre: [bob]}\npeople:\n  bob: {oidc: [bob@example.com]}\n")
    for name, value in {"INCIDENTCTL_PEOPLE": str(people), "INCIDENTCTL_OIDC_ISSUER": ISSUER,
                        "INCIDENTCTL_OIDC_AUDIENCE": AUDIENCE, "INCIDENTCTL_OIDC_JWKS_URL": str(keys)}.items():
        monkeypatch.setenv(name, value)
    incident = await hostile_incident(web_receiver, client)
    web = await browsing(web_receiver)
    async with web.session:
        _, page, _ = await web.get("/ui/login")
        status, page, _ = await web.post("/ui/login", {"token": sign_in_jwt(key=STRANGER), "csrf": form_csrf(page)})
        assert status == 401 and "sign-in token refused" in page
        status, page, _ = await web.post("/ui/login", {"token": sign_in_jwt("eve@example.com"),
                                                       "csrf": form_csrf(page)})
        assert status == 403 and "belongs to nobody in the people file" in page
        await web.sign_in(sign_in_jwt())
        _, page, _ = await web.get(f"/ui/incidents/{incident}")
        assert "signed in as <b>bob</b>" in page
        status, _, _ = await web.post(f"/ui/incidents/{incident}/approvals",
                                      {"decision": "approve", "step": "strict", "csrf": form_csrf(page)})
        assert status == 303
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["approvals"])
    assert state["approvals"][0]["approver"] == "bob" and state["approvals"][0]["approve"] is True


def test_the_report_chart_draws_each_groups_times_to_scale() -> None:
    from incidentctl.intake.web_report import chart_svg

    groups = [{"group": "SEV1", "incidents": 2, "mtta_n": 2, "mtta_p50_s": 60.0, "mtta_p90_s": 120.0,
               "mttr_n": 2, "mttr_p50_s": 600.0, "mttr_p90_s": 900.0},
              {"group": "SEV3", "incidents": 1, "mttr_n": 1, "mttr_p50_s": 300.0, "mttr_p90_s": 300.0}]
    svg = chart_svg({"groups": groups})
    heights = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'<rect class="bar (\w+)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', svg)}
    bars = re.findall(r'<rect class="bar (\w+)"', svg)
    assert bars == ["mtta", "mttr", "mttr"], "a time nobody measured gets no bar"
    assert "min (p50, whisker to p90)" in svg and "SEV1 (2)" in svg and "SEV3 (1)" in svg
    assert heights["mttr"] > 0
    tall = [float(h) for h in re.findall(r'class="bar mttr"[^>]*height="([\d.]+)"', svg)]
    assert abs(tall[0] / tall[1] - 2.0) < 0.01, "600 s is drawn twice as tall as 300 s"
    assert "No incident in this period" in chart_svg({"groups": [{"group": "all", "incidents": 0}]})


async def test_the_report_page_charts_the_periods_incidents(
        web_receiver: RunningReceiver, client: Client, tokens: dict[str, str]) -> None:
    incident = await hostile_incident(web_receiver, client)
    web = await browsing(web_receiver)
    async with web.session:
        await web.sign_in(tokens["bob"])
        _, page, _ = await web.get(f"/ui/incidents/{incident}")
        await web.post(f"/ui/incidents/{incident}/approvals", {"decision": "approve", "step": "strict",
                                                                "csrf": form_csrf(page)})
        # Mitigated by its runbook; its alert still fires, so resolving is later: its time to mitigate is drawn.
        await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "mitigated")
        status, page, _ = await web.get("/ui/report?since=1h&by=runbook")
        assert status == 200 and '<svg id="mttr-chart"' in page and 'class="bar mttm"' in page
        assert "web-gated" in page and 'id="report"' in page
        status, page, _ = await web.get("/ui/report?since=yesterday-ish")
        assert status == 422 and 'class="error"' in page
        status, page, _ = await web.get("/ui/report?by=" + HOSTILE)
        assert status == 422 and HOSTILE not in page
