#!/usr/bin/env python3
"""Demo batch command with a preview: expire a campaign's unused coupons.

With ``--dry-run`` (the catalog's preview appends it) it changes nothing and prints what
it would expire, so the approvers see that before they decide; it fails (exit status 4)
when the campaign has more unused coupons than ``--max``, which stops the request before
anyone is asked. Without ``--dry-run`` it "expires" them. Needs only the standard library.

Usage: expire_coupons.py --campaign spring-sale --max 500 [--dry-run]
"""

from __future__ import annotations

import argparse
import os
import sys

#: Unused coupons per campaign (a fixed demo data set).
UNUSED = {"spring-sale": 42, "black-friday": 1800, "welcome-2024": 0}
EXIT_TOO_MANY = 4
SAMPLE = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", required=True, choices=sorted(UNUSED))
    parser.add_argument("--max", type=int, required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    count = UNUSED[args.campaign]
    mode = os.environ.get("TOILKIT_RUN_MODE", "run")
    print(f"campaign {args.campaign}: {count} unused coupons (mode: {mode})", flush=True)
    if count > args.max:
        print(
            f"error: {count} coupons is more than --max {args.max}; refusing (raise the "
            "limit if that many is expected)",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_TOO_MANY
    codes = [f"{args.campaign.upper()}-{n:05d}" for n in range(1, count + 1)]
    verb = "would expire" if args.dry_run else "expired"
    for code in codes[:SAMPLE]:
        print(f"{verb} {code}", flush=True)
    if count > SAMPLE:
        print(f"... and {count - SAMPLE} more", flush=True)
    print(f"{verb} {count} coupons" + (" (dry run: nothing changed)" if args.dry_run else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
