"""Expressions the rule kinds share, on the book (Polars) and in the problem space (cvxpy).

Book columns (:class:`~rules._base.Book`): ``E`` equity, ``A`` gross assets, ``G = Σ|x|`` gross
exposure, ``N`` non-tradable holdings, ``C`` cash, ``V`` the cash instruments' exposure,
``RISK = σ(x)``; on positions ``X`` the exposure ``x``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from rules._base import Book
from rules._space import ProblemSpace, Vec

if TYPE_CHECKING:
    import cvxpy as cp

E = pl.col(Book.EQUITY)
A = pl.col(Book.GROSS_ASSETS)
G = pl.col(Book.GROSS_EXPOSURE)
N = pl.col(Book.NON_TRADABLE)
C = pl.col(Book.CASH)
V = pl.col(Book.CASH_EXPOSURE)
RISK = pl.col(Book.RISK)
X = pl.col("exposure")


def ratio_or_inf(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """``num / den`` where ``den > 0``, else +∞ (no bound binds an empty book)."""
    return pl.when(den > 0).then(num / den).otherwise(float("inf"))


def gross(p: ProblemSpace) -> cp.Expression:
    """``G⁺ = Σ|x⁺|``, the gross exposure after the trades."""
    import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built)

    return cp.sum(p.abs_x_plus)


def risk_norm(p: ProblemSpace) -> cp.Expression:
    """``σ(x⁺) = ‖(F x⁺, s∘x⁺)‖₂`` — the factor model's volatility of the post-trade book."""
    import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built)

    F = p.param(Vec.RISK_FACTOR, (p.k, p.n))
    s = p.vec(Vec.RISK_SPECIFIC, nonneg=True)
    return cp.norm2(cp.hstack([F @ p.x_plus, cp.multiply(s, p.x_plus)]))
