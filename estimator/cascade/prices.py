"""Prices over an episode: a round's flows move them, trades execute between the start and
the end of the move, and on a day clock temporary impact decays overnight.

With impact ``I(Q)`` at the episode's cumulative flow ``Q`` (:mod:`estimator.impact`), a
permanent share ``π`` and the temporary impact ``T`` still standing,

    ``P = P₀·(1 + π·I + (1 − π)·T)``, floored at ``P₀ × MIN_PRICE_RATIO``

(:func:`with_impact`). Within a day ``T = T_carry + I − I_day`` (the day's new impact on top
of what earlier days left, ``I_day`` the impact at the end of the previous day); overnight
``T_carry ← (T_carry + I − I_day)·δ`` and ``I_day ← I`` with ``δ`` the overnight decay.
"""

from __future__ import annotations

import polars as pl

from estimator import impact as im
from estimator.cascade.result import BOUGHT, DAY, ROUND, SOLD
from estimator.days import Days
from estimator.impact import Impact

#: Per asset, a move's marks (:func:`marks`).
MARKS = ["multiplier", "instrument", "p_start", "p_end", "p_exec"]


def start(assets: pl.DataFrame, index_moves: list[str]) -> pl.DataFrame:
    """The market at the start of an episode: ``assets`` (with their impact parameters) and
    the impact so far (none), each index move kept aside (``{column}@``) for its day."""
    return assets.with_columns(
        price_0=pl.col("price"),
        episode_quantity=pl.lit(0.0),
        impact_now=pl.lit(0.0),  # I(Q) at the cumulative flow so far
        impact_day=pl.lit(0.0),  # … at the end of the previous day
        impact_carry=pl.lit(0.0),  # temporary impact of previous days, decayed
        **{f"{c}@": pl.col(c) for c in index_moves},  # traded on their day
    )


def with_impact(share: float, temporary: pl.Expr) -> pl.Expr:
    """``P₀·(1 + π·I + (1 − π)·T)``, floored (see the module docstring)."""
    return pl.col("price_0") * (1 + share * pl.col("impact_now") + (1 - share) * temporary).clip(
        lower_bound=im.MIN_PRICE_RATIO
    )


def move(
    market: pl.DataFrame, trades: pl.DataFrame, impact: Impact, days: Days | None
) -> pl.DataFrame:
    """The round's flows per asset, the prices after them (``price_after``) and the execution
    prices; with a temporary part of impact (``days``), :func:`with_impact`."""
    flows = trades.group_by("asset_id").agg(
        round_quantity=pl.col("trade_quantity").sum(),
        sell_value=SOLD,
        buy_value=BOUGHT,
    )
    moved = (
        market.join(flows, on="asset_id", how="left")
        .with_columns(
            pl.col("round_quantity", "sell_value", "buy_value").fill_null(0.0),
            episode_quantity=pl.col("episode_quantity") + pl.col("round_quantity").fill_null(0.0),
        )
        .pipe(im.prices_after, impact.mode)
    )
    if impact.mode == "cumulative":
        moved = moved.with_columns(impact_now=pl.col("price_after") / pl.col("price_0") - 1)
        if days is not None and days.permanent_share < 1:
            temporary = pl.col("impact_carry") + pl.col("impact_now") - pl.col("impact_day")
            moved = moved.with_columns(price_after=with_impact(days.permanent_share, temporary))
    return moved.with_columns(
        execution_price=im.execution_price(
            pl.col("price"), pl.col("price_after"), impact.execution_point
        )
    )


def settle(market: pl.DataFrame) -> pl.DataFrame:
    """The market after a round: the new prices stand, the round's flows are let go."""
    return market.with_columns(price=pl.col("price_after")).drop(
        "round_quantity", "sell_value", "buy_value", "price_after", "execution_price"
    )


def overnight(market: pl.DataFrame, days: Days) -> pl.DataFrame:
    """The market after a night: temporary impact decays (``price_after``; see the module
    docstring)."""
    share, decay = days.permanent_share, days.decay
    return market.with_columns(
        impact_carry=(pl.col("impact_carry") + pl.col("impact_now") - pl.col("impact_day")) * decay,
        impact_day=pl.col("impact_now"),
    ).with_columns(price_after=with_impact(share, pl.col("impact_carry")))


def rest(impact: Impact, days: Days | None) -> pl.Expr:
    """``P_∞ = P₀·(1 + π·I(Q))``, the price once temporary impact has decayed."""
    if days is None or days.permanent_share == 1 or impact.mode != "cumulative":
        return pl.col("price")
    return pl.col("price_0") * (1 + days.permanent_share * pl.col("impact_now"))


def marks(market: pl.DataFrame, execution: pl.Expr) -> pl.DataFrame:
    """Per asset: the price before (``p_start``) and after (``p_end``) a move, and where
    trades executed (``p_exec``)."""
    return market.select(
        "asset_id",
        "multiplier",
        "instrument",
        p_start=pl.col("price"),
        p_end=pl.col("price_after"),
        p_exec=execution,
    )


def round_report(market: pl.DataFrame, r: int, day: int) -> pl.DataFrame:
    """Per asset a round moved or traded: flows and prices."""
    return market.select(
        pl.lit(r, pl.Int32).alias(ROUND),
        pl.lit(day, pl.Int32).alias(DAY),
        "asset_id",
        "round_quantity",
        "sell_value",
        "buy_value",
        price_start=pl.col("price"),
        price_end=pl.col("price_after"),
        execution_price=pl.col("execution_price"),
    ).filter((pl.col("round_quantity") != 0) | (pl.col("price_end") != pl.col("price_start")))
