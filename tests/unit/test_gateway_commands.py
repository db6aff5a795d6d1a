"""What the text after ``/toil`` asks for, and the words the answers use."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.gateway.blocks import help_reply, unknown_command_reply
from services.gateway.commands import (
    OpenRunModal,
    ScanDrift,
    ShowDrift,
    ShowHelp,
    ShowRuns,
    UnknownCommand,
    parse_command_text,
)
from shared.slack.blocks import GRAVE, ago, clip, code, escape


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ShowHelp()),
        ("   ", ShowHelp()),
        ("help", ShowHelp()),
        ("HELP", ShowHelp()),
        ("run", OpenRunModal()),
        ("run backfill-orders", OpenRunModal("backfill-orders")),
        ("  run   backfill-orders  ", OpenRunModal("backfill-orders")),
        ("runs", ShowRuns()),
        ("drift", ShowDrift()),
        ("drift network-prod", ShowDrift("network-prod")),
        ("drift envs/prod@eu+1", ShowDrift("envs/prod@eu+1")),
        ("drift scan network-prod", ScanDrift("network-prod")),
        ("Drift SCAN network-prod", ScanDrift("network-prod")),
    ],
)
def test_subcommands_are_recognised(text: str, expected: object) -> None:
    assert parse_command_text(text) == expected


@pytest.mark.parametrize(
    ("text", "problem_mentions"),
    [
        ("frobnicate", "not a subcommand"),
        ("help me", "no such arguments"),
        ("runs all", "no such arguments"),
        ("run a b", "no such arguments"),
        ("drift scan", "drift scan STATE"),
        ("drift scan a b", "drift scan STATE"),
        ("drift a b", "at most one state"),
        ("drift scan ;rm", "state name"),
        ("drift -prod", "state name"),
        ("drift " + "x" * 200, "state name"),
    ],
)
def test_anything_else_is_unknown_with_a_reason(text: str, problem_mentions: str) -> None:
    parsed = parse_command_text(text)

    assert isinstance(parsed, UnknownCommand)
    assert parsed.text == text
    assert problem_mentions in parsed.problem


def test_help_names_every_subcommand_under_the_configured_command() -> None:
    reply = help_reply("/ops")

    shown = reply.blocks[0]["text"]["text"]
    for usage in ("/ops run", "/ops drift", "/ops drift scan STATE", "/ops runs", "/ops help"):
        assert usage in shown


def test_the_unknown_reply_quotes_the_text_safely_and_points_to_help() -> None:
    reply = unknown_command_reply("/toil", "<!channel> `boom`", "that is not a subcommand")

    assert "&lt;!channel&gt;" in reply.text and "<!channel>" not in reply.text
    assert "`/toil help`" in reply.text


def test_mrkdwn_helpers_escape_and_clip() -> None:
    assert escape("a & <b>") == "a &amp; &lt;b&gt;"
    # One rule for gateway and notifier: a backtick inside code becomes GRAVE, a look-alike.
    assert code("x`y") == f"`x{GRAVE}y`"
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 4) == "abc"


def test_ages_read_naturally() -> None:
    assert ago(timedelta(seconds=5)) == "just now"
    assert ago(timedelta(minutes=12)) == "12m ago"
    assert ago(timedelta(hours=5, minutes=59)) == "5h ago"
    assert ago(timedelta(days=3, hours=1)) == "3d ago"
    assert ago(timedelta(seconds=-30)) == "just now"
