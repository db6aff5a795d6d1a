"""Time, injected: every store and handler that needs "now" takes a :data:`Clock`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias

#: Returns the current time, timezone-aware (tests pass a fake one instead of sleeping).
Clock: TypeAlias = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC (the production :data:`Clock`)."""
    return datetime.now(UTC)
