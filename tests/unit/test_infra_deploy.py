"""The deployment in infra/terraform agrees with the code it deploys.

python-hcl2 reads the Terraform; these checks need no provider and no AWS account (the
aws provider cannot be installed here, so `terraform validate` does not run; see
docs/deploy.md). They keep the parts that could silently disagree in step: the event
source mappings and the queues, the partial batch responses the handler returns, the
settings variables the functions are given, the state machine definition the batch tests
run, the buildspec line the batch runner relies on, the daily schedule, and IAM.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from pydantic import AliasChoices, BaseModel

from services.batch.function import HOUSEKEEPING
from services.batch.runners.codebuild import BUILDSPEC_COMMAND
from services.batch.runners.stepfunctions import STATUS_CHANGE
from services.batch.settings import BatchSettings
from services.detector.function import ScanProjectSettings
from services.detector.settings import DetectorSettings
from services.gateway.settings import GatewaySettings
from services.notifier.settings import NotifierSettings
from shared.env_settings import EnvSettings
from shared.settings import AwsSettings, TopologySettings
from shared.topology import QUEUES
from tests.unit.test_infra_topology import _unquote
from toilkit.aws_lambda import LambdaSettings

INFRA = Path(__file__).parents[2] / "infra"
TERRAFORM = INFRA / "terraform"

SETTINGS_CLASSES: tuple[type[EnvSettings], ...] = (
    AwsSettings,
    TopologySettings,
    LambdaSettings,
    ScanProjectSettings,
    GatewaySettings,
    DetectorSettings,
    BatchSettings,
    NotifierSettings,
)


@functools.cache
def _blocks(kind: str) -> dict[str, dict[str, Any]]:
    """``{"type.name": body}`` of every ``resource`` or ``data`` block in infra/terraform.

    Parsed once per run (python-hcl2 is slow); callers only read what it returns.
    """
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as f:
            parsed = _unquote(hcl2.load(f))
        for block in parsed.get(kind, []):
            for block_type, named in block.items():
                for name, body in named.items():
                    found[f"{block_type}.{name}"] = body
    return found


def _locals() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as f:
            for block in _unquote(hcl2.load(f)).get("locals", []):
                values.update(block)
    return values


def _environments() -> dict[str, dict[str, Any]]:
    """``{service: {variable: value}}``: what each function's environment holds.

    Each is local.common_environment merged with the function's own variables (lambda.tf,
    gateway.tf); the merges are checked to be exactly those this reads.
    """
    local_values = _locals()
    common = local_values["common_environment"]
    assert local_values["worker_environment"] == (
        "${{for name, own in local.worker_own_environment : name => merge("
        "local.common_environment, "
        "{TOILKIT_SERVICE = name, TOILKIT_QUEUE_URLS = local.queue_urls}, own)}}"
    )
    environments = {
        name: {
            **common,
            "TOILKIT_SERVICE": name,
            "TOILKIT_QUEUE_URLS": "${local.queue_urls}",
            **own,
        }
        for name, own in local_values["worker_own_environment"].items()
    }
    gateway = _blocks("resource")["aws_lambda_function.gateway"]["environment"][0]
    assert gateway["variables"] == (
        "${merge(local.common_environment, local.gateway_own_environment)}"
    )
    environments["gateway"] = {**common, **local_values["gateway_own_environment"]}
    return environments


def _variables() -> dict[str, dict[str, Any]]:
    with (TERRAFORM / "variables.tf").open() as f:
        parsed = _unquote(hcl2.load(f))
    return {name: body for block in parsed["variable"] for name, body in block.items()}


DOCUMENT_REFERENCE = re.compile(r"\$\{data\.aws_iam_policy_document\.(\w+)(\[[^\]]*\])?\.json\}")


def _policy_documents() -> dict[str, dict[str, Any]]:
    """``{name: body}`` of every ``aws_iam_policy_document`` in infra/terraform."""
    prefix = "aws_iam_policy_document."
    return {k.removeprefix(prefix): v for k, v in _blocks("data").items() if k.startswith(prefix)}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy document's statements as AWS gets them.

    The ``dynamic "statement"`` ones included, and those of the documents it merges in
    through ``source_policy_documents`` (the statements several roles share), so a check
    of a role's document is a check of everything the role is allowed.
    """
    statements = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for content in dynamic.get("statement", {}).get("content", []):
            statements.append(content)
    documents = _policy_documents()
    for source in document.get("source_policy_documents", []):
        reference = DOCUMENT_REFERENCE.fullmatch(source)
        assert reference, f"{source} is not another policy document's json"
        statements.extend(_statements(documents[reference.group(1)]))
    return statements


