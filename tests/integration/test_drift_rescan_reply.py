"""The notifier answers a Re-scan in the report's thread (real notifier, the Slack stand-in)."""

from __future__ import annotations

from services.notifier.service import NotifierService
from shared.events import Actor
from shared.runtime import Runtime
from tests import notifier_samples as samples
from tests.integration.test_notifier import (  # noqa: F401 - fixtures
    block_text,
    deliver,
    notifier,
    posted_by,
)
from toilkit.standins.slack import SlackStandin


async def test_the_digest_of_a_rescan_answers_in_the_reports_thread_not_the_channel(
    runtime: Runtime,
    notifier: NotifierService,  # noqa: F811
    standin: SlackStandin,
) -> None:
    report = samples.drift_detected("prod-network")
    await deliver(runtime, notifier, report)
    parent = posted_by(standin.messages("#prod-drift"), report.event_id)
    assert "drift_rescan_full" in block_text(parent)
    digest = samples.digest().model_copy(
        update={
            "requested_by": Actor(name="alice", slack_user_id="U0ALICE001"),
            "reply_channel": "#prod-drift",
            "reply_thread_ts": parent["ts"],
            "states": samples.digest().states[:1],
        }
    )

    await deliver(runtime, notifier, digest, digest)

    parent = posted_by(standin.messages("#prod-drift"), report.event_id)
    [answer] = parent["replies"]
    assert answer["text"].startswith("Re-scan done (asked by <@U0ALICE001>)")
    assert standin.messages("#toilkit") == []  # no channel digest for a button's scan
