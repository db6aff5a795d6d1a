"""What the notifier shows in Slack, block by block, for every outcome event."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from services.notifier.blocks import (
    SlackMessage,
    render_digest,
    render_drift,
    render_drift_claimed_reply,
    render_drift_resolved,
    render_drift_resolved_reply,
    render_drift_still_open,
    render_drift_superseded_reply,
    render_run,
    render_run_finished_reply,
    render_run_refused_reply,
    render_run_started_reply,
    render_scan_failed,
)
from services.notifier.views import (
    DriftView,
    drift_view_of,
    merge_run,
    run_view_of,
    with_claim,
    with_new_report,
    with_resolved,
    with_superseded,
)
from shared.events import AttributeChange, DriftFinding, StateSummary
from shared.slack.actions import Action, encode_claim_value
from shared.slack.blocks import MAX_BLOCKS, duration
from tests import notifier_samples as samples
from toilkit.standins.slack import block_kit_errors

RUN = "run-0001"


def texts(message: SlackMessage) -> list[str]:
    """Every text of a message's blocks, in order (headers, sections, fields, context)."""
    found: list[str] = []
    for block in message.blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        found.extend(field["text"] for field in block.get("fields", []))
        for element in block.get("elements", []):
            if element.get("type") in ("mrkdwn", "plain_text"):
                found.append(element["text"])
    return found


def all_text(message: SlackMessage) -> str:
    return "\n".join(texts(message))


def buttons(message: SlackMessage) -> dict[str, dict[str, Any]]:
    """Buttons by action_id, from actions blocks and section accessories."""
    found = {}
    for block in message.blocks:
        elements = list(block.get("elements", []))
        if "accessory" in block:
            elements.append(block["accessory"])
        for element in elements:
            if element.get("type") == "button":
                found[element["action_id"]] = element
    return found


def assert_within_slack_limits(message: SlackMessage) -> None:
    errors = block_kit_errors(list(message.blocks), max_blocks=MAX_BLOCKS, pointer="/blocks")
    assert errors == []
    assert message.text
    for element in (e for b in message.blocks for e in b.get("elements", [])):
        if element.get("type") == "button":
            assert len(element["text"]["text"]) <= 75
            assert len(element.get("value", "")) <= 2000


def drift_view(**overrides: Any) -> DriftView:
    return drift_view_of(samples.drift_detected(**overrides))


# --------------------------------------------------------------------------- drift found


def test_a_drift_report_says_when_sets_are_shown_by_position() -> None:
    note = (
        "Sets of provider registry.terraform.io/hashicorp/aws 5.40.0 are shown by position "
        "(an element added or removed may show as others renumbered): its schema could not be "
        "read: terraform providers schema exited with 1: <boom>"
    )
    event = samples.drift_detected().model_copy(update={"notes": (note,)})
    body = texts(render_drift(drift_view_of(event)))

    # Right under the scan's context, before the findings, escaped like any plan text.
    assert body[3] == ":information_source: " + note.replace("<boom>", "&lt;boom&gt;")
    assert not any("information_source" in t for t in texts(render_drift(drift_view())))


def test_a_drift_report_shows_state_counts_age_and_the_plan() -> None:
    message = render_drift(drift_view())

    header, summary, context = texts(message)[:3]
    assert header == ":warning: Drift detected in prod-network"
    assert summary.startswith("*5* resources in `prod-network` differ from the code")
    assert ":red_circle: *3* changed outside Terraform" in summary
    assert ":large_yellow_circle: *2* not applied yet" in summary
    assert ":new: *2* new since the last scan" in summary
    assert "Oldest first seen *4 days ago*" in summary
    assert context.startswith("Scan `scan-0312` · full plan · `infra/prod/network`")
    assert message.text == (
        "Drift in prod-network: 5 resources differ (3 changed outside Terraform, 2 not applied)"
    )
    assert buttons(message)["drift_open_plan"]["url"] == samples.PLAN_URL


def test_drift_and_pending_are_listed_apart_each_with_its_direction() -> None:
    body = texts(render_drift(drift_view()))
    drift_heading = body.index("*:red_circle: Changed outside Terraform*  ·  _recorded → actual_")
    pending_heading = body.index(
        "*:large_yellow_circle: Code not applied yet*  ·  _current → planned_"
    )
    assert drift_heading < pending_heading
    drifted = body[drift_heading + 1 : pending_heading]
    pending = body[pending_heading + 1 : pending_heading + 3]
    assert [t.split("`")[1] for t in drifted] == [
        "~ aws_security_group.web",  # new first
        "~ aws_db_instance.main",
        "- aws_s3_bucket_policy.logs",
    ]
    assert pending[0].startswith("`~ aws_lambda_function.worker`")
    assert pending[1].startswith('`-/+ module.dns.aws_route53_record.api["public"]`')


