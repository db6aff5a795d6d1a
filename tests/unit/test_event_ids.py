"""Ids derived for events about runs: pinned, since consumers compare them across restarts."""

from __future__ import annotations

import uuid

import pytest

from services.batch.outcomes import outcome_event_id, outcome_header
from services.gateway.handlers import _about_run, derived_id
from shared.event_ids import fixed_event_id, run_event_start
from shared.events import derived_event_id

#: What every header of an event about run ``run-1`` carries.
ABOUT_RUN_1 = {"correlation_id": "run-1", "run_id": "run-1"}


def test_a_fixed_event_id_is_the_uuid5_of_the_name_in_the_namespace() -> None:
    namespace = uuid.UUID("6f1c1c7e-5b55-4d2e-9a51-0f3b7c1e9a10")

    assert fixed_event_id(namespace, "run-1/started") == str(uuid.uuid5(namespace, "run-1/started"))
    assert fixed_event_id(namespace, "a") != fixed_event_id(namespace, "b")


@pytest.mark.parametrize(
    ("derived", "pinned"),
    [
        pytest.param(
            outcome_event_id("run-1", "started"),
            "218f604d-2b1e-5f35-af5b-c633a2729533",
            id="batch outcome",
        ),
        pytest.param(
            derived_id("k1", "BatchRequested"),
            "2daadd7c-5ada-525f-ba1d-0977256939db",
            id="gateway command",
        ),
        pytest.param(
            derived_event_id("scan-1", "DriftScanCompleted"),
            "9fb68293-c0dc-5a08-bf07-8482c51199aa",
            id="derived by a handler from the event it handles",
        ),
    ],
)
def test_the_derived_event_ids_stay_what_they_were(derived: str, pinned: str) -> None:
    assert derived == pinned


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(
            run_event_start("e1", source="batch", run_id="run-1"),
            {"event_id": "e1", "source": "batch"},
            id="any run event",
        ),
        pytest.param(
            outcome_header("run-1", "reindex", "staging", "finished"),
            {
                "event_id": "3b24a44f-a53d-570b-83cf-56cbcaeb30da",
                "source": "batch",
                "command": "reindex",
                "environment": "staging",
            },
            id="batch outcome",
        ),
        pytest.param(
            _about_run("k1", "BatchApproved", "run-1"),
            {"event_id": "25dfb396-3436-5038-b5b3-510eab3a4216", "source": "gateway"},
            id="gateway command",
        ),
    ],
)
def test_an_event_about_a_run_is_correlated_by_the_run_and_its_id_stays_what_it_was(
    header: dict[str, object], expected: dict[str, str]
) -> None:
    assert header == {**expected, **ABOUT_RUN_1}
