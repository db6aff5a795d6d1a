"""The Slack stand-in playing Slack's client: the page's endpoints drive the real gateway.

The stand-in is connected to a real gateway (aiohttp + Bolt, on a free loopback port,
against moto over HTTP and the stand-in's own Web API), and the tests call the same
``/_standin/client/*`` endpoints the page's script calls: type a slash command, use the
modal the gateway opens, click a button the notifier would post. What the gateway did is
asserted where it shows: the stand-in's modal and channel, and the events on the queues.

A second, recording app (a tiny aiohttp server) checks what the stand-in sends, byte for
byte against the gateway's own signature check, and plays an app that fails or answers
with each of Slack's ``response_action`` values. One test renders the page in headless
Chromium and takes screenshots (kept in docs/img/ when TOILKIT_SCREENSHOT_DIR=docs/img).

Work the gateway does after its ack is awaited with ``service.after_ack.join()``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from services.gateway.service import GatewayService
from shared.aws import AwsClients
from shared.runtime import Runtime
from shared.slack.actions import Action, encode_claim_value
from shared.slack.blocks import actions, button, section
from shared.slack.signing import signature_problem
from shared.topology import BootstrapReport
from tests import gateway_harness
from tests.browser import chromium, chromium_executable
from tests.gateway_harness import (
    ephemeral_texts,
    events_on,
    serving,
    standin_settings,
)
from tests.support import eventually
from toilkit.standins.slack import REQUIRED_FIELD_MESSAGE, SlackStandin

SECRET = "2b1f0c8e9d7a6b5c4d3e2f1a0b9c8d7e"
ALICE = "U0ALICE001"  # in @sre (S0SRE00001)
BOB = "U0BOB00002"  # in @sre
CHANNEL = "#toilkit"
REPO_ROOT = Path(__file__).resolve().parents[2]

CATALOG = (
    "commands:"
    + gateway_harness.BACKFILL_COMMAND
    + """    environments:
      staging:
        allowed: {usergroups: [S0SRE00001]}
"""
    + gateway_harness.ECHO_COMMAND
)

GOOD_FORM = {
    "command": {"run_pick_command": "backfill"},
    "environment": {"value": "staging"},
    "param:since": {"value": "2024-05-01"},
    "param:limit": {"value": "250"},
    "param:mode": {"value": "fast"},
    "param:notify": {"value": BOB},
    "param:dry_run": {"value": "false"},
    "reason": {"value": "INC-42: totals missing since the May migration"},
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def gateway(
    runtime: Runtime, standin: SlackStandin, catalog_path: Path
) -> AsyncIterator[GatewayService]:
    async with serving(runtime, standin_settings(standin, SECRET, catalog_path)) as running:
        standin.connect_app(running.events_url, SECRET)
        yield running


class Page:
    """What the page's script does, over HTTP, waiting for the app's after-ack work."""

    def __init__(self, standin: SlackStandin, gateway: GatewayService | None = None) -> None:
        self.standin = standin
        self.gateway = gateway
        self.http = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.http.close()

    async def settle(self) -> None:
        if self.gateway is not None:
            await self.gateway.after_ack.join()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.standin.base_url + path, json=body) as response:
            answer = await response.json()
        await self.settle()
        return response.status, answer

    async def command(self, text: str, user: str = ALICE) -> dict[str, Any]:
        status, answer = await self.post(
            "/_standin/client/command", {"channel": CHANNEL, "user": user, "text": text}
        )
        assert status == 200, answer
        return answer

    async def modal(self, user: str = ALICE) -> dict[str, Any] | None:
        async with self.http.get(
            self.standin.base_url + "/_standin/client/modal", params={"user": user}
        ) as response:
            assert response.status == 200
            answer = await response.json()
        modal: dict[str, Any] | None = answer["modal"]
        return modal

    async def pick(self, view_id: str, command: str, user: str = ALICE) -> dict[str, Any]:
        status, answer = await self.post(
            "/_standin/client/view_action",
            {
                "view_id": view_id,
                "user": user,
                "block_id": "command",
                "action_id": "run_pick_command",
                "values": {"command": {"run_pick_command": command}},
            },
        )
        assert (status, answer) == (200, {"ok": True})
        return answer

    async def submit(
        self, view_id: str, values: dict[str, Any], user: str = ALICE
    ) -> dict[str, Any]:
        status, answer = await self.post(
            "/_standin/client/view_submit", {"view_id": view_id, "user": user, "values": values}
        )
        assert status == 200, answer
        return answer

    async def click(self, message_ts: str, action_id: str, user: str = ALICE) -> dict[str, Any]:
        status, answer = await self.post(
            "/_standin/client/button",
            {"channel": CHANNEL, "user": user, "message_ts": message_ts, "action_id": action_id},
        )
        assert status == 200, answer
        return answer

    async def fragment(self, user: str = ALICE) -> str:
        async with self.http.get(
            self.standin.base_url + "/_standin/fragment", params={"channel": CHANNEL, "user": user}
        ) as response:
            return await response.text()


@pytest.fixture
async def page(standin: SlackStandin, gateway: GatewayService) -> AsyncIterator[Page]:
    driver = Page(standin, gateway)
    yield driver
    await driver.close()


async def open_form(page: Page, command: str, user: str = ALICE) -> dict[str, Any]:
    """``/toil run``, then pick ``command``: the modal showing that command's form."""
    assert await page.command("/toil run", user) == {"ok": True, "shown": None}
    opened = await page.modal(user)
    assert opened is not None
    await page.pick(opened["view"]["id"], command, user)
    modal = await page.modal(user)
    assert modal is not None
    return modal


