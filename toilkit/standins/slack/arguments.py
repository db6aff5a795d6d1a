"""The arguments of a Web API call: how they are read, checked and refused, as on Slack.

slack-sdk sends arguments as a form or as JSON, with the token in the ``Authorization``
header; a refused call is answered ``{"ok": false, "error": <code>}``
(:class:`SlackApiFailure`). Also the paging and ``ts`` ranges of the read methods.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from aiohttp import web

#: A JSON object: an argument, a payload, a message, a block or a view (the stand-in's one
#: name for it).
JsonDict = dict[str, Any]

#: Arguments that slack-sdk sends as JSON strings in form bodies and as objects in JSON bodies.
JSON_ENCODED_ARGUMENTS = ("blocks", "attachments", "view", "metadata")


class SlackApiFailure(Exception):
    """A Web API call that Slack answers with ``{"ok": false, "error": <code>}``."""

    def __init__(self, error: str, **details: Any) -> None:
        super().__init__(error)
        self.error = error
        self.details = details

    def body(self) -> JsonDict:
        """The response body Slack sends for this failure."""
        return {"ok": False, "error": self.error, **self.details}


def invalid_arguments(*messages: str) -> SlackApiFailure:
    """Slack's answer to a malformed call, with its ``[ERROR] ...`` messages."""
    return SlackApiFailure(
        "invalid_arguments",
        response_metadata={"messages": [f"[ERROR] {message}" for message in messages]},
    )


async def read_arguments(request: web.Request) -> JsonDict:
    """The call's arguments from its query string and its form or JSON body.

    JSON-encoded arguments (``blocks`` in a form body) are decoded; what does not decode is
    left as a string for the method to reject with Slack's error code.
    """
    arguments: JsonDict = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError as error:
                raise SlackApiFailure("invalid_json") from error
            if not isinstance(body, dict):
                raise SlackApiFailure("json_not_object")
            arguments.update(body)
        else:
            form = await request.post()
            arguments.update({key: value for key, value in form.items() if isinstance(value, str)})
    for key in JSON_ENCODED_ARGUMENTS:
        value = arguments.get(key)
        if isinstance(value, str):
            try:
                arguments[key] = json.loads(value)
            except json.JSONDecodeError:
                continue
    return {key: value for key, value in arguments.items() if value is not None}


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def optional_str(arguments: JsonDict, name: str) -> str | None:
    value = arguments.get(name)
    return None if value is None else str(value)


def message_metadata(metadata: Any) -> JsonDict:
    """A message's ``metadata`` argument, checked as Slack checks it."""
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not metadata["event_type"]
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        raise SlackApiFailure("invalid_metadata_format")
    return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}


def in_ts_range(messages: list[JsonDict], arguments: JsonDict) -> list[JsonDict]:
    """The messages between ``oldest`` and ``latest`` (exclusive unless ``inclusive``)."""
    try:
        oldest = float(arguments.get("oldest") or 0)
        latest = float(arguments.get("latest") or "inf")
    except (TypeError, ValueError) as error:
        raise invalid_arguments("oldest and latest must be timestamps") from error
    inclusive = str(arguments.get("inclusive", "")).lower() in ("1", "true")

    def within(ts: float) -> bool:
        if inclusive:
            return oldest <= ts <= latest
        return oldest < ts < latest

    return [m for m in messages if within(float(m["ts"]))]


def page_of(
    messages: list[JsonDict], arguments: JsonDict, *, default_limit: int = 100
) -> tuple[list[JsonDict], bool, str]:
    """One page of ``messages`` after ``cursor``: (page, has_more, next_cursor)."""
    try:
        limit = min(max(int(arguments.get("limit") or default_limit), 1), 1000)
        start = (
            int(base64.b64decode(str(arguments["cursor"])).decode())
            if arguments.get("cursor")
            else 0
        )
    except (TypeError, ValueError) as error:
        raise SlackApiFailure("invalid_cursor") from error
    page = messages[start : start + limit]
    has_more = start + limit < len(messages)
    next_cursor = base64.b64encode(str(start + limit).encode()).decode() if has_more else ""
    return page, has_more, next_cursor


def as_read(message: JsonDict, arguments: JsonDict) -> JsonDict:
    """A message as the read methods return it: metadata only when asked for."""
    copied = copy.deepcopy(message)
    if str(arguments.get("include_all_metadata", "")).lower() not in ("1", "true"):
        copied.pop("metadata", None)
    return copied
