"""The Slack stand-in over real HTTP, driven by slack-sdk's own clients.

Every test starts its own stand-in on a free loopback port and talks to it the way the
notifier and the gateway do: ``AsyncWebClient(base_url=standin.api_url)`` (or the sync
``WebClient`` in a thread, since it blocks the event loop the stand-in runs on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.integration.test_slack_standin_client import MODAL
from toilkit.standins.slack import FaultSpec, SlackStandin

SLACK_TS = re.compile(r"^\d{10}\.\d{6}$")


class ManualClock:
    """Wall-clock time that moves only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def standin(clock: ManualClock) -> AsyncIterator[SlackStandin]:
    server = SlackStandin(clock=clock, bot_not_in_channels=["#private-ops"])
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def slack(standin: SlackStandin) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=standin.api_url)


async def slack_error(call: Any) -> SlackApiError:
    """The SlackApiError a call raises (failing the test if it does not)."""
    with pytest.raises(SlackApiError) as raised:
        await call
    return raised.value


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# --------------------------------------------------------------------- messages


async def test_post_reply_and_update_build_the_channel_state(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    parent = await slack.chat_postMessage(
        channel="#prod-batch", text="Batch run started", blocks=[section("*started*")]
    )
    reply = await slack.chat_postMessage(
        channel="#prod-batch", thread_ts=parent["ts"], text="Finished: exit 0"
    )
    updated = await slack.chat_update(
        channel=parent["channel"], ts=parent["ts"], text="Batch run succeeded"
    )

    assert parent["ok"] and parent["channel"].startswith("C")
    assert SLACK_TS.match(parent["ts"]) and SLACK_TS.match(reply["ts"])
    assert float(reply["ts"]) > float(parent["ts"]), "ts must grow even on a frozen clock"
    assert parent["message"]["blocks"] == [section("*started*")]
    assert reply["message"]["thread_ts"] == parent["ts"]
    assert updated["ts"] == parent["ts"] and updated["text"] == "Batch run succeeded"

    [message] = standin.messages("#prod-batch")
    assert message["text"] == "Batch run succeeded"
    assert "blocks" not in message, "text without blocks drops the old blocks, as on Slack"
    assert message["edited"]["user"] == SlackStandin.bot_user_id
    assert message["reply_count"] == 1 and message["latest_reply"] == reply["ts"]
    assert [r["text"] for r in message["replies"]] == ["Finished: exit 0"]
    assert standin.messages(parent["channel"]) == standin.messages("prod-batch")

    thread = await slack.conversations_replies(channel=parent["channel"], ts=parent["ts"])
    assert [m["ts"] for m in thread["messages"]] == [parent["ts"], reply["ts"]]
    assert thread["has_more"] is False


SDK_MISSING_TEXT_WARNING = "ignore:The top-level `text` argument is missing"


@pytest.mark.filterwarnings(SDK_MISSING_TEXT_WARNING)
async def test_update_with_blocks_keeps_the_text(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel="#drift", text="Drift in prod/network")
    await slack.chat_update(channel="#drift", ts=posted["ts"], blocks=[section("resolved")])

    [message] = standin.messages("#drift")
    assert message["text"] == "Drift in prod/network"
    assert message["blocks"] == [section("resolved")]


@pytest.mark.filterwarnings(SDK_MISSING_TEXT_WARNING)
async def test_message_errors_are_slacks(standin: SlackStandin, slack: AsyncWebClient) -> None:
    posted = await slack.chat_postMessage(channel="#drift", text="hello")

    unknown_ts = await slack_error(slack.chat_update(channel="#drift", ts="1.000001", text="x"))
    orphan = await slack_error(
        slack.chat_postMessage(channel="#drift", thread_ts="1.000001", text="x")
    )
    empty = await slack_error(slack.chat_postMessage(channel="#drift", text=""))
    no_thread = await slack_error(slack.conversations_replies(channel="#drift", ts="1.000001"))

    assert unknown_ts.response["error"] == "message_not_found"
    assert orphan.response["error"] == "thread_not_found"
    assert empty.response["error"] == "no_text"
    assert no_thread.response["error"] == "thread_not_found"
    assert [m["ts"] for m in standin.messages("#drift")] == [posted["ts"]]


async def test_sync_client_sends_form_encoded_blocks(standin: SlackStandin) -> None:
    client = WebClient(token="xoxb-test", base_url=standin.api_url)
    blocks = [section(":white_check_mark: *done*")]

    response = await asyncio.to_thread(
        client.api_call,
        "chat.postMessage",
        data={"channel": "#batch", "text": "done", "blocks": json.dumps(blocks)},
    )

    assert response["ok"]
    [message] = standin.messages("#batch")
    assert message["blocks"] == blocks, "a JSON string in a form body is decoded"
    [call] = standin.calls("chat.postMessage")
    assert call.arguments == {"channel": "#batch", "text": "done", "blocks": blocks}


async def test_token_may_come_as_a_form_argument_and_is_not_recorded(
    standin: SlackStandin,
) -> None:
    client = WebClient(base_url=standin.api_url)

    response = await asyncio.to_thread(
        client.api_call, "auth.test", data={"token": "xoxb-in-the-form"}
    )

    assert response["ok"] and response["user_id"] == SlackStandin.bot_user_id
    assert response["team_id"] == SlackStandin.team_id and response["bot_id"]
    assert standin.calls("auth.test")[0].arguments == {}


async def test_ephemeral_messages_are_kept_apart(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    response = await slack.chat_postEphemeral(
        channel="#prod-batch", user="U0BOB00002", text=":x: not allowed"
    )
    stranger = await slack_error(
        slack.chat_postEphemeral(channel="#prod-batch", user="U0NOBODY00", text="x")
    )

    assert response["ok"] and SLACK_TS.match(response["message_ts"])
    assert standin.messages("#prod-batch") == []
    [ephemeral] = standin.ephemeral_messages("#prod-batch")
    assert ephemeral["ephemeral_for"] == "U0BOB00002" and ephemeral["text"] == ":x: not allowed"
    assert stranger.response["error"] == "user_not_in_channel"


# ------------------------------------------------------------------------ views


async def test_views_open_needs_a_fresh_trigger(
    standin: SlackStandin, slack: AsyncWebClient, clock: ManualClock
) -> None:
    trigger = standin.issue_trigger("U0ALICE001")
    opened = await slack.views_open(trigger_id=trigger, view=MODAL)
    reused = await slack_error(slack.views_open(trigger_id=trigger, view=MODAL))
    unknown = await slack_error(slack.views_open(trigger_id="12345.98765.abcd2358fdea", view=MODAL))
    late = standin.issue_trigger("U0ALICE001")
    clock.advance(3.5)
    expired = await slack_error(slack.views_open(trigger_id=late, view=MODAL))

    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["title"] == MODAL["title"] and opened["view"]["hash"]
    assert opened["view"]["root_view_id"] == opened["view"]["id"]
    assert reused.response["error"] == "exchanged_trigger_id"
    assert unknown.response["error"] == "invalid_trigger_id"
    assert expired.response["error"] == "expired_trigger_id"
    assert len(standin.views()) == 1


async def test_views_open_validates_the_view(standin: SlackStandin, slack: AsyncWebClient) -> None:
    long_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}

    invalid = await slack_error(
        slack.views_open(trigger_id=standin.issue_trigger(), view=long_title)
    )

    assert invalid.response["error"] == "invalid_arguments"
    assert any("/view/title" in m for m in invalid.response["response_metadata"]["messages"])
    assert standin.views() == []


async def test_views_update_checks_the_hash(standin: SlackStandin, slack: AsyncWebClient) -> None:
    opened = await slack.views_open(
        trigger_id=standin.issue_trigger(), view={**MODAL, "external_id": "run-42"}
    )
    view_id, first_hash = opened["view"]["id"], opened["view"]["hash"]
    step_two = {**MODAL, "title": {"type": "plain_text", "text": "Confirm"}}

    updated = await slack.views_update(view_id=view_id, hash=first_hash, view=step_two)
    conflict = await slack_error(slack.views_update(view_id=view_id, hash=first_hash, view=MODAL))
    by_external_id = await slack.views_update(external_id="run-42", view=MODAL)
    missing = await slack_error(slack.views_update(view_id="V0NOTHERE0", view=MODAL))

    assert updated["view"]["title"]["text"] == "Confirm"
    assert updated["view"]["hash"] != first_hash
    assert conflict.response["error"] == "hash_conflict"
    assert by_external_id["view"]["id"] == view_id
    assert missing.response["error"] == "not_found"
    [view] = standin.views()
    assert view["title"] == MODAL["title"] and view["hash"] == by_external_id["view"]["hash"]


async def test_views_push_stacks_two_views_on_a_modal(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    nothing_open = await slack_error(
        slack.views_push(trigger_id=standin.issue_trigger("U0CAROL003"), view=MODAL)
    )
    root = await slack.views_open(trigger_id=standin.issue_trigger("U0ALICE001"), view=MODAL)
    root_id = root["view"]["id"]

    pushed = [
        await slack.views_push(trigger_id=standin.issue_trigger(view_id=root_id), view=MODAL)
        for _ in range(2)
    ]
    too_deep = await slack_error(
        slack.views_push(trigger_id=standin.issue_trigger(view_id=root_id), view=MODAL)
    )

    assert nothing_open.response["error"] == "not_found"
    assert [p["view"]["root_view_id"] for p in pushed] == [root_id, root_id]
    assert pushed[1]["view"]["previous_view_id"] == pushed[0]["view"]["id"]
    assert too_deep.response["error"] == "push_limit_reached"


# ------------------------------------------------------------- directory, auth


async def test_directory_lookups(slack: AsyncWebClient) -> None:
    alice = await slack.users_info(user="U0ALICE001")
    by_email = await slack.users_lookupByEmail(email="BOB@example.com")
    sre = await slack.usergroups_users_list(usergroup="S0SRE00001")

    assert alice["user"]["name"] == "alice"
    assert alice["user"]["profile"]["email"] == "alice@example.com"
    assert by_email["user"]["id"] == "U0BOB00002"
    assert sre["users"] == ["U0ALICE001", "U0BOB00002"]
    assert (await slack_error(slack.users_info(user="U0GHOST000"))).response[
        "error"
    ] == "user_not_found"
    assert (await slack_error(slack.users_lookupByEmail(email="x@y.z"))).response[
        "error"
    ] == "users_not_found"
    assert (await slack_error(slack.usergroups_users_list(usergroup="S0NONE0000"))).response[
        "error"
    ] == "no_such_subteam"


async def test_tokens_are_checked(standin: SlackStandin) -> None:
    without = AsyncWebClient(base_url=standin.api_url)
    wrong_kind = AsyncWebClient(token="not-a-slack-token", base_url=standin.api_url)

    assert (await slack_error(without.auth_test())).response["error"] == "not_authed"
    assert (await slack_error(wrong_kind.auth_test())).response["error"] == "invalid_auth"

    async with SlackStandin(valid_tokens={"xoxb-right"}) as strict:
        right = AsyncWebClient(token="xoxb-right", base_url=strict.api_url)
        wrong = AsyncWebClient(token="xoxb-wrong", base_url=strict.api_url)
        assert (await right.auth_test())["ok"]
        error = await slack_error(wrong.chat_postMessage(channel="#drift", text="x"))
        assert error.response["error"] == "invalid_auth"
        assert strict.messages("#drift") == []


async def test_channel_errors(standin: SlackStandin, slack: AsyncWebClient) -> None:
    missing = await slack_error(slack.chat_postMessage(channel="C_MISSING", text="x"))
    unknown_name = await slack_error(slack.chat_postMessage(channel="general", text="x"))
    not_member = await slack_error(slack.chat_postMessage(channel="#private-ops", text="x"))

    assert missing.response["error"] == "channel_not_found"
    assert unknown_name.response["error"] == "channel_not_found"
    assert not_member.response["error"] == "not_in_channel"
    assert all(standin.messages(c) == [] for c in ("C_MISSING", "general", "#private-ops"))


async def test_posting_to_a_user_id_opens_a_direct_message(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel="U0ALICE001", text="your run finished")
    unknown = await slack_error(slack.chat_postMessage(channel="U0GHOST000", text="x"))

    assert posted["channel"].startswith("D")
    assert [m["text"] for m in standin.messages(posted["channel"])] == ["your run finished"]
    assert standin.messages("@alice") == standin.messages(posted["channel"])
    assert unknown.response["error"] == "channel_not_found"


async def test_configured_channels_and_no_auto_creation() -> None:
    async with SlackStandin(
        channels={"C0DRIFT001": "drift-alerts"}, auto_create_channels=False
    ) as strict:
        slack = AsyncWebClient(token="xoxb-test", base_url=strict.api_url)
        by_name = await slack.chat_postMessage(channel="#drift-alerts", text="by name")
        unknown = await slack_error(slack.chat_postMessage(channel="C0OTHER001", text="x"))

        assert by_name["channel"] == "C0DRIFT001"
        assert unknown.response["error"] == "channel_not_found"
        assert [m["text"] for m in strict.messages("C0DRIFT001")] == ["by name"]


# -------------------------------------------------------------- Block Kit limits


async def test_block_kit_limits_are_slacks(standin: SlackStandin, slack: AsyncWebClient) -> None:
    too_many = await slack_error(
        slack.chat_postMessage(channel="#drift", text="x", blocks=[section("b")] * 51)
    )
    too_long = await slack_error(
        slack.chat_postMessage(channel="#drift", text="x", blocks=[section("a" * 3001)])
    )
    long_text = await slack_error(slack.chat_postMessage(channel="#drift", text="a" * 40_001))
    at_the_limits = await slack.chat_postMessage(
        channel="#drift", text="a" * 40_000, blocks=[section("a" * 3000)] * 50
    )

    assert too_many.response["error"] == "invalid_blocks"
    assert any("[json-pointer:/blocks]" in e for e in too_many.response["errors"])
    assert too_long.response["error"] == "invalid_blocks"
    assert any("/blocks/0/text/text" in e for e in too_long.response["errors"])
    assert long_text.response["error"] == "msg_too_long"
    assert [m["ts"] for m in standin.messages("#drift")] == [at_the_limits["ts"]]
    errors = [call.error for call in standin.calls("chat.postMessage")]
    assert errors == ["invalid_blocks", "invalid_blocks", "msg_too_long", None]


async def test_blocks_that_are_not_json_are_invalid_blocks_format(
    standin: SlackStandin,
) -> None:
    client = WebClient(token="xoxb-test", base_url=standin.api_url)

    with pytest.raises(SlackApiError) as raised:
        await asyncio.to_thread(
            client.api_call,
            "chat.postMessage",
            data={"channel": "#drift", "text": "x", "blocks": "[{not json"},
        )

    assert raised.value.response["error"] == "invalid_blocks_format"


# ----------------------------------------------------------------------- faults


async def test_rate_limited_call_gets_429_with_retry_after_and_posts_nothing(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    standin.set_faults(FaultSpec(method="chat.postMessage", rate_limited=1.0, retry_after=1))

    error = await slack_error(slack.chat_postMessage(channel="#drift", text="x"))
    unaffected = await slack.users_info(user="U0ALICE001")

    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "1"
    assert error.response["error"] == "ratelimited"
    assert unaffected["ok"], "a rule for one method leaves the others alone"
    assert standin.messages("#drift") == []
    [call] = standin.calls("chat.postMessage")
    assert (call.fault, call.http_status, call.error) == ("rate_limited", 429, "ratelimited")
    assert call.arguments == {"channel": "#drift", "text": "x"}


async def test_sdk_rate_limit_handler_rides_out_429s(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    standin.set_faults(FaultSpec(rate_limited=1.0, retry_after=0, max_injections=2))
    slack.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))

    response = await slack.chat_postMessage(channel="#drift", text="posted once")

    assert response["ok"]
    assert [c.http_status for c in standin.calls()] == [429, 429, 200]
    assert [m["text"] for m in standin.messages("#drift")] == ["posted once"]


async def test_seeded_faults_repeat_and_retries_eventually_succeed(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    spec = FaultSpec(method="chat.postMessage", rate_limited=0.5, retry_after=0, seed=42)

    async def outcomes() -> list[int | None]:
        standin.reset()
        standin.set_faults(spec)
        for attempt in range(12):
            with contextlib.suppress(SlackApiError):
                await slack.chat_postMessage(channel="#drift", text=f"attempt {attempt}")
        return [call.http_status for call in standin.calls()]

    first, second = await outcomes(), await outcomes()
    assert first == second, "the same seed gives the same faults"
    assert set(first) == {200, 429}
    assert len(standin.messages("#drift")) == first.count(200)

    standin.reset()
    standin.set_faults(spec)
    slack.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=10))
    assert (await slack.chat_postMessage(channel="#drift", text="in the end"))["ok"]
    assert [m["text"] for m in standin.messages("#drift")] == ["in the end"]


async def test_server_errors_answer_5xx_without_posting(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    standin.set_faults(FaultSpec(server_error=1.0, seed=7))

    error = await slack_error(slack.chat_postMessage(channel="#drift", text="x"))

    assert error.response.status_code in (500, 503)
    assert standin.messages("#drift") == []
    [call] = standin.calls()
    assert call.fault == "server_error" and call.response is None


async def test_dropped_connection_raises_a_connection_error(
    standin: SlackStandin, slack: AsyncWebClient
) -> None:
    standin.set_faults(FaultSpec(drop=1.0))

    with pytest.raises(aiohttp.ClientConnectionError):
        await slack.chat_postMessage(channel="#drift", text="x")

    assert standin.messages("#drift") == []
    calls = standin.calls()
    # slack-sdk's async client retries a lost connection once by default.
    assert len(calls) == 2
    assert all((c.fault, c.http_status, c.response) == ("drop", None, None) for c in calls)


async def test_slow_answer_still_posts_after_the_client_gave_up(standin: SlackStandin) -> None:
    impatient = AsyncWebClient(token="xoxb-test", base_url=standin.api_url, timeout=1)
    standin.set_faults(FaultSpec(slow=1.0, slow_seconds=1.5))

    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel="#drift", text="late but posted")
    await eventually(lambda: len(standin.messages("#drift")) == 1)

    [call] = standin.calls()
    assert call.fault == "slow" and call.ok, "a slow call is handled: why retries need idempotency"


async def test_faults_over_http(standin: SlackStandin) -> None:
    async with aiohttp.ClientSession(base_url=standin.base_url) as http:
        rejected = await http.post("/_standin/faults", json={"rate_limited": 0.8, "drop": 0.5})
        installed = await http.post(
            "/_standin/faults", json={"method": "views.open", "rate_limited": 0.2, "seed": 1}
        )
        listed = await (await http.get("/_standin/faults")).json()
        cleared = await http.delete("/_standin/faults")

        assert rejected.status == 400
        assert "must not exceed 1" in json.dumps(await rejected.json())
        assert installed.status == 200
        assert [(f["method"], f["rate_limited"]) for f in listed["faults"]] == [("views.open", 0.2)]
        assert cleared.status == 200 and standin.faults() == []


# ------------------------------------------------------------- control endpoints


async def test_calls_messages_triggers_and_reset_over_http(
    standin: SlackStandin, slack: AsyncWebClient, clock: ManualClock
) -> None:
    posted = await slack.chat_postMessage(channel="#drift", text="hello")
    await slack.chat_postMessage(channel="#drift", thread_ts=posted["ts"], text="in thread")
    await slack.users_info(user="U0ALICE001")

    async with aiohttp.ClientSession(base_url=standin.base_url) as http:
        calls = await (await http.get("/_standin/calls")).json()
        posts = await (await http.get("/_standin/calls", params={"method": "users.info"})).json()
        channel = await (await http.get("/_standin/messages", params={"channel": "#drift"})).json()
        nowhere = await (await http.get("/_standin/messages", params={"channel": "#none"})).json()
        trigger = await (
            await http.post("/_standin/triggers", json={"user_id": "U0BOB00002"})
        ).json()
        opened = await slack.views_open(trigger_id=trigger["trigger_id"], view=MODAL)
        reset = await http.post("/_standin/reset")

    first = calls["calls"][0]
    assert set(first) == {
        "seq",
        "method",
        "arguments",
        "response",
        "http_status",
        "fault",
        "time",
    }
    assert (first["seq"], first["method"], first["time"]) == (1, "chat.postMessage", clock.now)
    assert first["arguments"] == {"channel": "#drift", "text": "hello"}
    assert first["response"]["ts"] == posted["ts"] and first["fault"] is None
    assert [c["method"] for c in posts["calls"]] == ["users.info"]
    assert channel["channel"] == {"id": posted["channel"], "name": "drift"}
    assert [r["text"] for r in channel["messages"][0]["replies"]] == ["in thread"]
    assert nowhere["messages"] == []
    assert opened["ok"]
    assert reset.status == 200
    assert standin.calls() == [] and standin.messages("#drift") == [] and standin.views() == []


# ------------------------------------------------------------------------- page


async def test_page_renders_messages_escaped(standin: SlackStandin, slack: AsyncWebClient) -> None:
    await slack.chat_postMessage(
        channel="#drift",
        text="fallback",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "Drift in prod"}},
            section(
                "&lt;script&gt;alert(1)&lt;/script&gt; *3 resources* differ, "
                "<https://example.com/plan?a=1&b=2|see the plan> <javascript:alert(1)|evil> "
                ":white_check_mark: `terraform plan` <@U0ALICE001>"
            ),
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Revert <now>"},
                    }
                ],
            },
        ],
    )
    posted = await slack.chat_postMessage(channel="#drift", text="```x < y && z```")
    await slack.chat_update(channel="#drift", ts=posted["ts"], text="```x < y && z``` _v2_")

    async with aiohttp.ClientSession(base_url=standin.base_url) as http:
        page_response = await http.get("/", params={"channel": "#drift"})
        page = await page_response.text()
        fragment = await http.get("/_standin/fragment", params={"channel": "#drift"})
        fragment_html = await fragment.text()

    assert page_response.status == 200
    assert page_response.content_type == "text/html"
    assert "Drift in prod" in page and "<b>3 resources</b>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert '<a href="https://example.com/plan?a=1&amp;b=2">see the plan</a>' in page
    assert 'href="javascript' not in page and "evil" in page
    assert "✅" in page and "<code>terraform plan</code>" in page
    assert '<span class="mention">@alice</span>' in page
    assert '<span class="button danger">Revert &lt;now&gt;</span>' in page
    assert '<pre class="code">x &lt; y &amp;&amp; z</pre>' in page and "<i>v2</i>" in page
    assert "(edited)" in page
    assert fragment.headers["X-Standin-Version"].isdigit()
    assert "<b>3 resources</b>" in fragment_html and "<html" not in fragment_html