# --------------------------------------------------------------------------- the gateway


async def test_a_typed_slash_command_opens_the_catalogs_modal(
    page: Page, standin: SlackStandin
) -> None:
    answer = await page.command("/toil run")

    assert answer == {"ok": True, "shown": None}, "the gateway acks /toil run with nothing"
    [opened] = standin.calls("views.open")
    assert opened.ok, "the trigger id the stand-in issued with the command is accepted"
    modal = await page.modal()
    assert modal is not None and modal["depth"] == 1
    view = modal["view"]
    assert view["callback_id"] == "toil_run"
    picker = view["blocks"][0]["element"]
    assert [option["value"] for option in picker["options"]] == ["backfill", "echo"]
    assert await page.modal(BOB) is None, "the modal is Alice's"


async def test_picking_a_command_updates_the_modal_to_its_form(page: Page) -> None:
    modal = await open_form(page, "backfill")

    assert gateway_harness.input_types(modal["view"]) == gateway_harness.BACKFILL_FORM_INPUTS
    html = await page.fragment()
    assert 'class="modal live-modal"' in html
    assert "<textarea" in html, "the multiline reason is a text area"
    assert 'type="number"' in html and 'type="radio"' in html


async def test_slack_refuses_a_form_with_a_required_field_empty_without_asking_the_app(
    page: Page, aws: AwsClients, topology: BootstrapReport
) -> None:
    modal = await open_form(page, "backfill")
    values = GOOD_FORM | {"reason": {"value": None}, "param:limit": {"value": "0"}}

    answer = await page.submit(modal["view"]["id"], values)

    assert answer["checked_by"] == "slack"
    assert answer["errors"] == {
        "reason": REQUIRED_FIELD_MESSAGE,
        "param:limit": "Please enter a number between 1 and 1000.",
    }
    assert await events_on(aws, topology, "batch") == []


async def test_the_apps_validation_errors_show_under_their_fields(
    page: Page, aws: AwsClients, topology: BootstrapReport
) -> None:
    modal = await open_form(page, "backfill")

    answer = await page.submit(modal["view"]["id"], GOOD_FORM | {"param:since": {"value": "May"}})

    assert (answer["outcome"], answer["checked_by"]) == ("errors", "app")
    assert set(answer["errors"]) == {"param:since"}
    still_open = await page.modal()
    assert still_open is not None and still_open["errors"] == answer["errors"]
    html = await page.fragment()
    assert 'class="block input-block has-error"' in html
    assert 'class="field-error"' in html
    assert 'value="May"' in html, "what was typed is shown again (Slack keeps the view's state)"
    assert await events_on(aws, topology, "batch") == []


