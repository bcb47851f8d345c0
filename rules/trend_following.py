"""``trend_following`` — trend followers (CTAs): time-series momentum on futures.

Math. Per instrument ``i`` of the rule's asset classes the signal is the mean of the signs of
its trailing returns over the lookbacks ``k₁ … k_K`` (trading days, e.g. 21, 63 and 252: one,
three and twelve months, as in Hurst, Ooi and Pedersen, "A Century of Evidence on
Trend-Following Investing", AQR 2017)::

    s_i = (1/K)·Σ_k sign(R_i^{(k)}),          R_i^{(k)} = exp(Σ_{d<k} ln(1 + r_{i,t−d})) − 1

and each position is sized to a volatility of ``b·E`` (Moskowitz, Ooi and Pedersen, "Time
Series Momentum", JFE 2012: every position scaled to a constant ex-ante volatility) with the
instrument's annualised volatility ``σ_i`` as the market has it (moved by the scenario)::

    x*_i = max(E, 0)·s_i·min(b/σ_i, c)          (0 where σ_i = 0)

with ``c`` a cap on any position as a multiple of equity (a volatility near 0 would ask for an
unbounded one).

A trend that turns cuts a position, and a rise in volatility cuts every position in
proportion: ``σ`` ×2 halves the book. The trailing returns are the market's (``trend@{k}``
asset columns, :mod:`estimator.trend`), read at the day's open: a day's rounds trade on one
signal.

* trigger: ``Σ_i |x*_i − x_i| > ε·E`` (beyond rounding noise when ``ε = 0``); restore: the
  book on its targets, ``Σ_i |x*_i − x_i| ≤ 0``. Positions outside the asset classes are not
  the rule's.

The trades are prescribed; the holder has a row for every instrument of its classes (none
before the scenario where it holds none), so a trend that turns buys or sells it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, model_validator

from rules._base import Level
from rules._exprs import E
from rules._targets import TargetRule

#: The longest lookback, in trading days (ten years).
MAX_LOOKBACK = 2_520


def trend_column(days: int) -> str:
    """The asset column of the trailing return over ``days`` trading days."""
    return f"trend@{days}"


class TrendFollowing(TargetRule):
    """Hold each instrument at ``E·s·min(b/σ, c)``: the signs of its trends, sized to a
    volatility."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"asset_classes": ["equity_future"], "position_vol": 0.05},
        {
            "asset_classes": ["equity_future", "equity"],
            "position_vol": 0.1,
            "lookbacks": [21, 63],
            "tolerance": 0.05,
        },
    )

    flow = "systematic"

    kind: Literal["trend_following"] = "trend_following"
    asset_classes: list[str] = Field(
        min_length=1, description="the asset classes of the instruments it trades"
    )
    position_vol: float = Field(
        gt=0, le=10, description="b: each position's annualised volatility, a share of equity"
    )
    lookbacks: list[int] = Field(
        default_factory=lambda: [21, 63, 252],
        min_length=1,
        max_length=4,
        description="trading days of the trailing returns whose signs it averages",
    )
    tolerance: float = Field(0.0, ge=0, lt=1, description="ε: trades when Σ|x* − x| exceeds ε·E")
    cap: float = Field(
        10.0, gt=0, le=1_000, description="c: the largest position, a multiple of equity"
    )

    @model_validator(mode="after")
    def _lookbacks(self) -> Self:
        if len(set(self.lookbacks)) != len(self.lookbacks):
            raise ValueError("lookbacks must differ")
        if any(not 1 <= k <= MAX_LOOKBACK for k in self.lookbacks):
            raise ValueError(f"lookbacks must be 1 to {MAX_LOOKBACK} trading days")
        return self

    @property
    def restores_to_trigger(self) -> bool:
        """Without a band the targets depend on the prices and the trends at the open, not on
        the path that led there."""
        return self.tolerance == 0

    def pads(self) -> pl.Expr:
        """Every instrument of the rule's classes: a turning trend buys or sells it."""
        return pl.col("asset_class").is_in(self.asset_classes)

    # --- Polars -------------------------------------------------------------------------------
    def asset_columns(self) -> dict[str, pl.Expr]:
        """Per instrument, the target per unit of equity ``s·min(b/σ, c)`` (null outside the
        classes)."""
        signs = [pl.col(trend_column(k)).sign() for k in self.lookbacks]
        signal = pl.sum_horizontal(signs) / len(self.lookbacks)
        sigma = pl.col("vol")
        size = pl.min_horizontal(self.position_vol / sigma, self.cap)
        per_equity = pl.when(sigma > 0).then(signal * size).otherwise(0.0)
        return {self.column("per_equity"): pl.when(self.pads()).then(per_equity)}

    @property
    def _held(self) -> pl.Expr:
        return pl.col(self.column("per_equity")).is_not_null()

    @property
    def _target(self) -> pl.Expr:
        """``x* = max(E, 0)·s·min(b/σ, c)``: an insolvent holder targets nothing."""
        return E.clip(lower_bound=0.0) * pl.col(self.column("per_equity"))

    def bound(self, level: Level) -> pl.Expr:
        if level is Level.RESTORE:
            return pl.lit(0.0)
        return self.tolerance * E.clip(lower_bound=0.0)
