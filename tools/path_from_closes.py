"""Write a dated path table (estimator/path.py) from a table of sourced daily closes: one row per
trading day and series with the day's move, computed from that day's close and the one before.

The closes table has the columns ``date, series, level, source`` (one row per series and
trading day, every trading day of the calendar between a series' first and last date: a
missing day is an error, never filled). Each ``--series`` says what a series moves:

    SERIES:TARGET:FIELD:HOW[:UNIT]

with HOW one of ``diff`` (``(L_d − L_{d−1})·UNIT``: a yield or a spread in % to bp with UNIT
100, or a yield in % to a bond's first-order price return ``−D·Δy`` with UNIT ``−D/100``),
``ratio`` (``L_d / L_{d−1}``: a volatility index as a ``vol_multiplier``) or ``return``
(``L_d / L_{d−1} − 1``: an index level as a ``price_return``). ``--with`` copies the rows of
path tables written before (e.g. by tools/path_from_series.py) ahead of the new ones.

    python tools/path_from_closes.py scenarios/paths/march_2020_closes.csv \\
        --series DGS10:treasuries:yield_change_bp:diff:100 \\
        --series VIX:equities:vol_multiplier:ratio \\
        --with scenarios/paths/march_2020_sp500.csv --out scenarios/paths/march_2020.csv
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from estimator import dates
from estimator.path import FIELDS, write_new

HOWS = ("diff", "ratio", "return")
#: The HOWs that give each field its kind of number: a change (``diff``), a factor (``ratio``)
#: or a return (``return``, or ``diff`` of a yield times ``−D/100``).
SUITED = {
    "price_return": ("return", "diff"),
    "yield_change_bp": ("diff",),
    "spread_change_bp": ("diff",),
    "vol_multiplier": ("ratio",),
    "vol_change": ("diff",),
    "margin_rate_multiplier": ("ratio",),
    "margin_rate_change": ("diff",),
}


class SeriesError(argparse.ArgumentTypeError, ValueError):
    """A ``--series`` that cannot be read: argparse shows its message as it is."""


@dataclass(frozen=True)
class Series:
    """What one series of closes moves: ``target``'s ``field``, by ``how`` times ``unit``."""

    name: str
    target: str
    field: str
    how: str
    unit: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Series:
        parts = text.split(":")
        if len(parts) not in (4, 5) or parts[2] not in FIELDS or parts[3] not in HOWS:
            raise SeriesError(
                f"expected SERIES:TARGET:FIELD:HOW[:UNIT] with FIELD in {FIELDS} and HOW in "
                f"{HOWS}, got {text!r}"
            )
        field, how = parts[2], parts[3]
        if how not in SUITED.get(field, ()):
            fits = ", ".join(SUITED.get(field, ())) or "none: not a field of daily closes"
            raise SeriesError(f"{how!r} does not give {field} (it takes: {fits}), got {text!r}")
        unit = float(parts[4]) if len(parts) == 5 else 1.0
        return cls(parts[0], parts[1], field, how, unit)


def moves(closes: pl.DataFrame, series: list[Series], calendar: dates.Calendar) -> pl.DataFrame:
    """The path table's rows (date, target, field, value, source) of every series, in date
    order: the move of each trading day after a series' first close."""
    out = []
    for s in series:
        levels = closes.filter(pl.col("series") == s.name).sort("date")
        if levels.is_empty():
            raise ValueError(f"no closes of {s.name}")
        days = levels["date"].str.to_date("%Y-%m-%d").to_list()
        twice = sorted({d for d in days if days.count(d) > 1})
        if twice:
            raise ValueError(f"{s.name}: more than one close on {twice}")
        expected = dates.trading_days(calendar, days[0], days[-1])
        if days != expected:
            missing = sorted(set(expected) - set(days))
            extra = sorted(set(days) - set(expected))
            raise ValueError(f"{s.name}: missing trading days {missing}, not trading days {extra}")
        level, before = pl.col("level"), pl.col("level").shift(1)
        value = {
            "diff": ((level - before) * s.unit).round(10),
            "ratio": level / before,
            "return": level / before - 1,
        }[s.how]
        how = s.how if s.unit == 1 else f"{s.how} × {s.unit:g}"
        note = pl.format(
            "{}; " + how + " of the closes of {} and {}",
            "source",
            pl.col("date").shift(1),
            "date",
        )
        out.append(
            levels.select(
                "date",
                target=pl.lit(s.target),
                field=pl.lit(s.field),
                value=value,
                source=note,
            ).slice(1)
        )
    return pl.concat(out).sort("date", maintain_order=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("closes", type=Path, help="date, series, level, source")
    parser.add_argument("--series", action="append", required=True, type=Series.parse)
    parser.add_argument("--with", dest="before", action="append", type=Path, default=[])
    parser.add_argument("--calendar", choices=dates.CALENDARS, default="XNYS")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    closes = pl.read_csv(args.closes, schema_overrides={"date": pl.String, "level": pl.Float64})
    table = moves(closes, args.series, args.calendar)
    kept = [pl.read_csv(p, infer_schema=False) for p in args.before]
    table = pl.concat([*kept, table.cast({"value": pl.String})], how="diagonal_relaxed")
    return write_new(table, args.out)


if __name__ == "__main__":
    sys.exit(main())
