#!/usr/bin/env python3
"""Demo patch script: put exports stuck in "running" back in the queue.

Listed in the run modal from the repository's ``catalog/patches/*.py`` at a ref (the demo
catalog's ``run-patch`` command). Prints what it would change.
"""

from __future__ import annotations

import sys


def main() -> int:
    ticket, *rest = sys.argv[1:] or ["?"]
    print(f"reset_stuck_exports for {ticket}: arguments {rest}", flush=True)
    print("3 stuck export(s) put back in the queue", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
