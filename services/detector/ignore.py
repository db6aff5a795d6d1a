"""What the detector deliberately does not report: ignore rules and known provider noise.

Two sources make a change "ignored" (reported with ``ignored=True`` and a reason, never
dropped, so a reader can always see what was hidden and why):

* **Ignore rules** from ``toilkit.yaml``: an :class:`IgnoreRule` names a state glob, an
  address glob and optionally an attribute-path glob, a reason and an optional expiry date.
* **Provider noise**: differences that do not change the real resource, recognised by
  :func:`provider_noise`. The built-in list (:data:`PROVIDER_NOISE`) is kept short on
  purpose; each entry says why it is safe to hide.

Globs use ``fnmatch`` semantics (``*`` matches any run of characters, dots included, and
``?`` one character, case-sensitive) with one deliberate difference: ``[`` and ``]`` are
literal. Terraform addresses and attribute paths use brackets for indexes
(``module.app[0].aws_instance.web["a"]``, ``ingress[0].cidr_blocks``), and reading them as
character classes would make the obvious pattern match the wrong things.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class IgnoreRule(BaseModel):
    """One entry of the ``ignore:`` list in ``toilkit.yaml``.

    Attributes:
        state: Glob over state names; ``*`` (the default) means every state.
        address: Glob over resource addresses, e.g. ``aws_autoscaling_group.*`` or
            ``module.edge.*``. The glob matches the whole address, so
            ``aws_instance.*`` does not match ``module.x.aws_instance.y``; write
            ``*aws_instance.*`` for that.
        attribute: Glob over attribute paths (``tags.Env``, ``ingress[0].cidr_blocks``,
            ``metadata["a.b"]``). A path is also matched through its ancestors, so
            ``tags`` ignores ``tags.Env``. ``None`` ignores the whole resource.
        reason: Why this is ignored; shown wherever the ignored change is reported.
        expires: Last day (inclusive, UTC) the rule applies. After it the rule is
            reported as expired and its changes are reported again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: str = Field(default="*", min_length=1)
    address: str = Field(min_length=1)
    attribute: str | None = Field(default=None, min_length=1)
    reason: str = Field(min_length=1)
    expires: date | None = None

    def is_expired(self, today: date) -> bool:
        """True once ``today`` is past the expiry date."""
        return self.expires is not None and today > self.expires

    def matches_resource(self, state: str, address: str) -> bool:
        """True when the rule's state and address globs both match."""
        return glob_match(self.state, state) and glob_match(self.address, address)

    def matches_attribute(self, path_and_ancestors: Iterable[str]) -> bool:
        """True when the attribute glob matches the path or one of its ancestors."""
        pattern = self.attribute
        return pattern is not None and any(glob_match(pattern, p) for p in path_and_ancestors)


@dataclass(frozen=True)
class ActiveRules:
    """The ignore rules of one state on one day, split by what they match.

    Attributes:
        whole_resource: Unexpired rules without an attribute glob.
        attribute: Unexpired rules with an attribute glob.
        expired: Rules for this state that have expired, so a CLI can warn about them.
    """

    whole_resource: tuple[IgnoreRule, ...]
    attribute: tuple[IgnoreRule, ...]
    expired: tuple[IgnoreRule, ...]

    def resource_reason(self, address: str, *, state: str) -> str | None:
        """The reason of the first rule that ignores this whole resource, if any."""
        for rule in self.whole_resource:
            if rule.matches_resource(state, address):
                return rule.reason
        return None

    def attribute_reason(
        self, address: str, path_and_ancestors: Sequence[str], *, state: str
    ) -> str | None:
        """The reason of the first rule that ignores this attribute, if any."""
        for rule in self.attribute:
            if rule.matches_resource(state, address) and rule.matches_attribute(path_and_ancestors):
                return rule.reason
        return None


def select_rules(rules: Iterable[IgnoreRule], *, state: str, today: date) -> ActiveRules:
    """Keep the rules whose state glob matches ``state`` and sort them by kind and expiry."""
    whole: list[IgnoreRule] = []
    by_attribute: list[IgnoreRule] = []
    expired: list[IgnoreRule] = []
    for rule in rules:
        if not glob_match(rule.state, state):
            continue
        if rule.is_expired(today):
            expired.append(rule)
        elif rule.attribute is None:
            whole.append(rule)
        else:
            by_attribute.append(rule)
    return ActiveRules(tuple(whole), tuple(by_attribute), tuple(expired))


def glob_match(pattern: str, text: str) -> bool:
    """Match ``text`` against a glob where only ``*`` and ``?`` are special (see module doc)."""
    return _compile_glob(pattern).fullmatch(text) is not None


@lru_cache(maxsize=512)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


# --------------------------------------------------------------------------- provider noise

NULL_VS_EMPTY = "provider noise: null and an empty collection are equivalent"
SAME_JSON_DOCUMENT = "provider noise: the same JSON document, encoded differently"

#: The built-in normalisations, each with why hiding it is safe. A difference that is
#: not on this list is reported, however noisy it looks.
PROVIDER_NOISE: tuple[tuple[str, str], ...] = (
    (
        NULL_VS_EMPTY,
        "null on one side, {} or [] on the other (e.g. aws tags null -> {}). Providers built "
        "on the Terraform plugin SDK cannot tell an unset collection from an empty one and "
        "flip between the two on refresh; neither has any element, so the real resource "
        "is the same.",
    ),
    (
        SAME_JSON_DOCUMENT,
        "two strings that both decode to the same JSON object or array (IAM and bucket "
        "policies re-serialised by the cloud API with other whitespace or key order). The "
        "service compares the decoded documents, not the text.",
    ),
)

# Deliberately not on the list: a numeric string vs a number ("30" vs 30). An attribute's
# schema type fixes its JSON type, so such a difference can only come from a dynamically
# typed attribute, where it is a real change of type.


def provider_noise(before: Any, after: Any) -> str | None:
    """Why a leaf difference is provider noise, or ``None`` if it is a real difference.

    Args:
        before: The raw (unmasked) value before; never copied into the result.
        after: The raw (unmasked) value after.

    Returns:
        One of the reasons in :data:`PROVIDER_NOISE`, or ``None``.
    """
    if (before is None and _is_empty_collection(after)) or (
        after is None and _is_empty_collection(before)
    ):
        return NULL_VS_EMPTY
    if isinstance(before, str) and isinstance(after, str) and before != after:
        decoded_before = _decode_json_document(before)
        decoded_after = _decode_json_document(after)
        if (
            decoded_before is not None
            and decoded_after is not None
            and json_values_equal(decoded_before, decoded_after)
        ):
            return SAME_JSON_DOCUMENT
    return None


def _is_empty_collection(value: Any) -> bool:
    return isinstance(value, dict | list) and not value


def _decode_json_document(text: str) -> dict[str, Any] | list[Any] | None:
    """The decoded object or array in ``text``, or ``None`` if it holds neither."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict | list) else None


def json_values_equal(left: Any, right: Any) -> bool:
    """Equality of two JSON values as Terraform writes them.

    Python's ``==`` says ``True == 1`` and ``{"a": True} == {"a": 1}``; a plan that
    changes ``true`` to ``1`` did change the value. So values Python finds equal are
    compared once more as canonical JSON text (by the C encoder, which is also the fast
    way to confirm that two large unchanged subtrees are the same).
    """
    if left is right:
        return True
    if left != right:
        return False
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)
