"""The census of a market: who holds what, before any scenario.

Three tables from the market's books (``x = q·P·mult`` per position, :mod:`estimator.book`):

* by holder type — holders (rows), the accounts they stand for ``Σ k``, total assets ``Σ A``
  (``A = Σ|x| + N + max(C, 0)``), equity ``Σ E``, their ratio ``Σ A / Σ E`` (the type's
  leverage), gross exposure ``Σ G``, liabilities ``Σ L`` (a row's amounts are its accounts'
  together);
* by asset class — assets, holders with a position, long ``Σ max(x, 0)``, short
  ``Σ min(x, 0)``, net and gross exposure, the class's ADV ``Σ ADV`` and ``gross / ADV``, the
  days of the class's whole volume its holdings amount to;
* by holder type × asset class — net and gross exposure.

Sums are in the base currency; holders without positions count in the first table. A census
vintage (a market with ``as_of``) also carries the aggregates it was sized to, each with its
value, label (estimate, assumption, or assumption scaled from another vintage), date and source
(:mod:`estimator.generator.vintages`), as the table ``census_sources``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from estimator import book as bk
from estimator.errors import InputError, Problem
from estimator.manifest import CensusManifest
from estimator.market import Market, load_market
from estimator.paths import DEFAULT_MARKET, markets_dir, resolve_market, vintage_at
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
    as_of: str | None = None
    #: the aggregates a census vintage was sized to: path, value, kind, date, source
    sources: pl.DataFrame | None = None

    def tables(self) -> dict[str, pl.DataFrame]:
        tables = {
            "census_types": self.by_type,
            "census_classes": self.by_class,
            "census": self.by_type_and_class,
        }
        return tables | ({"census_sources": self.sources} if self.sources is not None else {})

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write the tables and a manifest into ``out_dir`` atomically."""
        aggregates = None
        if self.sources is not None:
            kinds = self.sources["kind"].str.extract(r"^(\w+)")
            aggregates = dict(sorted(kinds.value_counts().iter_rows()))
        manifest = CensusManifest(market=self.market, as_of=self.as_of, aggregates=aggregates)
        return write_reports(Path(out_dir), self.tables(), manifest)


def census(market: Market, sources: pl.DataFrame | None = None) -> Census:
    """The census of ``market`` (see the module docstring), with the ``sources`` of its
    aggregates if given (:func:`estimator.generator.sources`)."""
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
            accounts=pl.col(bk.ACCOUNTS).sum(),
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
    return Census(market.name, *tables, as_of=market.as_of, sources=sources)


def census_at(market: str = DEFAULT_MARKET, as_of: str | None = None) -> Census:
    """The census of a bundle or shipped market (``forced-flow census``); with ``as_of`` (a
    date, ``YYYY-MM-DD``) the shipped census's vintage in force then. A shipped census vintage
    comes with its aggregates' sources."""
    from estimator import generator  # noqa: PLC0415 (the generator is needed for sources only)

    if as_of is not None:
        if market != DEFAULT_MARKET:
            raise InputError(
                [Problem("--as-of", f"picks a vintage of the census, not of {market!r}")]
            )
        try:
            date.fromisoformat(as_of)
        except ValueError:
            raise InputError([Problem("--as-of", f"not a date (YYYY-MM-DD): {as_of!r}")]) from None
        path = vintage_at(markets_dir() / DEFAULT_MARKET, as_of)
    else:
        path = resolve_market(market)
    loaded = load_market(path)
    shipped = path.resolve().parent == (markets_dir() / DEFAULT_MARKET).resolve()
    sources = generator.sources(loaded.as_of) if shipped and loaded.as_of else None
    return census(loaded, sources)
