"""Button values: what the notifier writes, the gateway reads back, and what it refuses."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from shared.slack.actions import (
    BadButtonValue,
    ClaimValue,
    IgnoreValue,
    decode_claim_value,
    decode_ignore_value,
    decode_rescan_value,
    decode_run_value,
    encode_claim_value,
    encode_ignore_value,
    encode_rescan_value,
    encode_run_value,
)


def test_a_run_value_is_the_run_id_and_reads_back() -> None:
    assert encode_run_value("run-1a2b") == "run-1a2b"
    assert decode_run_value(encode_run_value("run-1a2b")) == "run-1a2b"


def test_a_rescan_value_is_the_state_name_and_reads_back() -> None:
    assert encode_rescan_value("prod/network@eu") == "prod/network@eu"
    assert decode_rescan_value("prod/network@eu") == "prod/network@eu"


@pytest.mark.parametrize(
    ("encode", "name", "message"),
    [
        (encode_run_value, "run 1", "not a run id: 'run 1'"),
        (encode_run_value, "-run", "not a run id: '-run'"),
        (encode_rescan_value, "a" * 129, "not a state name: "),
        (encode_rescan_value, "prod;rm", "not a state name: 'prod;rm'"),
    ],
)
def test_a_name_the_pattern_refuses_is_never_drawn(
    encode: Callable[[str], str], name: str, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)) as info:
        encode(name)
    assert not isinstance(info.value, BadButtonValue)


@pytest.mark.parametrize(
    ("decode", "value", "message"),
    [
        (decode_run_value, None, "This button does not say which run it is about."),
        (decode_run_value, "run 1", "This button does not say which run it is about."),
        (decode_rescan_value, None, "This button does not say which state to scan."),
        (decode_rescan_value, "x" * 200, "This button does not say which state to scan."),
        (decode_claim_value, None, "This button does not say which drift it is about."),
        (decode_claim_value, "{not json", "This button does not say which drift it is about."),
        (decode_claim_value, '{"state": ""}', "This button does not say which drift it is about."),
        (decode_ignore_value, "", "This button does not say which drift to ignore."),
        (decode_ignore_value, '{"state": "s"}', "This button does not say which drift to ignore."),
        (decode_ignore_value, "[1, 2]", "This button does not say which drift to ignore."),
    ],
)
def test_a_value_toilkit_did_not_write_is_a_bad_button_value(
    decode: Callable[[str | None], object], value: str | None, message: str
) -> None:
    with pytest.raises(BadButtonValue) as info:
        decode(value)
    assert str(info.value) == message


def test_json_values_read_back_as_their_models() -> None:
    claim = decode_claim_value(encode_claim_value("prod", ["fp1", "fp2"]))
    assert claim == ClaimValue(state="prod", fingerprints=("fp1", "fp2"))
    ignore = decode_ignore_value(encode_ignore_value("prod", "aws_s3_bucket.logs", "tags.*"))
    assert ignore == IgnoreValue(state="prod", address="aws_s3_bucket.logs", attribute="tags.*")
