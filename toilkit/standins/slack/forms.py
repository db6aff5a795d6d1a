"""Modals and forms as Slack's client handles them: what a person typed becomes Slack's state.

Pure functions over Block Kit: the ids Slack generates for blocks and elements that have
none (:func:`with_element_ids`), ``view.state.values`` from what the page's form holds
(:func:`state_values`), the checks Slack's client makes before it sends a submission
(:func:`slack_input_errors`) and the ``actions`` entry of a ``block_actions`` payload. Also
what the page's script sends the stand-in (``values``, JSON bodies) and how a request from
it is refused (:class:`ClientFailure`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from toilkit.standins.slack.arguments import JsonDict

TEXT_INPUT_TYPES = frozenset(
    {"plain_text_input", "number_input", "email_text_input", "url_text_input"}
)
SINGLE_OPTION_TYPES = frozenset({"static_select", "radio_buttons"})
#: Selects whose options the app sends as the person types (``block_suggestion``).
EXTERNAL_SELECT_TYPES = frozenset({"external_select"})
MULTI_OPTION_TYPES = frozenset({"multi_static_select", "checkboxes"})
#: Element type -> the state field that holds what was picked, and the element's initial one.
PICKED_FIELDS = {
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "channels_select": ("selected_channel", "initial_channel"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
}
#: Elements whose value is part of ``view.state.values``.
STATEFUL_TYPES = (
    TEXT_INPUT_TYPES
    | SINGLE_OPTION_TYPES
    | MULTI_OPTION_TYPES
    | EXTERNAL_SELECT_TYPES
    | frozenset(PICKED_FIELDS)
)
#: Parts of a block that are text or pictures, never something to interact with.
_INERT_ELEMENT_TYPES = frozenset({"image", "plain_text", "mrkdwn"})
REQUIRED_FIELD_MESSAGE = "Please complete this required field."

#: What the page sends for one element: text, an option value or user id, several, or nothing.
TypedValue = str | list[str] | None
TypedValues = Mapping[str, Mapping[str, TypedValue]]


class ClientFailure(Exception):
    """Something the page asked the stand-in's client side that Slack's client would refuse."""

    def __init__(self, error: str, message: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.message = message or error

    def body(self) -> JsonDict:
        """The JSON answer the page shows."""
        return {"ok": False, "error": self.error, "message": self.message}


#: URLs the page links to (and Slack's client accepts in a URL input).
SAFE_URL = re.compile(r"^(https?://|mailto:)", re.I)


def _generated_id(seed: str) -> str:
    """An id such as Slack generates for a block or element the app left without one."""
    return base64.b32encode(hashlib.sha1(seed.encode()).digest()).decode()[:5]


def interactive_elements(block: JsonDict) -> list[JsonDict]:
    """The elements of a block a person can use (an input's, an actions', an accessory)."""
    block_type = block.get("type")
    if block_type == "actions":
        candidates = block.get("elements") or []
    elif block_type == "input":
        candidates = [block.get("element")]
    elif block_type == "section":
        candidates = [block.get("accessory")]
    else:
        candidates = []
    return [
        element
        for element in candidates
        if isinstance(element, dict) and element.get("type") not in _INERT_ELEMENT_TYPES
    ]


def with_element_ids(blocks: Any, seed: str) -> list[JsonDict]:
    """A copy of ``blocks`` in which every block has a ``block_id`` and every interactive
    element an ``action_id``, generated (stable for ``seed``) where the app gave none, as
    Slack does before it reports an interaction."""
    filled: list[JsonDict] = []
    for index, block in enumerate(blocks if isinstance(blocks, list) else []):
        if not isinstance(block, dict):
            continue
        copied = copy.deepcopy(block)
        block_id = str(copied.setdefault("block_id", _generated_id(f"{seed}:{index}")))
        for position, element in enumerate(interactive_elements(copied)):
            element.setdefault("action_id", _generated_id(f"{seed}:{block_id}:{position}"))
        filled.append(copied)
    return filled


def find_element(
    blocks: list[JsonDict], action_id: str, block_id: str | None
) -> tuple[str, JsonDict] | None:
    """(block id, element) of the element named ``action_id`` (in ``block_id`` if given)."""
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        for element in interactive_elements(block):
            if element.get("action_id") == action_id:
                return str(block["block_id"]), element
    return None


def options_of(element: JsonDict) -> list[JsonDict]:
    """An element's options, those in option groups included."""
    options = [o for o in element.get("options") or [] if isinstance(o, dict)]
    for group in element.get("option_groups") or []:
        if isinstance(group, dict):
            options.extend(o for o in group.get("options") or [] if isinstance(o, dict))
    return options


