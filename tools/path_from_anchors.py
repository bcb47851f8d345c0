"""Write a dated path table (estimator/path.py) from sourced closes of named days: the days
between filled by a seeded Brownian bridge (estimator/bridge.py), one row per trading day with
the day's change of the level.

Each anchor is ``DATE=LEVEL``; the first is the reference close (day 0, no row of its own).
``--unit`` converts the level's changes into the field's (100 for a yield in % to
``yield_change_bp``; 0.01 for the VIX in points to ``vol_change``). ``--daily-vol`` is the
bridge's daily standard deviation, in the level's units, and must come with its own source or
be labelled an assumption in ``--source``.

    python tools/path_from_anchors.py govts yield_change_bp \\
        2020-02-19=1.56 2020-03-09=0.54 2020-03-18=1.18 2020-03-31=0.70 \\
        --unit 100 --daily-vol 0.08 --seed 1 --source "FRED DGS10 …; daily vol: assumption" \\
        --out scenarios/paths/march_2020_ust10y.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import polars as pl

from estimator import dates
from estimator.bridge import bridge
from estimator.path import FIELDS, write_new


def rows(
    anchors: list[tuple[dt.date, float]],
    target: str,
    field: str,
    *,
    unit: float,
    daily_vol: float,
    seed: int,
    source: str,
    calendar: dates.Calendar = "XNYS",
) -> pl.DataFrame:
    """The path table's rows: each trading day after the first anchor up to the last, the
    bridge's change of the level that day times ``unit``."""
    days = dates.trading_days(calendar, anchors[0][0], anchors[-1][0])
    index = {d: i for i, d in enumerate(days)}
    missing = [d for d, _ in anchors if d not in index]
    if missing:
        raise ValueError(f"not trading days on {calendar}: {missing}")
    levels = bridge([(index[d], v) for d, v in anchors], daily_vol, seed)
    note = f"{source}; days between anchors: Brownian bridge, daily vol {daily_vol:g}, seed {seed}"
    return pl.DataFrame(
        {
            "date": [d.isoformat() for d in days[1:]],
            "target": target,
            "field": field,
            "value": np.diff(levels) * unit,
            "source": note,
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="an asset id or a name from the scenario's [path.targets]")
    parser.add_argument("field", choices=FIELDS)
    parser.add_argument("anchors", nargs="+", help="DATE=LEVEL, the first the reference close")
    parser.add_argument("--unit", type=float, default=1.0)
    parser.add_argument("--daily-vol", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", required=True)
    parser.add_argument("--calendar", choices=dates.CALENDARS, default="XNYS")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    anchors = []
    for text in args.anchors:
        day, _, level = text.partition("=")
        anchors.append((dt.date.fromisoformat(day), float(level)))
    table = rows(
        anchors,
        args.target,
        args.field,
        unit=args.unit,
        daily_vol=args.daily_vol,
        seed=args.seed,
        source=args.source,
        calendar=args.calendar,
    )
    return write_new(table, args.out)


if __name__ == "__main__":
    sys.exit(main())