def test_a_resource_shows_its_change_attributes_before_after_and_suspect() -> None:
    body = all_text(render_drift(drift_view()))
    group = next(t for t in texts(render_drift(drift_view())) if "aws_security_group.web" in t)

    assert group.startswith("`~ aws_security_group.web`   :new: *new*\n:mag: Likely")  # no note
    assert (
        '```ingress[0].cidr_blocks[0]: "10.0.0.0/8" → "0.0.0.0/0"\ntags.Owner: "platform" → (none)```'
        in group
    )
    assert "_1 ignored attribute not shown:_ `tags.LastScanned`" in group
    assert "tags.LastScanned:" not in group  # the ignored attribute's values are not shown
    assert (
        ":mag: Likely changed by <@U0ALICE001> (`SRE/alice`) · `AuthorizeSecurityGroupIngress` "
        "<!date^1741730700^{date_short_pretty} {time}|2025-03-11 22:05 UTC> from `203.0.113.24`"
    ) in group
    assert (
        "`- aws_s3_bucket_policy.logs`   :hourglass: open *2 days*\n*Deleted outside Terraform*"
        in body
    )
    assert 'source_code_hash: "q1w2e3r4" → (known after apply)' in body
    assert "*Will be replaced* · because it cannot be updated in place" in body


def test_sensitive_values_are_never_shown_even_if_the_event_carries_them() -> None:
    # The database sample, its password's change carrying the values.
    password = AttributeChange(path="password", before="hunter2", after="hunter3", sensitive=True)
    leaky = samples.database_drift().model_copy(update={"attributes": (password,)})
    message = render_drift(drift_view(findings=(leaky,)))

    assert "password: (sensitive)" in all_text(message)
    assert "hunter" not in json.dumps(message.blocks) + message.text


def test_ignored_resources_are_counted_not_listed() -> None:
    body = texts(render_drift(drift_view()))

    assert body[-1] == (
        ":see_no_evil: 1 ignored resource not shown (ignore rules): `aws_autoscaling_group.app`"
    )
    assert not any("desired_capacity" in t for t in body)


def test_the_claim_button_carries_the_state_and_open_fingerprints_as_compact_json() -> None:
    message = render_drift(drift_view())
    claim = buttons(message)[Action.DRIFT_CLAIM]

    assert claim["text"]["text"] == "I'm on it"
    assert claim["style"] == "primary"
    assert claim["value"] == (
        '{"state":"prod-network","fingerprints":["a1b2c3d4e5f60718","b2c3d4e5f6071829",'
        '"c3d4e5f607182930","d4e5f60718293041","e5f6071829304152"]}'
    )


def test_a_claim_value_never_exceeds_slacks_limit() -> None:
    fingerprints = [f"{i:016x}" for i in range(300)]
    value = json.loads(encode_claim_value("prod-network", fingerprints))

    assert len(encode_claim_value("prod-network", fingerprints)) <= 2000
    assert value["fingerprints"] == fingerprints[: len(value["fingerprints"])]
    assert len(value["fingerprints"]) > 90


def test_a_huge_report_stays_inside_slacks_limits_and_says_how_many_more() -> None:
    findings = tuple(
        DriftFinding(
            fingerprint=f"{i:016x}",
            address=f"aws_instance.fleet[{i}]",
            resource_type="aws_instance",
            kind="drift",
            actions=("update",),
            attributes=tuple(
                AttributeChange(path=f"tags.K{j}", before="x" * 500, after="y" * 500)
                for j in range(30)
            ),
            first_seen=samples.NOW - timedelta(days=1),
        )
        for i in range(120)
    )
    message = render_drift(drift_view(findings=findings))

    assert_within_slack_limits(message)
    assert (
        "…and *105 more* resources — <https://toilkit.example.com/plans/scan-0312/prod-network.txt|see the full plan>"
        in all_text(message)
    )
    one = next(t for t in texts(message) if "aws_instance.fleet[0]" in t)
    assert "… and 22 more attributes" in one
    assert '"xxxxxxxx' in one and "…" in one  # values clipped


