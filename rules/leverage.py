"""``leverage`` — a leverage limit (threshold) or a constant-leverage policy (targeting).

Math. Gross assets after a trade ``u`` (sale proceeds repay account borrowing, then become cash;
futures move no cash)::

    A(x⁺) = Σ|x⁺| + N + max(C − cᵀu, 0)

with ``N`` non-tradable holdings and ``C`` account cash. Trades leave ``E`` unchanged.

* threshold mode: trigger ``A > L_max·E``; restore ``A ≤ L_target·E`` (``L_target ≤ L_max``);
* targeting mode: hold ``L₀ = A/E`` before the shocks; trigger beyond ``L₀(1 ± ε)``; restore to
  ``L₀``. Moves up (re-levering) run pro-rata only.

Pro-rata, scaling every position by f (``G = Σ|x|``, ``V = Σ c·x``)::

    A(f) = f·G + N + max(C + (1 − f)·V, 0)

is convex and piecewise linear in f, so the largest f with ``A(f) ≤ B`` is the larger valid root
of its two pieces: ``f₁ = (B − N)/G`` where ``C + (1 − f₁)V ≤ 0`` (proceeds still repay
borrowing), ``f₂ = (B − N − C − V)/(G − V)`` where ``C + (1 − f₂)V ≥ 0``. For a long book on
borrowed cash this is a sale of ``A − L_target·E``. Neither valid means no sale can comply.
"""

from __future__ import annotations

from typing import Literal, Self

import cvxpy as cp
import polars as pl
from pydantic import Field, PositiveFloat, model_validator

from rules._base import Book, Level, ProblemSpace, RuleBase, Vec, exceeds

_E = pl.col(Book.EQUITY)
_A = pl.col(Book.GROSS_ASSETS)
_G = pl.col(Book.GROSS_EXPOSURE)
_N = pl.col(Book.NON_TRADABLE)
_C = pl.col(Book.CASH)
_V = pl.col(Book.CASH_EXPOSURE)


def scale_for_gross_assets(bound: pl.Expr) -> pl.Expr:
    """Largest f ≥ 0 with ``A(f) ≤ bound`` (negative when none), per the module docstring."""
    f1 = (bound - _N) / _G
    ok1 = (f1 >= 0) & (_C + (1 - f1) * _V <= 0)
    f2 = (bound - _N - _C - _V) / (_G - _V)
    ok2 = (_G - _V > 0) & (f2 >= 0) & (_C + (1 - f2) * _V >= 0)
    best = pl.max_horizontal(pl.when(ok1).then(f1), pl.when(ok2).then(f2))
    no_positions = pl.when(bound >= _A).then(float("inf")).otherwise(-1.0)
    return pl.when(_G <= 0).then(no_positions).otherwise(best.fill_null(-1.0))


class Leverage(RuleBase):
    """Keep gross assets over equity below a limit, or at its pre-shock level."""

    kind: Literal["leverage"] = "leverage"
    mode: Literal["threshold", "targeting"] = Field(
        "threshold", description="threshold: act above max; targeting: hold pre-shock leverage"
    )
    max: PositiveFloat | None = Field(
        None, le=1_000, description="L_max: trigger level (threshold mode)"
    )
    target: PositiveFloat | None = Field(
        None, le=1_000, description="L_target: restore level, ≤ max (threshold mode; default max)"
    )
    tolerance: float = Field(0.0, ge=0, le=1_000, description="ε: band around L₀ (targeting mode)")

    can_add_risk = True

    @property
    def restores_to_trigger(self) -> bool:
        if self.mode == "targeting":
            return self.tolerance == 0
        return self.target is None or self.target == self.max

    @model_validator(mode="after")
    def _levels(self) -> Self:
        if self.mode == "threshold":
            if self.max is None:
                raise ValueError("threshold mode needs `max` (the leverage that triggers a sale)")
            if self.target is not None and self.target > self.max:
                raise ValueError(f"`target` ({self.target}) must be at or below `max` ({self.max})")
        elif self.max is not None or self.target is not None:
            raise ValueError("targeting mode holds pre-shock leverage: drop `max` and `target`")
        return self

    def _multiple(self, level: Level) -> pl.Expr:
        if self.mode == "targeting":
            l0 = pl.col(Book.LEVERAGE_PRE)
            return l0 * (1 + self.tolerance) if level is Level.TRIGGER else l0
        assert self.max is not None
        if level is Level.TRIGGER:
            return pl.lit(self.max)
        return pl.lit(self.target if self.target is not None else self.max)

    def lhs(self) -> pl.Expr:
        return _A

    def bound(self, level: Level) -> pl.Expr:
        return self._multiple(level) * _E

    def fraction(self, level: Level) -> pl.Expr:
        return scale_for_gross_assets(self.bound(level))

    def triggered_up(self) -> pl.Expr:
        if self.mode != "targeting":
            return pl.lit(False)
        return (_G > 0) & exceeds(pl.col(Book.LEVERAGE_PRE) * (1 - self.tolerance) * _E - _A)

    def fraction_up(self) -> pl.Expr:
        if self.mode != "targeting":
            return pl.lit(None, dtype=pl.Float64)
        return self.fraction(Level.RESTORE)

    def metric(self) -> pl.Expr:
        """Leverage ``A / E``; null when ``E ≤ 0`` (insolvent, not "safe")."""
        return pl.when(_E > 0).then(_A / _E)

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        return {self.bound_name: self.bound(level) - _N, Vec.CASH0: _C}

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        c = p.vec(Vec.IS_CASH, nonneg=True)
        cash_after = p.param(Vec.CASH0) - c @ p.u
        gross = cp.sum(p.abs_x_plus) + cp.pos(cash_after)
        return {self.constraint_name("gross_assets<=bound"): gross <= p.param(self.bound_name)}
