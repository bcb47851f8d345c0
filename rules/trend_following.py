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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, model_validator

from rules._base import Level, PositionRule
from rules._exprs import E, X

if TYPE_CHECKING:
    import cvxpy as cp

    from rules._space import ProblemSpace

#: The longest lookback, in trading days (ten years).
MAX_LOOKBACK = 2_520


def trend_column(days: int) -> str:
    """The asset column of the trailing return over ``days`` trading days."""
    return f"trend@{days}"


class TrendFollowing(PositionRule):
    """Hold each instrument at ``E·b·s/σ``: the signs of its trends, sized to a volatility."""

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

    prescribed = True
    buys = True
    exclusive = True
    convex_levels = (Level.TRIGGER,)

    @model_validator(mode="after")
    def _lookbacks(self) -> Self:
        if len(set(self.lookbacks)) != len(self.lookbacks):
            raise ValueError("lookbacks must differ")
        if any(not 1 <= k <= MAX_LOOKBACK for k in self.lookbacks):
            raise ValueError(f"lookbacks must be 1 to {MAX_LOOKBACK} trading days")
        return self

    @property
    def leaves_no_choice(self) -> bool:
        return True

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
    def _traded(self) -> pl.Expr:
        return pl.col(self.column("per_equity")).is_not_null()

    @property
    def _target(self) -> pl.Expr:
        """``x* = max(E, 0)·s·min(b/σ, c)``: an insolvent holder targets nothing."""
        return E.clip(lower_bound=0.0) * pl.col(self.column("per_equity"))

    def position_columns(self) -> dict[str, pl.Expr]:
        target = self._target
        return {
            self.column("gap_row"): pl.when(self._traded).then((target - X).abs()).otherwise(0.0)
        }

    def holder_sums(self) -> dict[str, pl.Expr]:
        return {self.column("gap"): pl.col(self.column("gap_row")).sum()}

    def lhs(self) -> pl.Expr:
        return pl.col(self.column("gap"))

    def bound(self, level: Level) -> pl.Expr:
        if level is Level.RESTORE:
            return pl.lit(0.0)
        return self.tolerance * E.clip(lower_bound=0.0)

    def metric(self) -> pl.Expr:
        """The trades still to make as a share of equity, ``Σ|x* − x| / E``."""
        return pl.when(E > 0).then(self.lhs() / E)

    def trade(self, level: Level) -> pl.Expr:
        """``u_i = x*_i − x_i`` on the instruments of the classes, at either level."""
        target = self._target
        return pl.when(self._traded).then(target - X).otherwise(0.0)

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        target = self._target
        return {
            self.column("member"): self._traded.cast(pl.Float64),
            self.column("target"): pl.when(self._traded).then(target).otherwise(0.0),
        }

    # --- cvxpy --------------------------------------------------------------------------------
    @property
    def shape_key(self) -> str:
        return f"{self.kind}:{self.tolerance!r}"

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built)

        member = p.vec(self.column("member"), nonneg=True)
        target = p.vec(self.column("target"))
        gap = cp.sum(cp.abs(cp.multiply(member, p.x_plus) - target))
        bound = p.param(self.bound_name, nonneg=True)
        return {self.constraint_name("gap<=tolerance"): gap <= bound}
