"""Trailing returns over an episode, as trend followers read them (``trend_following``).

Per asset the market carries, for each lookback ``k`` a trend rule reads, the last ``k`` daily
log returns (``lr@{k}``, a list, oldest first) and the trailing return they make,
``R^{(k)} = exp(Σ lr) − 1`` (``trend@{k}``, :func:`rules.trend_following.trend_column`), with
the price of the last update (``price_trended``). The windows start empty — no trend, every
log return 0 — where nothing is known of the days before (:func:`with_windows`, at the
market's build). Then, in order:

* a dated path's ``history`` (daily returns of the days before its start) runs through them,
  day by day (:func:`warm`), for the assets it covers;
* a scenario's ``[[trend_start]]`` sets an asset's trailing return ``R`` over a lookback as it
  stood when the scenario starts, spread evenly over the window (``ln(1 + R)/k`` a day: its
  oldest days leave the window first, as an even trend's would);
* the scenario's own move is day 0's return, ``ln(P/P_pre)`` (:func:`opening`), and each later
  day of a day clock the move from the last update to the day's open (:func:`advance`).

With empty windows the first move alone sets every trend's sign, however small it is: a
follower that knows no trend follows the first one it sees.

Trend followers trade at the day's open on these; a day's rounds do not move them.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import polars as pl
from pydantic import BaseModel, Field

from estimator.bounds import MODEL_CONFIG
from estimator.errors import InputWarnings, Problem
from estimator.mandates import Mandate
from estimator.selectors import Selector
from rules.trend_following import MAX_LOOKBACK, TrendFollowing, trend_column

#: The price each update measures the next return from.
REFERENCE = "price_trended"


def window_column(days: int) -> str:
    """The asset column of the last ``days`` daily log returns."""
    return f"lr@{days}"


class TrendStart(BaseModel):
    """Trailing returns of the selected assets when a scenario starts, with their source."""

    model_config = MODEL_CONFIG

    select: Selector
    returns: dict[
        Annotated[int, Field(ge=1, le=MAX_LOOKBACK)], Annotated[float, Field(gt=-1, le=1e6)]
    ] = Field(min_length=1, description="lookback in trading days → trailing return R (> −1)")
    kind: Literal["estimate", "assumption"]
    date: str = Field(min_length=1, description="the date the returns run to")
    source: str = Field(min_length=1)
    note: str = ""


def lookbacks(mandates: dict[str, Mandate]) -> list[int]:
    """The lookbacks the mandates' trend rules read, sorted."""
    return sorted(
        {k for m in mandates.values() for r in m.rules if isinstance(r, TrendFollowing)
         for k in r.lookbacks}
    )  # fmt: skip


def with_windows(assets: pl.DataFrame, mandates: dict[str, Mandate]) -> pl.DataFrame:
    """``assets`` with an empty window (no trend) for every lookback the mandates read."""
    days = lookbacks(mandates)
    if not days:
        return assets
    return assets.with_columns(
        *(pl.concat_list([pl.lit(0.0)] * k).alias(window_column(k)) for k in days),
        *(pl.lit(0.0).alias(trend_column(k)) for k in days),
        pl.col("price").alias(REFERENCE),
    )


def _days(assets: pl.DataFrame) -> list[int]:
    prefix = window_column(0)[:-1]
    return sorted(int(c[len(prefix) :]) for c in assets.columns if c.startswith(prefix))


def _pushed(assets: pl.DataFrame, days: list[int], lr: pl.Expr) -> pl.DataFrame:
    """The windows after one day's log return ``lr``, and their trailing returns."""
    moved = assets.with_columns(
        pl.concat_list([pl.col(window_column(k)).list.slice(1, k - 1), lr]).alias(window_column(k))
        for k in days
    )
    # (a sum past e^700 would overflow: the trend's sign is the sum's, its size immaterial)
    return moved.with_columns(
        (pl.col(window_column(k)).list.sum().clip(-700.0, 700.0).exp() - 1).alias(trend_column(k))
        for k in days
    )


def warm(assets: pl.DataFrame, history: pl.DataFrame, returns: str) -> pl.DataFrame:
    """``assets`` after the daily returns of ``history`` (``asset_id``, ``returns``: a list,
    oldest first, null on a day it does not give — a day without a move), for the assets it
    covers."""
    days = _days(assets)
    if not days or history.is_empty():
        return assets
    # only the last max(k) days can stay in a window
    recent = history.select("asset_id", pl.col(returns).list.tail(max(days)))
    state = assets.join(recent, on="asset_id", how="left")
    for d in range(int(recent[returns].list.len().max() or 0)):
        r = pl.col(returns).list.get(d, null_on_oob=True).fill_null(0.0)
        state = _pushed(state, days, (1 + r).log())
    return state.drop(returns)


def opening(
    shocked: pl.DataFrame, starts: list[TrendStart], label: str, warnings: InputWarnings
) -> pl.DataFrame:
    """The shocked assets' windows: set by the scenario's ``starts``, then moved by day 0's
    return ``ln(P/P_pre)``."""
    days = _days(shocked)
    if not days:
        if starts:
            warnings.add(
                Problem(
                    label,
                    "the scenario gives trend_start, but no mandate of the market follows "
                    "trends: nobody reads them",
                    field="trend_start",
                )
            )
        return shocked
    for i, start in enumerate(starts):
        hit = start.select.expr()
        if not shocked.select(hit.any()).item():
            warnings.add(Problem(label, "selects no asset", field=f"trend_start.{i}.select"))
        unread = sorted(set(start.returns) - set(days))
        if unread:
            warnings.add(
                Problem(
                    label,
                    f"lookbacks {unread} are read by no trend rule",
                    field=f"trend_start.{i}.returns",
                )
            )
        shocked = shocked.with_columns(
            pl.when(hit)
            .then(pl.concat_list([pl.lit(math.log1p(r) / k)] * k))
            .otherwise(pl.col(window_column(k)))
            .alias(window_column(k))
            for k, r in start.returns.items()
            if k in days
        )
    moved = _pushed(shocked, days, (pl.col("price") / pl.col("price_pre")).log())
    return moved.with_columns(pl.col("price").alias(REFERENCE))


def advance(market: pl.DataFrame) -> pl.DataFrame:
    """The windows after a later day's return, from the price at the last update to the
    price now (the day's open)."""
    days = _days(market)
    if not days:
        return market
    moved = _pushed(market, days, (pl.col("price") / pl.col(REFERENCE)).log())
    return moved.with_columns(pl.col("price").alias(REFERENCE))
