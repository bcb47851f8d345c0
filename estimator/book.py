"""Accounting: positions × prices → exposures, and the per-holder book the rules read.

Definitions (one set, used everywhere):

* exposure ``x = q·P·mult``; value in equity ``= x`` for cash instruments, ``0`` for futures
  (their mark-to-market is settled to cash as variation margin);
* account equity ``AE = Σ value + cash``; holder equity ``E = AE + N − D`` with ``N``
  non-tradable holdings and ``D`` other debt;
* gross assets ``A = Σ|x| + N + max(cash, 0)``; leverage ``A / E``;
* ex-ante vol ``σ(x) = √(‖Gᵀx‖² + ‖s∘x‖²)`` (see :mod:`estimator.risk`).
"""

from __future__ import annotations

import polars as pl

from estimator import risk
from rules import Book

_X = pl.col("exposure")


def position_frame(positions: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """Positions joined to assets by ``asset_id`` with ``exposure``, ``value`` and ``is_cash``."""
    joined = positions.join(assets, on="asset_id", how="inner", validate="m:1")
    is_cash = pl.col("instrument") == "cash"
    exposure = pl.col("quantity") * pl.col("price") * pl.col("multiplier")
    return joined.with_columns(exposure=exposure, is_cash=is_cash).with_columns(
        value=pl.when(pl.col("is_cash")).then(_X).otherwise(0.0)
    )


def futures_settlement(pos: pl.DataFrame) -> pl.DataFrame:
    """Variation margin per holder: ``Σ q·mult·(P − P_pre)`` over futures."""
    pnl = pl.col("quantity") * pl.col("multiplier") * (pl.col("price") - pl.col("price_pre"))
    return pos.filter(~pl.col("is_cash")).group_by("holder_id").agg(variation_margin=pnl.sum())


def restate(book: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame | pl.LazyFrame:
    """Recompute the derived balance-sheet columns from the sums and the cash/debt columns."""
    ae = pl.col("position_value") + pl.col(Book.CASH)
    return book.with_columns(
        **{
            Book.ACCOUNT_EQUITY: ae,
            Book.EQUITY: ae + pl.col(Book.NON_TRADABLE) - pl.col(Book.OTHER_DEBT),
            Book.GROSS_ASSETS: pl.col(Book.GROSS_EXPOSURE)
            + pl.col(Book.NON_TRADABLE)
            + pl.col(Book.CASH).clip(lower_bound=0.0),
        }
    ).with_columns(  # leverage is undefined (null), never negative, when E ≤ 0
        leverage=pl.when(pl.col(Book.EQUITY) > 0).then(
            pl.col(Book.GROSS_ASSETS) / pl.col(Book.EQUITY)
        )
    )


def holder_book(pos: pl.DataFrame, holders: pl.DataFrame) -> pl.DataFrame:
    """One row per holder (holders without positions included) with every :class:`Book` column."""
    gcols = risk.factor_columns(pos)
    rated = pl.col("margin_rate").is_not_null()
    sums = pos.group_by("holder_id").agg(
        pl.col("value").sum().alias("position_value"),
        _X.abs().sum().alias(Book.GROSS_EXPOSURE),
        (_X * pl.col("is_cash")).sum().alias(Book.CASH_EXPOSURE),
        (pl.col("margin_rate") * _X.abs()).filter(rated).sum().alias(Book.MARGIN_RATED),
        _X.abs().filter(~rated).sum().alias(Book.MARGIN_UNRATED),
        ((pl.col(risk.SPECIFIC) * _X) ** 2).sum().alias("_specific_var"),
        *[(_X * pl.col(g)).sum().alias(f"_fe_{g}") for g in gcols],
    )
    factor_var = (
        pl.sum_horizontal([pl.col(f"_fe_{g}") ** 2 for g in gcols]) if gcols else pl.lit(0.0)
    )
    filled = [
        "position_value",
        Book.GROSS_EXPOSURE,
        Book.CASH_EXPOSURE,
        Book.MARGIN_RATED,
        Book.MARGIN_UNRATED,
        "_specific_var",
        *[f"_fe_{g}" for g in gcols],
    ]
    book = (
        holders.join(sums, on="holder_id", how="left")
        .with_columns(pl.col(filled).fill_null(0.0))
        .with_columns(**{Book.RISK: (factor_var + pl.col("_specific_var")).sqrt()})
        .drop("_specific_var", *[f"_fe_{g}" for g in gcols])
    )
    return restate(book).sort("holder_id")