def typed_from_initial(element: JsonDict) -> TypedValue:
    """What an element holds before anyone touches it."""
    kind = str(element.get("type"))
    if kind in SINGLE_OPTION_TYPES | EXTERNAL_SELECT_TYPES:
        initial = element.get("initial_option")
        return str(initial["value"]) if isinstance(initial, dict) and "value" in initial else None
    if kind in MULTI_OPTION_TYPES:
        return [str(o["value"]) for o in element.get("initial_options") or [] if "value" in o]
    if kind in PICKED_FIELDS:
        initial = element.get(PICKED_FIELDS[kind][1])
        if isinstance(initial, list):
            return [str(item) for item in initial]
        return None if initial is None else str(initial)
    initial = element.get("initial_value")
    return None if initial is None else str(initial)


def typed_from_entry(entry: Mapping[str, Any]) -> TypedValue:
    """What the page holds for a ``state.values`` entry (the reverse of :func:`state_entry`)."""
    for key, value in entry.items():
        if key == "type":
            continue
        if isinstance(value, dict):
            return str(value.get("value", ""))
        if isinstance(value, list):
            return [str(v.get("value", "")) if isinstance(v, dict) else str(v) for v in value]
        return None if value is None else str(value)
    return None


def as_list(typed: TypedValue) -> list[str]:
    if typed is None:
        return []
    return [str(item) for item in typed] if isinstance(typed, list) else [typed]


def _as_single(typed: TypedValue) -> str | None:
    values = [value for value in as_list(typed) if value != ""]
    return values[0] if values else None


def state_entry(element: JsonDict, typed: TypedValue, *, offered_only: bool = True) -> JsonDict:
    """One element's entry in ``view.state.values``, shaped as Slack reports it.

    Options are reported as the app defined them (text and value); a value that is not
    one of the element's options counts as nothing picked, unless ``offered_only`` is
    False: then it is reported as an option of its own, as a forged request may claim it.
    """
    kind = str(element.get("type"))
    entry: JsonDict = {"type": kind}
    if kind in SINGLE_OPTION_TYPES:
        value = _as_single(typed)
        picked = _picked_options(element, [] if value is None else [value], offered_only)
        entry["selected_option"] = picked[0] if picked else None
    elif kind in EXTERNAL_SELECT_TYPES:
        # The app's options were picked from its suggestions, which the element does not
        # hold: Slack reports the pick as the option it was.
        value = _as_single(typed)
        entry["selected_option"] = (
            None
            if value is None
            else {"text": {"type": "plain_text", "text": value}, "value": value}
        )
    elif kind in MULTI_OPTION_TYPES:
        entry["selected_options"] = _picked_options(element, as_list(typed), offered_only)
    elif kind in PICKED_FIELDS:
        state_field = PICKED_FIELDS[kind][0]
        entry[state_field] = as_list(typed) if kind.startswith("multi_") else _as_single(typed)
    else:
        single = typed[0] if isinstance(typed, list) and typed else typed
        entry["value"] = None if single in (None, "") or isinstance(single, list) else single
    return entry


def _picked_options(element: JsonDict, wanted: list[str], offered_only: bool) -> list[JsonDict]:
    """The options whose value is ``wanted``, in the element's order, then (unless
    ``offered_only``) the wanted values it does not offer."""
    offered = options_of(element)
    picked = [copy.deepcopy(o) for o in offered if str(o.get("value")) in wanted]
    if not offered_only:
        known = {str(o.get("value")) for o in offered}
        picked += [
            {"text": {"type": "plain_text", "text": value}, "value": value}
            for value in wanted
            if value not in known
        ]
    return picked


def state_values(
    blocks: list[JsonDict], typed: TypedValues, *, offered_only: bool = True
) -> dict[str, dict[str, JsonDict]]:
    """``state.values`` of a surface: every stateful element, as typed or as it started.

    Args:
        blocks: the surface's blocks, with ids (see :func:`with_element_ids`).
        typed: block id -> action id -> what the page holds; elements not named keep
            their initial value.
        offered_only: report only values the elements offer, as Slack's client does
            (False: report what ``typed`` says, see :func:`state_entry`).
    """
    values: dict[str, dict[str, JsonDict]] = {}
    for block in blocks:
        block_id = str(block["block_id"])
        for element in interactive_elements(block):
            if element.get("type") not in STATEFUL_TYPES:
                continue
            action_id = str(element["action_id"])
            given = typed.get(block_id, {})
            value = given[action_id] if action_id in given else typed_from_initial(element)
            entry = state_entry(element, value, offered_only=offered_only)
            values.setdefault(block_id, {})[action_id] = entry
    return values


