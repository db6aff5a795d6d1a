"""The project's own Slack: a stand-in for the Slack Web API, with a page that shows it.

:class:`SlackStandin` is an aiohttp server that speaks the Web API methods toilkit uses under
``/api/`` as slack.com does, so ``AsyncWebClient(base_url=standin.api_url)`` (and the sync
``WebClient``) work against it unchanged. It answers with Slack's response shapes and error
codes, records every call, keeps the resulting channel state, can inject the failures Slack
has in real life (429 with ``Retry-After``, 5xx, slow answers, dropped connections), and
serves a page at ``/`` that renders each channel as Slack would.

HTTP endpoints besides the Web API (all JSON unless noted)::

    GET    /_standin/calls[?method=M]      every recorded call: method, arguments, response, time
    GET    /_standin/messages[?channel=C]  a channel's messages (latest versions, thread replies)
    GET    /_standin/state                 a version counter and a channel summary (the page polls it)
    GET    /_standin/faults                the fault rules in force
    POST   /_standin/faults                install a fault rule (a :class:`FaultSpec` as JSON)
    DELETE /_standin/faults                remove every fault rule
    POST   /_standin/triggers              issue a trigger id: {"user_id": "U..."} -> {"trigger_id": ...}
    POST   /_standin/reset                 forget calls, messages, views, triggers and faults
    GET    /[?channel=C&user=U]            the page (HTML); /_standin/fragment is its refreshed body

Connected to an app (:meth:`SlackStandin.connect_app`, or ``--app-url`` and
``--signing-secret``), the stand-in also plays Slack's *client*: the page gets a message box,
clickable buttons and modals as forms, and what the person does is sent to the app's Request
URL as Slack sends it (a slash command form or a ``payload=`` interaction, signed ``v0=``
HMAC-SHA256, with trigger ids this stand-in accepts and response URLs it serves). The
page's script calls these (JSON in, JSON out; the tests call them too)::

    POST   /_standin/client/command        {"channel", "user", "text": "/toil run"}
    POST   /_standin/client/button         {"channel", "user", "message_ts", "action_id"[, "block_id"]}
    POST   /_standin/client/view_action    {"view_id", "user", "block_id", "action_id", "values"}
    POST   /_standin/client/view_submit    {"view_id", "user", "values"}
    POST   /_standin/client/view_close     {"view_id", "user"}
    GET    /_standin/client/modal?user=U   the modal U sees: view, errors under blocks, notice
    POST   /_standin/response/<token>      a response_url (5 messages within 30 minutes)

``values`` is what the form holds: block id -> action id -> text, an option value or user id,
a list of them, or null; the stand-in turns it into Slack's ``view.state.values``.

Run it alone with ``python -m toilkit.standins.slack --port 3001`` (add ``--app-url
http://127.0.0.1:3000/slack/events --signing-secret S`` to drive a gateway).

Where things are (one module per part, like bolt-python's test mock server)::

    standin.py       SlackStandin: wires the parts below into one server; the in-process API
    workspace.py     the state: users, channels and messages, views and modal stacks, triggers
    web_api.py       the Web API methods (/api/<method>): chat.*, conversations.*, users.*, views.*
    arguments.py     reading a call's arguments; Slack's error answers (SlackApiFailure)
    block_kit.py     Slack's Block Kit limits and validation messages
    faults.py        fault injection: FaultSpec, 429 with Retry-After, 5xx, slow, dropped
    app_requests.py  Slack's side of the conversation: request bodies, signing, SignedSlack
    client.py        Slack's client for a connected app: slash commands, buttons, response_url
    modals.py        a person's modal: element actions, submissions, closing
    forms.py         modal forms: generated ids, view.state.values, Slack's input checks
    page.py          the page (GET /, page.html) and its refreshed fragment
    render.py        Block Kit, mrkdwn and messages as HTML
    run.py           running it alone (python -m toilkit.standins.slack)
"""

from toilkit.standins.slack.app_requests import (
    TEAM_DOMAIN,
    TEAM_ID,
    VERIFICATION_TOKEN,
    SignedSlack,
    SlackUserRef,
    block_actions_payload,
    button,
    interaction_body,
    select,
    slash_command_body,
    submission_state,
    view_submission_payload,
)
from toilkit.standins.slack.arguments import SlackApiFailure, invalid_arguments
from toilkit.standins.slack.block_kit import block_kit_errors
from toilkit.standins.slack.client import APP_TIMEOUT_SECONDS, DEFAULT_APP_CHANNEL
from toilkit.standins.slack.faults import FaultKind, FaultSpec
from toilkit.standins.slack.forms import (
    REQUIRED_FIELD_MESSAGE,
    ClientFailure,
    TypedValue,
    TypedValues,
    slack_input_errors,
    state_entry,
    state_values,
    with_element_ids,
)
from toilkit.standins.slack.run import main, run_standin, serve_forever
from toilkit.standins.slack.standin import SlackStandin
from toilkit.standins.slack.workspace import (
    DEFAULT_USERGROUPS,
    DEFAULT_USERS,
    RecordedCall,
    SlackUser,
    SlackUserGroup,
)

__all__ = [
    "APP_TIMEOUT_SECONDS",
    "DEFAULT_APP_CHANNEL",
    "DEFAULT_USERGROUPS",
    "DEFAULT_USERS",
    "REQUIRED_FIELD_MESSAGE",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "VERIFICATION_TOKEN",
    "ClientFailure",
    "FaultKind",
    "FaultSpec",
    "RecordedCall",
    "SignedSlack",
    "SlackApiFailure",
    "SlackStandin",
    "SlackUser",
    "SlackUserGroup",
    "SlackUserRef",
    "TypedValue",
    "TypedValues",
    "block_actions_payload",
    "block_kit_errors",
    "button",
    "interaction_body",
    "invalid_arguments",
    "main",
    "run_standin",
    "select",
    "serve_forever",
    "slack_input_errors",
    "slash_command_body",
    "state_entry",
    "state_values",
    "submission_state",
    "view_submission_payload",
    "with_element_ids",
]
