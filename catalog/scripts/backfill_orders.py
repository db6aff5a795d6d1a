#!/usr/bin/env python3
"""Demo batch command: backfill ``orders.total_eur`` in a SQLite database, in batches.

The kind of one-off data fix a team would otherwise run with ``rails runner`` over SSH.
It creates a small demo database on first use, then fills the missing column for the
orders placed on or after ``--since``, ``--batch-size`` rows per transaction, printing
progress. Running it again finds nothing left to do (it is idempotent).

Usage: backfill_orders.py --since 2024-01-01 --batch-size 500 [--db PATH] [--dry-run]
(``BACKFILL_DRY_RUN=true`` in the environment is the same as ``--dry-run``.) The database defaults to $TOILKIT_DEMO_DB, else toilkit-demo-orders.sqlite in the
system's temporary folder. Needs only the Python standard library.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sqlite3
import sys
import tempfile

DEMO_ROWS = 2000
EUR_PER_USD_MILLIS = 920  # a fixed rate keeps the demo deterministic


def default_db() -> str:
    return os.environ.get("TOILKIT_DEMO_DB") or os.path.join(
        tempfile.gettempdir(), "toilkit-demo-orders.sqlite"
    )


def ensure_demo_data(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, placed_on TEXT NOT NULL, "
        "total_usd_cents INTEGER NOT NULL, total_eur_cents INTEGER)"
    )
    if db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]:
        return
    rng = random.Random(42)
    start = datetime.date(2023, 1, 1)
    rows = [
        (
            (start + datetime.timedelta(days=rng.randrange(0, 730))).isoformat(),
            rng.randrange(500, 50_000),
        )
        for _ in range(DEMO_ROWS)
    ]
    db.executemany("INSERT INTO orders (placed_on, total_usd_cents) VALUES (?, ?)", rows)
    db.commit()
    print(f"created demo database with {DEMO_ROWS} orders", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", required=True, type=datetime.date.fromisoformat)
    parser.add_argument("--batch-size", required=True, type=int)
    parser.add_argument("--db", default=default_db())
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    args.dry_run = args.dry_run or os.environ.get("BACKFILL_DRY_RUN") == "true"
    if args.batch_size < 1:
        print("--batch-size must be at least 1", file=sys.stderr)
        return 2

    db = sqlite3.connect(args.db)
    ensure_demo_data(db)
    since = args.since.isoformat()
    pending = db.execute(
        "SELECT COUNT(*) FROM orders WHERE placed_on >= ? AND total_eur_cents IS NULL", (since,)
    ).fetchone()[0]
    print(f"{pending} orders since {since} need total_eur_cents (db: {args.db})", flush=True)
    if args.dry_run or pending == 0:
        print("dry run: nothing changed" if args.dry_run else "nothing to do", flush=True)
        return 0

    done = 0
    batch = 0
    while True:
        ids = [
            row[0]
            for row in db.execute(
                "SELECT id FROM orders WHERE placed_on >= ? AND total_eur_cents IS NULL "
                "ORDER BY id LIMIT ?",
                (since, args.batch_size),
            )
        ]
        if not ids:
            break
        with db:  # one transaction per batch: an interrupted run keeps finished batches
            db.executemany(
                "UPDATE orders SET total_eur_cents = total_usd_cents * ? / 1000 WHERE id = ?",
                [(EUR_PER_USD_MILLIS, order_id) for order_id in ids],
            )
        batch += 1
        done += len(ids)
        print(f"batch {batch}: {len(ids)} rows ({done}/{pending})", flush=True)
    print(f"backfilled {done} orders in {batch} batches", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
