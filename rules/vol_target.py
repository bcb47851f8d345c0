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

from typing import Literal

import cvxpy as cp
import polars as pl
from pydantic import Field, PositiveFloat

from rules._base import Book, Level, ProblemSpace, RuleBase, Vec, exceeds

_E = pl.col(Book.EQUITY)
_RISK = pl.col(Book.RISK)
_GROSS = pl.col(Book.GROSS_EXPOSURE)


def ratio_or_inf(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """``num / den`` where ``den > 0``, else +∞ (no bound binds an empty book)."""
    return pl.when(den > 0).then(num / den).otherwise(float("inf"))


def risk_norm(p: ProblemSpace) -> cp.Expression:
    """``σ(x⁺) = ‖(F x⁺, s∘x⁺)‖₂`` — the factor model's volatility of the post-trade book."""
    F = p.param(Vec.RISK_FACTOR, (p.k, p.n))
    s = p.vec(Vec.RISK_SPECIFIC, nonneg=True)
    return cp.norm2(cp.hstack([F @ p.x_plus, cp.multiply(s, p.x_plus)]))


class VolTarget(RuleBase):
    """Keep ex-ante volatility at or below a target share of equity."""

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

    can_add_risk = True

    @property
    def restores_to_trigger(self) -> bool:
        return self.tolerance == 0

    def _level_target(self, level: Level) -> float:
        return self.target * (1 + self.tolerance) if level is Level.TRIGGER else self.target

    def lhs(self) -> pl.Expr:
        return _RISK

    def bound(self, level: Level) -> pl.Expr:
        return self._level_target(level) * _E

    def _gross_bound(self) -> pl.Expr:
        return self.gross_cap * _E if self.gross_cap is not None else pl.lit(float("inf"))

    def breach(self, level: Level) -> pl.Expr:
        return pl.max_horizontal(_RISK - self.bound(level), _GROSS - self._gross_bound(), 0.0)

    def fraction(self, level: Level) -> pl.Expr:
        return pl.min_horizontal(
            ratio_or_inf(self.bound(level), _RISK), ratio_or_inf(self._gross_bound(), _GROSS)
        )

    def triggered_up(self) -> pl.Expr:
        if not self.relever:
            return pl.lit(False)
        return (_RISK > 0) & exceeds(self.target * (1 - self.tolerance) * _E - _RISK)

    def fraction_up(self) -> pl.Expr:
        if not self.relever:
            return pl.lit(None, dtype=pl.Float64)
        return self.fraction(Level.RESTORE)

    def metric(self) -> pl.Expr:
        """Volatility of equity ``σ(x) / E``; null when ``E ≤ 0``."""
        return pl.when(_E > 0).then(_RISK / _E)

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
            gross = p.param(f"{self.kind}.gross_bound", nonneg=True)
            out[self.constraint_name("gross<=cap")] = cp.sum(p.abs_x_plus) <= gross
        return out