async def test_a_valid_submission_closes_the_modal_and_requests_the_run(
    page: Page, standin: SlackStandin, aws: AwsClients, topology: BootstrapReport
) -> None:
    modal = await open_form(page, "backfill")

    answer = await page.submit(modal["view"]["id"], GOOD_FORM)

    assert answer == {"ok": True, "outcome": "closed", "checked_by": "app"}
    assert await page.modal() is None
    [event] = await events_on(aws, topology, "batch")
    assert event.type == "BatchRequested"
    assert (event.command, event.environment) == ("backfill", "staging")
    assert {p.name: p.value for p in event.parameters} == {
        "since": "2024-05-01",
        "limit": "250",
        "mode": "fast",
        "notify": BOB,
        "dry_run": "false",
    }
    assert event.requested_by.slack_user_id == ALICE
    assert event.reason == GOOD_FORM["reason"]["value"]
    [confirmation] = ephemeral_texts(standin, CHANNEL, ALICE)
    assert event.run_id in confirmation
    assert event.run_id not in await page.fragment(BOB), "only Alice sees the confirmation"


async def test_an_immediate_answer_is_shown_only_to_the_person_who_typed(page: Page) -> None:
    answer = await page.command("/toil help")

    assert answer["ok"] is True
    assert "/toil run" in answer["shown"]["blocks"][0]["text"]["text"]
    assert "Only visible to you" in await page.fragment(ALICE)
    assert "/toil drift scan" in await page.fragment(ALICE)
    assert "/toil drift scan" not in await page.fragment(BOB)


async def test_clicking_im_on_it_in_a_message_claims_the_drift(
    page: Page, standin: SlackStandin, aws: AwsClients, topology: BootstrapReport
) -> None:
    notifier = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    value = encode_claim_value("network-prod", ["fp1", "fp2"])
    posted = await notifier.chat_postMessage(
        channel=CHANNEL,
        text="Drift in network-prod",
        blocks=[
            section("*Drift in network-prod*"),
            actions([button("I'm on it", Action.DRIFT_CLAIM, value=value, style="primary")]),
        ],
    )
    assert "data-message-action" in await page.fragment(BOB)

    answer = await page.click(posted["ts"], Action.DRIFT_CLAIM, BOB)

    assert answer == {"ok": True}
    [event] = await events_on(aws, topology, "detector")
    assert event.type == "DriftClaimed"
    assert (event.state, event.fingerprints) == ("network-prod", ("fp1", "fp2"))
    assert event.claimed_by.slack_user_id == BOB


async def test_a_wrong_signing_secret_shows_slacks_dispatch_failed(
    page: Page, standin: SlackStandin, gateway: GatewayService
) -> None:
    standin.connect_app(gateway.events_url, "not-the-secret")

    answer = await page.command("/toil help")

    assert answer["ok"] is False and answer["error"] == "dispatch_failed"
    assert ephemeral_texts(standin, CHANNEL, ALICE) == [
        '/toil failed with the error "dispatch_failed"'
    ]
    html = await page.fragment()
    assert "dispatch_failed" in html and "Traceback" not in html


# --------------------------------------------------------------------------- exact payloads


@dataclass
class RecordingApp:
    """An app that records what it receives and answers as told."""

    answer: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]] | None = None
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def payloads(self) -> list[dict[str, Any]]:
        bodies = [dict(parse_qsl(body.decode())) for _, body in self.received]
        return [json.loads(b["payload"]) if "payload" in b else b for b in bodies]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        if self.answer is None:
            return web.Response()
        return await self.answer(self.payloads()[-1])


