"""A CloudTrail stand-in: ``LookupEvents`` over AWS's JSON 1.1 protocol, for tests and demos.

moto has no ``LookupEvents``, and the detector's attribution needs it. :class:`CloudTrailStandin`
is an aiohttp server that answers ``POST /`` with ``X-Amz-Target:
com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`` as CloudTrail does, so
the real (aiobotocore/boto3) ``cloudtrail`` client works against it unchanged through
``endpoint_url``. It keeps an event history the test fills with :meth:`add_event`, applies
the same validation as the service (one lookup attribute, a time range, ``MaxResults`` 1-50,
paging tokens) with the service's error codes, answers newest first, records every call,
and can be told to throttle the next calls.

Requests are not signature-checked; everything else about the wire format is real.

**Accounts.** Each event belongs to an account (its principal's, unless given). Like
CloudTrail, which answers from the trail of the account whose credentials call it, a
stand-in given ``sts_endpoint_url`` (moto's) asks STS ``GetCallerIdentity`` which account the
caller's access key id belongs to (an assumed role's temporary key belongs to the role's
account) and answers only that account's events; each recorded call says which account
made it. Without ``sts_endpoint_url`` every caller sees every event.

HTTP endpoints besides the API::

    POST /_standin/events   add an event (the arguments of :meth:`add_event`, times in ISO 8601)
    GET  /_standin/calls    every recorded call: operation, request body, status
    POST /_standin/reset    forget events, calls and faults

Run it alone with ``python -m toilkit.standins.cloudtrail --port 4599``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiobotocore.session import get_session
from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError

from toilkit.standins.aws_json import AwsJsonFailure, AwsJsonStandin, Caller, admin_call
from toilkit.standins.server import run_from_command_line

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
LOOKUP_ATTRIBUTE_KEYS = frozenset(
    {
        "EventId",
        "EventName",
        "ReadOnly",
        "Username",
        "ResourceType",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
    }
)
MAX_RESULTS = 50


#: CloudTrail's API errors (the JSON protocol's ``__type`` and message).
CloudTrailFailure = AwsJsonFailure


@dataclass(frozen=True)
class TrailEvent:
    """One management event in the stand-in's history."""

    event_id: str
    event_name: str
    event_source: str
    event_time: datetime
    username: str
    principal_arn: str
    read_only: bool
    resources: tuple[tuple[str, str], ...]
    source_ip: str
    access_key_id: str
    region: str
    account_id: str = ""

    def attribute(self, key: str) -> list[str]:
        """The values a lookup attribute ``key`` matches for this event."""
        values: dict[str, list[str]] = {
            "EventId": [self.event_id],
            "EventName": [self.event_name],
            "ReadOnly": ["true" if self.read_only else "false"],
            "Username": [self.username],
            "ResourceType": [t for t, _ in self.resources],
            "ResourceName": [n for _, n in self.resources],
            "EventSource": [self.event_source],
            "AccessKeyId": [self.access_key_id],
        }
        return values[key]

    def as_api(self) -> dict[str, Any]:
        """The ``Event`` shape of the ``LookupEvents`` response."""
        identity_type = "AssumedRole" if ":assumed-role/" in self.principal_arn else "IAMUser"
        detail = {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": identity_type,
                "arn": self.principal_arn,
                "accountId": self.account_id or _account_of(self.principal_arn),
                "accessKeyId": self.access_key_id,
                "userName": self.username,
            },
            "eventTime": self.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": self.event_source,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": self.source_ip,
            "readOnly": self.read_only,
            "eventID": self.event_id,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "resources": [{"type": t, "ARN": n} for t, n in self.resources],
        }
        return {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": "true" if self.read_only else "false",
            "AccessKeyId": self.access_key_id,
            "EventTime": self.event_time.timestamp(),
            "EventSource": self.event_source,
            "Username": self.username,
            "Resources": [{"ResourceType": t, "ResourceName": n} for t, n in self.resources],
            "CloudTrailEvent": json.dumps(detail),
        }


@dataclass
class _State:
    events: list[TrailEvent] = field(default_factory=list)
    throttle_next: int = 0


