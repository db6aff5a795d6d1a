"""The rule for a Terraform state's name, written once.

The detector names the states it scans (``toilkit.yaml``, or discovered from their paths);
the name then ends up in DynamoDB and S3 keys, Slack buttons, ``/toil drift STATE`` and
``--state``. The gateway and the button decoders check what they are given against the
same rule the detector names states by, so a state that can be scanned can always be asked
for, and nothing else can.
"""

from __future__ import annotations

import re

#: The longest name (the pattern's 1 + 127; the button values' models bound ``state`` by it).
MAX_STATE_NAME = 128
#: A printable name without spaces, at most :data:`MAX_STATE_NAME` characters.
STATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}\Z")
#: The rule in words, for error messages ("state name 'x y' must ...").
STATE_NAME_RULE = (
    "start with a letter or digit and use only letters, digits and _ . : / @ + - "
    f"(at most {MAX_STATE_NAME} characters)"
)


def is_state_name(name: str) -> bool:
    """Whether ``name`` follows the rule (:data:`STATE_NAME`)."""
    return STATE_NAME.match(name) is not None
