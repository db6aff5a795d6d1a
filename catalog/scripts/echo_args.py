#!/usr/bin/env python3
"""Demo batch command that shows exactly what it received.

Prints each argv item and the ECHO_VALUE environment variable as JSON strings, one per
line, so newlines, quotes and shell metacharacters are visible exactly as they arrived.
Needs only the Python standard library.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    for index, item in enumerate(sys.argv[1:], start=1):
        print(f"argv[{index}] = {json.dumps(item)}", flush=True)
    value = os.environ.get("ECHO_VALUE")
    print(f"env ECHO_VALUE = {json.dumps(value)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
