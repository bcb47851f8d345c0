"""``var_limit`` — the risk committee's value-at-risk limit.

Math. Parametric (normal) value at risk of the tradable book at confidence ``α`` over ``h``
trading days, from the annualised ex-ante volatility ``σ(x) = √(xᵀΣx)`` (see ``vol_target``)
with ``T`` trading days a year::

    VaR(x) = z_α · σ(x) · √(h/T),   z_α = Φ⁻¹(α)

(``z`` = 2.326 at 99%, 1.645 at 95%). The limit is a share ``λ`` of equity:

* trigger: ``VaR(x) > λ(1 + ε)·E``; restore: ``VaR(x⁺) ≤ λ_r·E`` with ``λ_r ≤ λ`` (default λ).

VaR is ``k·σ`` with the constant ``k = z_α√(h/T)``, so the rule is the volatility bound
``σ(x⁺) ≤ λ_r·E / k`` (its breach is read in volatility, ``σ − λE/k``, as the solver reads it)
and compiles to the same second-order cone as ``vol_target``. Pro-rata:
``σ(f·x) = f·σ(x)``, so the largest admissible scale is ``f = λ_r·E / VaR(x)``. Example: a 99%
one-day VaR of 3.1% of equity against a 2% limit scales the book by 2/3.1.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from rules._base import Level
from rules._exprs import E, ratio_or_inf, risk_norm
from rules._space import ProblemSpace
from rules.estimators import EstimatedRisk

if TYPE_CHECKING:
    import cvxpy as cp


class VarLimit(EstimatedRisk):
    """Keep parametric value at risk at or below a share of equity."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"limit": 0.02},
        {"limit": 0.08, "confidence": 0.95, "horizon_days": 10, "tolerance": 0.1, "restore": 0.06},
    )

    kind: Literal["var_limit"] = "var_limit"
    limit: PositiveFloat = Field(le=10, description="λ: VaR limit as a share of equity, e.g. 0.02")
    confidence: float = Field(0.99, gt=0.5, lt=1, description="α: one-sided confidence level")
    horizon_days: PositiveInt = Field(1, le=1_000, description="h: holding period in trading days")
    tolerance: float = Field(0.0, ge=0, le=10, description="ε: acts beyond λ(1 + ε)")
    restore: PositiveFloat | None = Field(
        None, le=10, description="λ_r ≤ λ: VaR share restored to once the limit acts (default λ)"
    )
    days_per_year: PositiveInt = Field(252, le=366, description="T: trading days a year")

    @model_validator(mode="after")
    def _restore_below_limit(self) -> Self:
        if self.restore is not None and self.restore > self.limit:
            raise ValueError(f"restore ({self.restore}) must not exceed limit ({self.limit})")
        return self

    @property
    def restores_to_trigger(self) -> bool:
        return self.tolerance == 0 and self.restore in (None, self.limit)

    @property
    def var_per_vol(self) -> float:
        """``k = z_α √(h/T)``: VaR per unit of annualised volatility."""
        z = NormalDist().inv_cdf(self.confidence)
        return z * math.sqrt(self.horizon_days / self.days_per_year)

    def _share(self, level: Level) -> float:
        if level is Level.TRIGGER:
            return self.limit * (1 + self.tolerance)
        return self.restore if self.restore is not None else self.limit

    def lhs(self) -> pl.Expr:
        return self._risk

    def bound(self, level: Level) -> pl.Expr:
        """The bound on σ in currency: ``λ·E / k``."""
        return self._share(level) * E / self.var_per_vol

    def fraction(self, level: Level) -> pl.Expr:
        return ratio_or_inf(self.bound(level), self._risk)

    def metric(self) -> pl.Expr:
        """VaR as a share of equity ``VaR(x) / E``; null when ``E ≤ 0``."""
        return pl.when(E > 0).then(self.var_per_vol * self._risk / E)

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        bound = p.param(self.bound_name, nonneg=True)
        return {self.constraint_name("risk<=bound"): risk_norm(p) <= bound}