def test_findings_the_detector_cut_for_size_are_counted_with_a_link_to_the_plan() -> None:
    report = samples.drift_detected(findings=(samples.database_drift(),))
    view = drift_view_of(report.model_copy(update={"findings_total": 31}))
    message = render_drift(view)

    assert texts(message)[1].startswith("*31* differences between `prod-network` and the code")
    assert f"…and *30 more* resources — <{samples.PLAN_URL}|see the full plan>" in all_text(message)
    assert json.loads(buttons(message)[Action.DRIFT_CLAIM]["value"])["fingerprints"] == [
        samples.database_drift().fingerprint
    ]


def test_a_claim_shows_who_is_on_it_and_keeps_the_button_for_a_takeover() -> None:
    view = with_claim(drift_view(), samples.BOB, samples.NOW + timedelta(minutes=20))
    message = render_drift(view)

    assert (
        ":eyes: <@U0BOB00002> is on it since "
        "<!date^1741764300^{date_short_pretty} {time}|2025-03-12 07:25 UTC>"
    ) in texts(message)
    claim = buttons(message)[Action.DRIFT_CLAIM]
    assert claim["text"]["text"] == "I'm on it instead"
    assert "style" not in claim


def test_resolved_findings_are_struck_through_and_all_resolved_says_so() -> None:
    view = drift_view()
    fixed = {samples.security_group_drift().fingerprint}
    partly = render_drift(with_resolved(view, fixed, samples.NOW + timedelta(days=1)))

    assert texts(partly)[0] == ":warning: Drift detected in prod-network"
    assert (
        "*4* resources in `prod-network` differ from the code (1 of 5 findings resolved since)"
        in texts(partly)[1]
    )
    assert any(
        t.startswith("`~` ~aws_security_group.web~  :white_check_mark: _resolved after 24 h_")
        for t in texts(partly)
    )

    done = render_drift(
        with_resolved(view, set(view.fingerprints), samples.NOW + timedelta(days=1))
    )
    assert texts(done)[0] == ":white_check_mark: Drift resolved in prod-network"
    assert texts(done)[1] == "All *5* resources in `prod-network` match the code again."
    assert Action.DRIFT_CLAIM not in buttons(done)
    assert done.text == "Drift resolved in prod-network: all 5 resources match"


def test_a_superseded_report_says_so_and_loses_its_button() -> None:
    message = render_drift(with_superseded(drift_view(), samples.NOW + timedelta(days=1)))

    assert texts(message)[0] == ":arrows_counterclockwise: Drift in prod-network (superseded)"
    assert any("this message is no longer updated" in t for t in texts(message))
    assert Action.DRIFT_CLAIM not in buttons(message)


def test_a_later_scan_of_the_same_drift_refreshes_ages_but_keeps_the_claim() -> None:
    claimed = with_claim(drift_view(), samples.BOB, samples.NOW)
    later = samples.drift_detected(scan_id="scan-0315", occurred_at=samples.NOW + timedelta(days=3))
    view = with_new_report(claimed, later)

    assert view.claimed_by == samples.BOB
    assert "open *7 days*" in all_text(render_drift(view))
    reply = render_drift_still_open(view)
    assert texts(reply) == [
        ":repeat: Scan `scan-0315` found it still there: *5* resources differ, the oldest "
        "for *7 days*. <@U0BOB00002> is on it."
    ]
    assert with_new_report(view, samples.drift_detected()) is view  # an older scan changes nothing


def test_thread_replies_for_claims_supersessions_and_resolutions() -> None:
    assert texts(render_drift_claimed_reply(samples.ALICE)) == [":eyes: <@U0ALICE001> is on it."]
    superseded = texts(render_drift_superseded_reply(samples.drift_detected(scan_id="scan-9")))
    assert superseded[0].startswith(":arrows_counterclockwise: Scan `scan-9` found a different")

    event = samples.drift_resolved(
        findings=(samples.security_group_drift(), samples.database_drift())
    )
    partial = texts(render_drift_resolved_reply(event, event.resolved, all_resolved=False))
    assert partial == [
        ":white_check_mark: *2 resolved* by scan `scan-0313`:\n"
        "• `aws_security_group.web` — changed outside Terraform, open 24 h\n"
        "• `aws_db_instance.main` — changed outside Terraform, open 5 days"
    ]
    complete = texts(render_drift_resolved_reply(event, event.resolved, all_resolved=True))
    assert complete[0].startswith(":tada: *All resolved.*")


