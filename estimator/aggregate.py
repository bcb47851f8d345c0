"""From holder trades to forced flows per asset and per holder type × asset class.

Per asset (trade values ``u_h`` at the post-shock price, summed over holders h):

* ``sell_value = Σ_h max(−u_h, 0)``, ``buy_value = Σ_h max(u_h, 0)``, ``net_value = Σ_h u_h``;
* ``pct_adv = 100·|net_value| / ADV``;
* ``days_to_absorb = |net_value| / (ρ·ADV)`` with ρ the participation rate (share of ADV the
  market absorbs per day, e.g. 0.2).
"""

from __future__ import annotations

import polars as pl

_V = pl.col("trade_value")
_SUMS = (
    (-_V).clip(lower_bound=0).sum().alias("sell_value"),
    _V.clip(lower_bound=0).sum().alias("buy_value"),
    _V.sum().alias("net_value"),
)


def asset_flows(trades: pl.DataFrame, assets: pl.DataFrame, participation: float) -> pl.DataFrame:
    """One row per asset (every asset, sorted by ``asset_id``)."""
    if not 0 < participation <= 1:
        raise ValueError(f"participation must be in (0, 1], got {participation}")
    flows = trades.group_by("asset_id").agg(
        *_SUMS,
        pl.col("trade_quantity").sum().alias("net_quantity"),
        pl.col("holder_id").n_unique().alias("holders_trading"),
    )
    return (
        assets.select("asset_id", "asset_class", "price", "adv")
        .join(flows, on="asset_id", how="left")
        .with_columns(pl.col("sell_value", "buy_value", "net_value", "net_quantity").fill_null(0.0))
        .with_columns(pl.col("holders_trading").fill_null(0).cast(pl.Int64))
        .with_columns(
            pct_adv=100 * pl.col("net_value").abs() / pl.col("adv"),
            days_to_absorb=pl.col("net_value").abs() / (participation * pl.col("adv")),
        )
        .sort("asset_id")
    )


def by_type_and_class(
    trades: pl.DataFrame, holders: pl.DataFrame, assets: pl.DataFrame
) -> pl.DataFrame:
    """Flows by holder type × asset class, with how many holders of the type traded."""
    joined = trades.join(holders.select("holder_id", "holder_type"), on="holder_id").join(
        assets.select("asset_id", "asset_class"), on="asset_id"
    )
    return (
        joined.group_by("holder_type", "asset_class")
        .agg(*_SUMS, pl.col("holder_id").n_unique().alias("holders_trading"))
        .sort("holder_type", "asset_class")
    )
