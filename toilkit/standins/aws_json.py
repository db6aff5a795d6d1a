"""AWS's JSON 1.1 protocol as a stand-in answers it: ``POST /`` with ``X-Amz-Target:
<prefix>.<Operation>``, a JSON body, and errors as ``{"__type": code, "message": ...}``.

The CloudTrail and CodeBuild stand-ins share it, so the real (aiobotocore/boto3) clients
work against them unchanged through ``endpoint_url``. Requests are not signature-checked,
but the caller's access key id is read from the SigV4 ``Authorization`` header, recorded with
each call, and may be resolved to an account (:meth:`AwsJsonStandin.identify`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from toilkit.standins.server import StandinServer

CONTENT_TYPE = "application/x-amz-json-1.1"
# SigV4: "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cloudtrail/aws4_request, ..."
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/")


class AwsJsonFailure(Exception):
    """An API error, answered as ``{"__type": code, "message": ...}`` (status 400 unless told)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Caller:
    """Who made a call: the access key id it was signed with, and its account if known."""

    access_key_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True)
class RecordedCall:
    """One API call a stand-in answered: the operation, the request body, the status, and
    the caller (the access key id it was signed with; its account when the stand-in knows)."""

    operation: str
    request: Mapping[str, Any]
    status: int
    caller: Caller = Caller()


def access_key_of(request: web.Request) -> str | None:
    """The access key id a SigV4-signed request names (``None`` when it is unsigned)."""
    match = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    return match["key"] if match else None


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


async def admin_call(
    request: web.Request, what: str, act: Callable[[Any], Mapping[str, Any] | None]
) -> web.Response:
    """Answer a test's request to one of a stand-in's ``/_standin`` endpoints: what ``act``
    returns for its JSON body (``{"ok": true}`` for None), or 400 with ``"<what>: <the
    problem>"`` when the body does not fit."""
    try:
        answer = act(await request.json())
    except (ValueError, KeyError, TypeError) as exc:
        return json_response({"error": f"{what}: {exc}"}, status=400)
    return json_response({"ok": True} if answer is None else answer)


class AwsJsonStandin(StandinServer):
    """A stand-in for one AWS JSON 1.1 service: ``POST /`` runs :meth:`dispatch` and
    records the call; ``GET /_standin/calls`` and ``POST /_standin/reset`` come with it.

    A stand-in adds its own endpoints in :meth:`add_admin_routes` and forgets its own
    state in :meth:`forget`.
    """

    target_prefix: ClassVar[str] = ""
    #: The variable that points AWS clients at the stand-in (``AWS_ENDPOINT_URL_<SERVICE>``).
    endpoint_variable: ClassVar[str] = "AWS_ENDPOINT_URL"

    def __init__(self) -> None:
        super().__init__()
        self.recorded: list[RecordedCall] = []

    def announcement(self) -> str:
        """The setting that points AWS clients at the running stand-in."""
        return f"{self.name}: {self.endpoint_variable}={self.url}"

    def dispatch(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one API call (raise :class:`AwsJsonFailure` for an error)."""
        raise NotImplementedError

    def dispatch_for(self, caller: Caller, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one call of ``caller`` (a stand-in whose answer depends on the caller's
        account overrides this); :meth:`dispatch` by default."""
        return self.dispatch(operation, body)

    async def identify(self, access_key_id: str | None) -> str | None:
        """The account of an access key id, or ``None`` (the default: not known).

        Raises:
            AwsJsonFailure: the key is not valid (answered as the service would).
        """
        return None

    def add_admin_routes(self, router: web.UrlDispatcher) -> None:
        """Add the stand-in's own ``/_standin/...`` endpoints."""

    def forget(self) -> None:
        """Forget the stand-in's own state (the calls are forgotten by :meth:`reset`)."""

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/", self._handle_api)
        router.add_get("/_standin/calls", self._handle_calls)
        router.add_post("/_standin/reset", self._handle_reset)
        self.add_admin_routes(router)

    def calls(self, operation: str | None = None) -> list[RecordedCall]:
        """Every call answered, oldest first; only ``operation``'s when given."""
        return [c for c in self.recorded if operation in (None, c.operation)]

    def reset(self) -> None:
        self.recorded = []
        self.forget()

    async def _handle_api(self, request: web.Request) -> web.Response:
        operation, body = await read_call(request, self.target_prefix)
        caller = Caller(access_key_of(request))
        try:
            caller = Caller(caller.access_key_id, await self.identify(caller.access_key_id))
            result = self._answer(caller, operation, body)
        except AwsJsonFailure as failure:
            self.recorded.append(RecordedCall(operation, body or {}, failure.status, caller))
            return failure_response(failure)
        self.recorded.append(RecordedCall(operation, body, 200, caller))
        return json_response(result)

    def _answer(self, caller: Caller, operation: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise AwsJsonFailure("SerializationException", "request body is not a JSON object")
        return self.dispatch_for(caller, operation, body)

    async def _handle_calls(self, request: web.Request) -> web.Response:
        return json_response(
            [
                {
                    "operation": c.operation,
                    "request": c.request,
                    "status": c.status,
                    "access_key_id": c.caller.access_key_id,
                    "account_id": c.caller.account_id,
                }
                for c in self.calls()
            ]
        )

    async def _handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"ok": True})
