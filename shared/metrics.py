"""CloudWatch metrics as Embedded Metric Format (EMF) log lines: no API call on the hot path.

Each settled message writes one JSON line to stdout. In Lambda, CloudWatch Logs turns the
line into metric data points (the ``_aws`` key says which); under ``toilkit serve`` a
container's log driver ships the same lines. Per service and event type:

* ``EventsHandled``: handled by its handler (redeliveries of a handled event not counted);
* ``EventsFailed``: a handler attempt that failed (retried later, or left for the DLQ);
* ``EventsDeadLettered``: messages that will land in a DLQ, once per message;
* ``HandlerDuration``: milliseconds per handler attempt.

Every metric is written under two dimension sets: ``Service, EventType`` (what broke) and
``Service`` (what alarms watch). The line also carries the event's ids as properties (not
dimensions, so they cost nothing): Logs Insights finds the line of one event.

Written by hand rather than with aws-embedded-metrics (which, outside Lambda, sends to a
CloudWatch agent over the network) or Powertools' Metrics (a dependency of several MB for
forty lines): the format is a small documented JSON shape.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from shared.observability import current_log_context

log = logging.getLogger(__name__)

#: The dimension sets every metric is written under.
DIMENSION_SETS = (("Service", "EventType"), ("Service",))


class WorkerMetrics(Protocol):
    """What the worker runtime reports (one call per settled handler attempt)."""

    def handled(self, service: str, event_type: str, seconds: float) -> None: ...

    def failed(self, service: str, event_type: str, seconds: float | None) -> None: ...

    def dead_lettered(self, service: str, event_type: str) -> None: ...


def _stdout_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EmfMetrics:
    """Writes one EMF line per data point set.

    Args:
        namespace: the CloudWatch namespace.
        write: takes one line (default: stdout; tests collect them).
        properties: fields copied into every line (default: the log context's ids).
        clock: epoch seconds.
    """

    def __init__(
        self,
        namespace: str,
        *,
        write: Callable[[str], None] = _stdout_line,
        properties: Callable[[], Mapping[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self._write = write
        self._properties = properties or current_log_context
        self._clock = clock

    def handled(self, service: str, event_type: str, seconds: float) -> None:
        self.emit(service, event_type, {"EventsHandled": 1, "HandlerDuration": seconds * 1000})

    def failed(self, service: str, event_type: str, seconds: float | None) -> None:
        values: dict[str, float] = {"EventsFailed": 1}
        if seconds is not None:
            values["HandlerDuration"] = seconds * 1000
        self.emit(service, event_type, values)

    def dead_lettered(self, service: str, event_type: str) -> None:
        self.emit(service, event_type, {"EventsDeadLettered": 1})

    def emit(self, service: str, event_type: str, values: Mapping[str, float]) -> None:
        """Write one line with ``values`` (metric name -> value) for one service and type."""
        definitions = [
            {"Name": name, "Unit": "Milliseconds" if name == "HandlerDuration" else "Count"}
            for name in values
        ]
        document = {
            **{k: v for k, v in self._properties().items() if k not in ("service",)},
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(s) for s in DIMENSION_SETS],
                        "Metrics": definitions,
                    }
                ],
            },
            "Service": service,
            "EventType": event_type,
            **{name: round(value, 3) for name, value in values.items()},
        }
        try:
            self._write(json.dumps(document, separators=(",", ":")))
        except (OSError, ValueError) as exc:  # a closed stdout must not fail a message
            log.warning("cannot write a metrics line: %s", exc)
