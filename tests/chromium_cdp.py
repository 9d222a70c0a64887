"""Debian's chromium, headless, driven over the DevTools protocol (a websocket, with aiohttp): a real browser for
the web page's tests without a driver of its own. Started as a local process and stopped by its PID."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium")
WIDTH, HEIGHT = 1200, 900
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class BrowserError(AssertionError):
    pass


@dataclass
class Chromium:
    process: subprocess.Popen[bytes]
    session: aiohttp.ClientSession
    page: aiohttp.ClientWebSocketResponse
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        sent = next(self.ids)
        await self.page.send_json({"id": sent, "method": method, "params": params})
        async with asyncio.timeout(60):
            while True:
                message = json.loads((await self.page.receive()).data)
                if message.get("id") == sent:  # events (no id) and other answers are not ours
                    if "error" in message:
                        raise BrowserError(f"{method}: {message['error']}")
                    return message["result"]

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """Polls `expression` in the page until it is truthy (a navigation in between is fine)."""
        deadline = asyncio.get_running_loop().time() + timeout
        last: Any = None
        while asyncio.get_running_loop().time() < deadline:
            try:
                last = await self.evaluate(expression)
            except BrowserError as exc:  # the page was between documents
                last = exc
            if last and not isinstance(last, BrowserError):
                return last
            await asyncio.sleep(0.2)
        raise BrowserError(f"{expression} never held; last: {last!r}; page: "
                           f"{await self.evaluate('location.href')}")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def stop(self) -> None:
        await self.page.close()
        await self.session.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def start_chromium(work: Path) -> Chromium:
    assert CHROMIUM, "chromium is not installed"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "chromium.log"
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={work / 'profile'}",
         f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        browser_url = await _listening(process, log)
        port = re.search(r":(\d+)/", browser_url).group(1)  # type: ignore[union-attr]
        session = aiohttp.ClientSession()
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        browser = Chromium(process, session, await session.ws_connect(page_url, max_msg_size=0))
        await browser.call("Page.enable")
        await browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                           mobile=False)
        return browser
    except BaseException:
        process.kill()
        process.wait()
        raise


async def _listening(process: subprocess.Popen[bytes], log: Path) -> str:
    for _ in range(300):
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        await asyncio.sleep(0.1)
    raise BrowserError(f"chromium did not start its DevTools endpoint: {log.read_text(errors='replace')[-2000:]}")
