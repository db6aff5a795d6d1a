"""The Step Functions definitions and the Dockerfile pass their linters.

asl-validator checks each definition in infra/stepfunctions against the Amazon States
Language (states, transitions, paths, ARNs); hadolint checks the Dockerfile, down to its
informational findings.
"""

from __future__ import annotations

from tests.infra.tools import INFRA, NODE_MODULES, REPO, TOOLS_BIN, require, run


def test_every_state_machine_definition_is_valid_amazon_states_language() -> None:
    validator = require(NODE_MODULES / ".bin" / "asl-validator")
    definitions = sorted((INFRA / "stepfunctions").glob("*.json"))
    assert definitions
    arguments: list[str] = []
    for path in definitions:
        arguments += ["--json-path", str(path)]
    result = run([validator, *arguments])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = require(TOOLS_BIN / "hadolint")
    result = run([hadolint, "--no-color", "--failure-threshold", "info", REPO / "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr
