"""The one definition of toilkit's AWS resources, and ``bootstrap`` that creates them.

One SNS topic fans out to one SQS queue per consuming service (raw delivery, a filter
policy on the ``type`` message attribute); every queue has a DLQ through a redrive
policy; DynamoDB keeps idempotency keys and service state; S3 keeps large payloads.
``infra/`` creates the same names on AWS, and a test keeps the two in step.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shared.aws import error_code
from shared.errors import ConfigError
from shared.events import EVENT_TYPES, OUTCOME_TYPES
from shared.idempotency import EXPIRATION
from shared.settings import TopologySettings
from shared.state_table.keys import EXPIRES_AT

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient

    from shared.aws import AwsClients


#: Receives before SQS moves a message to its DLQ. Every receive counts, including one by
#: a worker killed before it handled the message: a crash loop spends one receive per crash
#: on the messages at the head of the queue (a killed worker's claim no longer costs
#: another, shared/idempotency.py). Ten leaves room for a crash loop of several restarts;
#: a transient failure backs off 2, 4, 8... s (up to 5 min) between receives.
MAX_RECEIVE_COUNT = 10
#: How long a dead-letter queue keeps a message (a worker keeps its failure reason as long).
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class QueueSpec:
    """A consuming service's queue and what reaches it."""

    consumer: str
    event_types: frozenset[str]
    visibility_timeout: int = 60
    max_receive_count: int = MAX_RECEIVE_COUNT
    retention_seconds: int = 4 * 24 * 3600
    dlq_retention_seconds: int = DLQ_RETENTION_SECONDS


@dataclass(frozen=True)
class TableSpec:
    suffix: str
    hash_key: str
    range_key: str | None
    ttl_attribute: str


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(
        consumer="detector",
        event_types=frozenset({"DriftScanRequested", "DriftClaimed", "DriftAcceptRequested"}),
    ),
    QueueSpec(
        consumer="batch",
        event_types=frozenset(
            {"BatchRequested", "BatchCancelRequested", "BatchApproved", "BatchRejected"}
        ),
    ),
    # DriftClaimed reaches the notifier too: the drift message shows who took it.
    QueueSpec(consumer="notifier", event_types=OUTCOME_TYPES | {"DriftClaimed"}),
)

TABLES: tuple[TableSpec, ...] = (
    TableSpec(suffix="idempotency", hash_key="id", range_key=None, ttl_attribute=EXPIRATION),
    TableSpec(suffix="state", hash_key="pk", range_key="sk", ttl_attribute=EXPIRES_AT),
)

assert all(t in EVENT_TYPES for q in QUEUES for t in q.event_types)


@dataclass(frozen=True)
class Names:
    """Concrete resource names for one deployment (prefix ``toilkit`` by default)."""

    prefix: str
    bucket: str

    @classmethod
    def from_settings(cls, settings: TopologySettings) -> Names:
        return cls(
            prefix=settings.name_prefix,
            bucket=settings.bucket or f"{settings.name_prefix.lower()}-artifacts",
        )

    @property
    def topic(self) -> str:
        return f"{self.prefix}-events"

    def queue(self, consumer: str) -> str:
        return f"{self.prefix}-{consumer}"

    def dlq(self, consumer: str) -> str:
        return f"{self.prefix}-{consumer}-dlq"

    def table(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def unrouted(self) -> str:
        """The queue that catches what no consumer's filter matches (see
        :func:`unrouted_filter_policy`); a dead-letter queue of the topic itself."""
        return f"{self.prefix}-unrouted"

    @property
    def idempotency_table(self) -> str:
        return self.table("idempotency")

    @property
    def state_table(self) -> str:
        return self.table("state")


def filter_policy(spec: QueueSpec) -> dict[str, list[str]]:
    return {"type": sorted(spec.event_types)}


#: Every event type some consumer's filter lets through.
ROUTED_TYPES: frozenset[str] = frozenset(t for q in QUEUES for t in q.event_types)


def unrouted_filter_policy() -> dict[str, Any]:
    """What no consumer's filter matches: no ``type`` attribute, or a type nobody takes.

    Without it such a message would match no subscription and SNS would drop it silently.
    """
    return {
        "$or": [
            {"type": [{"exists": False}]},
            {"type": [{"anything-but": sorted(ROUTED_TYPES)}]},
        ]
    }


Action = Literal["created", "exists", "updated"]


@dataclass(frozen=True)
class ResourceChange:
    kind: str
    name: str
    action: Action


@dataclass
class BootstrapReport:
    changes: list[ResourceChange] = field(default_factory=list)
    topic_arn: str = ""
    queue_urls: dict[str, str] = field(default_factory=dict)
    dlq_urls: dict[str, str] = field(default_factory=dict)
    #: The queue of messages no consumer's filter matches (empty before bootstrap made it).
    unrouted_url: str = ""

    def add(self, kind: str, name: str, action: Action) -> None:
        self.changes.append(ResourceChange(kind, name, action))

    @property
    def changed(self) -> bool:
        return any(c.action != "exists" for c in self.changes)


async def bootstrap(aws: AwsClients, names: Names) -> BootstrapReport:
    """Create every resource that is missing and fix settings that drifted.

    Idempotent: running it again reports every resource as ``exists`` and changes nothing.
    """
    report = BootstrapReport()
    report.topic_arn = await _ensure_topic(aws, names, report)
    for spec in QUEUES:
        dlq_url, dlq_arn = await _ensure_queue(
            aws,
            names.dlq(spec.consumer),
            {"MessageRetentionPeriod": str(spec.dlq_retention_seconds)},
            report,
        )
        queue_attributes = {
            "VisibilityTimeout": str(spec.visibility_timeout),
            "MessageRetentionPeriod": str(spec.retention_seconds),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count},
                separators=(",", ":"),
            ),
        }
        queue_url, queue_arn = await _ensure_queue(
            aws, names.queue(spec.consumer), queue_attributes, report
        )
        await _ensure_queue_policy(aws, queue_url, queue_arn, report.topic_arn)
        await _ensure_subscription(
            aws, report, dict(filter_policy(spec)), queue_arn, names.queue(spec.consumer)
        )
        report.queue_urls[spec.consumer] = queue_url
        report.dlq_urls[spec.consumer] = dlq_url
    report.unrouted_url = await _ensure_unrouted(aws, names, report)
    for table in TABLES:
        await _ensure_table(aws, names.table(table.suffix), table, report)
    await _ensure_bucket(aws, names.bucket, report)
    return report


async def _ensure_unrouted(aws: AwsClients, names: Names, report: BootstrapReport) -> str:
    retention = {"MessageRetentionPeriod": str(QUEUES[0].dlq_retention_seconds)}
    url, arn = await _ensure_queue(aws, names.unrouted, retention, report)
    await _ensure_queue_policy(aws, url, arn, report.topic_arn)
    await _ensure_subscription(aws, report, unrouted_filter_policy(), arn, names.unrouted)
    return url


async def _ensure_topic(aws: AwsClients, names: Names, report: BootstrapReport) -> str:
    existing = await _find_topic_arn(aws, names.topic)
    if existing:
        report.add("sns topic", names.topic, "exists")
        return existing
    response = await aws.sns.create_topic(Name=names.topic)
    report.add("sns topic", names.topic, "created")
    return response["TopicArn"]


_NO_SUCH_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


async def _find_topic_arn(aws: AwsClients, topic_name: str) -> str | None:
    # The client itself, opened if need be: a paginator is no API call.
    sns: SNSClient = await aws.client("sns")
    paginator = sns.get_paginator("list_topics")
    async for page in paginator.paginate():
        for topic in page.get("Topics", []):
            arn = topic.get("TopicArn", "")
            if arn.rsplit(":", 1)[-1] == topic_name:
                return arn
    return None


async def _ensure_queue(
    aws: AwsClients, name: str, attributes: dict[str, str], report: BootstrapReport
) -> tuple[str, str]:
    from botocore.exceptions import ClientError  # noqa: PLC0415 - botocore loads with the first client

    try:
        url = (await aws.sqs.get_queue_url(QueueName=name))["QueueUrl"]
    except ClientError as exc:
        if error_code(exc) not in {
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        }:
            raise
        url = (await aws.sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]  # type: ignore[arg-type]
        report.add("sqs queue", name, "created")
    else:
        response = await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        current: dict[str, str] = {str(k): v for k, v in response["Attributes"].items()}
        stale = {k: v for k, v in attributes.items() if not _same_attribute(current.get(k), v)}
        if stale:
            await aws.sqs.set_queue_attributes(QueueUrl=url, Attributes=stale)  # type: ignore[arg-type]
            report.add("sqs queue", name, "updated")
        else:
            report.add("sqs queue", name, "exists")
    arn = (await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    return url, arn


def _same_attribute(current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if wanted.startswith("{"):
        try:
            return bool(json.loads(current) == json.loads(wanted))
        except json.JSONDecodeError:
            return False
    return current == wanted


async def _ensure_queue_policy(
    aws: AwsClients, queue_url: str, queue_arn: str, topic_arn: str
) -> None:
    """Allow the topic to deliver to the queue (required on AWS; emulators ignore it)."""
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "toilkit-events-topic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )
    response = await aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
    current = response.get("Attributes", {}).get("Policy")
    if not _same_attribute(current, policy):
        await aws.sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})