def _is_empty(entry: JsonDict) -> bool:
    picked = [value for key, value in entry.items() if key != "type"]
    return all(value in (None, "", []) for value in picked)


def slack_input_errors(
    blocks: list[JsonDict], values: Mapping[str, Mapping[str, JsonDict]]
) -> dict[str, str]:
    """The problems Slack's client shows under inputs without sending the submission:
    a required input left empty, a number out of its range, text of the wrong length."""
    errors: dict[str, str] = {}
    for block in blocks:
        if block.get("type") != "input":
            continue
        block_id = str(block["block_id"])
        element = block.get("element") or {}
        entry = values.get(block_id, {}).get(str(element.get("action_id")))
        if entry is None:
            continue
        if _is_empty(entry):
            if not block.get("optional"):
                errors[block_id] = REQUIRED_FIELD_MESSAGE
            continue
        problem = _value_problem(element, entry)
        if problem:
            errors[block_id] = problem
    return errors


def _value_problem(element: JsonDict, entry: JsonDict) -> str | None:
    """Why a filled-in text or number input is refused by Slack's client, if it is."""
    kind = element.get("type")
    value = entry.get("value")
    if not isinstance(value, str):
        return None
    if kind == "number_input":
        return _number_problem(element, value)
    minimum, maximum = element.get("min_length"), element.get("max_length")
    if isinstance(minimum, int) and len(value) < minimum:
        return f"Please enter at least {minimum} characters."
    if isinstance(maximum, int) and len(value) > maximum:
        return f"Please enter no more than {maximum} characters."
    if kind == "email_text_input" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        return "Please enter a valid email address."
    if kind == "url_text_input" and not SAFE_URL.match(value):
        return "Please enter a valid URL."
    return None


