"""``python -m toilkit.chaos [--reduced] [--only NAME ...] [--logs DIR]``: run the scenarios
and print scenario / events / lost / duplicated / time. Exits 1 if anything was lost or
duplicated (or a scenario failed to run)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from toilkit.chaos.scenarios import SCENARIOS, Result, Size, run_scenario


def table(results: list[Result], title: str) -> Table:
    out = Table(title=title)
    for column in ("scenario", "events", "lost", "duplicated", "time", "notes"):
        out.add_column(column, justify="right" if column in ("events", "lost", "time") else "left")
    for r in results:
        out.add_row(
            r.scenario, str(r.events), str(r.lost), str(r.duplicated), f"{r.seconds:.0f} s", r.note
        )
    return out


async def run_all(names: list[str], size: Size, logs: Path) -> list[Result]:
    results = []
    for name in names:
        print(f"==> {name}", flush=True)
        results.append(await run_scenario(name, size, logs))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toilkit.chaos", description=__doc__)
    parser.add_argument("--reduced", action="store_true", help="the small size make test runs")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), default=None)
    parser.add_argument("--logs", type=Path, default=None, help="keep process logs here")
    args = parser.parse_args(argv)
    names = args.only or list(SCENARIOS)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="toilkit-chaos-"))
    size = Size(full=not args.reduced)
    results = asyncio.run(run_all(names, size, logs))
    title = f"toilkit chaos ({'reduced' if args.reduced else 'full'} size); logs in {logs}"
    Console(width=160).print(table(results, title))
    return 0 if all(r.lost == 0 and r.duplicated == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
