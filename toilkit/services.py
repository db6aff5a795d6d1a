"""The composition root: which services exist and how each is built from a Runtime.

This is the only module that imports the services; they never import each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.runtime import Runtime, Service

ServiceFactory = Callable[[Runtime], Awaitable[Service]]


def service_factories() -> dict[str, ServiceFactory]:
    """Every service this installation can run, by name, in start-up order."""
    factories: dict[str, ServiceFactory] = {}

    # Imported here, not at the top: a service's dependencies load only when it is built.
    from services.detector.service import build_detector  # noqa: PLC0415

    factories["detector"] = build_detector
    from services.batch.service import build_batch  # noqa: PLC0415

    factories["batch"] = build_batch
    from services.notifier.service import build_notifier  # noqa: PLC0415

    factories["notifier"] = build_notifier
    from services.gateway.service import build_gateway  # noqa: PLC0415

    factories["gateway"] = build_gateway
    return factories