def _number_problem(element: JsonDict, value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "Please enter a number."
    if not element.get("is_decimal_allowed") and not re.fullmatch(r"[+-]?\d+", value.strip()):
        return "Please enter a whole number."
    low, high = _number_bound(element, "min_value"), _number_bound(element, "max_value")
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            return (
                f"Please enter a number between {element['min_value']} and {element['max_value']}."
            )
        if low is not None:
            return f"Please enter a number of at least {element['min_value']}."
        return f"Please enter a number of at most {element['max_value']}."
    return None


def _number_bound(element: JsonDict, name: str) -> float | None:
    try:
        return float(element[name]) if name in element else None
    except (TypeError, ValueError):
        return None


def element_action(
    element: JsonDict, block_id: str, entry: JsonDict | None, action_ts: str
) -> JsonDict:
    """One entry of a ``block_actions`` payload's ``actions``, as Slack reports it."""
    action: JsonDict = {
        "type": element.get("type"),
        "action_id": element["action_id"],
        "block_id": block_id,
        "action_ts": action_ts,
    }
    if element.get("type") == "button":
        action["text"] = copy.deepcopy(element.get("text"))
        for key in ("value", "style", "url"):
            if key in element:
                action[key] = element[key]
        return action
    if entry is not None:
        action.update({key: value for key, value in entry.items() if key != "type"})
    if "placeholder" in element:
        action["placeholder"] = copy.deepcopy(element["placeholder"])
    return action


#: Slack's limits for what an app answers a ``block_suggestion`` with.
MAX_SUGGESTED_OPTIONS = 100
MAX_SUGGESTED_TEXT = 75
MAX_SUGGESTED_VALUE = 150


def _suggested_option(raw: Any, where: str) -> JsonDict:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")  # noqa: TRY004 - one error: unusable
    text, value = raw.get("text"), raw.get("value")
    if not isinstance(text, dict) or not isinstance(text.get("text"), str) or not text["text"]:
        raise ValueError(f"{where}.text must be a text object")
    if len(text["text"]) > MAX_SUGGESTED_TEXT:
        raise ValueError(f"{where}.text is longer than {MAX_SUGGESTED_TEXT} characters")
    if not isinstance(value, str) or not value or len(value) > MAX_SUGGESTED_VALUE:
        raise ValueError(f"{where}.value must be text of 1 to {MAX_SUGGESTED_VALUE} characters")
    return {"text": copy.deepcopy(text), "value": value}


def suggested_options(answer: JsonDict) -> list[JsonDict]:
    """The options of an app's ``block_suggestion`` answer (``options`` or
    ``option_groups``, flattened: an option of a group carries its label as ``group``).

    Raises:
        ValueError: the answer breaks Slack's rules (Slack then shows no options).
    """
    if "option_groups" in answer:
        groups = answer["option_groups"]
        if not isinstance(groups, list) or len(groups) > MAX_SUGGESTED_OPTIONS:
            raise ValueError(f"option_groups must be a list of at most {MAX_SUGGESTED_OPTIONS}")
        flat: list[JsonDict] = []
        for index, group in enumerate(groups):
            if not isinstance(group, dict) or not isinstance(group.get("options"), list):
                raise ValueError(f"option_groups[{index}] must have options")  # noqa: TRY004
            label = group.get("label")
            group_label = str(label.get("text", "")) if isinstance(label, dict) else ""
            for position, raw in enumerate(group["options"][: MAX_SUGGESTED_OPTIONS + 1]):
                option = _suggested_option(raw, f"option_groups[{index}].options[{position}]")
                flat.append({**option, "group": group_label})
        return flat
    options = answer.get("options", [])
    if not isinstance(options, list):
        raise ValueError("options must be a list")  # noqa: TRY004
    if len(options) > MAX_SUGGESTED_OPTIONS:
        raise ValueError(f"{len(options)} options, more than Slack's {MAX_SUGGESTED_OPTIONS}")
    return [_suggested_option(raw, f"options[{index}]") for index, raw in enumerate(options)]


def typed_values(raw: Any) -> dict[str, dict[str, TypedValue]]:
    """The page's ``values`` (block id -> action id -> value), checked."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ClientFailure("invalid_values", "values must be an object of objects")
    typed: dict[str, dict[str, TypedValue]] = {}
    for block_id, actions in raw.items():
        if not isinstance(actions, dict):
            raise ClientFailure("invalid_values", f"values[{block_id!r}] must be an object")
        for action_id, value in actions.items():
            if not (
                value is None
                or isinstance(value, str)
                or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            ):
                raise ClientFailure(
                    "invalid_values", f"values[{block_id!r}][{action_id!r}] must be text or a list"
                )
            typed.setdefault(str(block_id), {})[str(action_id)] = value
    return typed


def required_text(body: JsonDict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ClientFailure("invalid_arguments", f"{name} is required")
    return value


async def client_request_body(request: web.Request) -> JsonDict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClientFailure("invalid_json", "the request body is not JSON") from error
    if not isinstance(body, dict):
        raise ClientFailure("json_not_object", "the request body must be a JSON object")
    return body


async def client_call(
    request: web.Request, act: Callable[[JsonDict], Awaitable[JsonDict]]
) -> web.Response:
    """Answer one of the page's requests: ``act`` on its JSON body, or the refusal."""
    try:
        answer = await act(await client_request_body(request))
    except ClientFailure as failure:
        return web.json_response(failure.body(), status=400)
    return web.json_response(answer)


#: One argument of a person's action on the page, read from the request's JSON body.
BodyArgument = Callable[[JsonDict], object]
#: An aiohttp handler of one of the page's requests.
PageHandler = Callable[[web.Request], Awaitable[web.Response]]


def optional_block_id(body: JsonDict) -> str | None:
    """The ``block_id`` that tells apart buttons with one ``action_id``, if sent."""
    block_id = body.get("block_id")
    return block_id if isinstance(block_id, str) else None


def values_argument(body: JsonDict) -> TypedValues:
    """What the page's form holds (``values``), checked."""
    return typed_values(body.get("values"))


def typed_text(body: JsonDict) -> str:
    """What the person has typed so far in an external select (``value``)."""
    return str(body.get("value") or "")


def page_action(
    act: Callable[..., Awaitable[JsonDict]], *arguments: str | BodyArgument
) -> PageHandler:
    """The page's endpoint for ``act``, a person's action such as a click.

    Args:
        act: what the person does; it gets ``arguments`` in order.
        arguments: each a reader of the JSON body, or the name of a field that must hold
            non-empty text.
    """

    def read(body: JsonDict, argument: str | BodyArgument) -> object:
        return required_text(body, argument) if isinstance(argument, str) else argument(body)

    async def handle(request: web.Request) -> web.Response:
        return await client_call(
            request, lambda body: act(*(read(body, argument) for argument in arguments))
        )

    return handle