@pytest.fixture
async def recording_app() -> AsyncIterator[RecordingApp]:
    recorder = RecordingApp()
    application = web.Application()
    application.router.add_post("/slack/events", recorder.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.url = f"http://127.0.0.1:{port}/slack/events"
    yield recorder
    recorder.release.set()
    await runner.cleanup()


@pytest.fixture
async def recorded(
    standin: SlackStandin, recording_app: RecordingApp
) -> AsyncIterator[tuple[Page, RecordingApp]]:
    standin.connect_app(recording_app.url, SECRET, timeout=1.0)
    driver = Page(standin)
    yield driver, recording_app
    await driver.close()


MODAL = {
    "type": "modal",
    "callback_id": "pick",
    "title": {"type": "plain_text", "text": "Pick"},
    "submit": {"type": "plain_text", "text": "Go"},
    "blocks": [
        {
            "type": "input",
            "block_id": "when",
            "label": {"type": "plain_text", "text": "When"},
            "element": {"type": "datepicker", "action_id": "date"},
        },
        {
            "type": "input",
            "block_id": "what",
            "optional": True,
            "label": {"type": "plain_text", "text": "What"},
            "element": {
                "type": "checkboxes",
                "action_id": "boxes",
                "options": [
                    {"text": {"type": "plain_text", "text": "A"}, "value": "a"},
                    {"text": {"type": "plain_text", "text": "B"}, "value": "b"},
                ],
            },
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "static_select",
                    "action_id": "size",
                    "options": [{"text": {"type": "plain_text", "text": "L"}, "value": "l"}],
                }
            ],
        },
    ],
}


async def open_recorded_modal(standin: SlackStandin, user: str = ALICE) -> str:
    """A modal opened by the app for ``user`` (with a trigger the stand-in issued)."""
    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    response = await client.views_open(trigger_id=standin.issue_trigger(user), view=MODAL)
    view_id: str = response["view"]["id"]
    return view_id


async def test_requests_are_signed_and_shaped_as_slack_sends_them(
    recorded: tuple[Page, RecordingApp], standin: SlackStandin
) -> None:
    page, app = recorded

    await page.command("/toil drift network-prod", BOB)

    [(headers, body)] = app.received
    problem = signature_problem(
        SECRET,
        body,
        [headers["X-Slack-Request-Timestamp"]],
        [headers["X-Slack-Signature"]],
        time.time(),
    )
    assert problem is None
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    [form] = app.payloads()
    assert form["command"] == "/toil" and form["text"] == "drift network-prod"
    assert (form["user_id"], form["user_name"], form["channel_name"]) == (BOB, "bob", "toilkit")
    assert form["team_id"] == standin.team_id
    assert form["response_url"].startswith(standin.base_url + "/_standin/response/")
    assert form["trigger_id"]


async def test_a_button_click_is_a_block_actions_payload_with_message_and_response_url(
    recorded: tuple[Page, RecordingApp], standin: SlackStandin
) -> None:
    page, app = recorded
    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    posted = await client.chat_postMessage(
        channel=CHANNEL,
        text="Run r1 is running",
        blocks=[actions([button("Cancel run", "batch_cancel", value="r1", style="danger")])],
    )

    assert await page.click(posted["ts"], "batch_cancel", BOB) == {"ok": True}

    [payload] = app.payloads()
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == BOB and payload["team"]["id"] == standin.team_id
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": posted["channel"],
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == posted["channel"]
    assert payload["message"]["ts"] == posted["ts"]
    [action] = payload["actions"]
    assert (action["type"], action["action_id"], action["value"]) == (
        "button",
        "batch_cancel",
        "r1",
    )
    assert action["block_id"] == payload["message"]["blocks"][0]["block_id"], (
        "Slack reports the block id it generated for a block without one"
    )
    assert payload["trigger_id"] and payload["response_url"]


async def test_later_replies_through_the_response_url_show_to_the_person(
    recorded: tuple[Page, RecordingApp], standin: SlackStandin
) -> None:
    page, app = recorded
    await page.command("/toil runs", BOB)
    [form] = app.payloads()
    webhook = AsyncWebhookClient(form["response_url"])

    statuses = [(await webhook.send(text=f"reply {n}")).status_code for n in range(6)]

    assert statuses == [200] * 5 + [404], "a response_url takes five messages"
    assert ephemeral_texts(standin, CHANNEL, BOB) == [f"reply {n}" for n in range(5)]
    assert ephemeral_texts(standin, CHANNEL, ALICE) == []


