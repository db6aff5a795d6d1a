"""Ignore rules written from Slack (the **Ignore…** button) or the CLI, applied by the detector.

They live in the state table (:mod:`shared.state_table.drift_actions`) and apply alongside
the ``toilkit.yaml`` rules, as the same :class:`~services.detector.ignore.IgnoreRule`: a
finding they cover is reported as ignored with the rule's reason (and who wrote it), never
dropped. Once a rule has expired, the drift it hid comes back with a note saying so
(:func:`expired_note`), for :data:`EXPIRED_NOTE_DAYS` after the expiry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from services.detector.ignore import IgnoreRule, glob_match
from shared.events import PlannedFinding
from shared.state_table.drift_actions import EXPIRED_NOTE_DAYS, StoredIgnoreRule


def as_ignore_rule(rule: StoredIgnoreRule) -> IgnoreRule:
    """The stored rule as the detector's rule; the reason says who wrote it, until when."""
    return IgnoreRule(
        state=rule.state,
        address=rule.address,
        attribute=rule.attribute,
        reason=f"{rule.reason} (ignored by {rule.created_by.name} until {rule.expires})",
        expires=rule.expires,
    )


def active_rules(rules: Iterable[StoredIgnoreRule], *, today: date) -> list[IgnoreRule]:
    """The stored rules that still apply today, as detector rules."""
    return [as_ignore_rule(r) for r in rules if r.removed_at is None and not r.is_expired(today)]


def expired_note(
    finding: PlannedFinding, state: str, rules: Sequence[StoredIgnoreRule], *, today: date
) -> str | None:
    """ "ignore rule by X expired on D" when a recently expired rule covered this finding."""
    if finding.ignored:
        return None
    for rule in rules:
        if rule.removed_at is not None or not rule.is_expired(today):
            continue
        if today - rule.expires > timedelta(days=EXPIRED_NOTE_DAYS):
            continue
        if not (glob_match(rule.state, state) and glob_match(rule.address, finding.address)):
            continue
        if rule.attribute is None or any(
            _covers(rule.attribute, a.path) for a in finding.attributes
        ):
            return (
                f"ignore rule by {rule.created_by.name} expired on {rule.expires.isoformat()} "
                f"({rule.reason})"
            )
    return None


def _covers(pattern: str, path: str) -> bool:
    """The pattern matches the path or one of its ancestors (``tags`` covers ``tags.Env``)."""
    if glob_match(pattern, path):
        return True
    for cut in range(len(path) - 1, 0, -1):
        if path[cut] in ".[" and glob_match(pattern, path[:cut]):
            return True
    return False
