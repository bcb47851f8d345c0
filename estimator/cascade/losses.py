"""Losses over an episode: the shocks' direct losses, lenders' write-offs, and the loss table
of :mod:`estimator.attribution` with systemicness and vulnerability."""

from __future__ import annotations

import math

import polars as pl

from estimator import attribution, keys
from estimator.balance import PATH
from rules import Book


def write_off(
    holders: pl.DataFrame, positions: pl.DataFrame, prices: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Shortfalls passed to lenders: a holder with a lender and equity ``E < 0`` (its book at
    ``prices``: asset_id, multiplier, instrument, price) has ``−E`` forgiven (its cash rises
    to ``E = 0``) and its lender books it as other debt — repeated while a lender's loss leaves
    it short in turn (at most once per holder in the chain). Returns the holders and
    ``loss_lending`` per holder (the lender's loss; the borrower's gain, negative)."""
    value = (
        positions.join(prices, on="asset_id")
        .filter(pl.col("instrument") == "cash")
        .group_by("holder_id")
        .agg(_value=(pl.col("quantity") * pl.col("multiplier") * pl.col("price")).sum())
    )
    passed = []
    for _ in range(holders.height):
        equity = holders.join(value, on="holder_id", how="left").with_columns(
            _equity=pl.col("_value").fill_null(0.0)
            + pl.col(Book.CASH)
            + pl.col(Book.NON_TRADABLE)
            - pl.col(Book.OTHER_DEBT)
        )
        gone = equity.filter((pl.col("_equity") < 0) & pl.col("lender").is_not_null()).select(
            "holder_id", "lender", forgiven=-pl.col("_equity")
        )
        if gone.is_empty():
            break
        borne = gone.group_by("lender").agg(borne=pl.col("forgiven").sum())
        holders = (
            holders.join(gone.select("holder_id", "forgiven"), on="holder_id", how="left")
            .join(borne.rename({"lender": "holder_id"}), on="holder_id", how="left")
            .with_columns(
                pl.col(Book.CASH) + pl.col("forgiven").fill_null(0.0),
                pl.col(Book.OTHER_DEBT) + pl.col("borne").fill_null(0.0),
            )
            .drop("forgiven", "borne")
        )
        passed += [
            gone.select("holder_id", loss_lending=-pl.col("forgiven")),
            borne.select(holder_id="lender", loss_lending="borne"),
        ]
    losses = pl.concat(
        [pl.DataFrame(schema={"holder_id": keys.CODE, "loss_lending": pl.Float64}), *passed]
    )
    return holders, losses


def direct_losses(
    positions: pl.DataFrame, assets: pl.DataFrame, holders: pl.DataFrame
) -> pl.DataFrame:
    """``−Σ q·m·(P₀ − P_pre) + (N_pre − N)``: what the scenario's shocks cost each holder, on
    its positions and on its non-tradable holdings (holder shocks' ``non_tradable_return``)."""
    parts = [pl.DataFrame(schema={"holder_id": keys.CODE, "loss_direct": pl.Float64})]
    if "price_pre" in assets.columns:
        moved = positions.join(
            assets.select("asset_id", "multiplier", "price", "price_pre"), on="asset_id"
        )
        parts.append(
            moved.group_by("holder_id").agg(
                loss_direct=(
                    -pl.col("quantity")
                    * pl.col("multiplier")
                    * (pl.col("price") - pl.col("price_pre"))
                ).sum()
            )
        )
    if Book.NON_TRADABLE_PRE in holders.columns:
        parts.append(
            holders.select(
                "holder_id", loss_direct=pl.col(Book.NON_TRADABLE_PRE) - pl.col(Book.NON_TRADABLE)
            ).filter(pl.col("loss_direct") != 0)
        )
    return pl.concat(parts).group_by("holder_id").agg(pl.col("loss_direct").sum())


def total_loss(direct: pl.DataFrame, frames: list[pl.DataFrame]) -> float:
    """Direct losses plus the impact, execution and lending losses in ``frames`` (a dated
    path's later moves are left out: they are the market's, not the cascade's)."""
    booked = ("loss_impact", "loss_execution", "loss_lending")  # a path's moves: exogenous
    parts = [direct["loss_direct"], *(f[c] for f in frames for c in booked if c in f.columns)]
    return math.fsum(v for part in parts for v in part.drop_nulls())  # in any row order


def ratio(final: float, first: float) -> float:
    return final / first if first > 0 else 1.0


def loss_table(
    direct: pl.DataFrame, losses: list[pl.DataFrame], first: pl.DataFrame
) -> pl.DataFrame:
    """Per holder: the losses of :mod:`estimator.attribution` over all rounds, the direct loss
    (the shocks', and a dated path's later moves), systemicness and indirect vulnerability
    (``E_h``: equity at the start, before cures)."""
    start = first.select("holder_id", equity_start=pl.col("equity_before"))
    path = [PATH] if any(PATH in f.columns for f in losses) else []  # a dated path's moves
    columns = [*attribution.LOSS_COLUMNS, "loss_execution", "loss_lending", *path]
    empty = pl.DataFrame(schema={"holder_id": keys.CODE} | dict.fromkeys(columns, pl.Float64))
    summed = (
        pl.concat([empty, *losses], how="diagonal_relaxed")
        .group_by("holder_id")
        .agg(pl.col(columns).fill_null(0.0).sum())
    )
    total_equity = pl.col("equity_start").clip(lower_bound=0.0).sum()
    return (
        start.join(direct, on="holder_id", how="left")
        .join(summed, on="holder_id", how="left")
        .with_columns(pl.col("loss_direct", *columns).fill_null(0.0))
        .with_columns((pl.col("loss_direct") + pl.col(PATH)).alias("loss_direct") if path else [])
        .drop(path)
        .with_columns(
            loss_others_impact=pl.col("loss_impact") - pl.col("loss_own_impact"),
            loss_total=pl.col("loss_direct")
            + pl.col("loss_impact")
            + pl.col("loss_execution")
            + pl.col("loss_lending"),
            # undefined (empty) where no holder had equity at the start
            cascade_systemicness=pl.when(total_equity > 0).then(
                pl.col("loss_caused") / total_equity
            ),
            cascade_indirect_vulnerability=pl.when(pl.col("equity_start") > 0).then(
                pl.col("loss_impact") / pl.col("equity_start")
            ),
        )
        .sort("holder_id")
    )


def aggregate_vulnerability(table: pl.DataFrame) -> float:
    """``Σ_h L_h / E``."""
    total = math.fsum(table["equity_start"].clip(lower_bound=0.0))
    return math.fsum(table["loss_impact"]) / total if total > 0 else 0.0
