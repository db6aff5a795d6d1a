"""The thread reply to "Accept into code": readable, escaped, inside Slack's limits."""

from __future__ import annotations

import json

import pytest

from services.notifier.blocks import (
    SlackMessage,
    render_drift,
    render_drift_accepted_reply,
    render_revert_outcome_reply,
)
from services.notifier.views import drift_view_of
from shared.events import (
    AcceptedAttribute,
    Actor,
    BatchRunFinished,
    BatchRunRefused,
    DriftAccepted,
    DriftRef,
)
from shared.slack.blocks import MAX_BLOCKS
from tests import notifier_samples as samples
from toilkit.standins.slack import block_kit_errors

ALICE = Actor(name="alice", slack_user_id="U0ALICE001")
DIFF = '--- a/net/main.tf\n+++ b/net/main.tf\n@@ -1 +1 @@\n-  env = "prod"\n+  env = "staging"\n'


def accepted(**fields: object) -> DriftAccepted:
    base: dict[str, object] = {
        "correlation_id": "c",
        "source": "detector",
        "state": "net",
        "requested_by": ALICE,
        "diff": DIFF,
        "changed": (AcceptedAttribute(address="aws_s3_bucket.logs", path="tags.env"),),
    }
    return DriftAccepted.model_validate({**base, **fields})


def text_of(message: SlackMessage) -> str:
    return json.dumps([dict(b) for b in message.blocks], ensure_ascii=False)


def valid(message: SlackMessage) -> SlackMessage:
    errors = block_kit_errors(list(message.blocks), max_blocks=MAX_BLOCKS, pointer="/blocks")
    assert errors == []
    return message


def test_the_reply_shows_who_the_diff_the_branch_and_the_compare_link() -> None:
    message = valid(
        render_drift_accepted_reply(
            accepted(
                branch="toilkit/drift/net/2026-12-05",
                compare_url="https://github.com/acme/infra/compare/main...toilkit/drift/net/2026-12-05?expand=1",
            )
        )
    )

    body = text_of(message)
    assert "<@U0ALICE001> accepted the drift into code: *1* attribute written on branch" in body
    assert "`toilkit/drift/net/2026-12-05`" in body
    assert '+  env = \\"staging\\"' in body
    assert "Open a pull request" in body and "drift_open_branch" in body
    assert message.text == "Drift of net accepted into code (1 attribute)"


def test_a_huge_diff_and_many_skipped_attributes_stay_inside_slacks_limits() -> None:
    skipped = tuple(
        AcceptedAttribute(address=f"aws_instance.web[{i}]", path="ami", reason="x" * 300)
        for i in range(40)
    )
    message = valid(render_drift_accepted_reply(accepted(diff="+ line\n" * 3000, skipped=skipped)))

    assert "…and 32 more" in text_of(message)


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        (
            {"diff": "", "changed": (), "gone": ("f1",), "problem": "the drift is gone"},
            "no longer drift",
        ),
        ({"problem": "no branch was pushed: git push failed: <denied>"}, "&lt;denied&gt;"),
        (
            {
                "diff": "",
                "changed": (),
                "skipped": (
                    AcceptedAttribute(
                        address="module.vpc.aws_vpc.this", path="*", reason="registry"
                    ),
                ),
            },
            "`module.vpc.aws_vpc.this`: registry",
        ),
    ],
)
def test_nothing_written_or_a_refused_push_says_so_plainly(
    fields: dict[str, object], shown: str
) -> None:
    message = valid(render_drift_accepted_reply(accepted(**fields)))

    assert shown in text_of(message)
    assert "<!channel>" not in text_of(message)


# --------------------------------------------------------------------------- Revert


def test_the_revert_button_is_drawn_only_where_the_catalog_has_a_revert_command() -> None:
    view = drift_view_of(samples.drift_detected())

    with_revert = valid(render_drift(view, revert=True))
    without = valid(render_drift(view))

    assert '"action_id": "drift_revert"' in text_of(with_revert)
    assert "drift_revert" not in text_of(without)
    assert '"action_id": "drift_accept"' in text_of(without)


@pytest.mark.parametrize(
    ("event", "shown"),
    [
        (samples.run_finished("r1", "drift-revert"), "Revert run `r1` succeeded"),
        (
            samples.run_finished("r1", "drift-revert", "failed"),
            "failed, exit code 1: the drift stays open",
        ),
        (samples.run_refused("r1", "drift-revert"), "The revert run `r1` did not run"),
    ],
    ids=["succeeded", "failed", "refused"],
)
def test_the_revert_runs_end_is_told_in_the_drift_thread(
    event: BatchRunFinished | BatchRunRefused, shown: str
) -> None:
    event = event.model_copy(
        update={"reverts": DriftRef(state="prod-network", fingerprints=("a",))}
    )

    message = valid(render_revert_outcome_reply(event))

    assert shown in text_of(message)
