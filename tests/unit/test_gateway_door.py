"""The door's checks: Slack's signature over raw bytes, its 5-minute window, and the shapes
of the requests the gateway serves."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from services.gateway.ledger import request_key
from services.gateway.payloads import (
    BadPayload,
    BlockActions,
    SlashCommand,
    SslCheck,
    UrlVerification,
    ViewSubmission,
    parse_slack_body,
)
from shared.slack.signing import signature_problem, slack_signature
from toilkit.standins.slack.app_requests import (
    SlackUserRef,
    block_actions_payload,
    button,
    interaction_body,
    slash_command_body,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000
FORM = "application/x-www-form-urlencoded"


def test_the_signature_is_slacks_documented_hmac() -> None:
    # Slack's documented example: v0:<timestamp>:<body>, HMAC-SHA256, hex, "v0=" prefix.
    body = b"token=x&team_id=T1&text=hello"
    expected = hmac.new(SECRET.encode(), b"v0:1531420618:" + body, hashlib.sha256).hexdigest()

    assert slack_signature(SECRET, "1531420618", body) == "v0=" + expected


def test_a_correctly_signed_recent_request_passes() -> None:
    body = b"\xff raw bytes are signed as they are"
    signature = slack_signature(SECRET, str(NOW), body)

    assert signature_problem(SECRET, body, [str(NOW)], [signature], NOW + 299) is None
    assert signature_problem(SECRET, body, [str(NOW)], [signature], NOW - 299) is None


@pytest.mark.parametrize(
    ("timestamps", "signatures", "now", "problem"),
    [
        ([], ["sig"], NOW, "exactly one"),
        ([str(NOW)], [], NOW, "exactly one"),
        ([str(NOW), str(NOW)], ["a", "b"], NOW, "exactly one"),
        (["12.5"], ["x"], NOW, "not a number"),
        (["-1"], ["x"], NOW, "not a number"),
        (["1" * 20], ["x"], NOW, "not a number"),
        ([str(NOW)], ["x"], NOW + 301, "five minutes"),
        ([str(NOW)], ["x"], NOW - 301, "five minutes"),
        ([str(NOW)], ["v1=" + "a" * 64], NOW, "v0=<64 hex digits>"),
        ([str(NOW)], ["v0=" + "A" * 64], NOW, "v0=<64 hex digits>"),
        ([str(NOW)], ["v0=" + "é" * 64], NOW, "v0=<64 hex digits>"),
        ([str(NOW)], ["v0=" + "a" * 64], NOW, "does not match"),
    ],
)
def test_anything_else_is_refused_with_a_reason(
    timestamps: list[str], signatures: list[str], now: int, problem: str
) -> None:
    found = signature_problem(SECRET, b"body", timestamps, signatures, now)

    assert found is not None and problem in found


def test_a_signature_for_another_body_or_secret_does_not_match() -> None:
    signature = slack_signature(SECRET, str(NOW), b"a=1")

    assert signature_problem(SECRET, b"a=2", [str(NOW)], [signature], NOW)
    assert signature_problem("other", b"a=1", [str(NOW)], [signature], NOW)


# --------------------------------------------------------------------------- shapes


USER = SlackUserRef("U0ALICE001", "alice")


def test_slash_commands_parse_as_forms() -> None:
    body = slash_command_body(
        "drift scan payload-api", user=USER, channel_id="C1", trigger_id="1.2.3"
    )

    parsed = parse_slack_body(body.decode(), FORM)

    assert isinstance(parsed.request, SlashCommand)
    assert parsed.request.text == "drift scan payload-api"
    assert parsed.body["user_id"] == "U0ALICE001"


def test_interactions_parse_by_type() -> None:
    payload = block_actions_payload(
        button("batch_cancel", "r1"), user=USER, trigger_id="1", channel_id="C1"
    )

    parsed = parse_slack_body(interaction_body(payload).decode(), FORM)

    assert isinstance(parsed.request, BlockActions)
    assert parsed.request.action.value == "r1"
    assert parsed.body == payload


def test_view_submissions_ssl_checks_and_url_verification_parse() -> None:
    view = {"id": "V1", "type": "modal", "callback_id": "toil_run", "state": {"values": {}}}
    submission = {"type": "view_submission", "user": {"id": "U1"}, "view": view}

    assert isinstance(
        parse_slack_body(interaction_body(submission).decode(), FORM).request, ViewSubmission
    )
    assert isinstance(parse_slack_body("ssl_check=1&token=x", FORM).request, SslCheck)
    verification = json.dumps({"type": "url_verification", "challenge": "abc"})
    assert isinstance(parse_slack_body(verification, "application/json").request, UrlVerification)


@pytest.mark.parametrize(
    ("text", "content_type", "problem"),
    [
        ("", FORM, "neither"),
        ("a=1&a=2", FORM, "more than once"),
        ("no-equals-sign", FORM, "not a form"),
        ("text=%FF", FORM, "not a form"),
        ("payload=%5B1%5D", FORM, "expected an object"),
        ("payload=nope", FORM, "not JSON"),
        (urlencode({"payload": json.dumps({"type": "shortcut"})}), FORM, "unsupported interaction"),
        (
            urlencode(
                {
                    "payload": json.dumps(
                        {"type": "block_actions", "user": {"id": "U1"}, "actions": []}
                    )
                }
            ),
            FORM,
            "malformed block_actions",
        ),
        (
            urlencode(
                {
                    "payload": json.dumps(
                        {"type": "view_submission", "user": {"id": "U1"}, "view": {"id": "V"}}
                    )
                }
            ),
            FORM,
            "malformed view_submission",
        ),
        ("command=%2Ftoil", FORM, "malformed slash command"),
        ('{"type": "event_callback"}', "application/json", "unsupported JSON"),
        ("[]", "application/json", "expected an object"),
        ("command=%2Ftoil&user_id=U1", "text/plain", "content type"),
        ("command=%2Ftoil&user_id=U1", None, "content type"),
    ],
)
def test_other_bodies_are_bad_payloads(text: str, content_type: str | None, problem: str) -> None:
    with pytest.raises(BadPayload, match=problem):
        parse_slack_body(text, content_type)


def test_the_request_key_is_the_raw_body_or_else_the_canonical_payload() -> None:
    assert request_key("a=1", {}) == hashlib.sha256(b"a=1").hexdigest()
    assert request_key("", {"b": 1, "a": 2}) == request_key("", {"a": 2, "b": 1})
    assert request_key("", {"a": 1}) != request_key("", {"a": 2})