async def test_a_response_url_refuses_a_payload_that_is_not_a_message(
    recorded: tuple[Page, RecordingApp],
) -> None:
    page, app = recorded
    await page.command("/toil runs", BOB)
    [form] = app.payloads()

    async with aiohttp.ClientSession() as http:
        for payload in ("[1, 2]", '"text"', "{not json"):
            async with http.post(form["response_url"], data={"payload": payload}) as response:
                assert (response.status, await response.text()) == (400, "invalid_payload")


async def test_modal_state_values_are_reported_as_slack_reports_them(
    recorded: tuple[Page, RecordingApp], standin: SlackStandin
) -> None:
    page, app = recorded
    view_id = await open_recorded_modal(standin)

    await page.post(
        "/_standin/client/view_action",
        {
            "view_id": view_id,
            "user": ALICE,
            "block_id": "what",
            "action_id": "boxes",
            "values": {"when": {"date": "2024-06-01"}, "what": {"boxes": ["b"]}},
        },
    )
    answer = await page.submit(view_id, {"when": {"date": "2024-06-02"}, "what": {"boxes": []}})

    assert answer == {"ok": True, "outcome": "closed", "checked_by": "app"}
    action_payload, submission = app.payloads()
    assert action_payload["container"] == {"type": "view", "view_id": view_id}
    assert action_payload["actions"][0]["selected_options"] == [
        {"text": {"type": "plain_text", "text": "B"}, "value": "b"}
    ]
    size_block = submission["view"]["blocks"][2]["block_id"]
    assert submission["type"] == "view_submission"
    assert submission["view"]["state"]["values"] == {
        "when": {"date": {"type": "datepicker", "selected_date": "2024-06-02"}},
        "what": {"boxes": {"type": "checkboxes", "selected_options": []}},
        size_block: {"size": {"type": "static_select", "selected_option": None}},
    }


