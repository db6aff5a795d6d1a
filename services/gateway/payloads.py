"""The shapes of what Slack sends the gateway, as pydantic models.

Every body is checked against these models before Bolt sees it: a signed body that does
not have the shape of a request we serve is answered ``400`` at the door, so nothing
further in (Bolt's context building, listener matching, our listeners) ever meets a
``user`` that is a number or an ``actions`` that is a string. Unknown fields are kept:
Slack adds fields over time, and only the ones listed here are relied on.
"""

# No ``from __future__ import annotations`` here: pydantic would read every field's type
# from its string (typing compiles and evaluates each one), these models: ~1.5 ms of a gateway cold start.

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.slack.blocks import MAX_BUTTON_VALUE

#: Interaction payload types the gateway serves (everything else is refused with 400).
INTERACTION_TYPES = ("block_actions", "block_suggestion", "view_submission", "view_closed")

_Id = Annotated[str, Field(min_length=1, max_length=255)]
_Text = Annotated[str, Field(max_length=40_000)]


class _Payload(BaseModel):
    # defer_build: each shape's validator is built when a body of that kind first arrives,
    # so a cold sandbox whose first request is a slash command builds no interaction's.
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class BadPayload(ValueError):
    """A body that is not a request the gateway serves; the message says what is wrong."""


# --------------------------------------------------------------------------- parts


class PayloadUser(_Payload):
    id: _Id
    username: str | None = None
    name: str | None = None
    team_id: str | None = None

    @property
    def display_name(self) -> str:
        return self.username or self.name or self.id


class PayloadTeam(_Payload):
    id: str | None = None
    domain: str | None = None
    enterprise_id: str | None = None


class PayloadEnterprise(_Payload):
    id: str | None = None


class PayloadChannel(_Payload):
    id: _Id
    name: str | None = None


class Authorization(_Payload):
    """Bolt reads the first of these for the team and enterprise ids."""

    enterprise_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    is_bot: bool | None = None
    is_enterprise_install: bool | str | None = None


class SelectedOption(_Payload):
    value: str = Field(max_length=2000)


class ActionPayload(_Payload):
    """One element interaction of a ``block_actions`` payload."""

    action_id: _Id
    block_id: str | None = None
    type: str = ""
    # A button's value, as shared.slack drew it (the encoders keep it within this).
    value: str | None = Field(default=None, max_length=MAX_BUTTON_VALUE)
    selected_option: SelectedOption | None = None
    action_ts: str | None = None


class StateValue(_Payload):
    """One input's current value in ``view.state.values[block_id][action_id]``."""

    type: str = ""
    value: str | None = None
    selected_option: SelectedOption | None = None
    selected_options: list[SelectedOption] | None = None
    selected_user: str | None = None


class ViewState(_Payload):
    values: dict[str, dict[str, StateValue]] = Field(default_factory=dict)


class ViewPayload(_Payload):
    id: _Id
    # Bolt reads both while dispatching any view payload.
    type: str
    callback_id: str
    hash: str | None = None
    private_metadata: str = Field(default="", max_length=3000)
    state: ViewState = Field(default_factory=ViewState)
    team_id: str | None = None
    app_installed_team_id: str | None = None


class ResponseUrl(_Payload):
    response_url: str | None = None


class _Interaction(_Payload):
    """What every interaction payload shares (and what Bolt's context building reads)."""

    user: PayloadUser
    team: PayloadTeam | None = None
    enterprise: PayloadEnterprise | str | None = None
    is_enterprise_install: bool | str | None = None
    authorizations: list[Authorization] | None = None
    api_app_id: str | None = None
    trigger_id: str | None = None
    response_url: str | None = None
    response_urls: list[ResponseUrl] | None = None
    channel: PayloadChannel | None = None


# --------------------------------------------------------------------------- requests


class BlockActions(_Interaction):
    type: Literal["block_actions"]
    actions: list[ActionPayload] = Field(min_length=1, max_length=25)
    view: ViewPayload | None = None
    container: dict[str, Any] | None = None
    message: dict[str, Any] | None = None

    @property
    def action(self) -> ActionPayload:
        return self.actions[0]


