"""Running ``infra/stepfunctions/batch_run.asl.json`` in moto's Step Functions interpreter.

moto 5.2's interpreter passes an ``aws-sdk:`` task's Parameters to boto3 as they are and
hands back boto3's response as it is, where AWS converts both between its PascalCase and
the service's own casing (getmoto/moto#10076; fixes pending in #10094 / #10101). CodeBuild
speaks camelCase, so the definition AWS needs (``ProjectName``, ``$.Build.Id``) fails in
moto with ``KeyError: 'ProjectName'``.

:func:`moto_dialect` bridges exactly that and nothing else: in ``aws-sdk`` tasks only, it
lower-cases the first letter of every Parameters key and of every field name in the
ResultSelector's JSONPaths. States, transitions, Choice rules, Wait, Retry, Catch and the
Fail causes run as written.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.catalog import StepFunctionsRunnerSettings
from tests.support import eventually

DEFINITION = Path(__file__).resolve().parents[2] / "infra" / "stepfunctions" / "batch_run.asl.json"
ROLE_ARN = "arn:aws:iam::123456789012:role/toilkit-batch-run"


def _lower_first(key: str) -> str:
    return key[:1].lower() + key[1:]


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_lower_first(k): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _lower_path_fields(expression: str) -> str:
    """``States.ArrayGetItem($.Builds[*].Id, 0)`` -> ``...($.builds[*].id, 0)``."""
    return re.sub(
        r"\$[\w.\[\]*]*",
        lambda path: re.sub(r"\.([A-Z])", lambda m: "." + m.group(1).lower(), path.group(0)),
        expression,
    )


def moto_dialect(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with its aws-sdk tasks in the casing moto's interpreter expects."""
    translated = copy.deepcopy(definition)
    for state in translated["States"].values():
        if not str(state.get("Resource", "")).startswith("arn:aws:states:::aws-sdk:"):
            continue
        state["Parameters"] = _lower_keys(state.get("Parameters", {}))
        if "ResultSelector" in state:
            state["ResultSelector"] = {
                key: _lower_path_fields(value) if key.endswith(".$") else value
                for key, value in state["ResultSelector"].items()
            }
    return translated


def load_definition() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFINITION.read_text())
    return data


async def create_state_machine(sfn: Any, name: str) -> str:
    """The batch-run state machine in moto; returns its ARN."""
    response = await sfn.create_state_machine(
        name=name, definition=json.dumps(moto_dialect(load_definition())), roleArn=ROLE_ARN
    )
    return str(response["stateMachineArn"])


async def create_codebuild_project(codebuild: Any, name: str) -> None:
    await codebuild.create_project(
        name=name,
        source={"type": "NO_SOURCE", "location": "none", "buildspec": "version: 0.2"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole=ROLE_ARN,
    )


def sfn_settings(
    state_machine: str, project: str, *, poll_seconds: float = 0
) -> StepFunctionsRunnerSettings:
    """The runner's settings for ``state_machine`` running builds of ``project`` (image app:1)."""
    return StepFunctionsRunnerSettings(
        state_machine_arn=state_machine, project=project, image="app:1", poll_seconds=poll_seconds
    )


def stepfunctions_environment(state_machine: str, project: str, **policy: Any) -> dict[str, Any]:
    """A catalog environment (``@sre`` may run) whose runs are executions of
    ``state_machine``, building ``project`` (image app:1, polling at once); ``policy``
    adds to it (``approval``)."""
    return {
        "allowed": {"usergroups": ["S0SRE00001"]},
        **policy,
        "runner": {
            "kind": "stepfunctions",
            "state_machine_arn": state_machine,
            "project": project,
            "image": "app:1",
            "poll_seconds": 0,
        },
    }


async def run_to_end(
    sfn: Any,
    arn: str,
    input_: dict[str, Any],
    name: str | None = None,
    *,
    timeout: float = 30,
) -> dict[str, Any]:
    """Start an execution of state machine ``arn``; its description once it has ended."""
    execution = await sfn.start_execution(
        stateMachineArn=arn, name=name or str(uuid.uuid4()), input=json.dumps(input_)
    )

    async def ended() -> dict[str, Any] | None:
        described = await sfn.describe_execution(executionArn=execution["executionArn"])
        return None if described["status"] == "RUNNING" else described

    return await eventually(ended, timeout=timeout, every=0.05)


def build_variables(start_build: Mapping[str, Any]) -> dict[str, str]:
    """The environment variables a StartBuild request (camelCase) sets: name -> value."""
    return {v["name"]: v["value"] for v in start_build["environmentVariablesOverride"]}
