#!/usr/bin/env python3
"""Demo batch command that runs long: a reindex that prints progress and stops cleanly.

On SIGTERM (a cancel or a timeout) it finishes the step in hand, says where it stopped
and exits with status 143 (128 + SIGTERM), so a rerun can resume from there. Needs only
the Python standard library.

Usage: reindex_search.py --steps 30 --step-seconds 1
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType

EXIT_TERMINATED = 128 + signal.SIGTERM

#: Set by the SIGTERM handler; the loop checks it between steps.
stop_requested = threading.Event()


def request_stop(signum: int, frame: FrameType | None) -> None:
    del frame
    stop_requested.set()
    print(f"received {signal.Signals(signum).name}, stopping after this step", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, request_stop)
    print(f"reindexing in {args.steps} steps", flush=True)
    for step in range(1, args.steps + 1):
        time.sleep(args.step_seconds)
        print(f"step {step}/{args.steps} done", flush=True)
        if stop_requested.is_set():
            print(f"stopped at step {step}/{args.steps}; rerun to resume", flush=True)
            return EXIT_TERMINATED
    print("reindex complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
