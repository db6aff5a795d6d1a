"""AWS's JSON 1.1 protocol as a stand-in answers it: ``POST /`` with ``X-Amz-Target:
<prefix>.<Operation>``, a JSON body, and errors as ``{"__type": code, "message": ...}``.

The CloudTrail and CodeBuild stand-ins share it, so the real (aiobotocore/boto3) clients
work against them unchanged through ``endpoint_url``. Requests are not signature-checked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/x-amz-json-1.1"


class AwsJsonFailure(Exception):
    """An API error, answered as ``{"__type": code, "message": ...}`` (status 400 unless told)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RecordedCall:
    """One API call a stand-in answered: the operation, the request body, the status."""

    operation: str
    request: Mapping[str, Any]
    status: int


async def read_call(request: web.Request, target_prefix: str) -> tuple[str, Any]:
    """The operation named by ``X-Amz-Target`` (the whole target if the prefix is not
    the service's) and the JSON body (None if it is not JSON)."""
    target = request.headers.get("X-Amz-Target", "")
    operation = target.removeprefix(target_prefix) if target.startswith(target_prefix) else target
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = None
    return operation, body


def failure_response(failure: AwsJsonFailure) -> web.Response:
    """The error response of the JSON protocol (botocore reads ``__type``)."""
    return json_response(
        {"__type": failure.code, "message": failure.message},
        status=failure.status,
        headers={"x-amzn-ErrorType": failure.code},
    )


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={
            "Content-Type": CONTENT_TYPE,
            "x-amzn-RequestId": str(uuid.uuid4()),
            **(headers or {}),
        },
    )


def calls_response(calls: list[RecordedCall]) -> web.Response:
    """``GET /_standin/calls``: every recorded call."""
    return json_response(
        [{"operation": c.operation, "request": c.request, "status": c.status} for c in calls]
    )
