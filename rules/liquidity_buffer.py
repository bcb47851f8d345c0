"""``liquidity_buffer`` — keep a share of total assets in liquid instruments (cash and, e.g.,
government bonds); after losses or outflows, sell illiquid holdings to rebuild it.

Math. Liquid assets are account cash when positive and long holdings of cash instruments whose
asset class is in the rule's liquid classes; ``L_x`` is the sum of those holdings. Illiquid
holdings ``I_x`` are the other long cash-instrument holdings (the only ones the rule sells:
a short or a future raises no cash). With ``A = Σ|x| + N + max(C, 0)`` total assets::

    L = L_x + max(C, 0) ≥ s·A          (s: the buffer, a share of total assets)

* trigger: ``L < s·A``; restore: ``L⁺ ≥ s_r·A⁺`` with ``s_r ≥ s`` (default ``s_r = s``).

Selling ``d`` of illiquid holdings lowers ``Σ|x|`` by ``d`` and raises cash by ``d``; with
``A₀ = Σ|x| + N``::

    L(d) = L_x + max(C + d, 0),   A(d) = A₀ − d + max(C + d, 0)

``L(d) − s·A(d)`` rises with ``d`` (slope ``s`` while proceeds repay borrowing, 1 once cash is
positive, when ``A`` no longer moves), so the least sale is

* ``d = (s·A₀ − L_x) / s`` when that leaves ``C + d ≤ 0`` (still repaying borrowing),
* ``d = s·(A₀ + C) − L_x − C`` otherwise (for ``C ≥ 0``: ``s·A − L``),

clipped to ``[0, I_x]``: every illiquid holding is sold by the common fraction ``d / I_x``.
Example: equities 900, government bonds 60, cash 40, s = 10%: L = 100 = s·A. Redemptions of
30 paid from cash leave A = 970, L = 70: the fund sells ``d = 0.1·970 − 70 = 27`` of equities.
When even ``d = I_x`` leaves the buffer short (non-tradable holdings count as illiquid), the
holder sells every illiquid holding and is reported not compliant.

Cure first (a reserve, credit line or capital call, in the mandate's order): cash ``k`` counts
once it brings cash above zero, ``L_x + C + k ≥ s_r·(A₀ + C + k)``, so
``k = (s_r·(A₀ + C) − L_x − C)/(1 − s_r)``; in the example, ``k = 27/0.9 = 30``.

Minimal cost (trades never flip a sign, so ``|x⁺_i| = sign(x_i)·x⁺_i``; ``C⁺ = C − Σ c_i u_i``)::

    Σ_i (s·sign(x_i) − ℓ_i)·x⁺_i + (1 − s)·κ·Σ_i c_i·u_i  ≤  (1 − s)·κ·C − s·N

with ``ℓ_i`` the liquid-holding flag and ``c_i`` the cash-instrument flag. ``max(C⁺, 0)`` is
read as ``κ·C⁺``, conservative either way (``max(C⁺, 0) ≥ C⁺`` and ``≥ 0``): ``κ = 1`` where the
least sale leaves cash ≥ 0 (exact wherever ``C⁺ ≥ 0``, as after any sale at least as large),
``κ = 0`` where it only repays borrowing (exact while ``C⁺ ≤ 0``). Either way the pro-rata sale
satisfies the constraint, so the solve is feasible whenever the buffer can be rebuilt.
Selling a liquid holding leaves the left side unchanged, so the solve sells only illiquid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, model_validator

from rules._base import Level, PositionRule, exceeds
from rules._exprs import A, C, G, N, X
from rules._space import LinearLimit


class LiquidityBuffer(PositionRule):
    """Hold at least a share of total assets in cash and liquid asset classes."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"share": 0.3},
        {"share": 0.35, "restore_share": 0.4},
    )

    kind: Literal["liquidity_buffer"] = "liquidity_buffer"

    share: float = Field(gt=0, lt=1, description="s: least share of total assets held liquid")
    restore_share: float | None = Field(
        None, gt=0, lt=1, description="s_r ≥ s: share rebuilt once it sells (default s)"
    )
    liquid_classes: list[str] = Field(
        default_factory=lambda: ["govt_bond"],
        description="asset classes counted liquid besides cash (long cash-instrument holdings)",
    )

    fixed_signs = True

    @model_validator(mode="after")
    def _levels(self) -> Self:
        if self.restore_share is not None and self.restore_share < self.share:
            raise ValueError(
                f"`restore_share` ({self.restore_share}) must be at or above `share` ({self.share})"
            )
        return self

    @property
    def restores_to_trigger(self) -> bool:
        return self.restore_share is None or self.restore_share == self.share

    def _share(self, level: Level) -> float:
        if level is Level.RESTORE and self.restore_share is not None:
            return self.restore_share
        return self.share

    @property
    def liquid(self) -> str:
        """``L_x``: long liquid holdings (a per-holder sum)."""
        return self.column("liquid")

    @property
    def illiquid(self) -> str:
        """``I_x``: long illiquid holdings of cash instruments (a per-holder sum)."""
        return self.column("illiquid")

    @property
    def selected(self) -> str:
        return self.column("selected")

    # --- Polars -------------------------------------------------------------------------------
    def asset_columns(self) -> dict[str, pl.Expr]:
        return {self.column("liquid_class"): pl.col("asset_class").is_in(self.liquid_classes)}

    def position_columns(self) -> dict[str, pl.Expr]:
        held = pl.col("is_cash") & (X > 0)
        liquid = pl.col(self.column("liquid_class"))
        return {
            self.column("liquid_held"): held & liquid,
            self.selected: held & ~liquid,
        }

    def holder_sums(self) -> dict[str, pl.Expr]:
        return {
            self.liquid: X.filter(pl.col(self.column("liquid_held"))).sum(),
            self.illiquid: X.filter(pl.col(self.selected)).sum(),
        }

    def liquid_assets(self) -> pl.Expr:
        """``L = L_x + max(C, 0)``."""
        return pl.col(self.liquid) + C.clip(lower_bound=0.0)

    def lhs(self) -> pl.Expr:
        return -self.liquid_assets()

    def bound(self, level: Level) -> pl.Expr:
        return -self._share(level) * A

    def sale(self, level: Level) -> pl.Expr:
        """``d``, the least sale of illiquid holdings (module docstring), in currency."""
        s, L, ill = self._share(level), pl.col(self.liquid), pl.col(self.illiquid)
        a0 = G + N
        repaying = (s * a0 - L) / s
        d = pl.when((C < 0) & (repaying <= -C)).then(repaying).otherwise(s * (a0 + C) - L - C)
        return d.clip(pl.lit(0.0), ill)

    def cure_need(self, level: Level) -> pl.Expr:
        """Cash ``k`` that rebuilds the buffer: it helps once it brings cash above zero, then
        ``L_x + C + k ≥ s_r·(A₀ + C + k)``, so ``k = (s_r·(A₀ + C) − L_x − C)/(1 − s_r)``."""
        s, L = self._share(level), pl.col(self.liquid)
        return ((s * (G + N + C) - L - C) / (1 - s)).clip(lower_bound=0.0)

    def attainable(self, level: Level) -> pl.Expr:
        """Whether selling every illiquid holding rebuilds the buffer: ``L(I_x) ≥ s·A(I_x)``
        up to rounding noise."""
        s, L, ill = self._share(level), pl.col(self.liquid), pl.col(self.illiquid)
        cash = (C + ill).clip(lower_bound=0.0)
        short = s * (G + N - ill + cash) - (L + cash)
        return ~exceeds(short)

    def trade_inputs(self, level: Level) -> dict[str, pl.Expr]:
        """``d / I_x``, the common fraction of the illiquid holdings sold."""
        ill = pl.col(self.illiquid)
        return {
            self.column("sold_share"): pl.when(ill > 0).then(self.sale(level) / ill).otherwise(0.0)
        }

    def trade(self, level: Level) -> pl.Expr:
        sold_share = pl.col(self.column("sold_share"))
        return pl.when(pl.col(self.selected)).then(-sold_share * X).otherwise(0.0)

    def metric(self) -> pl.Expr:
        """Liquid share of total assets, ``L / A``."""
        return pl.when(A > 0).then(self.liquid_assets() / A)

    def _kappa(self, level: Level) -> pl.Expr:
        """``κ``: 1 where the least sale leaves cash ≥ 0, 0 where it only repays borrowing."""
        s, L = self._share(level), pl.col(self.liquid)
        d = pl.when(C < 0).then((s * (G + N) - L) / s).otherwise(0.0)
        return (C + d.clip(lower_bound=0.0) >= 0).cast(pl.Float64)

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        s = self._share(level)
        kappa = self._kappa(level)
        return {self.bound_name: (1 - s) * kappa * C - s * N}

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        s = self._share(level)
        kappa = self._kappa(level)
        return {
            self.column("weights"): s * X.sign()
            - pl.col(self.column("liquid_held")).cast(pl.Float64),
            self.column("cash_weights"): (1 - s) * kappa * pl.col("is_cash").cast(pl.Float64),
        }

    # --- cvxpy --------------------------------------------------------------------------------
    def linear_limits(self) -> tuple[LinearLimit, ...]:
        """``Σ w_i·x⁺_i + cw_i·u_i ≤ bound``."""
        w, cw = self.column("weights"), self.column("cash_weights")
        name = self.constraint_name("liquid>=share")
        return (LinearLimit(name, self.bound_name, x_plus=w, u=cw, nonneg=frozenset({cw})),)
