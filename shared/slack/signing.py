"""Slack request signatures, on ``slack_sdk.signature`` (the gateway verifies, rigs sign).

Slack signs every request with ``v0=`` + HMAC-SHA256 of ``v0:<timestamp>:<raw body>`` keyed by
the app's signing secret, in ``X-Slack-Signature``, the timestamp in
``X-Slack-Request-Timestamp``. ``slack_sdk`` computes and compares it; this module adds what
the gateway needs on top: *why* a request is refused, for the log and the 401.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

from slack_sdk.signature import SignatureVerifier

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
#: Slack refuses requests whose timestamp is more than five minutes off.
SIGNATURE_WINDOW_SECONDS = 300
FORM = "application/x-www-form-urlencoded"

#: What :func:`signature_problem` says of a well-formed, recent request signed with another
#: secret: the one refusal a newer signing secret could turn into an acceptance.
SIGNATURE_MISMATCH = "the signature does not match"

_TIMESTAMP = re.compile(r"[0-9]{1,12}\Z")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}\Z")


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack sends for ``body`` at ``timestamp``.

    ``slack_sdk`` decodes the body as UTF-8 before hashing, which Slack's own bodies always
    are. A body that is not UTF-8 (never Slack's, but the gateway must still answer it with a
    4xx after checking its signature) is hashed as raw bytes, as Slack's scheme defines it.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        base = b"v0:" + timestamp.encode("ascii") + b":" + body
        return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    if signature is None:  # pragma: no cover - only for a None timestamp, which the type forbids
        raise ValueError("a signature needs a timestamp")
    return signature


def signed_headers(
    secret: str, body: bytes, *, timestamp: int | None = None, content_type: str = FORM
) -> dict[str, str]:
    """The headers Slack sends with ``body`` (signed now, or at ``timestamp``)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: slack_signature(secret, stamp, body),
    }


def signature_problem(
    secret: str,
    body: bytes,
    timestamps: Sequence[str],
    signatures: Sequence[str],
    now: float,
) -> str | None:
    """Why a request is not signed by Slack with ``secret`` (None: it is).

    Args:
        secret: the app's signing secret.
        body: the raw request body, exactly as received.
        timestamps: every ``X-Slack-Request-Timestamp`` value the request carried.
        signatures: every ``X-Slack-Signature`` value the request carried.
        now: the current Unix time.
    """
    if len(timestamps) != 1 or len(signatures) != 1:
        return "expected exactly one X-Slack-Request-Timestamp and one X-Slack-Signature"
    timestamp, signature = timestamps[0], signatures[0]
    if not _TIMESTAMP.match(timestamp):
        return "the request timestamp is not a number of seconds"
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return "the request timestamp is more than five minutes from now"
    if not _SIGNATURE.match(signature):
        return "the signature is not v0=<64 hex digits>"
    if not hmac.compare_digest(slack_signature(secret, timestamp, body), signature):
        return SIGNATURE_MISMATCH
    return None
