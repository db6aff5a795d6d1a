"""Headless Chromium over the DevTools protocol, for the tests that use the stand-in's page
as a person does (type, click, screenshot). Nothing to install beyond a ``chromium``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import eventually


def chromium_executable() -> str | None:
    """The headless browser the page tests drive, if this machine has one."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Headless Chromium driven over the DevTools protocol (a websocket; nothing to install).

    The page is used as a person uses it: text is typed with ``Input.insertText`` into the
    focused field and buttons are clicked, so the page's own script does the rest.
    """

    def __init__(self, process: asyncio.subprocess.Process, page_socket: Any) -> None:
        self.process = process
        self.socket = page_socket
        self._ids = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._ids += 1
        await self.socket.send_json({"id": self._ids, "method": method, "params": params})
        while True:
            message = await self.socket.receive_json()
            if message.get("id") == self._ids:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def wait_for(self, expression: str) -> Any:
        async def check() -> Any:
            return await self.evaluate(expression)

        return await eventually(check, timeout=60, every=0.1)

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for(
            f"document.readyState === 'complete' && location.href === {json.dumps(url)}"
        )

    async def type_into(self, selector: str, text: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", text=text)

    async def click(self, selector: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def choose(self, selector: str, value: str) -> None:
        """Pick an option of a select (a native popup cannot be clicked headless)."""
        await self.evaluate(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)});"
            f" s.value = {json.dumps(value)};"
            " s.dispatchEvent(new Event('change', { bubbles: true })); })()"
        )

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Browser]:
    executable = chromium_executable()
    assert executable is not None
    process = await asyncio.create_subprocess_exec(
        executable,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--window-size=1400,900",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        endpoint = None
        async with asyncio.timeout(120):
            while endpoint is None:
                line = (await process.stderr.readline()).decode(errors="replace")
                assert line, "chromium exited before it listened"
                found = re.search(r"DevTools listening on ws://([^/\s]+)/", line)
                endpoint = found.group(1) if found else None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{endpoint}/json/list") as response:
                targets = await response.json()
            page_target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page_target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Browser(process, ws)
    finally:
        process.kill()
        await process.wait()
