"""What a cascade reports: :class:`CascadeResult` and its per-period views."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import polars as pl

from estimator import keys
from estimator.status import Status

ROUND = "round"
DAY = "day"

SOLD = (-pl.col("trade_value")).clip(lower_bound=0).sum()
BOUGHT = pl.col("trade_value").clip(lower_bound=0).sum()


@dataclass
class CascadeResult:
    trades: pl.DataFrame  # every round's trades, with round and execution_price
    rounds: pl.DataFrame  # per round and asset: flows and prices
    holder_rounds: pl.DataFrame  # every round's full holder table, with round
    balance_sheets: pl.DataFrame  # per round and holder: book, trades, losses (balance.py)
    positions: pl.DataFrame  # books after the last round
    holders_after: pl.DataFrame  # holder table (cash) after the last round
    prices: pl.DataFrame  # asset_id, price_0 (start of the episode), price (after the cascade)
    converged: bool
    rounds_traded: int
    amplification: float
    loss_amplification: float  # all losses over those of the shocks and the first round
    losses: pl.DataFrame  # per holder: losses by source, cascade systemicness and vulnerability
    chain: pl.DataFrame  # who pushed whom: see attribution.chain_edges; round = the target's
    aggregate_vulnerability: float
    #: Per day, watched asset and estimate: σ̂ as the rules read it (realised.readings).
    volatility: pl.DataFrame | None = None

    @property
    def round_summary(self) -> pl.DataFrame:
        """Per round: value sold and bought (at the round's start prices), the holders that
        traded and those trading for the first time (newly forced)."""
        return by_period(self.trades, ROUND, DAY).rename({"holders_trading": "holders_forced"})

    @property
    def day_flows(self) -> pl.DataFrame:
        """Per day and asset: value sold and bought, net value and the closing price (after
        the day's last round, before temporary impact decays overnight)."""
        close = (
            self.rounds.sort(ROUND)
            .group_by(DAY, "asset_id")
            .agg(price_close=pl.col("price_end").last())
        )
        return (
            self.trades.group_by(DAY, "asset_id")
            .agg(sell_value=SOLD, buy_value=BOUGHT, net_value=pl.col("trade_value").sum())
            .join(close, on=[DAY, "asset_id"], how="left")
            .sort(DAY, "asset_id")
        )

    @property
    def day_summary(self) -> pl.DataFrame:
        """Per day: value sold and bought, the holders that traded and those newly forced."""
        return by_period(self.trades, DAY)

    @property
    def holders(self) -> pl.DataFrame:
        """Per round, the holders not ok (forced, cured, …): status and the rules that fired."""
        return self.holder_rounds.filter(pl.col("status") != Status.OK).select(
            ROUND, "holder_id", "status", "triggered_rules"
        )


def decoded(result: CascadeResult, codes: keys.Keys, done: set[str]) -> CascadeResult:
    """``result`` with ids, its holder tables in (round, day, holder, asset) order (the frames
    named in ``done`` are so already)."""
    order = [ROUND, DAY, keys.HOLDER, keys.ASSET]
    frames = {
        f.name: codes.decode(
            getattr(result, f.name), order if keys.HOLDER in getattr(result, f.name) else ()
        )
        for f in fields(result)
        if isinstance(getattr(result, f.name), pl.DataFrame) and f.name not in done
    }
    return replace(result, **frames)


def by_period(trades: pl.DataFrame, period: str, *also: str) -> pl.DataFrame:
    """Per ``period`` (round or day): value sold and bought, the holders that traded and
    those trading for the first time."""
    first = trades.group_by("holder_id").agg(pl.col(period).min().alias("_first"))
    return (
        trades.join(first, on="holder_id")
        .group_by(period, *also)
        .agg(
            sell_value=SOLD,
            buy_value=BOUGHT,
            holders_trading=pl.col("holder_id").n_unique(),
            holders_newly_forced=pl.col("holder_id")
            .filter(pl.col(period) == pl.col("_first"))
            .n_unique(),
        )
        .sort(period)
    )


EMPTY_CHAIN = pl.DataFrame(
    schema={
        "target_id": pl.String,
        "source_id": pl.String,
        "asset_id": pl.String,
        "price_return": pl.Float64,
        "contribution": pl.Float64,
        "share": pl.Float64,
        "target_rules": pl.String,
        ROUND: pl.Int32,
    }
)
EMPTY_TRADES = pl.DataFrame(
    schema={
        ROUND: pl.Int32,
        DAY: pl.Int32,
        "holder_id": pl.String,
        "asset_id": pl.String,
        "quantity_before": pl.Float64,
        "trade_quantity": pl.Float64,
        "trade_value": pl.Float64,
        "position_share": pl.Float64,
        "rules": pl.Categorical,
        "position_rules": pl.Categorical,
        "execution_price": pl.Float64,
    }
)
EMPTY_ROUNDS = pl.DataFrame(
    schema={
        ROUND: pl.Int32,
        DAY: pl.Int32,
        "asset_id": pl.String,
        "round_quantity": pl.Float64,
        "sell_value": pl.Float64,
        "buy_value": pl.Float64,
        "price_start": pl.Float64,
        "price_end": pl.Float64,
        "execution_price": pl.Float64,
    }
)
