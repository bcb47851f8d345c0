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


def _u(k: int) -> pl.Expr:
    return 1.0 + pl.col(profile_column("level", k))


def _g(k: int) -> pl.Expr:
    return pl.col(profile_column("gamma", k))


def _flat(g: pl.Expr, lo: pl.Expr, hi: pl.Expr) -> pl.Expr:
    """``∫_lo^hi g/u² du`` for a constant ``g``."""
    return g * (1 / lo - 1 / hi)


def hedge_value(rho: pl.Expr) -> pl.Expr:
    """``x*(ρ) = −100·ρ·∫_1^ρ g(u)/u² du`` (module docstring), on an asset table with a
    profile; null where the asset has none."""
    a, b = pl.min_horizontal(rho, 1.0), pl.max_horizontal(rho, 1.0)
    first, last = _u(0), _u(MAX_KNOTS - 1)
    # the tails, flat at the end knots: (0, u_0] and [u_last, ∞)
    total = _flat(_g(0), a.clip(upper_bound=first), b.clip(upper_bound=first))
    total += _flat(_g(MAX_KNOTS - 1), a.clip(lower_bound=last), b.clip(lower_bound=last))
    for k in range(MAX_KNOTS - 1):
        u0, u1, g0, g1 = _u(k), _u(k + 1), _g(k), _g(k + 1)
        lo = pl.min_horizontal(pl.max_horizontal(a, u0), u1)
        hi = pl.min_horizontal(pl.max_horizontal(b, u0), u1)
        beta = pl.when(u1 > u0).then((g1 - g0) / (u1 - u0)).otherwise(0.0)
        # from g(lo): g(lo)·(1/lo − 1/hi) + β·(ln(1 + t) − t/(1 + t)), t = (hi − lo)/lo — the
        # same integral without α's and β·ln's cancellation where knots lie close together
        t = (hi - lo) / lo
        total += _flat(g0 + beta * (lo - u0), lo, hi) + beta * (t.log1p() - t / (1 + t))
    signed = pl.when(rho >= 1.0).then(total).otherwise(-total)
    return -100.0 * rho * signed


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


__all__ = ["MAX_KNOTS", "GammaHedge", "hedge_value", "profile_column"]
