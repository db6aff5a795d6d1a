"""The buttons toilkit puts in Slack messages: their action ids and the values they carry.

The notifier draws the buttons, the gateway answers them; both use the names and the
encoders/decoders here, so a button drawn by one is always understood by the other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.slack.blocks import MAX_BUTTON_VALUE
from shared.state_names import MAX_STATE_NAME, STATE_NAME


class Action(StrEnum):
    """``action_id`` of every button toilkit draws in a message."""

    DRIFT_CLAIM = "drift_claim"
    #: "Accept into code": its value is a claim value (the state and its findings).
    DRIFT_ACCEPT = "drift_accept"
    #: "Revert": requests the catalog's drift.revert command; a claim value too.
    DRIFT_REVERT = "drift_revert"
    #: Opens the ignore modal for one finding (reason, expiry).
    DRIFT_IGNORE = "drift_ignore"
    #: Ask the detector to scan the report's state again, refresh-only or full.
    DRIFT_RESCAN_REFRESH = "drift_rescan_refresh"
    DRIFT_RESCAN_FULL = "drift_rescan_full"
    BATCH_CANCEL = "batch_cancel"
    BATCH_APPROVE = "batch_approve"
    BATCH_REJECT = "batch_reject"
    BATCH_RERUN = "batch_rerun"
    #: Opens the run modal prefilled with a finished run's command, environment and values.
    BATCH_RERUN_EDIT = "batch_rerun_edit"
    #: Link buttons: Slack opens the URL and still sends an interaction, which is just acked.
    DRIFT_OPEN_PLAN = "drift_open_plan"
    #: The compare page of a branch "Accept into code" pushed (open a pull request).
    DRIFT_OPEN_BRANCH = "drift_open_branch"
    BATCH_OPEN_LOGS = "batch_open_logs"


LINK_ACTIONS = frozenset({Action.DRIFT_OPEN_PLAN, Action.DRIFT_OPEN_BRANCH, Action.BATCH_OPEN_LOGS})

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}\Z")


class BadButtonValue(ValueError):
    """A button value that toilkit did not write (forged, truncated or from an old version)."""


_Value = TypeVar("_Value", bound=BaseModel)


def _checked_name(pattern: re.Pattern[str], name: str, what: str) -> str:
    """``name`` itself as a button value, once ``pattern`` accepts it.

    Raises:
        ValueError: ``pattern`` refuses it (a bug of the caller, not of the clicker).
    """
    if not pattern.match(name):
        raise ValueError(f"not a {what}: {name!r}")
    return name


def _read_name(pattern: re.Pattern[str], value: str | None, problem: str) -> str:
    """The name a button value holds, checked by the ``pattern`` it was written with.

    Raises:
        BadButtonValue: with ``problem`` as its message, when the value is missing or
            ``pattern`` refuses it.
    """
    if value is None or not pattern.match(value):
        raise BadButtonValue(problem)
    return value


def _read_json(model: type[_Value], value: str | None, problem: str) -> _Value:
    """The ``model`` a JSON button value holds.

    Raises:
        BadButtonValue: with ``problem`` as its message, when the value is missing, not
            JSON, or not a valid ``model``.
    """
    try:
        return model.model_validate(json.loads(value or ""))
    except (ValueError, ValidationError) as exc:
        raise BadButtonValue(problem) from exc


# =========================================================================== run buttons


def encode_run_value(run_id: str) -> str:
    """The value of a run's buttons (cancel, approve, reject, rerun, rerun with edits): the
    run id itself."""
    return _checked_name(_RUN_ID, run_id, "run id")


def decode_run_value(value: str | None) -> str:
    """The run a run button is about.

    Raises:
        BadButtonValue: the value is not a run id.
    """
    return _read_name(_RUN_ID, value, "This button does not say which run it is about.")


# =========================================================================== drift claim


class ClaimValue(BaseModel):
    """The value of an "I'm on it" button: the state and the findings it claims."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    state: str = Field(min_length=1, max_length=MAX_STATE_NAME)
    fingerprints: tuple[str, ...] = Field(default=(), max_length=500)


def encode_claim_value(state: str, fingerprints: Sequence[str]) -> str:
    """``{"state": ..., "fingerprints": [...]}`` as compact JSON.

    Slack caps a value at 2000 characters; a report with more findings than fit claims the
    first ones (about 90 with the detector's 16-digit fingerprints).
    """
    kept = list(fingerprints)
    while True:
        value = json.dumps({"state": state, "fingerprints": kept}, separators=(",", ":"))
        if len(value) <= MAX_BUTTON_VALUE or not kept:
            return value
        kept.pop()


def decode_claim_value(value: str | None) -> ClaimValue:
    """What an "I'm on it" button claims.

    Raises:
        BadButtonValue: the value is not a claim toilkit wrote.
    """
    return _read_json(ClaimValue, value, "This button does not say which drift it is about.")


# =========================================================================== drift ignore


#: The longest attribute path an ignore rule names: the button carries it and the Ignore…
#: modal prefills its input with it, so the input accepts as many characters.
MAX_IGNORE_ATTRIBUTE = 512


class IgnoreValue(BaseModel):
    """The value of an "Ignore…" button: what the rule it opens would ignore."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    state: str = Field(min_length=1, max_length=MAX_STATE_NAME)
    address: str = Field(min_length=1, max_length=1024)
    attribute: str | None = Field(default=None, min_length=1, max_length=MAX_IGNORE_ATTRIBUTE)
    #: Drawn as the suggestion after repeats (the modal says so).
    suggested: bool = False


def encode_ignore_value(
    state: str, address: str, attribute: str | None = None, *, suggested: bool = False
) -> str:
    """``{"state", "address", "attribute"?, "suggested"?}`` as compact JSON."""
    value: dict[str, object] = {"state": state, "address": address}
    if attribute:
        value["attribute"] = attribute
    if suggested:
        value["suggested"] = True
    text = json.dumps(value, separators=(",", ":"))
    if len(text) > MAX_BUTTON_VALUE:
        raise ValueError("an ignore button value does not fit Slack's 2000 characters")
    return text


def decode_ignore_value(value: str | None) -> IgnoreValue:
    """What an "Ignore…" button would ignore.

    Raises:
        BadButtonValue: the value is not one toilkit wrote.
    """
    return _read_json(IgnoreValue, value, "This button does not say which drift to ignore.")


# =========================================================================== drift re-scan


def encode_rescan_value(state: str) -> str:
    """The value of the "Re-scan" buttons: the state's name."""
    return _checked_name(STATE_NAME, state, "state name")


def decode_rescan_value(value: str | None) -> str:
    """The state a "Re-scan" button is about.

    Raises:
        BadButtonValue: the value is not a state name.
    """
    return _read_name(STATE_NAME, value, "This button does not say which state to scan.")
