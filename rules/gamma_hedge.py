"""``gamma_hedge`` — options dealers delta-hedge their options book in the underlying.

Math. A dealer's options on an underlying have a net delta ``D(S)`` (units of the underlying)
that moves with its price ``S``: ``dD/dS = Γ(S)``, the dealers' net gamma. A dealer who keeps
the book delta-neutral holds a hedge ``q(S)`` with ``q + D`` constant, so between the price
``S₀`` at which the hedge was last set and ``S`` it trades

    ``Δq = −∫_{S₀}^{S} Γ(s) ds``.

The market's dealers' gamma is published as *dollar gamma per 1% move*, ``g(S) = Γ(S)·S²·m/100``
(currency: the change in the dealers' dollar delta when the underlying moves 1%, ``m`` the
multiplier), at several spot levels ``ℓ`` relative to ``S₀`` (a market's ``dealer_gamma``
table, :mod:`estimator.gamma`). With ``ρ = S/S₀`` and ``u = s/S₀`` the hedge's value is

    ``x*(ρ) = Δq·S·m = −100·ρ·∫_1^ρ g(u)/u² du``.

For a flat profile ``g``, ``x* = −100·g·(ρ − 1)``: long gamma (``g > 0``) buys ``g`` on a 1%
fall and sells it on a 1% rise; short gamma does the opposite and adds to the move. ``g`` is
linear in ``u`` between the profile's knots ``(u_k, g_k)``, ``u_k = 1 + ℓ_k``, and flat beyond
its ends; on a segment ``g = α + β·u`` the integral is exact,

    ``∫_a^b (α + β·u)/u² du = α·(1/a − 1/b) + β·ln(b/a)
                           = g(a)·(1/a − 1/b) + β·(ln(1 + t) − t/(1 + t))``,  ``t = (b − a)/a``,

the second form computed (it does not lose digits where two knots lie close together).

``S₀`` is the underlying's price before the scenario (``price_pre``): dealers hold no hedge
trades before the scenario, and the rule holds each hedged position at ``x = k·w·x*(ρ)`` at
the round's price, ``w`` each dealer's ``share`` of the market's dealers and ``k`` the
identical accounts (dealers) the holder row stands for.
The trade, ``k·w·x*(ρ) − x``, is prescribed: it depends on the price alone, not on the path
that led there (a round's own hedging moves the price, and the next round re-hedges).

* trigger: ``Σ|k·w·x*_i − x_i| > 0`` (beyond rounding noise); restore: ``Σ|k·w·x*_i − x_i| ≤ 0``.

The profile is a snapshot of the dealers' book at the scenario's start: it neither decays
with time to expiry nor moves with implied volatility (no charm, no vanna).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import Field

from rules._base import Book
from rules._targets import TargetRule

#: Knots per underlying in a market's profile; a market pads a shorter profile to this many by
#: repeating its last knot (a segment of zero width adds nothing).
MAX_KNOTS = 32


def profile_column(what: Literal["level", "gamma"], k: int) -> str:
    """Asset column of a profile's knot ``k``: its ``level`` ℓ_k or its ``gamma`` g_k."""
    return f"dealer_gamma.{what}.{k}"


#: Every profile column: the levels, then the gammas, knot by knot.
PROFILE_COLUMNS = [profile_column(w, k) for w in ("level", "gamma") for k in range(MAX_KNOTS)]


def _integral(rho: np.ndarray, u: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``∫_1^ρ g(v)/v² dv`` per row, ``g`` linear between the knots ``(u_k, g_k)`` of the row
    (ascending, ``u`` and ``g`` of shape (n, K)) and flat beyond them (module docstring)."""
    a, b = np.minimum(rho, 1.0), np.maximum(rho, 1.0)
    first, last = u[:, 0], u[:, -1]

    def flat(gk: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return gk * (1 / lo - 1 / hi)

    # the tails, flat at the end knots: (0, u_0] and [u_last, ∞)
    total = flat(g[:, 0], np.minimum(a, first), np.minimum(b, first))
    total += flat(g[:, -1], np.maximum(a, last), np.maximum(b, last))
    u0, u1, g0, g1 = u[:, :-1], u[:, 1:], g[:, :-1], g[:, 1:]
    lo = np.clip(a[:, None], u0, u1)
    hi = np.clip(b[:, None], u0, u1)
    du = u1 - u0
    beta = np.divide(g1 - g0, du, out=np.zeros_like(du), where=du > 0)
    # from g(lo): g(lo)·(1/lo − 1/hi) + β·(ln(1 + t) − t/(1 + t)), t = (hi − lo)/lo — the same
    # integral without α's and β·ln's cancellation where knots lie close together
    t = (hi - lo) / lo
    total += (flat(g0 + beta * (lo - u0), lo, hi) + beta * (np.log1p(t) - t / (1 + t))).sum(1)
    return np.where(rho >= 1.0, total, -total)


def _hedges(columns: pl.Series) -> pl.Series:
    """:func:`hedge_value` on a struct of ``ρ`` and the profile's columns, null where the row
    has no profile."""
    frame = columns.struct.unnest()
    rho = frame["rho"].to_numpy().astype(float)
    levels = frame.select(profile_column("level", k) for k in range(MAX_KNOTS))
    gammas = frame.select(profile_column("gamma", k) for k in range(MAX_KNOTS))
    known = gammas[:, 0].is_not_null().to_numpy()
    u = 1.0 + levels.fill_null(0.0).to_numpy()
    g = gammas.fill_null(0.0).to_numpy()
    out = np.full(rho.shape, np.nan)
    if known.any():
        r = rho[known]
        out[known] = -100.0 * r * _integral(r, u[known], g[known])
    return pl.Series(out, nan_to_null=True)


def hedge_value(rho: pl.Expr) -> pl.Expr:
    """``x*(ρ) = −100·ρ·∫_1^ρ g(u)/u² du`` (module docstring), on an asset table with a
    profile; null where the asset has none. Computed with numpy over the table's rows
    (:func:`_integral`): one vectorised pass, however many knots."""
    return pl.struct(rho.alias("rho"), *PROFILE_COLUMNS).map_batches(
        _hedges, return_dtype=pl.Float64
    )


class GammaHedge(TargetRule):
    """Hold the hedge of the market's dealers' gamma, at the share ``share``."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = ({}, {"share": 0.4})

    flow = "systematic"

    kind: Literal["gamma_hedge"] = "gamma_hedge"
    share: float = Field(
        1.0,
        gt=0,
        le=1,
        description="w: the holder's share of the market's dealers (dealer_gamma table)",
    )

    def pads(self) -> pl.Expr:
        """Every underlying with a profile: the hedge starts from no position."""
        return pl.col(profile_column("gamma", 0)).is_not_null()

    @property
    def restores_to_trigger(self) -> bool:
        """The hedge depends on the price alone, not on the path that led there."""
        return True

    # --- Polars -------------------------------------------------------------------------------
    def asset_columns(self) -> dict[str, pl.Expr]:
        """The dealers' hedge ``x*`` of every asset with a profile, at its price now."""
        rho = pl.col("price") / pl.col("price_pre")
        return {self.column("hedge"): hedge_value(rho)}

    @property
    def _held(self) -> pl.Expr:
        return pl.col(self.column("hedge")).is_not_null()

    @property
    def _target(self) -> pl.Expr:
        """``k·w·x*``: each of the row's k accounts holds its share w of the hedge."""
        return pl.col(Book.ACCOUNTS) * self.share * pl.col(self.column("hedge"))


__all__ = ["MAX_KNOTS", "PROFILE_COLUMNS", "GammaHedge", "hedge_value", "profile_column"]
