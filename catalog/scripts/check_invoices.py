#!/usr/bin/env python3
"""Demo batch command that fails: a consistency check that finds a problem.

It exits with status 3 and explains on stderr what is wrong and what to do, the way a
good maintenance script fails. Needs only the Python standard library.

Usage: check_invoices.py --month 2024-05
"""

from __future__ import annotations

import argparse
import sys

EXIT_INCONSISTENT = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", required=True)
    args = parser.parse_args()
    print(f"checking invoices of {args.month}", flush=True)
    print("checked 1204 invoices", flush=True)
    print(
        f"error: 3 invoices of {args.month} have no matching payment "
        "(INV-1042, INV-1077, INV-1101); refusing to close the month",
        file=sys.stderr,
        flush=True,
    )
    print("hint: run reconcile-payments for these invoices, then retry", file=sys.stderr)
    return EXIT_INCONSISTENT


if __name__ == "__main__":
    sys.exit(main())