def test_a_resolution_without_a_report_to_reply_to_stands_alone() -> None:
    message = render_drift_resolved(samples.drift_resolved())

    assert texts(message)[0] == (
        ":white_check_mark: *Drift resolved in `prod-network`*: 1 resource match the code "
        "again\n• `aws_security_group.web` — changed outside Terraform, open 24 h"
    )
    assert message.text == "Drift resolved in prod-network: 1 resource"


# --------------------------------------------------------------------------- scans


def test_a_failed_scan_says_which_state_where_why_and_shows_stderr() -> None:
    message = render_scan_failed(samples.scan_failed("prod-dns"))
    header, why, *fields_and_rest = texts(message)

    assert header == ":x: Drift scan failed for prod-dns"
    assert why == "*Why:* terraform init could not reach the state backend"
    assert fields_and_rest[:4] == [
        "*State*\n`prod-dns`",
        "*Failed at*\n`terraform init`",
        "*Exit code*\n`1`",
        "*Path*\n`infra/prod/dns`",
    ]
    stderr = fields_and_rest[4]
    assert stderr.startswith("```Initializing the backend...")
    assert "Error acquiring the state lock" in stderr
    assert stderr.endswith("╵```")


def test_a_long_stderr_keeps_its_end_where_the_error_is() -> None:
    event = samples.scan_failed().model_copy(
        update={"stderr_excerpt": "noise\n" * 2000 + "Error: the real reason"}
    )
    message = render_scan_failed(event)

    assert_within_slack_limits(message)
    stderr = next(t for t in texts(message) if t.startswith("```"))
    assert stderr.startswith("```…") and stderr.endswith("Error: the real reason```")


def test_the_digest_counts_states_and_names_the_oldest_drift() -> None:
    message = render_digest(samples.digest())
    header, *rest = texts(message)

    assert header == ":x: Drift scan digest: 2 drifted, 1 failed"
    assert rest[0] == (
        "*17* states scanned · *14* clean · *2* drifted · *1* failed\n"
        "*5* open resources (1 new) · *1* resolved since the last scan"
    )
    assert rest[1].startswith(
        ":hourglass: *Oldest open drift:* `aws_db_instance.main` in `prod-network`, open *4 days*"
    )
    assert rest[2] == (
        ":x: `prod-dns` — scan failed\n"
        ":red_circle: `prod-network` — 4 open resources, 1 new\n"
        ":red_circle: `staging-app` — 1 open resource"
    )
    assert rest[3].startswith("Scan `scan-0312` · took 6m 11s")


def test_the_digest_counts_new_resources_not_findings() -> None:
    # A new drift and its pending change on one resource are 2 new findings, 1 new resource.
    event = samples.digest()
    assert (event.findings_new, event.resources_new) == (2, 1)
    assert "(1 new)" in texts(render_digest(event))[1]
    # A detector of schema 1.0 counted no new resources: say findings, never "2 new" resources.
    old = event.model_copy(
        update={
            "resources_new": 0,
            "schema_minor": 0,
            "states": tuple(s.model_copy(update={"new_resources": 0}) for s in event.states),
        }
    )
    lines = texts(render_digest(old))
    assert "*5* open resources (2 new findings) ·" in lines[1]
    assert ":red_circle: `prod-network` — 4 open resources, 2 new findings" in lines[3]


def test_the_digest_lists_the_notes_of_each_state() -> None:
    event = samples.digest()
    noted = event.model_copy(
        update={
            "states": (
                event.states[0].model_copy(
                    update={"notes": ("Planning took 800 s of its 900 s timeout (89%): raise",)}
                ),
                *event.states[1:],
            )
        }
    )
    (notes,) = [t for t in texts(render_digest(noted)) if "Scan notes" in t]
    assert notes == (
        ":information_source: *Scan notes*\n"
        "`prod-network`: Planning took 800 s of its 900 s timeout (89%): raise"
    )
    assert not [t for t in texts(render_digest(event)) if "Scan notes" in t]


