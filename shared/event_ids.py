"""Event ids fixed by what an event is about, and the fields every event about a run starts with.

A service that may publish the same event twice (a retried Slack request, an outcome
announced again after a crash) derives the event's id from what the event is about, in
its own UUID namespace: the second event then has the first one's id, and every consumer,
deduplicating by event id, handles it once. Each service keeps its namespace and its way
of naming what an event is about (:func:`shared.events.derived_event_id`, the gateway's
``derived_id``, the batch service's ``outcome_event_id``, the schedulers' and the dead-letter
notices' ids); the ids must never change (they are compared across restarts and deploys).
"""

from __future__ import annotations

import uuid
from typing import TypedDict


def fixed_event_id(namespace: uuid.UUID, name: str) -> str:
    """The event id of ``name`` in ``namespace`` (a UUID5 string, as events use): the same
    every time for the same name."""
    return str(uuid.uuid5(namespace, name))


class RunEventStart(TypedDict):
    """The fields every event about a run starts with."""

    event_id: str
    correlation_id: str
    source: str
    run_id: str


def run_event_start(event_id: str, *, source: str, run_id: str) -> RunEventStart:
    """The start of an event ``source`` publishes about run ``run_id``: the run is its
    correlation id."""
    return RunEventStart(event_id=event_id, correlation_id=run_id, source=source, run_id=run_id)
