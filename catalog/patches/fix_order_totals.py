#!/usr/bin/env python3
"""Demo patch script: recompute the totals of the orders named (a one-off data fix).

Listed in the run modal from the repository's ``catalog/patches/*.py`` at a ref (the demo
catalog's ``run-patch`` command, ``options_from: {kind: git, ...}``), as an app's
``script/patches/*.rb`` would be for ``bin/rails runner``. Prints what it would change.
"""

from __future__ import annotations

import sys


def main() -> int:
    ticket, *order_ids = sys.argv[1:] or ["?"]
    print(f"fix_order_totals for {ticket}: {len(order_ids)} order(s)", flush=True)
    for order_id in order_ids:
        print(f"  order {order_id}: total recomputed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