def test_a_clean_digest_celebrates_and_a_long_one_is_cut() -> None:
    clean = samples.digest().model_copy(
        update={
            "states": (StateSummary(name="a", status="clean"),),
            "oldest_open": None,
            "findings_open": 0,
            "findings_new": 0,
        }
    )
    assert (
        texts(render_digest(clean))[0]
        == ":white_check_mark: Drift scan digest: 0 drifted, 0 failed"
    )
    assert ":tada: Every state matches its code." in texts(render_digest(clean))

    many = samples.digest().model_copy(
        update={
            "states": tuple(
                StateSummary(name=f"s{i}", status="drifted", open_findings=1) for i in range(45)
            )
        }
    )
    listing = next(t for t in texts(render_digest(many)) if t.startswith(":red_circle:"))
    assert listing.endswith("…and 25 more states")


# --------------------------------------------------------------------------- runs


def test_an_approval_request_has_approve_and_reject_and_hides_secrets() -> None:
    message = render_run(run_view_of(samples.approval_requested(RUN)))
    body = texts(message)

    assert body[0] == ":hourglass_flowing_sand: *Awaiting approval* · `db-backfill` on *production*"
    assert "*Requested by*\n<@U0ALICE001>" in body
    assert "*Approvers*\n<!subteam^S0SRE00001> <@U0CAROL003>" in body
    assert (
        "*Parameters*\n`batch_size` = `500`\n`since` = `2025-03-01`\n`db_password` = `(sensitive)`"
        in body
    )
    assert "> Backfill invoices missing their tax ids (INC-2291)" in body
    assert body[-1] == f"Run `{RUN}`"
    assert buttons(message)[Action.BATCH_APPROVE] == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Approve", "emoji": True},
        "action_id": Action.BATCH_APPROVE,
        "value": RUN,
        "style": "primary",
    }
    assert buttons(message)[Action.BATCH_REJECT]["value"] == RUN
    assert buttons(message)[Action.BATCH_REJECT]["style"] == "danger"
    assert message.text == ("Awaiting approval: db-backfill on production (requested by alice)")


def test_a_started_run_shows_who_what_where_and_a_cancel_button_with_confirmation() -> None:
    message = render_run(run_view_of(samples.run_started(RUN, approved=True)))
    body = texts(message)

    assert body[0] == ":rocket: *Running* · `rails-runner` on *production*"
    assert "*Requested by*\n<@U0BOB00002>" in body
    assert "*Approved by*\n<@U0CAROL003>" in body
    assert "*Runner*\n`codebuild`" in body
    cancel = buttons(message)[Action.BATCH_CANCEL]
    assert cancel["value"] == RUN and cancel["style"] == "danger"
    assert cancel["confirm"]["title"]["text"] == "Cancel this run?"
    assert buttons(message)["batch_open_logs"]["url"] == samples.LOG_URL
    assert Action.BATCH_APPROVE not in buttons(message)


@pytest.mark.parametrize(
    ("status", "headline"),
    [
        ("succeeded", ":white_check_mark: *Succeeded* · `rails-runner` on *production* in 4m 12s"),
        ("failed", ":x: *Failed* · `rails-runner` on *production* in 4m 12s, exit code `1`"),
        ("timed_out", ":stopwatch: *Timed out* · `rails-runner` on *production* in 4m 12s"),
        (
            "cancelled",
            ":no_entry_sign: *Cancelled* · `rails-runner` on *production* in 4m 12s, "
            "exit code `143`, by <@U0ALICE001>",
        ),
    ],
)
def test_a_finished_run_parent_shows_its_final_status_and_offers_a_rerun(
    status: str, headline: str
) -> None:
    view = merge_run(
        run_view_of(samples.run_started(RUN)), samples.run_finished(RUN, status=status)
    )
    message = render_run(view)

    assert texts(message)[0] == headline
    assert set(buttons(message)) == {Action.BATCH_RERUN, Action.BATCH_RERUN_EDIT, "batch_open_logs"}
    assert buttons(message)[Action.BATCH_RERUN_EDIT]["value"] == RUN
    assert buttons(message)[Action.BATCH_RERUN]["value"] == RUN


def test_a_finish_reply_has_the_details_and_the_log_tail() -> None:
    reply = render_run_finished_reply(samples.run_finished(RUN, status="failed"))
    head, error, tail, link = texts(reply)

    assert head == ":x: *Failed* after 4m 12s · exit code `1`"
    assert error == "*Error:* Process exited with status 1"
    assert tail.startswith("*Last 5 log lines*\n```I, [2025-03-12T07:09:58]")
    assert tail.endswith("done: 24211 sessions expired```")
    assert link == f":scroll: <{samples.LOG_URL}|Full log>"


