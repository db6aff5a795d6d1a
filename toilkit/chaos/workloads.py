"""What the detector and batch scenarios give their service to do, and how they count it.

* **Detector**: a repository of small Terraform states (one ``terraform_data`` resource
  each, Terraform's built-in provider: no download) listed in a ``toilkit.yaml`` without
  schedules. Each state is planned with a pending create, i.e. one finding. Every scan
  request names one state, so it must end as exactly one drift report (the thread parent
  of its ``DriftDetected``) and one digest (its ``DriftScanCompleted``); both carry ids the
  detector derives from the request (:func:`shared.events.derived_event_id`).
* **Batch**: a catalog with one local command that appends a line to a file named after its
  run (``TOILKIT_RUN_ID``), then sleeps a little. Every run must be announced by exactly
  one parent message in Slack that reaches a final status, and must have started its
  command at most once (a run whose batch service was killed under it is stopped and
  failed by the next one: announced, not lost). A second, quiet command runs one at a
  time, for the batch service killed during a run of it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from shared.events import Actor, BatchRequested, DriftScanRequested, derived_event_id

#: The user the chaos runs are requested by (allowed by the chaos catalog).
CHAOS_USER = Actor(slack_user_id="U0CHAOS001", name="chaos")
#: The chaos catalog's commands: any number of runs at once, and one at a time (quiet, long).
BATCH_COMMAND = "chaos-run"
QUIET_COMMAND = "chaos-quiet"
QUIET_SECONDS = 15
#: What the command runs: append to <markers>/<run id>, then sleep argv[2] seconds.
_RUN_CODE = (
    "import os, sys, time\n"
    "with open(os.path.join(sys.argv[1], os.environ['TOILKIT_RUN_ID']), 'a') as f:\n"
    "    f.write('started\\n')\n"
    "time.sleep(float(sys.argv[2]))\n"
)
#: The run statuses a parent message shows once a run is over (services/notifier/blocks).
FINAL_STATUSES = ("Succeeded", "Failed", "Timed out", "Cancelled", "Refused")


def write_detector_repo(root: Path, states: int) -> Path:
    """``states`` Terraform states under ``root`` and their ``toilkit.yaml``; its path."""
    entries = []
    for n in range(states):
        path = root / f"state-{n:04d}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "main.tf").write_text(
            f'resource "terraform_data" "chaos" {{\n  input = "chaos-{n}"\n}}\n'
        )
        entries.append({"name": state_name(n), "path": path.name, "schedule": False})
    config = root / "toilkit.yaml"
    config.write_text(
        yaml.safe_dump(
            {"repo": ".", "schedule": False, "concurrency": 2, "states": entries},
            sort_keys=False,
        )
    )
    return config


def state_name(n: int) -> str:
    return f"chaos-state-{n:04d}"


def scan_request(n: int) -> DriftScanRequested:
    return DriftScanRequested(
        correlation_id=f"chaos-scan-{n}", source="chaos", states=(state_name(n),)
    )


def scan_announcements(request: DriftScanRequested) -> tuple[str, str]:
    """The event ids a scan request of one state must be announced under: its drift
    report's and its digest's."""
    (state,) = request.states
    return (
        derived_event_id(request.event_id, "DriftDetected", state),
        derived_event_id(request.event_id, "DriftScanCompleted"),
    )


def write_batch_catalog(root: Path, markers: Path, run_seconds: float) -> Path:
    """The chaos catalog (one local command, anyone may run it in staging); its path."""
    markers.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    catalog = {
        "commands": [
            {
                "name": BATCH_COMMAND,
                "description": "Notes that its run started, then sleeps a little.",
                "argv": ["python3", "-c", _RUN_CODE, str(markers), f"{run_seconds:g}"],
                "environments": {
                    "staging": {
                        "allowed": {"users": [CHAOS_USER.slack_user_id]},
                        "runner": {"kind": "local", "workdir": str(root)},
                    }
                },
                "timeout_seconds": 120,
                "concurrency": None,  # no limit: every request runs
            },
            {
                "name": QUIET_COMMAND,
                "description": "Prints nothing for a while, one run at a time.",
                "argv": ["python3", "-c", _RUN_CODE, str(markers), str(QUIET_SECONDS)],
                "environments": {
                    "staging": {
                        "allowed": {"users": [CHAOS_USER.slack_user_id]},
                        "runner": {"kind": "local", "workdir": str(root)},
                    }
                },
                "timeout_seconds": 120,
                "concurrency": 1,
            },
        ]
    }
    path = root / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path


def batch_request(run_id: str, command: str = BATCH_COMMAND) -> BatchRequested:
    return BatchRequested(
        correlation_id=f"chaos-{run_id}",
        source="chaos",
        run_id=run_id,
        command=command,
        environment="staging",
        reason="chaos",
        requested_by=CHAOS_USER,
    )


def run_tally(
    messages: Sequence[Mapping[str, Any]], run_ids: Iterable[str], markers: Path
) -> tuple[int, int, Counter[str]]:
    """(lost, duplicated, final statuses) of ``run_ids``: lost = no parent message showing
    a final status; duplicated = parents beyond one, plus command starts beyond one."""
    parents: dict[str, list[Mapping[str, Any]]] = {run_id: [] for run_id in run_ids}
    for message in messages:
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        if payload.get("role") != "parent":
            continue
        text = json.dumps(message)
        for run_id, found in parents.items():
            if f"`{run_id}`" in text:
                found.append(message)
    lost = duplicated = 0
    statuses: Counter[str] = Counter()
    for run_id, found in parents.items():
        final = [s for s in FINAL_STATUSES if found and f"*{s}*" in json.dumps(found[-1])]
        statuses[final[0] if final else "not final"] += 1
        lost += not final
        duplicated += max(0, len(found) - 1)
        marker = markers / run_id
        starts = marker.read_text().count("started") if marker.exists() else 0
        duplicated += max(0, starts - 1)
    return lost, duplicated, statuses
