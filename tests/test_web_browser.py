"""The web page in a real browser (Debian's chromium, headless, over the DevTools protocol): a person signs in,
sees the incident with its hostile alert labels as text, approves from the page, and the worker that requires
verified people takes the vote; a screenshot of the page is checked and kept in the test's tmp dir."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.intake.runner import RunningReceiver
from tests.chromium_cdp import CHROMIUM, HEIGHT, WIDTH, Chromium, start_chromium
from tests.conftest import eventually
from tests.web_ui_setup import HOSTILE, hostile_incident

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed here (apt-get install -y chromium; "
                             "scripts/setup.sh installs it when run as root)")
HEADER_COLOUR = (0x1D, 0x27, 0x33)  # the page header's background (web_pages.STYLE)


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Chromium]:
    browser = await start_chromium(tmp_path / "chromium")
    yield browser
    await browser.stop()


def check_screenshot(path: Path) -> None:
    with Image.open(path) as shot:
        assert shot.format == "PNG" and shot.size == (WIDTH, HEIGHT), shot.size
        rgb = shot.convert("RGB")
        colours = rgb.getcolors(maxcolors=WIDTH * HEIGHT) or []
        assert len(colours) > 20, f"a blank or nearly blank page: {len(colours)} colours"
        assert rgb.getpixel((3, 3)) == HEADER_COLOUR, "the page's own header, styled, at the top"


async def test_a_person_signs_in_and_approves_from_the_page_in_chromium(
        web_receiver: RunningReceiver, client: Client, tokens: dict[str, str], chromium: Chromium,
        tmp_path: Path) -> None:
    incident = await hostile_incident(web_receiver, client)
    page = f"{web_receiver.url}/ui/incidents/{incident}"
    await chromium.navigate(page)
    await chromium.wait_for("document.getElementById('token') !== null")
    await chromium.evaluate(f"document.getElementById('token').value = {json.dumps(tokens['bob'])}; "
                            "document.getElementById('sign-in').click(); true")
    await chromium.wait_for("document.querySelector('button.approve') !== null")
    assert await chromium.evaluate("location.href") == page, "back where the sign-in started"
    assert await chromium.evaluate("document.cookie") == "", "the session cookie is HttpOnly: scripts never see it"
    labels = await chromium.evaluate("document.getElementById('alerts').innerText")
    assert HOSTILE in labels, "the hostile label shows as text"
    assert await chromium.evaluate("document.scripts.length") == 1, "only our own script, none from a label"

    check_screenshot(await chromium.screenshot(tmp_path / "incident-waiting.png"))

    await chromium.evaluate("document.querySelector('input[name=comment]').value = 'from the browser'; "
                            "document.querySelector('button.approve').click(); true")
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["outcome"] == "succeeded")
    assert state["approvals"] == [{**state["approvals"][0], "approver": "bob", "approve": True,
                                   "comment": "from the browser"}]
    # The page shows what the worker did: it reloads after the vote, and its live part polls while it runs.
    await chromium.wait_for("document.getElementById('review') !== null && "
                            "document.querySelector('button.approve') === null")
    check_screenshot(await chromium.screenshot(tmp_path / "incident-approved.png"))


async def test_the_open_page_follows_the_incident_and_links_from_elsewhere_keep_the_session(
        web_receiver: RunningReceiver, client: Client, tokens: dict[str, str], chromium: Chromium) -> None:
    incident = await hostile_incident(web_receiver, client)
    page = f"{web_receiver.url}/ui/incidents/{incident}"
    await chromium.navigate(page)
    await chromium.wait_for("document.getElementById('token') !== null")
    await chromium.evaluate(f"document.getElementById('token').value = {json.dumps(tokens['mallory'])}; "
                            "document.getElementById('sign-in').click(); true")
    await chromium.wait_for("document.querySelector('button.approve') !== null")
    await chromium.evaluate("window.sameDocument = true")
    # Someone else approves elsewhere (with their token, over the JSON endpoint): the open page catches up.
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{web_receiver.url}/incidents/{incident}/approvals", json={"decision": "approve"},
                                headers={"Authorization": f"Bearer {tokens['bob']}"}) as response:
            assert response.status == 200, await response.text()
    await chromium.wait_for("document.querySelector('button.approve') === null && "
                            "document.getElementById('timeline').innerText.includes('approval_decided')")
    assert await chromium.evaluate("window.sameDocument === true"), "updated in place, not reloaded"

    # A link on another site (a chat message) arrives without the SameSite=Strict cookie; the page reloads itself
    # from here once, with the cookie, instead of asking to sign in again.
    link = f'<a id="link" href="{web_receiver.url}/ui/pending">pending</a>'
    await chromium.navigate("data:text/html," + link)
    await chromium.wait_for("document.getElementById('link') !== null")
    await chromium.evaluate("document.getElementById('link').click(); true")
    await chromium.wait_for("location.pathname === '/ui/pending' && document.querySelector('header') !== null && "
                            "document.querySelector('header').innerText.includes('signed in as mallory')")