def test_a_long_log_tail_keeps_the_last_lines_and_links_the_rest() -> None:
    lines = tuple(f"line {i:05d} " + "x" * 60 for i in range(2000))
    event = samples.run_finished(RUN).model_copy(update={"log_tail": lines})
    tail = texts(render_run_finished_reply(event))[1]

    assert tail.endswith("line 01999 " + "x" * 60 + "```")
    kept = int(re.match(r"\*Last (\d+) log lines\*", tail).group(1))  # type: ignore[union-attr]
    assert f"({2000 - kept} earlier not shown, <{samples.LOG_URL}|full log>)" in tail
    assert len(tail) <= 3000


def test_a_refusal_is_a_parent_with_the_reason_or_a_reply_in_the_run_thread() -> None:
    alone = render_run(run_view_of(samples.run_refused(RUN)))
    assert texts(alone)[0] == (
        ":no_entry: *Refused* · `db-backfill` on *production*: approval was refused"
    )
    assert "*Why*\nRun it after the 09:00 deploy freeze ends (<@U0CAROL003>)" in texts(alone)
    assert buttons(alone) == {}

    reply = render_run_refused_reply(samples.run_refused(RUN))
    assert texts(reply) == [
        ":no_entry: *Refused by <@U0CAROL003>* (approval was refused):\n"
        "> Run it after the 09:00 deploy freeze ends"
    ]


def test_a_started_reply_after_an_approval_names_the_approver() -> None:
    reply = render_run_started_reply(samples.run_started(RUN, approved=True))

    assert texts(reply)[0].startswith(
        ":rocket: Approved by <@U0CAROL003>; started on `codebuild` <!date^"
    )
    assert texts(reply)[0].endswith(f" · <{samples.LOG_URL}|logs>")


def test_run_views_merge_in_any_order_and_never_go_backwards() -> None:
    started, finished = samples.run_started(RUN), samples.run_finished(RUN, status="failed")
    in_order = merge_run(run_view_of(started), finished)
    reversed_order = merge_run(run_view_of(finished), started)

    assert in_order == reversed_order
    assert in_order.phase == "failed"
    assert in_order.requested_by == samples.BOB
    assert merge_run(in_order, samples.run_finished(RUN, status="succeeded")).phase == "failed"
    approved = merge_run(run_view_of(samples.approval_requested(RUN)), started)
    assert approved.phase == "running"
    assert approved.approvers == ("S0SRE00001", "U0CAROL003")


# --------------------------------------------------------------------------- safety


def test_text_from_events_cannot_mention_everyone_or_break_formatting() -> None:
    event = samples.run_refused(RUN).model_copy(
        update={"reason": "<!channel> see <https://evil.example|here> & `x`"}
    )
    body = all_text(render_run_refused_reply(event))

    assert "<!channel>" not in body
    assert "&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp;" in body


@pytest.mark.parametrize(
    "message",
    [
        render_drift(drift_view()),
        render_drift(with_resolved(drift_view(), {"a1b2c3d4e5f60718"}, samples.NOW)),
        render_drift_still_open(drift_view()),
        render_drift_claimed_reply(samples.BOB),
        render_drift_superseded_reply(samples.drift_detected()),
        render_drift_resolved(samples.drift_resolved()),
        render_scan_failed(samples.scan_failed()),
        render_digest(samples.digest()),
        render_run(run_view_of(samples.approval_requested(RUN))),
        render_run(run_view_of(samples.run_started(RUN))),
        render_run(run_view_of(samples.run_finished(RUN))),
        render_run(run_view_of(samples.run_refused(RUN))),
        render_run_started_reply(samples.run_started(RUN, approved=True)),
        render_run_finished_reply(samples.run_finished(RUN)),
        render_run_refused_reply(samples.run_refused(RUN)),
    ],
    ids=lambda m: m.text[:40],
)
def test_every_message_is_valid_block_kit_within_slacks_limits(message: SlackMessage) -> None:
    assert_within_slack_limits(message)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.34, "0.3s"),
        (0.94, "0.9s"),
        (0.99, "1s"),
        (1.4, "1s"),
        (59.4, "59s"),
        (252, "4m 12s"),
        (3780, "1h 03m"),
    ],
)
def test_durations_read_as_a_person_says_them(seconds: float, shown: str) -> None:
    # A run of a third of a second took "0.3s", never "0s".
    assert duration(seconds) == shown
