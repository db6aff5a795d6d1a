"""Fuzzed requests for the gateway, from a seeded random source (no test-only libraries).

Bodies of every shape the gateway's own fuzz test draws (tests/integration/test_gateway.py):
random bytes, forms with Slack's field names, interaction payloads of arbitrary JSON, and
well-shaped commands and actions with arbitrary values; signed or not, odd headers added.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any
from urllib.parse import urlencode

from shared.slack.actions import Action
from shared.slack.signing import signed_headers

FORM_KEYS = ["command", "text", "user_id", "trigger_id", "ssl_check", "payload", "channel_id", "x"]
PAYLOAD_TYPES = ["block_actions", "view_submission", "view_closed", "shortcut"]
ACTIONS = ["run_pick_command", *(action.value for action in Action)]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/plain", ""]
HEADERS = ["X-Slack-Retry-Num", "X-Slack-Signature", "X-Slack-Request-Timestamp", "X-Other"]


def _text(rng: random.Random, size: int = 20) -> str:
    alphabet = string.printable + "é漢\u0000\u202e"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size)))


def _json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 6 if depth < 2 else 3)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, rng.randint(-(2**40), 2**40)])
    if kind in (2, 3):
        return _text(rng)
    if kind == 4:
        return [_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_text(rng, 8): _json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _interaction(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def fuzz_body(rng: random.Random) -> bytes:
    kind = rng.randint(0, 6)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        return urlencode({rng.choice(FORM_KEYS): _text(rng, 40) for _ in range(6)}).encode()
    if kind == 2:
        payload = {k: _json(rng) for k in ("user", "team", "actions", "view", "channel")}
        return _interaction({"type": rng.choice(PAYLOAD_TYPES), **payload})
    if kind == 3:
        return json.dumps(_json(rng)).encode()
    if kind == 4:
        form = {"command": "/toil", "text": _text(rng, 60), "user_id": _text(rng, 12) or "U1"}
        return urlencode({**form, "trigger_id": "1.2.3"}).encode()
    if kind == 5:
        action = {"action_id": rng.choice([*ACTIONS, _text(rng)]), "value": _text(rng, 60)}
        user = {"id": _text(rng, 12) or "U1"}
        return _interaction({"type": "block_actions", "user": user, "actions": [action]})
    values = {"reason": {"value": {"type": "x", "value": _text(rng)}}}
    view = {"id": "V1", "type": "modal", "callback_id": "toil_run", "state": {"values": values}}
    view["private_metadata"] = _text(rng, 40)
    return _interaction({"type": "view_submission", "user": {"id": "U0ALICE001"}, "view": view})


def fuzz_request(rng: random.Random, secret: str) -> tuple[bytes, dict[str, str]]:
    """One fuzzed body and its headers (signed with ``secret`` half the time)."""
    body = fuzz_body(rng)
    content_type = rng.choice(CONTENT_TYPES)
    if rng.random() < 0.5:
        headers = signed_headers(secret, body, content_type=content_type)
    else:
        headers = {"Content-Type": content_type}
    for _ in range(rng.randint(0, 2)):
        headers[rng.choice(HEADERS)] = "".join(
            rng.choice(string.printable[:94]) for _ in range(rng.randint(0, 80))
        )
    return body, headers
