"""The drift report's new buttons and notes as the notifier draws them, and the gateway's
ignore form check (pure)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from services.gateway.drift_actions import (
    EXPIRES_BLOCK,
    REASON_BLOCK,
    IgnoreAccepted,
    IgnoreForm,
    IgnoreTarget,
    check_ignore_form,
)
from services.notifier.blocks import render_digest, render_drift, render_rescan_reply
from services.notifier.blocks.message import SlackMessage
from services.notifier.views import drift_view_of
from shared.events import Actor, TeamLines
from shared.slack.actions import Action, decode_ignore_value
from shared.slack.blocks import MAX_BLOCKS
from tests import notifier_samples as samples
from toilkit.standins.slack import block_kit_errors


def elements(message: SlackMessage) -> list[dict[str, Any]]:
    found = []
    for block in message.blocks:
        if block.get("accessory"):
            found.append(block["accessory"])
        found.extend(block.get("elements", []))
    return [e for e in found if e.get("type") == "button"]


def ignore_buttons(message: SlackMessage) -> list[dict[str, Any]]:
    return [e for e in elements(message) if e["action_id"] == Action.DRIFT_IGNORE]


def test_each_open_finding_has_an_ignore_button_and_the_report_has_both_rescans() -> None:
    event = samples.drift_detected(
        findings=(samples.security_group_drift(), samples.database_drift())
    )

    message = render_drift(drift_view_of(event))

    assert block_kit_errors(list(message.blocks), max_blocks=MAX_BLOCKS, pointer="/blocks") == []
    values = [decode_ignore_value(b["value"]) for b in ignore_buttons(message)]
    assert {v.address for v in values} == {f.address for f in event.findings}
    assert all(v.state == "prod-network" and not v.suggested for v in values)
    by_action = {e["action_id"]: e for e in elements(message)}
    assert by_action[Action.DRIFT_RESCAN_REFRESH]["value"] == "prod-network"
    assert by_action[Action.DRIFT_RESCAN_FULL]["value"] == "prod-network"


def test_a_finding_resolved_three_times_suggests_the_ignore_rule_with_one_click() -> None:
    repeated = samples.database_drift().model_copy(update={"resolved_recently": 3})
    twice = samples.security_group_drift().model_copy(update={"resolved_recently": 2})

    message = render_drift(drift_view_of(samples.drift_detected(findings=(repeated, twice))))

    suggested = [b for b in ignore_buttons(message) if b.get("style") == "primary"]
    assert len(suggested) == 1
    value = decode_ignore_value(suggested[0]["value"])
    assert (value.address, value.suggested) == (repeated.address, True)
    assert suggested[0]["text"]["text"] == "Ignore… (suggested)"
    body = json.dumps(list(message.blocks))
    assert "resolved 3 times in 30 days" in body
    assert "resolved 2 times" not in body


def test_an_expired_ignore_rule_is_noted_on_the_finding() -> None:
    back = samples.database_drift().model_copy(
        update={"ignore_expired": "ignore rule by alice expired on 2026-01-10 (vendor)"}
    )

    message = render_drift(drift_view_of(samples.drift_detected(findings=(back,))))

    assert "ignore rule by alice expired on 2026-01-10" in json.dumps(list(message.blocks))


def test_the_rescan_answer_and_the_weekly_team_lines() -> None:
    done = samples.digest().model_copy(
        update={"requested_by": Actor(name="alice", slack_user_id="U0ALICE001")}
    )
    weekly = samples.digest().model_copy(
        update={
            "team": TeamLines(
                time_to_resolve="alice 4 (median 2h 30m, p90 10h 0m)",
                came_back="2 after being resolved: aws_s3_bucket.logs in network (2 times)",
                noisiest="aws_s3_bucket.logs.tags.env in network (3 times)",
            )
        }
    )

    reply = render_rescan_reply(done)
    digest = json.dumps(list(render_digest(weekly).blocks))

    assert reply.text.startswith("Re-scan done (asked by <@U0ALICE001>)")
    assert "the scan of `prod-dns` failed" in reply.text
    scanned = done.model_copy(update={"states": done.states[:1]})
    # 2 new findings on 1 resource (a drift and its pending change): counted once.
    assert "*5* open resources (1 new) · *1* resolved" in render_rescan_reply(scanned).text
    for line in ("alice 4 (median 2h 30m, p90 10h 0m)", "Came back: 2 after", "Noisiest:"):
        assert line in digest
    assert "This week" not in json.dumps(list(render_digest(samples.digest()).blocks))


TODAY = date(2026, 3, 2)
TARGET = IgnoreTarget(state="prod", address="aws_s3_bucket.logs")


def test_the_ignore_form_accepts_today_to_90_days_and_refuses_the_rest() -> None:
    def check(expires: str | None, reason: str = "why") -> Any:
        return check_ignore_form(IgnoreForm(reason, expires, None), TARGET, today=TODAY)

    assert isinstance(check(TODAY.isoformat()), IgnoreAccepted)
    assert isinstance(check((TODAY + timedelta(days=90)).isoformat()), IgnoreAccepted)
    assert "in the past" in check((TODAY - timedelta(days=1)).isoformat())[EXPIRES_BLOCK]
    assert "At most 90 days" in check((TODAY + timedelta(days=91)).isoformat())[EXPIRES_BLOCK]
    assert "date picker" in check("next tuesday")[EXPIRES_BLOCK]
    assert "Pick the last day" in check(None)[EXPIRES_BLOCK]
    assert set(check(TODAY.isoformat(), reason="")) == {REASON_BLOCK}
