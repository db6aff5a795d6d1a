"""The longest run the catalog allows fits in an execution's history, with room to spare.

A Step Functions (STANDARD) execution fails once its history reaches 25,000 events. A run
polls its build in a loop, and every state a loop turn enters adds events, so the count is
read off the definition Terraform deploys (``infra/stepfunctions/batch_run.asl.json``): the
states a run passes through when its build never ends and its time runs out (the longest
way through), each costing what Step Functions records for its type. The integration test
``test_the_history_of_a_run_is_what_the_definition_says_it_costs`` checks the same count
against the history moto's interpreter records.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from services.batch.runners.stepfunctions import MAX_POLL_SECONDS, poll_waits
from shared.catalog import CommandSpec, StepFunctionsRunnerSettings
from tests.integration.sfn_moto import load_definition

#: Step Functions' limit on one execution's history.
HISTORY_LIMIT = 25_000
#: What the longest run may use of it: half, leaving the rest for retried polls (each
#: retry adds a few events) and whatever the definition grows next.
HISTORY_BUDGET = HISTORY_LIMIT // 2

#: Events per state by type: entered and exited, plus a Task's scheduled, started and
#: succeeded; a Fail state is entered only, and the execution's end is one more.
EVENTS_PER_STATE = {"Task": 5, "Choice": 2, "Pass": 2, "Wait": 2, "Succeed": 2, "Fail": 1}

#: The states a run passes through while its build runs: its mode and the start, once per poll
#: (a loop turn), and once when its time is up.
START = ("Mode?", "StartBuild")
POLL = ("BuildEnded?", "NextPoll", "WaitBeforePoll", "PollBuild")
TIME_UP = ("BuildEnded?", "StopBuild", "EndedBeforeStop?", "TimedOut")


def _next_states(state: dict[str, Any]) -> set[str]:
    targets = {c["Next"] for c in state.get("Choices", [])}
    targets |= {c["Next"] for c in state.get("Catch", [])}
    return targets | {state[k] for k in ("Next", "Default") if k in state}


def history_events(definition: dict[str, Any], polls: int) -> int:
    """The history events of a run whose build polls ``polls`` times and is then stopped."""
    states = definition["States"]
    path = [*START, *(POLL * polls), *TIME_UP]
    assert path[0] == definition["StartAt"]
    for here, there in itertools.pairwise(path):
        assert there in _next_states(states[here]), f"{here} does not lead to {there}"
    # ExecutionStarted, the states, ExecutionFailed.
    return 1 + sum(EVENTS_PER_STATE[states[name]["Type"]] for name in path) + 1


def _longest_timeout() -> int:
    [limit] = [
        m.le for m in CommandSpec.model_fields["timeout_seconds"].metadata if hasattr(m, "le")
    ]
    return int(limit)


def _poll_seconds_allowed() -> list[int]:
    field = StepFunctionsRunnerSettings.model_fields["poll_seconds"]
    [low] = [m.ge for m in field.metadata if hasattr(m, "ge")]
    [high] = [m.le for m in field.metadata if hasattr(m, "le")]
    # The shortest first waits poll most (they ramp up from there); the rest for the record.
    return sorted({int(low), 1, 5, int(field.default), 60, MAX_POLL_SECONDS, int(high)})


def test_the_loop_costs_eleven_events_a_poll() -> None:
    definition = load_definition()
    assert history_events(definition, 1) - history_events(definition, 0) == 11


@pytest.mark.parametrize("poll_seconds", _poll_seconds_allowed())
def test_the_longest_allowed_run_stays_far_below_the_history_limit(poll_seconds: int) -> None:
    longest = _longest_timeout()
    assert longest == 24 * 3600
    waits = poll_waits(poll_seconds, longest)

    events = history_events(load_definition(), len(waits))

    assert events <= HISTORY_BUDGET, f"{events} events for a {longest} s run"
    # The build is never stopped before its time (0 s waits are the emulators' setting),
    # nor the execution before the build.
    assert poll_seconds == 0 or sum(waits) >= longest
    assert sum(waits) + len(waits) * 2 < load_definition()["TimeoutSeconds"]


def test_polling_every_fifteen_seconds_throughout_would_not_fit() -> None:
    """What the definition cost before the waits grew: a 15 s poll for the whole run (13
    events a turn then) ended a run after about 8 hours."""
    polls = math.ceil(_longest_timeout() / 15)
    assert history_events(load_definition(), polls) > HISTORY_LIMIT


def test_the_waits_grow_with_the_run_and_stay_short_while_it_is_young() -> None:
    waits = poll_waits(15, 3600)
    assert waits[:10] == [15] * 10  # the first 150 s: as before
    assert waits == sorted(waits)
    assert max(waits) == MAX_POLL_SECONDS
    elapsed = 0
    for wait in waits:
        # An end is noticed within 15 s, or a tenth of the run's age (rounded up), or 2 min.
        assert wait <= max(15, min(MAX_POLL_SECONDS, math.ceil(elapsed / 10)))
        elapsed += wait
    assert poll_waits(3600, 60) == [3600]
    assert poll_waits(0, 60) == [0] * len(poll_waits(1, 60))
