"""``vol_target`` — volatility targeting (risk parity, volatility control).

Math. The ex-ante volatility of the tradable exposures is ``σ(x) = √(xᵀΣx)`` with the risk
model's annualised covariance ``Σ = FᵀF + diag(s²)``. The rule reads ``σ(x) / E``:

* trigger (de-risk): ``σ(x) > τ(1 + ε)·E``; restore: ``σ(x⁺) ≤ τ·E``;
* optional gross cap ``γ``: ``Σ|x| ≤ γ·E`` at both levels;
* optional re-levering: when ``σ(x) < τ(1 − ε)·E`` scale up to ``τ·E`` within the cap.

Pro-rata: σ is positively homogeneous, ``σ(f·x) = f·σ(x)``, so the largest admissible scale is
``f = min(b/σ(x), γE/G)`` with ``b`` the bound at the level. Example: σ/E = 18% against a 10%
target scales the book by 10/18.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import polars as pl
from pydantic import Field, PositiveFloat

from rules._base import Level, exceeds
from rules._exprs import E, G, gross, ratio_or_inf, risk_norm
from rules._space import ProblemSpace
from rules.estimators import EstimatedRisk

if TYPE_CHECKING:
    import cvxpy as cp


class VolTarget(EstimatedRisk):
    """Keep ex-ante volatility at or below a target share of equity."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"target": 0.1},
        {"target": 0.15, "tolerance": 0.1, "gross_cap": 2.5},
        {"target": 0.3, "relever": True, "tolerance": 0.05},
    )

    flow = "systematic"

    kind: Literal["vol_target"] = "vol_target"
    target: PositiveFloat = Field(
        le=10, description="τ: target annualised volatility of equity, e.g. 0.10"
    )
    tolerance: float = Field(
        0.0, ge=0, le=10, description="ε: acts beyond τ(1 + ε); re-levers below τ(1 − ε)"
    )
    gross_cap: PositiveFloat | None = Field(
        None,
        le=1_000,
        description="γ: optional cap on gross exposure Σ|x| as a multiple of equity",
    )
    relever: bool = Field(
        False, description="also buy back up to τ when volatility falls (pro-rata)"
    )

    @property
    def restores_to_trigger(self) -> bool:
        return self.tolerance == 0

    def _level_target(self, level: Level) -> float:
        return self.target * (1 + self.tolerance) if level is Level.TRIGGER else self.target

    def lhs(self) -> pl.Expr:
        return self._risk

    def bound(self, level: Level) -> pl.Expr:
        return self._level_target(level) * E

    def _gross_bound(self) -> pl.Expr:
        return self.gross_cap * E if self.gross_cap is not None else pl.lit(float("inf"))

    def breach(self, level: Level) -> pl.Expr:
        return pl.max_horizontal(self._risk - self.bound(level), G - self._gross_bound(), 0.0)

    def fraction(self, level: Level) -> pl.Expr:
        return pl.min_horizontal(
            ratio_or_inf(self.bound(level), self._risk), ratio_or_inf(self._gross_bound(), G)
        )

    def triggered_up(self) -> pl.Expr:
        if not self.relever:
            return pl.lit(False)
        return (self._risk > 0) & exceeds(self.target * (1 - self.tolerance) * E - self._risk)

    def metric(self) -> pl.Expr:
        """Volatility of equity ``σ(x) / E``; null when ``E ≤ 0``."""
        return pl.when(E > 0).then(self._risk / E)

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        inputs = {self.bound_name: self.bound(level)}
        if self.gross_cap is not None:
            inputs[f"{self.kind}.gross_bound"] = self._gross_bound()
        return inputs

    @property
    def shape_key(self) -> str:
        return f"{self.kind}+cap" if self.gross_cap is not None else self.kind

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        risk = risk_norm(p)
        out = {self.constraint_name("risk<=bound"): risk <= p.param(self.bound_name, nonneg=True)}
        if self.gross_cap is not None:
            cap = p.param(f"{self.kind}.gross_bound", nonneg=True)
            out[self.constraint_name("gross<=cap")] = gross(p) <= cap
        return out
