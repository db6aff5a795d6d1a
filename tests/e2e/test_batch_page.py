"""Re-run with edits and break-glass, clicked in headless Chromium on the stand-in's page.

The same stack as the other batch end-to-end tests (gateway, batch, notifier, the Slack
stand-in as Slack, the local runner); here a person uses the page: clicks "Edit and run
again" on a finished run, changes a value in the prefilled form and submits; types
``/toil run``, fills the form for production, ticks **Break glass** with a reason and
submits. (Preview -> approve is clicked in a browser by ``tests/e2e/test_up.py``: the drift
report's Revert is previewed and approved on the page.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from shared.slack.actions import Action
from tests.browser import Browser, chromium, chromium_executable
from tests.e2e.batch_stack import (
    ALICE,
    BOB,
    SECRET,
    Person,
    Stack,
    buttons_of,
    finished,
    shown,
    status_of,
)
from tests.support import eventually

pytestmark = pytest.mark.skipif(chromium_executable() is None, reason="no chromium here")

INCIDENT = "INC-77: search is empty for every customer since 10:02"


@pytest.fixture(scope="module", autouse=True)
def page_plays_slack(stack: Stack) -> None:
    """The page plays Slack's client for the gateway (clicks and forms reach it signed)."""
    stack.standin.connect_app(stack.gateway.events_url, SECRET)


async def in_page(browser: Browser, stack: Stack, channel: str, user: str) -> None:
    await browser.open(f"{stack.standin.base_url}/?channel=%23{channel}&user={user}")


async def idle(browser: Browser) -> None:
    await browser.wait_for("!document.getElementById('app').classList.contains('busy')")


async def replace_text(browser: Browser, selector: str, text: str) -> None:
    await browser.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
    await browser.type_into(selector, text)


async def pick_command(browser: Browser, command: str, appears: str) -> None:
    """Pick ``command`` in the run form until its parameter ``appears`` (the page redraws
    a modal when the channel refreshes, which can drop a choice made in that instant)."""
    select = ".el[data-block-id=command] select"
    for _ in range(5):
        await browser.wait_for(f"!!document.querySelector({json.dumps(select)})")
        await browser.choose(select, command)
        try:
            await eventually(
                lambda: browser.evaluate(f"!!document.querySelector({json.dumps(appears)})"),
                timeout=8,
            )
            return
        except AssertionError:
            continue
    raise AssertionError(f"{command}'s form never showed {appears}")


def screenshot_dir() -> Path | None:
    folder = os.environ.get("TOILKIT_SCREENSHOT_DIR")
    return Path(folder) if folder else None


async def test_edit_and_run_again_clicked_on_the_page_runs_the_edited_values(
    stack: Stack, alice: Person, tmp_path: Path
) -> None:
    # GIVEN a finished reindex in #toilkit
    first = await alice.request("reindex-search", "staging", {"steps": "1"}, "the first reindex")
    done = await finished(stack.standin, first)
    assert Action.BATCH_RERUN_EDIT in buttons_of(done)
    modal = "form.live-modal"
    steps = ".el[data-block-id='param:steps'] input"

    async with chromium(tmp_path / "chromium") as browser:
        # WHEN Bob clicks "Edit and run again", changes steps to 2 and submits
        await in_page(browser, stack, "toilkit", BOB.id)
        button = f"[data-action-id={Action.BATCH_RERUN_EDIT.value}]"
        await browser.wait_for(f"!!document.querySelector({json.dumps(button)})")
        await browser.click(button)
        await browser.wait_for(f"!!document.querySelector({json.dumps(steps)})")
        assert await browser.evaluate(f"document.querySelector({json.dumps(steps)}).value") == "1"
        await replace_text(browser, steps, "2")
        await replace_text(browser, ".el[data-block-id=reason] textarea", "again, two steps")
        if images := screenshot_dir():
            await browser.screenshot(images / "page-rerun-edit.png")
        await browser.click(f"{modal} button[type=submit]")
        await browser.wait_for(f"!document.querySelector({json.dumps(modal)})")

    # THEN a new run ran with 2 steps and names the run it runs again
    async def rerun() -> dict[str, Any] | None:
        for message in stack.standin.messages("#toilkit"):
            text = shown(message)
            if f"run again from `{first}`" in text and status_of(message) == "Succeeded":
                return message
        return None

    message = await eventually(rerun, timeout=120)
    assert "`steps` = `2`" in shown(message)
    assert "Run again" in json.dumps(message) or Action.BATCH_RERUN in buttons_of(message)


async def test_break_glass_ticked_on_the_page_starts_at_once_and_tells_the_approvers(
    stack: Stack, alice: Person, tmp_path: Path
) -> None:
    modal = "form.live-modal"
    text_field = ".el[data-block-id='param:text'] input"
    async with chromium(tmp_path / "chromium") as browser:
        # WHEN Alice (in @sre) types /toil run, asks for echo-args in production, ticks
        # Break glass and states the incident
        await in_page(browser, stack, "toilkit", ALICE.id)
        await browser.type_into("form.composer input", "/toil run")
        await browser.click("form.composer button[type=submit]")
        await browser.wait_for(f"!!document.querySelector({json.dumps(modal)})")
        await pick_command(browser, "echo-args", text_field)
        await browser.choose(".el[data-block-id=environment] select", "production")
        await browser.type_into(text_field, "unstick the index")
        await browser.type_into(".el[data-block-id=reason] textarea", INCIDENT)
        await browser.click(".el[data-block-id=break_glass] input[type=checkbox]")
        if images := screenshot_dir():
            await browser.screenshot(images / "page-break-glass.png")
        text_of_modal = f"document.querySelector({json.dumps(modal)}).innerText"
        view_id = await browser.evaluate(f"{text_of_modal}.match(/V[0-9]+/)[0]")
        await browser.click(f"{modal} button[type=submit]")
        # This form goes (Alice's earlier request in this module, made over HTTP, may leave
        # an older modal of hers open underneath: the stand-in keeps what Slack would).
        await browser.wait_for(
            f"!document.querySelector({json.dumps(modal)}) || "
            f"!{text_of_modal}.includes({json.dumps(view_id)})"
        )
        await idle(browser)

    # THEN the approvers' channel is told at once with the reason, and the run starts
    # without waiting for an approval
    async def told() -> list[dict[str, Any]]:
        return [m for m in stack.standin.messages("#sre-approvals") if INCIDENT in shown(m)]

    [notice] = await eventually(told, timeout=120)
    assert "break-glass" in shown(notice).lower()

    async def ran() -> dict[str, Any] | None:
        for message in stack.standin.messages("#toilkit"):
            if INCIDENT in shown(message) and status_of(message) == "Succeeded":
                return message
        return None

    message = await eventually(ran, timeout=120)
    assert "skipped: break-glass" in shown(message)