async def _ensure_subscription(
    aws: AwsClients,
    report: BootstrapReport,
    wanted_policy: dict[str, Any],
    queue_arn: str,
    label: str,
) -> None:
    subscription_arn = None
    paginator = aws.sns.get_paginator("list_subscriptions_by_topic")
    async for page in paginator.paginate(TopicArn=report.topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs" and sub.get("Endpoint") == queue_arn:
                subscription_arn = sub["SubscriptionArn"]
    if subscription_arn is None:
        await aws.sns.subscribe(
            TopicArn=report.topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={
                "RawMessageDelivery": "true",
                "FilterPolicy": json.dumps(wanted_policy),
                "FilterPolicyScope": "MessageAttributes",
            },
        )
        report.add("sns subscription", label, "created")
        return
    attributes = (await aws.sns.get_subscription_attributes(SubscriptionArn=subscription_arn))[
        "Attributes"
    ]
    wanted: dict[str, str] = {
        "RawMessageDelivery": "true",
        "FilterPolicy": json.dumps(wanted_policy),
    }
    stale = {k: v for k, v in wanted.items() if not _same_attribute(attributes.get(k), v)}
    for name, value in stale.items():
        await aws.sns.set_subscription_attributes(
            SubscriptionArn=subscription_arn, AttributeName=name, AttributeValue=value
        )
    report.add("sns subscription", label, "updated" if stale else "exists")


async def _ensure_table(
    aws: AwsClients, name: str, spec: TableSpec, report: BootstrapReport
) -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415 - botocore loads with the first client

    try:
        await aws.dynamodb.describe_table(TableName=name)
        report.add("dynamodb table", name, "exists")
        return
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    key_schema: list[Any] = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
    attributes: list[Any] = [{"AttributeName": spec.hash_key, "AttributeType": "S"}]
    if spec.range_key:
        key_schema.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
        attributes.append({"AttributeName": spec.range_key, "AttributeType": "S"})
    await aws.dynamodb.create_table(
        TableName=name,
        KeySchema=key_schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
    )
    waiter = aws.dynamodb.get_waiter("table_exists")
    await waiter.wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    await aws.dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
    )
    report.add("dynamodb table", name, "created")


async def _ensure_bucket(aws: AwsClients, name: str, report: BootstrapReport) -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415 - botocore loads with the first client

    try:
        await aws.s3.head_bucket(Bucket=name)
        report.add("s3 bucket", name, "exists")
        return
    except ClientError as exc:
        if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    if aws.settings.region == "us-east-1":
        await aws.s3.create_bucket(Bucket=name)
    else:
        await aws.s3.create_bucket(
            Bucket=name,
            CreateBucketConfiguration={"LocationConstraint": aws.settings.region},  # type: ignore[typeddict-item]
        )
    report.add("s3 bucket", name, "created")


async def resolve_urls(aws: AwsClients, names: Names) -> BootstrapReport:
    """Look up the topic ARN and queue URLs of an existing deployment without changing it.

    The lookups run side by side: they are a cold Lambda sandbox's first AWS calls."""
    from botocore.exceptions import ClientError  # noqa: PLC0415 - botocore loads with the first client

    report = BootstrapReport()

    async def queue_url(name: str) -> str | None:
        try:
            return (await aws.sqs.get_queue_url(QueueName=name))["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) in _NO_SUCH_QUEUE:
                return None
            raise

    consumers = [spec.consumer for spec in QUEUES]
    # A task group, so one failed lookup cancels the others instead of leaving them behind.
    async with asyncio.TaskGroup() as group:
        topic = group.create_task(_find_topic_arn(aws, names.topic))
        queues = [group.create_task(queue_url(names.queue(c))) for c in consumers]
        dlqs = [group.create_task(queue_url(names.dlq(c))) for c in consumers]
    arn = topic.result()
    if arn is None:
        raise ConfigError(
            f"SNS topic {names.topic!r} not found at {aws.settings.endpoint_for('sns') or 'AWS'}; "
            "run `toilkit bootstrap` first"
        )
    report.topic_arn = arn
    for consumer, url, dlq_url in zip(consumers, queues, dlqs, strict=True):
        found, dlq_found = url.result(), dlq_url.result()
        if found is None or dlq_found is None:
            missing = names.queue(consumer) if found is None else names.dlq(consumer)
            raise ConfigError(f"SQS queue {missing!r} not found; run `toilkit bootstrap` first")
        report.queue_urls[consumer] = found
        report.dlq_urls[consumer] = dlq_found
    return report