async def test_update_push_and_clear_response_actions_are_honoured(
    recorded: tuple[Page, RecordingApp], standin: SlackStandin
) -> None:
    page, app = recorded
    answers = iter(
        [
            {
                "response_action": "update",
                "view": MODAL | {"title": {"type": "plain_text", "text": "Updated"}},
            },
            {
                "response_action": "push",
                "view": MODAL | {"title": {"type": "plain_text", "text": "Pushed"}},
            },
            {"response_action": "clear"},
        ]
    )

    async def answer(payload: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(next(answers))

    app.answer = answer
    view_id = await open_recorded_modal(standin)
    date = {"when": {"date": "2024-06-02"}}

    assert (await page.submit(view_id, date))["outcome"] == "updated"
    updated = await page.modal()
    assert updated is not None and updated["view"]["title"]["text"] == "Updated"
    pushed = await page.submit(view_id, date)
    assert pushed["outcome"] == "pushed"
    on_top = await page.modal()
    assert on_top is not None and on_top["depth"] == 2
    assert on_top["view"]["title"]["text"] == "Pushed"
    assert (await page.submit(pushed["view_id"], date))["outcome"] == "cleared"
    assert await page.modal() is None


async def test_an_app_that_fails_or_does_not_answer_shows_slacks_messages(
    recorded: tuple[Page, RecordingApp], standin: SlackStandin
) -> None:
    page, app = recorded

    async def fail(payload: dict[str, Any]) -> web.StreamResponse:
        if payload.get("command") == "/slow":
            await app.release.wait()
        return web.Response(status=500, text="<html>Internal Server Error</html>")

    app.answer = fail
    view_id = await open_recorded_modal(standin)

    failed = await page.command("/toil help")
    slow = await page.command("/slow")
    submitted = await page.submit(view_id, {"when": {"date": "2024-06-02"}})

    assert (failed["error"], slow["error"]) == ("dispatch_failed", "operation_timeout")
    assert ephemeral_texts(standin, CHANNEL, ALICE) == [
        '/toil failed with the error "dispatch_failed"',
        '/slow failed with the error "operation_timeout"',
    ]
    assert submitted["ok"] is False
    modal = await page.modal()
    assert modal is not None and modal["notice"] == "This app responded with Status Code 500."


async def test_an_app_that_is_not_listening_gets_dispatch_failed(standin: SlackStandin) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    standin.connect_app(f"http://127.0.0.1:{closed_port}/slack/events", SECRET)
    page = Page(standin)
    try:
        answer = await page.command("/toil run")
        refused = await page.post(
            "/_standin/client/command", {"channel": CHANNEL, "user": ALICE, "text": "toil run"}
        )
    finally:
        await page.close()

    assert answer["error"] == "dispatch_failed"
    assert ephemeral_texts(standin, CHANNEL, ALICE) == [
        '/toil failed with the error "dispatch_failed"'
    ]
    assert refused[0] == 400 and refused[1]["error"] == "not_a_command"


# --------------------------------------------------------------------------- the page


@pytest.mark.skipif(chromium_executable() is None, reason="no chromium on this machine")
async def test_a_person_runs_a_batch_and_claims_a_drift_from_the_page_in_a_browser(
    page: Page,
    standin: SlackStandin,
    aws: AwsClients,
    topology: BootstrapReport,
    tmp_path: Path,
) -> None:
    notifier = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    await notifier.chat_postMessage(
        channel=CHANNEL,
        text="Drift in network-prod",
        blocks=[
            section("*Drift in network-prod*: `aws_security_group.web` changed outside Terraform"),
            actions(
                [
                    button(
                        "I'm on it",
                        Action.DRIFT_CLAIM,
                        value=encode_claim_value("network-prod", ["fp1"]),
                        style="primary",
                    )
                ]
            ),
        ],
    )
    # A test run leaves the tree alone; TOILKIT_SCREENSHOT_DIR=docs/img renews the docs' images.
    images = Path(os.environ.get("TOILKIT_SCREENSHOT_DIR") or tmp_path / "screenshots")
    await asyncio.to_thread(images.mkdir, parents=True, exist_ok=True)
    composer = "form.composer input"
    modal = "form.live-modal"

    async with chromium(tmp_path / "chromium") as browser:
        await browser.open(f"{standin.base_url}/?channel=%23toilkit&user={ALICE}")
        await browser.type_into(composer, "/toil help")
        await browser.click("form.composer button[type=submit]")
        await browser.wait_for(
            "document.querySelector('.messages').innerText.includes('drift scan')"
        )

        await browser.type_into(composer, "/toil run")
        await browser.click("form.composer button[type=submit]")
        await browser.wait_for(f"!!document.querySelector({json.dumps(modal)})")
        await browser.choose(".el[data-block-id=command] select", "backfill")
        since = ".el[data-block-id='param:since'] input"
        await browser.wait_for(f"!!document.querySelector({json.dumps(since)})")
        await browser.type_into(since, "May")
        await browser.type_into(".el[data-block-id=reason] textarea", "INC-42: totals missing")
        await browser.click(f"{modal} button[type=submit]")
        error = await browser.wait_for(
            "document.querySelector('.field-error') && document.querySelector('.field-error').innerText"
        )
        await browser.screenshot(images / "standin-modal.png")
        assert "pattern" in error or "match" in error

        await browser.evaluate(f"document.querySelector({json.dumps(since)}).select()")
        await browser.type_into(since, "2024-05-01")
        await browser.click(f"{modal} button[type=submit]")
        await browser.wait_for(f"!document.querySelector({json.dumps(modal)})")
        # The modal closes on the ack; the request is published after it.
        await page.settle()
        [requested] = await events_on(aws, topology, "batch")
        await browser.wait_for(
            f"document.querySelector('.messages').innerText.includes({json.dumps(requested.run_id)})"
        )

        await browser.click("[data-message-action]")

        async def claimed() -> list[Any]:
            return await events_on(aws, topology, "detector")

        [claim] = await eventually(claimed, timeout=60)
        # The claim has no reply of its own (the notifier updates the drift message).
        await browser.wait_for("!document.getElementById('app').classList.contains('busy')")
        await browser.screenshot(images / "standin-channel.png")

    assert requested.type == "BatchRequested"
    assert {p.name: p.value for p in requested.parameters}["since"] == "2024-05-01"
    assert requested.reason == "INC-42: totals missing"
    assert requested.requested_by.slack_user_id == ALICE
    assert (claim.type, claim.claimed_by.slack_user_id) == ("DriftClaimed", ALICE)