def _env_names(cls: type[EnvSettings]) -> set[str]:
    """Every environment variable ``cls`` reads (aliases and nested ``__`` fields too)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
            continue
        if isinstance(alias, AliasChoices):
            names.update(str(c) for c in alias.choices)
            continue
        own = f"{prefix}{field_name}".upper()
        names.add(own)
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names.update(f"{own}__{sub}".upper() for sub in nested.model_fields)
    return names


def test_every_event_source_mapping_targets_a_topology_queue_and_reports_item_failures() -> None:
    resources = _blocks("resource")
    consumers = set(_locals()["consumers"])
    mappings = {
        k: v for k, v in resources.items() if k.startswith("aws_lambda_event_source_mapping.")
    }
    assert mappings, "no event source mapping in infra/terraform"
    for name, mapping in mappings.items():
        assert mapping["function_response_types"] == ["ReportBatchItemFailures"], name
        source = mapping["event_source_arn"]
        if source == "${aws_sqs_queue.consumer[each.key].arn}":
            # One mapping per topology queue, each to that consumer's own function.
            assert mapping["for_each"] == "${local.consumers}", name
            assert mapping["function_name"] == "${aws_lambda_function.worker[each.key].arn}"
        else:
            # The only other source: the Step Functions status queue, read by batch.
            assert source == "${aws_sqs_queue.batch_run_status.arn}", name
            assert mapping["function_name"] == '${aws_lambda_function.worker["batch"].arn}'
    assert consumers == {q.consumer for q in QUEUES}
    for spec in QUEUES:
        batch_size = _variables()["worker_batch_size"]["default"][spec.consumer]
        assert 1 <= batch_size <= 10, spec.consumer  # SQS's limit without a batching window


def test_worker_functions_stop_within_the_queue_visibility_timeout() -> None:
    # Lambda refuses a mapping whose queue hides messages for less than the function runs,
    # and a handler must end before the function is killed (or its outcome is lost).
    local_values = _locals()
    resources = _blocks("resource")
    function = resources["aws_lambda_function.worker"]
    assert function["timeout"] == "${local.worker_timeout_seconds}"
    assert function["handler"] == "toilkit.aws_lambda.worker_handler"
    for spec in QUEUES:
        assert local_values["worker_timeout_seconds"] <= spec.visibility_timeout
    assert local_values["handler_timeout_seconds"] < local_values["worker_timeout_seconds"]
    for service, environment in _environments().items():
        if service == "gateway":
            continue
        handler_timeout = [
            v for k, v in environment.items() if k.endswith("WORKER__HANDLER_TIMEOUT")
        ]
        assert handler_timeout == ["${local.handler_timeout_seconds}"]
    gateway = resources["aws_lambda_function.gateway"]
    assert gateway["handler"] == "toilkit.aws_lambda.gateway_handler"


def test_functions_are_given_only_real_settings_variables() -> None:
    known = set().union(*(_env_names(cls) for cls in SETTINGS_CLASSES))
    for service, environment in _environments().items():
        assert environment["TOILKIT_SERVICE"] == service
        unknown = set(environment) - known
        assert not unknown, f"{service}: {sorted(unknown)} are read by no settings class"
        # A service's own variables are its own (TOILKIT_NOTIFIER_* only in the notifier).
        for other in ("detector", "batch", "notifier", "gateway"):
            if other != service:
                assert not [k for k in environment if k.startswith(f"TOILKIT_{other.upper()}_")]


def test_env_names_finds_prefixed_nested_and_aliased_variables() -> None:
    names = _env_names(NotifierSettings)
    assert "TOILKIT_NOTIFIER_DEFAULT_CHANNEL" in names
    assert "TOILKIT_NOTIFIER_WORKER__HANDLER_TIMEOUT" in names
    assert "SLACK_BOT_TOKEN" in names
    assert "TOILKIT_NOTIFIER_WORKER__NO_SUCH_THING" not in names


def test_no_iam_statement_allows_a_wildcard_action() -> None:
    documents = _policy_documents()
    assert len(documents) >= 10
    for name, document in documents.items():
        statements = _statements(document)
        assert statements, name
        for statement in statements:
            actions = statement.get("actions")
            assert isinstance(actions, list) and actions, f"{name}: {statement.get('sid')}"
            assert not [a for a in actions if "*" in a], f"{name}: {statement.get('sid')}"
            assert "not_actions" not in statement, name
    # Every role's inline policy is one of the documents checked above.
    for name, policy in _blocks("resource").items():
        if name.startswith(("aws_iam_role_policy.", "aws_sqs_queue_policy.")):
            reference = DOCUMENT_REFERENCE.fullmatch(policy["policy"])
            assert reference and reference.group(1) in documents, name


def test_statement_ids_are_unique_once_sources_are_merged() -> None:
    # The aws provider refuses a document whose sources repeat a sid, and only at plan time.
    for name, document in _policy_documents().items():
        sids = [s["sid"] for s in _statements(document) if "sid" in s]
        assert len(sids) == len(set(sids)), f"{name}: {sorted(sids)}"


def test_a_role_document_gets_the_statements_of_the_documents_it_sources() -> None:
    documents = _policy_documents()
    gateway = {s["sid"]: s for s in _statements(documents["gateway_function"])}
    # Shared: found through data.aws_iam_policy_document.runtime.
    assert gateway["Publish"]["actions"] == ["sns:Publish"]
    assert gateway["FindTopic"]["resources"] == ["*"]
    # The gateway only writes payloads; the read-write statement is not merged into it.
    assert gateway["PayloadUploads"]["actions"] == ["s3:PutObject"]
    assert "Payloads" not in gateway
    assert "s3:GetObject" not in {a for s in gateway.values() for a in s["actions"]}


def test_wildcard_resources_are_only_for_actions_without_resource_level_permissions() -> None:
    unscoped = {"sns:ListTopics", "cloudtrail:LookupEvents"}
    unscoped |= {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces"}
    unscoped |= {"ec2:DeleteNetworkInterface", "ec2:DescribeSubnets"}
    unscoped |= {"ec2:DescribeSecurityGroups", "ec2:DescribeDhcpOptions", "ec2:DescribeVpcs"}
    unscoped |= {f"logs:{a}" for a in ("CreateLogDelivery", "GetLogDelivery", "UpdateLogDelivery")}
    unscoped |= {f"logs:{a}" for a in ("DeleteLogDelivery", "ListLogDeliveries")}
    unscoped |= {
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    for name, document in _blocks("data").items():
        for statement in _statements(document):
            if statement.get("resources") == ["*"]:
                assert set(statement["actions"]) <= unscoped, f"{name}: {statement.get('sid')}"


def test_the_state_machine_is_the_definition_the_batch_tests_run() -> None:
    machine = _blocks("resource")["aws_sfn_state_machine.batch_run"]
    assert machine["definition"] == '${file("${path.module}/../stepfunctions/batch_run.asl.json")}'
    assert (INFRA / "stepfunctions" / "batch_run.asl.json").is_file()
    assert machine["type"] == "STANDARD"


def test_the_daily_scan_runs_at_seven_in_a_configurable_time_zone() -> None:
    schedule = _blocks("resource")["aws_scheduler_schedule.daily_drift_scan"]
    variables = _variables()
    assert schedule["schedule_expression"] == "${var.drift_scan_schedule}"
    assert variables["drift_scan_schedule"]["default"] == "cron(0 7 * * ? *)"
    assert schedule["schedule_expression_timezone"] == "${var.drift_scan_timezone}"
    assert variables["drift_scan_timezone"]["description"]
    target = schedule["target"][0]
    assert target["arn"] == "arn:aws:scheduler:::aws-sdk:codebuild:startBuild"
    assert "aws_codebuild_project.drift_scan.name" in target["input"]


def test_housekeeping_invokes_the_batch_function_with_what_it_expects() -> None:
    schedule = _blocks("resource")["aws_scheduler_schedule.batch_housekeeping"]
    assert schedule["target"][0]["arn"] == '${aws_lambda_function.worker["batch"].arn}'
    key, value = next(iter(HOUSEKEEPING.items()))
    assert schedule["target"][0]["input"] == f'${{jsonencode({{{key} = "{value}"}})}}'


def test_the_status_change_rule_feeds_the_queue_the_batch_function_reads() -> None:
    resources = _blocks("resource")
    rule = resources["aws_cloudwatch_event_rule.batch_run_status"]
    pattern = rule["event_pattern"]
    assert f'"detail-type" = ["{STATUS_CHANGE}"]' in pattern
    assert 'source = ["aws.states"]' in pattern
    assert 'status = ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]' in pattern
    assert "aws_sfn_state_machine.batch_run.arn" in pattern
    target = resources["aws_cloudwatch_event_target.batch_run_status"]
    assert target["arn"] == "${aws_sqs_queue.batch_run_status.arn}"
    environment = _environments()["batch"]
    assert (
        environment["TOILKIT_BATCH_COMPLETION_QUEUE_URL"] == "${aws_sqs_queue.batch_run_status.id}"
    )


def test_the_batch_runner_buildspec_execs_the_command_the_runner_sends() -> None:
    buildspec = yaml.safe_load((INFRA / "buildspecs" / "batch-runner.yml").read_text())
    assert buildspec["phases"]["build"]["commands"] == [BUILDSPEC_COMMAND]
    project = _blocks("resource")["aws_codebuild_project.batch_runner"]
    assert "buildspecs/batch-runner.yml" in project["source"][0]["buildspec"]


@pytest.mark.parametrize(
    "entry", ["toilkit drift scan", "python -m services.detector.function scan-request"]
)
def test_the_drift_scan_buildspec_runs_both_kinds_of_scan(entry: str) -> None:
    buildspec = yaml.safe_load((INFRA / "buildspecs" / "drift-scan.yml").read_text())
    assert any(entry in command for command in buildspec["phases"]["build"]["commands"])


def test_slack_secrets_are_secure_string_parameters_the_functions_are_told_about() -> None:
    resources = _blocks("resource")
    for name in ("slack_bot_token", "slack_signing_secret"):
        parameter = resources[f"aws_ssm_parameter.{name}"]
        assert parameter["type"] == "SecureString"
        assert parameter["name"] == f"${{var.{name}_parameter}}"
        # Terraform never reads the real secret back into its state.
        assert parameter["lifecycle"][0]["ignore_changes"] == ["value"]
    gateway = _environments()["gateway"]
    assert (
        gateway["TOILKIT_SLACK_SIGNING_SECRET_PARAMETER"]
        == "${aws_ssm_parameter.slack_signing_secret.name}"
    )
    url = resources["aws_lambda_function_url.gateway"]
    assert url["authorization_type"] == "NONE"


def test_every_function_can_read_its_first_secrets_through_the_extension() -> None:
    # toilkit.aws_lambda.LambdaSettings.secrets_extension_at_start: the layer on every
    # function, the flag and the extension's port in every environment, and GetParameter
    # (what the extension calls) allowed wherever GetParameters is.
    resources = _blocks("resource")
    for name in ("aws_lambda_function.worker", "aws_lambda_function.gateway"):
        assert resources[name]["layers"] == "${local.secrets_extension_layers}", name
    assert _variables()["secrets_extension"]["default"] is True
    layer = _blocks("data")["aws_ssm_parameter.secrets_extension_layer"]
    assert layer["name"].startswith("/aws/service/aws-parameters-and-secrets-lambda-extension/")
    for service, environment in _environments().items():
        assert environment["TOILKIT_SECRETS_EXTENSION"] == "${tostring(var.secrets_extension)}"
        assert environment["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] == "2773", service
    for name, document in _policy_documents().items():
        for statement in _statements(document):
            if "ssm:GetParameters" in statement.get("actions", []):
                assert "ssm:GetParameter" in statement["actions"], name


def test_every_variable_and_output_is_described() -> None:
    for name, body in _variables().items():
        assert body.get("description"), name
    with (TERRAFORM / "outputs.tf").open() as f:
        outputs = {n: b for block in _unquote(hcl2.load(f))["output"] for n, b in block.items()}
    assert "gateway_url" in outputs
    assert outputs["gateway_url"]["value"].endswith("}/slack/events")
    for name, body in outputs.items():
        assert body.get("description"), name


def test_the_gateway_url_may_be_called_by_anyone_but_only_through_the_url() -> None:
    # A URL with auth NONE answers 403 without both statements in the function's policy:
    # lambda:InvokeFunctionUrl for auth type NONE, and (URLs made since October 2025)
    # lambda:InvokeFunction limited to calls through a function URL.
    resources = _blocks("resource")
    assert resources["aws_lambda_function_url.gateway"]["authorization_type"] == "NONE"
    gateway = "${aws_lambda_function.gateway.function_name}"
    permissions = [
        body
        for name, body in resources.items()
        if name.startswith("aws_lambda_permission.") and body["function_name"] == gateway
    ]
    by_action = {p["action"]: p for p in permissions}
    url = by_action.get("lambda:InvokeFunctionUrl")
    assert url, "no lambda:InvokeFunctionUrl permission: the function URL answers 403"
    assert url["principal"] == "*"
    assert url["function_url_auth_type"] == "NONE"
    invoke = by_action.get("lambda:InvokeFunction")
    assert invoke, "no lambda:InvokeFunction permission: a URL made since 2025-10 answers 403"
    assert invoke["principal"] == "*"
    # Without it anyone could invoke the function directly, unsigned and past the URL.
    assert invoke.get("invoked_via_function_url") is True
    assert len(permissions) == len({p["statement_id"] for p in permissions}) == 2, permissions


def test_the_public_gateway_has_a_concurrency_cap() -> None:
    gateway = _blocks("resource")["aws_lambda_function.gateway"]
    assert gateway["reserved_concurrent_executions"] == "${var.gateway_reserved_concurrency}"
    assert _variables()["gateway_reserved_concurrency"]["default"] >= 1


def test_what_lambda_and_step_functions_check_at_creation_waits_for_the_role_policy() -> None:
    # CreateEventSourceMapping and CreateStateMachine check the role's permissions; without
    # an explicit dependency the first apply can race the role policy and fail.
    resources = _blocks("resource")
    role_policies = {
        "${aws_lambda_function.worker[each.key].arn}": "${aws_iam_role_policy.worker_runtime}",
        '${aws_lambda_function.worker["batch"].arn}': "${aws_iam_role_policy.batch_function}",
    }
    mappings = {
        k: v for k, v in resources.items() if k.startswith("aws_lambda_event_source_mapping.")
    }
    for name, mapping in mappings.items():
        assert role_policies[mapping["function_name"]] in mapping.get("depends_on", []), name
    # The statements each mapping needs are in the policy it waits for.
    documents = _policy_documents()
    consume = {s["sid"] for s in _statements(documents["worker_runtime"])}
    assert "ConsumeQueue" in consume
    assert "ConsumeQueue" in {s["sid"] for s in _statements(documents["batch_function"])}
    machine = resources["aws_sfn_state_machine.batch_run"]
    assert machine["role_arn"] == '${aws_iam_role.service["state_machine"].arn}'
    assert "${aws_iam_role_policy.state_machine}" in machine["depends_on"]
    for project, policy in (("drift_scan", "drift_scan"), ("batch_runner", "batch_runner")):
        body = resources[f"aws_codebuild_project.{project}"]
        assert f"${{aws_iam_role_policy.{policy}}}" in body["depends_on"], project


def test_the_drift_scan_needs_a_git_connection_for_any_host_but_codecommit() -> None:
    project = _blocks("resource")["aws_codebuild_project.drift_scan"]
    auth = project["source"][0]["dynamic"][0]["auth"]
    assert auth["for_each"].startswith("${var.infra_repo_connection_arn == null")
    assert auth["content"][0]["type"] == "CODECONNECTIONS"
    precondition = project["lifecycle"][0]["precondition"][0]
    assert "var.infra_repo_connection_arn != null" in precondition["condition"]
    assert "infra_repo_connection_arn" in precondition["error_message"]
    # The build's role may fetch the connection's token.
    statements = _policy_documents()["drift_scan"]["dynamic"]
    clone = [
        d["statement"]
        for d in statements
        if d["statement"]["content"][0]["sid"] == "CloneInfraRepo"
    ]
    assert clone and "codeconnections:GetConnectionToken" in clone[0]["content"][0]["actions"]


def test_every_queue_alarms_on_its_dlq_and_on_its_oldest_message() -> None:
    resources = _blocks("resource")
    # Every consumer's queue and DLQ, and the run-status queue and its DLQ.
    alarmed = " ".join(_locals()["alarmed_queues"].split())
    assert (
        "{for name in keys(local.consumers) : name => {queue = aws_sqs_queue.consumer[name].name, "
        "dlq = aws_sqs_queue.dlq[name].name}}" in alarmed
    )
    assert (
        "{batch_run_status = {queue = aws_sqs_queue.batch_run_status.name, "
        "dlq = aws_sqs_queue.batch_run_status_dlq.name}}" in alarmed
    )
    # One alarm resource over local.alarms: per queue its DLQ's depth and its oldest
    # message's age, per worker its failed handler attempts.
    alarms = " ".join(_locals()["alarms"].split())
    kinds = {
        "dlq_messages": (
            "for name, queue in local.alarmed_queues",
            '"AWS/SQS"',
            '"ApproximateNumberOfMessagesVisible"',
            "{QueueName = queue.dlq}",
            "var.alarm_dlq_messages",
        ),
        "oldest_message_age": (
            "for name, queue in local.alarmed_queues",
            '"AWS/SQS"',
            '"ApproximateAgeOfOldestMessage"',
            "{QueueName = queue.queue}",
            "var.alarm_queue_age_seconds",
        ),
        "failed_events": (
            "for name in keys(local.consumers)",
            "var.name_prefix",
            '"EventsFailed"',
            "{Service = name}",
            "var.alarm_failed_events",
        ),
    }
    for kind, (over, namespace, metric, dimensions, threshold) in kinds.items():
        head = f'{{{over} : "${{name}}/{kind}" => {{'
        assert head in alarms, kind
        body = alarms.split(head, 1)[1].split("}}", 1)[0]
        assert f"namespace = {namespace}" in body, kind
        assert f"metric = {metric}" in body, kind
        assert f"dimensions = {dimensions}" in body, kind
        assert f"threshold = {threshold}" in body, kind
    alarm = resources["aws_cloudwatch_metric_alarm.toilkit"]
    assert alarm["for_each"] == "${local.alarms}"
    assert alarm["namespace"] == "${each.value.namespace}"
    assert alarm["metric_name"] == "${each.value.metric}"
    assert alarm["dimensions"] == "${each.value.dimensions}"
    assert alarm["threshold"] == "${each.value.threshold}"
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"]
    assert alarm["ok_actions"] == ["${aws_sns_topic.alarms.arn}"]


def test_the_events_topic_is_encrypted_and_the_bucket_drops_abandoned_uploads() -> None:
    resources = _blocks("resource")
    assert resources["aws_sns_topic.events"]["kms_master_key_id"] == "alias/aws/sns"
    rules = resources["aws_s3_bucket_lifecycle_configuration.artifacts"]["rule"]
    abort = [r for r in rules if "abort_incomplete_multipart_upload" in r]
    assert abort and abort[0]["status"] == "Enabled"
    assert abort[0]["abort_incomplete_multipart_upload"][0]["days_after_initiation"] >= 1


def test_each_function_runs_its_own_zip_on_a_snapstart_capable_runtime() -> None:
    resources = _blocks("resource")
    assert _locals()["lambda_runtime"] in ("python3.12", "python3.13")
    worker = resources["aws_lambda_function.worker"]
    assert worker["filename"] == "${local.lambda_package[each.key]}"
    assert worker["runtime"] == "${local.lambda_runtime}"
    gateway = resources["aws_lambda_function.gateway"]
    assert gateway["filename"] == '${local.lambda_package["gateway"]}'
    assert gateway["runtime"] == "${local.lambda_runtime}"


def test_the_gateway_url_serves_a_published_version_with_snapstart() -> None:
    resources = _blocks("resource")
    gateway = resources["aws_lambda_function.gateway"]
    assert gateway["publish"] is True
    snap_start = gateway["dynamic"][0]["snap_start"]
    assert snap_start["content"][0]["apply_on"] == "PublishedVersions"
    alias = resources["aws_lambda_alias.gateway_live"]
    assert alias["function_version"] == "${aws_lambda_function.gateway.version}"
    qualifier = "${aws_lambda_alias.gateway_live.name}"
    assert resources["aws_lambda_function_url.gateway"]["qualifier"] == qualifier
    for name in ("gateway_url", "gateway_url_invoke"):
        assert resources[f"aws_lambda_permission.{name}"]["qualifier"] == qualifier


def test_every_function_is_told_the_topology_so_a_cold_start_looks_nothing_up() -> None:
    # toilkit.aws_lambda.LambdaSettings.known_topology: the topic for every function, and
    # for a worker its own queue too; otherwise it falls back to lookups by name.
    local_values = _locals()
    assert local_values["topic_arn"] == "${aws_sns_topic.events.arn}"
    assert "aws_sqs_queue.consumer" in local_values["queue_urls"]
    assert "queue.url" in local_values["queue_urls"]
    environments = _environments()
    for service, environment in environments.items():
        assert environment["TOILKIT_TOPIC_ARN"] == "${local.topic_arn}", service
        if service != "gateway":
            assert environment["TOILKIT_QUEUE_URLS"] == "${local.queue_urls}", service
    assert "TOILKIT_QUEUE_URLS" not in environments["gateway"]


def test_every_role_is_trusted_by_the_service_that_runs_it() -> None:
    roles = " ".join(_locals()["iam_roles"].split())
    for key, service in (
        ("gateway", "lambda"),
        ("drift_scan", "codebuild"),
        ("batch_runner", "codebuild"),
        ("state_machine", "states"),
        ("scheduler", "scheduler"),
    ):
        assert re.search(rf"{key} = {{name = [^,]*, service = \"{service}\"}}", roles), key
    # The workers: one function role per consumer.
    assert "for name in keys(local.consumers) : name => {" in roles
    trust = _policy_documents()["assume"]
    assert trust["for_each"] == "${toset([for role in local.iam_roles : role.service])}"
    statement = trust["statement"][0]
    assert statement["principals"][0]["identifiers"] == ["${each.key}.amazonaws.com"]
    # Only the scheduler's trust is limited to this account (the confused-deputy guard).
    condition = statement["dynamic"][0]["condition"]
    assert condition["for_each"] == '${each.key == "scheduler" ? [local.account_id] : []}'
    assert condition["content"][0]["variable"] == "aws:SourceAccount"
    role = _blocks("resource")["aws_iam_role.service"]
    assert role["assume_role_policy"] == (
        "${data.aws_iam_policy_document.assume[each.value.service].json}"
    )
