"""How a risk rule estimates volatility: the risk model as it stands, or realised volatility
over the fund's own lookback, as risk-control funds and indices compute it.

Conventions: daily simple returns ``r`` with zero mean, annualised with 252 trading days; an
asset's estimate is updated once a day, with the day's return, before the day's rounds (funds
rebalance on the day's estimate, at its close); ``lag_days`` ``L`` makes the rule read the
estimate of ``L`` days before. With ``σ₀`` the asset's volatility before the scenario (the
estimate's starting level: a window of returns of that size, ``r² = σ₀²/252`` each):

* ``lookback`` of ``N`` days: ``σ̂² = (252/N)·Σ_{k<N} r²_{t−k}``;
* ``ewma`` with decay ``λ``: ``σ̂²_t = λ·σ̂²_{t−1} + (1 − λ)·252·r²_t`` (RiskMetrics: λ = 0.94);
* ``max`` of several of these (``of``): ``σ̂ = max_k σ̂_k`` — up with the faster estimate, down
  with the slower (a short and a long window; S&P's risk-control indices take the larger of a
  short- and a long-term EWMA).

The portfolio's estimate is the risk model's with each asset's rows rescaled to its estimate,
``σ̂(x) = √(xᵀ S Σ S x)`` with ``S = diag(σ̂_i/σ_i)``: realised volatilities, the model's
correlations. At ``level = "factor"`` the estimates are of a factor model's factors, from
their fitted daily returns, and the model is rescaled factor by factor,
``Σ̂ = B D Ω D Bᵀ + diag(s²)`` with ``D = diag(σ̂_k/σ_k)`` (:mod:`estimator.factor_vol`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from rules._base import RuleBase

_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
#: Longest lookback, in trading days (ten years).
MAX_WINDOW = 2_520


class _Estimator(BaseModel):
    model_config = _CONFIG

    lag_days: int = Field(
        0, ge=0, le=60, description="L: the rule reads the estimate of L trading days before"
    )
    level: Literal["asset", "factor"] = Field(
        "asset",
        description="what is estimated: each asset's volatility, or each factor's of the "
        "market's factor model (estimator/factor_vol.py)",
    )

    @property
    def key(self) -> str:
        """A name for the estimate's columns (``risk@{key}``)."""
        raise NotImplementedError

    def _lagged(self, key: str) -> str:
        key = f"{key}-lag{self.lag_days}" if self.lag_days else key
        return f"factor:{key}" if self.level == "factor" else key

    @property
    def windows(self) -> tuple[int, ...]:
        """The lookback windows the estimate reads."""
        return ()


class Lookback(_Estimator):
    """The simple average of squared returns over the last ``days``."""

    kind: Literal["lookback"] = "lookback"
    days: PositiveInt = Field(le=MAX_WINDOW, description="N: trading days in the window")

    @property
    def key(self) -> str:
        return self._lagged(f"lookback{self.days}")

    @property
    def windows(self) -> tuple[int, ...]:
        return (self.days,)


class Ewma(_Estimator):
    """An exponentially weighted average of squared returns."""

    kind: Literal["ewma"] = "ewma"
    decay: float = Field(gt=0, lt=1, description="λ: weight of yesterday's variance, e.g. 0.94")

    @property
    def key(self) -> str:
        return self._lagged(f"ewma{self.decay:g}")


class MaxOf(_Estimator):
    """The largest of several estimates (lookbacks or EWMAs), e.g. a short and a long window,
    or S&P's risk-control indices' short- and long-term EWMAs."""

    kind: Literal["max"] = "max"
    of: list[Lookback | Ewma] = Field(
        min_length=2, max_length=4, description="the estimates, each a lookback or an EWMA"
    )

    @model_validator(mode="after")
    def _no_lag_inside(self) -> Self:
        if any(e.lag_days for e in self.of):
            raise ValueError("give lag_days on the max, not on the estimates inside it")
        if any(e.level != "asset" for e in self.of):
            raise ValueError("give level on the max, not on the estimates inside it")
        return self

    @property
    def key(self) -> str:
        return self._lagged("max(" + ",".join(e.key for e in self.of) + ")")

    @property
    def windows(self) -> tuple[int, ...]:
        return tuple(n for e in self.of for n in e.windows)


Estimator = Annotated[Lookback | Ewma | MaxOf, Field(discriminator="kind")]


def risk_column(estimator: Lookback | Ewma | MaxOf | None) -> str:
    """The book column a rule reads its volatility from: the risk model's, or the estimate's."""
    return "risk" if estimator is None else f"risk@{estimator.key}"


def scale_column(key: str) -> str:
    """The asset column of ``σ̂_i/σ_i`` under the estimate ``key``."""
    return f"vol_scale@{key}"


class EstimatedRisk(RuleBase):
    """A rule that reads the portfolio's volatility: the risk model's, or its ``estimator``'s."""

    estimator: Estimator | None = Field(
        None,
        description="how volatility is estimated: the risk model as it stands (default), or "
        "realised over a lookback, an EWMA or the max of several (rules/estimators.py)",
    )

    @property
    def risk_key(self) -> str | None:
        return None if self.estimator is None else self.estimator.key

    @property
    def _risk(self) -> pl.Expr:
        """``σ(x)``: the risk model's, or the estimator's (``risk@{key}``)."""
        return pl.col(risk_column(self.estimator))