class ViewSubmission(_Interaction):
    type: Literal["view_submission"]
    view: ViewPayload


class ViewClosed(_Interaction):
    type: Literal["view_closed"]
    view: ViewPayload


class BlockSuggestion(_Interaction):
    """Slack asks for the options of an ``external_select`` as the person types."""

    type: Literal["block_suggestion"]
    action_id: _Id
    block_id: _Id
    value: str = Field(default="", max_length=2000)
    view: ViewPayload | None = None
    container: dict[str, Any] | None = None


Interaction: TypeAlias = Annotated[
    BlockActions | BlockSuggestion | ViewSubmission | ViewClosed, Field(discriminator="type")
]
_INTERACTION: TypeAdapter[Interaction] = TypeAdapter(
    Interaction, config=ConfigDict(defer_build=True)
)


class SlashCommand(_Payload):
    """A slash command invocation (a form body; every field is text)."""

    command: _Id
    text: _Text = ""
    user_id: _Id
    user_name: str = ""
    channel_id: str | None = None
    channel_name: str | None = None
    team_id: str | None = None
    enterprise_id: str | None = None
    trigger_id: str | None = None
    response_url: str | None = None
    api_app_id: str | None = None


class SslCheck(_Payload):
    """Slack's periodic check of the certificate of a slash command URL."""

    ssl_check: Literal["1"]


class UrlVerification(_Payload):
    """Slack's check of an Events API request URL (answered with the challenge)."""

    type: Literal["url_verification"]
    challenge: str = Field(max_length=1000)


SlackRequest: TypeAlias = SlashCommand | SslCheck | UrlVerification | Interaction


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedBody:
    """A checked request, and the body as Bolt's listeners should see it."""

    request: SlackRequest
    body: dict[str, Any]


def parse_slack_body(text: str, content_type: str | None) -> ParsedBody:
    """Check a (verified, decoded) body against the requests the gateway serves.

    JSON for ``application/json``; otherwise a form, whose ``payload`` field (interactions)
    is JSON. The returned ``body`` replaces Bolt's own parse, which takes any form that
    merely contains the text "payload" (``/toil drift scan payload-api``) for an
    interaction and loses it.

    Raises:
        BadPayload: the body is not one of them; the message says why.
    """
    if content_type == "application/json":
        data = _json_object(text, "body")
        try:
            return ParsedBody(UrlVerification.model_validate(data), data)
        except ValidationError as exc:
            raise BadPayload(f"unsupported JSON request: {_first_problem(exc)}") from exc
    if content_type != "application/x-www-form-urlencoded":
        raise BadPayload(f"unsupported content type {content_type!r}")
    try:
        form = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload(f"the body is not a form: {exc}") from exc
    fields = dict(form)
    if len(fields) != len(form):
        raise BadPayload("a form field is given more than once")
    if "payload" in fields:
        data = _json_object(fields["payload"], "payload")
        if data.get("type") not in INTERACTION_TYPES:
            raise BadPayload(f"unsupported interaction type {data.get('type')!r}")
        try:
            return ParsedBody(_INTERACTION.validate_python(data), data)
        except ValidationError as exc:
            raise BadPayload(f"malformed {data['type']} payload: {_first_problem(exc)}") from exc
    if fields.get("ssl_check") == "1":
        return ParsedBody(SslCheck.model_validate(fields), dict(fields))
    if "command" in fields:
        try:
            return ParsedBody(SlashCommand.model_validate(fields), dict(fields))
        except ValidationError as exc:
            raise BadPayload(f"malformed slash command: {_first_problem(exc)}") from exc
    raise BadPayload("the form is neither a slash command nor an interaction")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadPayload(f"the {what} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadPayload(f"the {what} is JSON {type(data).__name__}, expected an object")
    return data


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top)"
    return f"{where}: {err['msg']}"