class CloudTrailStandin(AwsJsonStandin):
    """The CloudTrail stand-in server (``async with CloudTrailStandin() as trail:``)."""

    name = "CloudTrail stand-in"
    target_prefix = TARGET_PREFIX
    endpoint_variable = "AWS_ENDPOINT_URL_CLOUDTRAIL"
    default_port = 4599

    def __init__(self, region: str = "us-east-1", *, sts_endpoint_url: str | None = None) -> None:
        super().__init__()
        self.region = region
        self.sts_endpoint_url = sts_endpoint_url
        self._state = _State()
        self._accounts: dict[str, str] = {}

    def add_admin_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/_standin/events", self._handle_add_event)

    @property
    def endpoint_url(self) -> str:
        """The URL to give the ``cloudtrail`` client as ``endpoint_url``."""
        return self.url

    # ------------------------------------------------------------ in-process API

    def add_event(
        self,
        *,
        event_name: str,
        principal_arn: str,
        resources: Iterable[tuple[str, str]],
        event_time: datetime,
        event_source: str = "ec2.amazonaws.com",
        username: str | None = None,
        read_only: bool = False,
        source_ip: str = "203.0.113.10",
        access_key_id: str = "ASIASTANDIN000000000",
        account_id: str | None = None,
    ) -> TrailEvent:
        """Put an event in the history, as if the principal had made that call.

        ``account_id`` is the trail it is in (default: the principal ARN's account).
        """
        if event_time.tzinfo is None:
            raise ValueError("event_time must be timezone-aware")
        event = TrailEvent(
            event_id=str(uuid.uuid4()),
            event_name=event_name,
            event_source=event_source,
            event_time=event_time.astimezone(UTC),
            username=username or principal_arn.rsplit("/", 1)[-1],
            principal_arn=principal_arn,
            read_only=read_only,
            resources=tuple(resources),
            source_ip=source_ip,
            access_key_id=access_key_id,
            region=self.region,
            account_id=account_id or _account_of(principal_arn),
        )
        self._state.events.append(event)
        return event

    def throttle_next(self, calls: int) -> None:
        """Answer the next ``calls`` API calls with ``ThrottlingException``."""
        self._state.throttle_next = calls

    def forget(self) -> None:
        self._state = _State()

    # ------------------------------------------------------------------ the API

    async def identify(self, access_key_id: str | None) -> str | None:
        """The caller's account, from STS (``None`` without ``sts_endpoint_url``)."""
        if self.sts_endpoint_url is None or access_key_id is None:
            return None
        if access_key_id not in self._accounts:
            try:
                async with get_session().create_client(
                    "sts",
                    region_name=self.region,
                    endpoint_url=self.sts_endpoint_url,
                    aws_access_key_id=access_key_id,
                    # The stand-in never sees the caller's secret; moto's STS checks no
                    # signature, only which account the key id belongs to.
                    aws_secret_access_key="unknown-to-the-standin",
                ) as sts:
                    identity = await sts.get_caller_identity()
            except (ClientError, BotoCoreError) as exc:
                raise CloudTrailFailure(
                    "UnrecognizedClientException",
                    f"The security token included in the request is invalid ({exc}).",
                ) from exc
            self._accounts[access_key_id] = identity["Account"]
        return self._accounts[access_key_id]

    def dispatch_for(self, caller: Caller, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._state.throttle_next > 0:
            self._state.throttle_next -= 1
            raise CloudTrailFailure("ThrottlingException", "Rate exceeded")
        if operation != "LookupEvents":
            raise CloudTrailFailure(
                "UnknownOperationException", f"the stand-in does not implement {operation!r}"
            )
        return self._lookup_events(body, caller.account_id)

    def dispatch(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.dispatch_for(Caller(), operation, body)

    def _lookup_events(
        self, body: Mapping[str, Any], account_id: str | None = None
    ) -> dict[str, Any]:
        attributes = body.get("LookupAttributes") or []
        if not isinstance(attributes, list) or len(attributes) > 1:
            raise CloudTrailFailure(
                "InvalidLookupAttributesException",
                "You cannot specify more than one lookup attribute per request.",
            )
        predicate: tuple[str, str] | None = None
        if attributes:
            first = attributes[0] if isinstance(attributes[0], dict) else {}
            key, value = first.get("AttributeKey"), first.get("AttributeValue")
            if key not in LOOKUP_ATTRIBUTE_KEYS or not isinstance(value, str) or not value:
                raise CloudTrailFailure(
                    "InvalidLookupAttributesException",
                    f"invalid lookup attribute {first!r}",
                )
            predicate = (key, value)
        start = _time(body.get("StartTime"), "StartTime")
        end = _time(body.get("EndTime"), "EndTime")
        if start is not None and end is not None and start > end:
            raise CloudTrailFailure(
                "InvalidTimeRangeException", "Start time must be before end time."
            )
        max_results = body.get("MaxResults", MAX_RESULTS)
        if not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
            raise CloudTrailFailure(
                "InvalidMaxResultsException", "MaxResults must be between 1 and 50."
            )
        offset = _offset(body.get("NextToken"))

        matching = [
            e
            for e in self._state.events
            if (predicate is None or predicate[1] in e.attribute(predicate[0]))
            and (account_id is None or e.account_id == account_id)
            and (start is None or e.event_time >= start)
            and (end is None or e.event_time <= end)
        ]
        matching.sort(key=lambda e: e.event_time, reverse=True)
        page = matching[offset : offset + max_results]
        result: dict[str, Any] = {"Events": [e.as_api() for e in page]}
        if offset + max_results < len(matching):
            result["NextToken"] = base64.b64encode(str(offset + max_results).encode()).decode()
        return result

    # ------------------------------------------------------------ admin endpoints

    async def _handle_add_event(self, request: web.Request) -> web.Response:
        return await admin_call(request, "invalid event", self._add_event_from_json)

    def _add_event_from_json(self, raw: Any) -> dict[str, Any]:
        event = self.add_event(
            event_name=raw["event_name"],
            principal_arn=raw["principal_arn"],
            resources=[tuple(r) for r in raw.get("resources", [])],
            event_time=datetime.fromisoformat(raw["event_time"]),
            event_source=raw.get("event_source", "ec2.amazonaws.com"),
            username=raw.get("username"),
            read_only=bool(raw.get("read_only", False)),
            account_id=raw.get("account_id"),
        )
        return event.as_api()


def _time(value: Any, name: str) -> datetime | None:
    """The JSON protocol sends timestamps as epoch seconds (a number)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CloudTrailFailure("SerializationException", f"{name} must be epoch seconds")
    return datetime.fromtimestamp(value, UTC)


def _offset(token: Any) -> int:
    if token is None:
        return 0
    try:
        return int(base64.b64decode(str(token), validate=True).decode())
    except ValueError:
        raise CloudTrailFailure("InvalidNextTokenException", "Invalid NextToken.") from None


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else "123456789012"


# ------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> None:
    """``python -m toilkit.standins.cloudtrail [--host H] [--port P]``."""
    run_from_command_line(CloudTrailStandin, argv)


if __name__ == "__main__":
    main()
