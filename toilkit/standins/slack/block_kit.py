"""Block Kit as Slack checks it: its limits and the error messages it answers with.

The stand-in keeps its own copy of Slack's limits on purpose: it is the oracle the
notifier's and the gateway's Block Kit is tested against, so it must not read them from
the code under test (``shared/slack/blocks.py``).
"""

from __future__ import annotations

from typing import Any

from toilkit.standins.slack.arguments import JsonDict, SlackApiFailure, invalid_arguments

# Slack's own limits, enforced with the error codes Slack answers.
MAX_MESSAGE_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_MESSAGE_TEXT = 40_000
MAX_VIEW_TITLE = 24
KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)


def block_kit_errors(blocks: Any, *, max_blocks: int, pointer: str) -> list[str]:
    """Slack's validation messages for a list of blocks (empty when Slack would accept it)."""
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    errors = []
    if len(blocks) > max_blocks:
        errors.append(f"must be less than {max_blocks + 1} items [json-pointer:{pointer}]")
    for index, block in enumerate(blocks):
        errors.extend(_block_errors(block, f"{pointer}/{index}"))
    return errors


def _block_errors(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCK_TYPES:
        return [f"failed to match all allowed schemas [json-pointer:{pointer}]"]
    block_type = block["type"]
    errors: list[str] = []
    if block_type == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"must provide either text or fields [json-pointer:{pointer}]")
        if "text" in block:
            errors.extend(_text_object_errors(block["text"], f"{pointer}/text", MAX_SECTION_TEXT))
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
            errors.append(f"must be less than 11 items [json-pointer:{pointer}/fields]")
        else:
            for index, text in enumerate(fields):
                errors.extend(
                    _text_object_errors(text, f"{pointer}/fields/{index}", MAX_FIELD_TEXT)
                )
    elif block_type == "header":
        errors.extend(_text_object_errors(block.get("text"), f"{pointer}/text", MAX_HEADER_TEXT))
    elif block_type in ("context", "actions"):
        limit = MAX_CONTEXT_ELEMENTS if block_type == "context" else MAX_ACTIONS_ELEMENTS
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements or len(elements) > limit:
            errors.append(
                f"must be an array of 1 to {limit} items [json-pointer:{pointer}/elements]"
            )
    return errors


def _text_object_errors(text: Any, pointer: str, max_length: int) -> list[str]:
    if not isinstance(text, dict) or text.get("type") not in ("plain_text", "mrkdwn"):
        return [f"must be a text object [json-pointer:{pointer}]"]
    value = text.get("text")
    if not isinstance(value, str) or not value:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(value) > max_length:
        return [f"must be less than {max_length + 1} characters [json-pointer:{pointer}/text]"]
    return []


def message_content(arguments: JsonDict, *, require_content: bool) -> JsonDict:
    """The validated ``text``, ``blocks`` and ``attachments`` of a message call."""
    content: JsonDict = {}
    if "text" in arguments:
        content["text"] = str(arguments["text"])
        if len(content["text"]) > MAX_MESSAGE_TEXT:
            raise SlackApiFailure("msg_too_long")
    if "blocks" in arguments:
        blocks = arguments["blocks"]
        if not isinstance(blocks, list):
            raise SlackApiFailure("invalid_blocks_format")
        errors = block_kit_errors(blocks, max_blocks=MAX_MESSAGE_BLOCKS, pointer="/blocks")
        if errors:
            raise SlackApiFailure(
                "invalid_blocks",
                errors=errors,
                response_metadata={"messages": [f"[ERROR] {error}" for error in errors]},
            )
        content["blocks"] = blocks
    if "attachments" in arguments:
        attachments = arguments["attachments"]
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise SlackApiFailure("invalid_attachments")
        content["attachments"] = attachments
    if require_content and not (
        content.get("text") or content.get("blocks") or "attachments" in content
    ):
        raise SlackApiFailure("no_text")
    return content


def view_argument(arguments: JsonDict) -> JsonDict:
    """The validated ``view`` of a ``views.*`` call."""
    view = arguments.get("view")
    if not isinstance(view, dict):
        raise invalid_arguments("missing required field: view [json-pointer:/view]")
    problems: list[str] = []
    if view.get("type") not in ("modal", "home"):
        problems.append("must be one of modal, home [json-pointer:/view/type]")
    title = view.get("title")
    if view.get("type") == "modal":
        problems.extend(_text_object_errors(title, "/view/title", MAX_VIEW_TITLE))
    problems.extend(
        block_kit_errors(view.get("blocks"), max_blocks=MAX_MODAL_BLOCKS, pointer="/view/blocks")
    )
    if len(str(view.get("external_id", ""))) > 255:
        problems.append("must be less than 256 characters [json-pointer:/view/external_id]")
    if problems:
        raise invalid_arguments(*problems)
    return view


def view_content(view: JsonDict) -> JsonDict:
    """The parts of a view payload that a view record keeps and an update replaces."""
    return {
        "type": view["type"],
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
    }
