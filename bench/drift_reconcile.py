"""A wide plan's reconcile against its parse: what tracking costs per finding.

``reconcile`` turns every finding of a plan into the ``DriftFinding`` that ``DriftDetected``
carries (status, first seen, claimer, suspects) and compares it with the open records. This
script builds one plan of N drifted resources (two changed tags each), then measures, best
of five in the same run:

* ``parse_plan`` on it (the baseline: the work every scan does anyway);
* ``reconcile`` of a first scan (every finding new, no records);
* ``reconcile`` of a later scan (every finding open, each with its record).

The plan, its parse and the first scan's records are built by the lifecycle unit tests'
helpers (``tests/unit/test_detector_lifecycle.py``), so both read the same shapes.

No Terraform runs: a real plan of N resources takes minutes (``bench/drift_scan.py``
measures that); this one isolates the Python between the plan and the store.

Usage: python bench/drift_reconcile.py [--findings 5000]
(``TOILKIT_FULL_SIZE=1`` runs 50,000.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.detector.lifecycle import reconcile
from tests.unit.test_detector_lifecycle import DAY_ONE, change, plan, recorded, summary

ROUNDS = 5


def wide_plan(findings: int) -> dict[str, Any]:
    """A plan whose drift is ``findings`` buckets, each with two tags changed."""
    before = {"tags": {"env": "prod", "team": "data"}}
    after = {"tags": {"env": "dev", "team": "web"}}
    return plan(drift=[change(f"cloud_bucket.b{i}", before, after) for i in range(findings)])


def best_of(work: Callable[[], object]) -> float:
    """The shortest of :data:`ROUNDS` runs of ``work``, in seconds."""
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    default = 50_000 if os.environ.get("TOILKIT_FULL_SIZE") else 5_000
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=default)
    args = parser.parse_args()

    document = wide_plan(args.findings)
    parsed = summary(document)
    assert len(parsed.reported_findings) == args.findings, len(parsed.reported_findings)
    records = recorded(document)  # what the first scan (s1, on DAY_ONE) left open
    later = DAY_ONE + timedelta(days=1)

    parse = best_of(lambda: summary(document))
    new = best_of(lambda: reconcile({}, parsed, scan_id="s1", now=DAY_ONE, mode="full"))
    still_open = best_of(lambda: reconcile(records, parsed, scan_id="s2", now=later, mode="full"))

    per = 1e6 / args.findings
    print(f"{args.findings} drifted resources, best of {ROUNDS}")
    print(f"  parse_plan (baseline)      {parse * 1e3:8.1f} ms  {parse * per:6.1f} us a finding")
    for name, seconds in (("reconcile, all new", new), ("reconcile, all open", still_open)):
        print(
            f"  {name:<26} {seconds * 1e3:8.1f} ms  {seconds * per:6.1f} us a finding"
            f"  ({seconds / parse:.2f}x the parse)"
        )


if __name__ == "__main__":
    main()
