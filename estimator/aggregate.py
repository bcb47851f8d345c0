"""From holder trades to forced flows per asset and per holder type × asset class.

Per asset (trade values ``u_h`` at the post-shock price, summed over holders h):

* ``sell_value = Σ_h max(−u_h, 0)``, ``buy_value = Σ_h max(u_h, 0)``, ``net_value = Σ_h u_h``;
* ``pct_adv = 100·|net_value| / ADV``;
* ``days_to_absorb = |net_value − auction_value| / (ρ·ADV)`` with ρ the participation rate
  (share of ADV the market absorbs per day, e.g. 0.2): the flow continuous trading absorbs.

Index events trade in the closing auction, not over days. Where an asset has a closing auction
(``auction_share`` a, a typical auction's share of ADV), the index trackers' part of its flow,
``auction_value = Σ_h p_h`` over trades whose position rules include ``index_tracking`` (``p_h``
their position part; a solved trade, which has none, counts whole when it names
``index_tracking``), is read through the auction lens:

* ``auction_multiple = max_d |D_d| / (a·ADV)``, the largest day's demand (``D_d`` the trackers'
  net demand on day ``d``; a run without days is one day) as a multiple of a typical closing
  auction (the event day's auction grows to absorb it; it is not spread over days);
* ``lens``: ``days`` (no auction demand), ``auction`` (all of the net flow is auction demand) or
  ``auction+days`` (both). An asset without a closing auction keeps index flow in days.
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
    share = pl.col(AUCTION_SHARE)
    auctioned = share.is_not_null()  # an asset without a closing auction keeps it in days
    continuous = pl.col("net_value") - pl.col("auction_value")
    return (
        _with_auction_share(assets)
        .select("asset_id", "asset_class", "price", "adv", AUCTION_SHARE)
        .join(flows, on="asset_id", how="left")
        .join(_auction_demand(trades), on="asset_id", how="left")
        .with_columns(
            pl.col("sell_value", "buy_value", "net_value", "net_quantity").fill_null(0.0),
            pl.col("holders_trading").fill_null(0).cast(pl.Int64),
            pl.when(auctioned).then(pl.col("auction_value", "auction_peak")).fill_null(0.0),
        )
        .with_columns(
            pct_adv=100 * pl.col("net_value").abs() / pl.col("adv"),
            days_to_absorb=continuous.abs() / (participation * pl.col("adv")),
            auction_multiple=(pl.col("auction_peak") / (share * pl.col("adv"))).fill_null(0.0),
            lens=pl.when(pl.col("auction_peak") == 0)
            .then(pl.lit("days"))
            .when(continuous.abs() <= _SAME * pl.col("auction_peak"))
            .then(pl.lit("auction"))
            .otherwise(pl.lit("auction+days")),
        )
        .drop(AUCTION_SHARE, "auction_peak")
        .sort("asset_id")
    )


#: The asset column of a typical closing auction's share of ADV.
AUCTION_SHARE = "auction_share"
#: Continuous flow this small beside the auction's (relative) is rounding: the lens is the auction.
_SAME = 1e-9


def _with_auction_share(assets: pl.DataFrame) -> pl.DataFrame:
    """``assets`` with an ``auction_share`` column (null where the market gives none)."""
    if AUCTION_SHARE in assets.columns:
        return assets
    return assets.with_columns(pl.lit(None, dtype=pl.Float64).alias(AUCTION_SHARE))


def _auction_demand(trades: pl.DataFrame) -> pl.DataFrame:
    """``asset_id`` × ``auction_value`` and ``auction_peak``: the net part of trades made by
    index tracking — the position part of a trade whose position rules include it, a whole
    solved trade (no position part) that names it — over the run, and the largest day's |net|."""
    if not {"position_rules", "position_value"} <= set(trades.columns):
        schema = {"asset_id": pl.String, "auction_value": pl.Float64, "auction_peak": pl.Float64}
        return pl.DataFrame(schema=schema)
    placed = pl.col("position_rules").cast(pl.String).fill_null("")
    part = (
        pl.when(_names(placed))
        .then(pl.col("position_value"))
        .when((placed == "") & _names(pl.col("rules").cast(pl.String).fill_null("")))
        .then(pl.col("trade_value"))
        .otherwise(0.0)
    )
    by_day = ["asset_id", *(["day"] if "day" in trades.columns else [])]
    daily = trades.group_by(by_day).agg(demand=part.sum())
    return daily.group_by("asset_id").agg(
        auction_value=pl.col("demand").sum(), auction_peak=pl.col("demand").abs().max()
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


def _names(rules: pl.Expr, kind: str = "index_tracking") -> pl.Expr:
    """Whether ``;``-separated rule kinds ``rules`` name ``kind``."""
    return rules.str.split(";").list.contains(kind)
