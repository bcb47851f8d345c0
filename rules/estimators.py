"""How a risk rule estimates volatility: the risk model as it stands, or realised volatility
over the fund's own lookback, as risk-control funds and indices compute it.

Conventions: daily simple returns ``r`` with zero mean, annualised with 252 trading days; an
asset's estimate is updated once a day, with the day's return, before the day's rounds (funds
rebalance on the day's estimate, at its close); ``lag_days`` ``L`` makes the rule read the
estimate of ``L`` days before. With ``σ₀`` the asset's volatility before the scenario (the
estimate's starting level: a window of returns of that size, ``r² = σ₀²/252`` each):

* ``lookback`` of ``N`` days: ``σ̂² = (252/N)·Σ_{k<N} r²_{t−k}``;
* ``ewma`` with decay ``λ``: ``σ̂²_t = λ·σ̂²_{t−1} + (1 − λ)·252·r²_t`` (RiskMetrics: λ = 0.94);
* ``max`` of a ``short`` and a ``long`` lookback: ``σ̂ = max(σ̂_short, σ̂_long)`` — up with the
  faster window, down with the slower.

The portfolio's estimate is the risk model's with each asset's rows rescaled to its estimate,
``σ̂(x) = √(xᵀ S Σ S x)`` with ``S = diag(σ̂_i/σ_i)``: realised volatilities, the model's
correlations.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
#: Longest lookback, in trading days (ten years).
MAX_WINDOW = 2_520


class _Estimator(BaseModel):
    model_config = _CONFIG

    lag_days: int = Field(
        0, ge=0, le=60, description="L: the rule reads the estimate of L trading days before"
    )

    @property
    def key(self) -> str:
        """A name for the estimate's columns (``risk@{key}``)."""
        raise NotImplementedError

    def _lagged(self, key: str) -> str:
        return f"{key}-lag{self.lag_days}" if self.lag_days else key

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


class MaxOfWindows(_Estimator):
    """The larger of a short and a long lookback's estimates."""

    kind: Literal["max"] = "max"
    short: PositiveInt = Field(le=MAX_WINDOW, description="the short window, trading days")
    long: PositiveInt = Field(le=MAX_WINDOW, description="the long window, trading days")

    @model_validator(mode="after")
    def _short_below_long(self) -> Self:
        if self.short >= self.long:
            raise ValueError(f"short ({self.short}) must be below long ({self.long})")
        return self

    @property
    def key(self) -> str:
        return self._lagged(f"max{self.short}x{self.long}")

    @property
    def windows(self) -> tuple[int, ...]:
        return (self.short, self.long)


Estimator = Annotated[Lookback | Ewma | MaxOfWindows, Field(discriminator="kind")]


def risk_column(estimator: Lookback | Ewma | MaxOfWindows | None) -> str:
    """The book column a rule reads its volatility from: the risk model's, or the estimate's."""
    return "risk" if estimator is None else f"risk@{estimator.key}"


def scale_column(key: str) -> str:
    """The asset column of ``σ̂_i/σ_i`` under the estimate ``key``."""
    return f"vol_scale@{key}"
