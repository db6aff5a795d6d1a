#!/usr/bin/env python3
"""Demo batch command that runs long: a reindex that prints progress and stops cleanly.

On SIGTERM (a cancel or a timeout) it stops at once, says which steps are done and exits
with status 143 (128 + SIGTERM), so a rerun can resume from there. Needs only
the Python standard library.

Usage: reindex_search.py --steps 30 --step-seconds 1
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

EXIT_TERMINATED = 128 + signal.SIGTERM

#: Set by the SIGTERM handler; the loop checks it between steps.
stop_requested = threading.Event()


def request_stop(signum: int, frame: FrameType | None) -> None:
    del frame
    stop_requested.set()
    print(f"received {signal.Signals(signum).name}, stopping", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, request_stop)
    print(f"reindexing in {args.steps} steps", flush=True)
    for step in range(1, args.steps + 1):
        # The step's work; a stop request cuts it short (the step is not counted done).
        if stop_requested.wait(args.step_seconds):
            print(f"stopped with {step - 1}/{args.steps} steps done; rerun to resume", flush=True)
            return EXIT_TERMINATED
        print(f"step {step}/{args.steps} done", flush=True)
    print("reindex complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
