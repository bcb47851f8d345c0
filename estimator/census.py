"""The census of a market: who holds what, before any scenario.

Three tables from the market's books (``x = q·P·mult`` per position, :mod:`estimator.book`):

* by holder type — holders, total assets ``Σ A`` (``A = Σ|x| + N + max(C, 0)``), equity ``Σ E``,
  their ratio ``Σ A / Σ E`` (the type's leverage), gross exposure ``Σ G``, liabilities ``Σ L``;
* by asset class — assets, holders with a position, long ``Σ max(x, 0)``, short
  ``Σ min(x, 0)``, net and gross exposure, the class's ADV ``Σ ADV`` and ``gross / ADV``, the
  days of the class's whole volume its holdings amount to;
* by holder type × asset class — net and gross exposure.

Sums are in the base currency; holders without positions count in the first table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from estimator import book as bk
from estimator.market import Market
from estimator.report import canonical, write_reports
from rules import Book

_X = pl.col("exposure")


@dataclass(frozen=True)
class Census:
    """The three tables of the module docstring, each sorted by its keys."""

    market: str
    by_type: pl.DataFrame
    by_class: pl.DataFrame
    by_type_and_class: pl.DataFrame

    def tables(self) -> dict[str, pl.DataFrame]:
        return {
            "census_types": self.by_type,
            "census_classes": self.by_class,
            "census": self.by_type_and_class,
        }

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write the tables and a manifest into ``out_dir`` atomically."""
        manifest = {"tool": "forced-flow census", "market": self.market}
        return write_reports(Path(out_dir), self.tables(), manifest)


def census(market: Market) -> Census:
    """The census of ``market`` (see the module docstring)."""
    pos = bk.position_frame(market.positions, market.assets).join(
        market.holders.select("holder_id", "holder_type"), on="holder_id"
    )
    books = bk.holder_book(pos.drop("holder_type"), market.holders).join(
        market.holders.select("holder_id", "holder_type"), on="holder_id"
    )
    by_type = (
        books.group_by("holder_type")
        .agg(
            holders=pl.len(),
            total_assets=pl.col(Book.GROSS_ASSETS).sum(),
            equity=pl.col(Book.EQUITY).sum(),
            gross_exposure=pl.col(Book.GROSS_EXPOSURE).sum(),
            liabilities=pl.col(Book.LIABILITIES).sum(),
        )
        .with_columns(
            leverage=pl.when(pl.col("equity") > 0).then(pl.col("total_assets") / pl.col("equity"))
        )
        .sort("holder_type")
    )
    classes = market.assets.group_by("asset_class").agg(assets=pl.len(), adv=pl.col("adv").sum())
    held = pos.group_by("asset_class").agg(
        holders=pl.col("holder_id").n_unique(),
        long=_X.clip(lower_bound=0.0).sum(),
        short=_X.clip(upper_bound=0.0).sum(),
        net=_X.sum(),
        gross=_X.abs().sum(),
    )
    by_class = (
        classes.join(held, on="asset_class", how="left")
        .with_columns(
            pl.col("holders").fill_null(0).cast(pl.UInt32),
            pl.col("long", "short", "net", "gross").fill_null(0.0),
        )
        .with_columns(gross_adv_days=pl.col("gross") / pl.col("adv"))
        .select(
            "asset_class",
            "assets",
            "holders",
            "long",
            "short",
            "net",
            "gross",
            "adv",
            "gross_adv_days",
        )
        .sort("asset_class")
    )
    by_type_and_class = (
        pos.group_by("holder_type", "asset_class")
        .agg(holders=pl.col("holder_id").n_unique(), net=_X.sum(), gross=_X.abs().sum())
        .sort("holder_type", "asset_class")
    )
    tables = (canonical(t) for t in (by_type, by_class, by_type_and_class))
    return Census(market.name, *tables)
