"""``redemption`` — investors pull money; the fund pays from cash down to a floor, then sells.

Math. *Outflows.* The fund's units are its investors' claims; redemptions are paid at the net
asset value per unit, so they leave it unchanged. With ``E₀`` the equity before the scenario,
``ρ`` the share of the initial units redeemed so far in the scenario (state, 0 at the start) and
``E`` the equity now, the return to a remaining investor is::

    ret = (E − I) / (E₀·(1 − ρ)) − 1

with ``I`` the cash reserve drawn and the capital called so far in the scenario (capital brought
in to cure the floor is not the investors' gain; it counts at its value when drawn).

Investors redeem, over the whole scenario, the share (flow–performance, steeper for losses than
for gains, as in corporate-bond funds; capped by a redemption gate ``g``)::

    ρ*(ret) = clip(b + s + β⁻·max(−ret, 0) − β⁺·max(ret, 0), 0, g)

with ``b`` the base rate and ``s`` the holder's extra rate from the scenario's holder shocks. Each
round pays the increase ``Δρ = max(ρ* − ρ, 0)`` at the unit value ``E/(E₀(1 − ρ))``::

    R = Δρ · E / (1 − ρ)

at the start of the round, out of cash (``C ← C − R``, ``E ← E − R``; ``ρ ← ρ + Δρ``). A loss in
one round of a cascade thus raises the next round's outflows. Example: ``b`` = 2%,
``β⁻`` = 1.5, a 6% loss: ρ* = 2% + 9% = 11% of the units, paid at 94% of their initial value.

*Cash floor.* The fund keeps cash of at least a share ``c`` of its total assets ``A``; below it,
it sells. Trigger ``C < c·A``; restore ``C⁺ ≥ c_r·A⁺`` with ``c_r ≥ c`` (default ``c``).
Pro-rata ("slice"), scaling the whole book by ``f`` raises ``(1 − f)·V`` of cash (``V = Σ c_i x_i``
over cash instruments; futures raise none) and, once ``C ≥ 0``,
``A(f) = f·G + N + C + (1 − f)·V``, so the largest admissible ``f`` solves
``C + (1 − f)V = c·A(f)``::

    f = ((1 − c)(C + V) − c·N) / ((1 − c)·V + c·G)

(with ``c = 0``: ``f = 1 + C/V``, a sale of ``−C``). Minimal cost: ``C⁺ = C − Σ c_i u_i`` and
``C⁺ ≥ c·A⁺ ≥ 0`` make ``max(C⁺, 0) = C⁺``, so the floor is the convex constraint::

    c·Σ|x⁺| + (1 − c)·Σ c_i u_i ≤ (1 − c)·C − c·N

Cure: cash ``k`` brought in (a reserve or a credit line) raises ``C`` by ``k``; the floor needs
``C + k ≥ 0`` and so ``A = G + N + C + k``: ``(1 − c_r)(C + k) ≥ c_r(G + N)`` from
``k = c_r(G + N)/(1 − c_r) − C``.

A slice raises cash only where the book's cash instruments are net long (``V > 0``); a book
whose slice would not (net short: ``(1 − c)V + c·G ≤ 0``) cannot restore the floor by
scaling and is liquidated, under either execution style.

*Waterfall* (``sale = "waterfall"``): the fund sells its most liquid holdings first instead of
a slice. Only long holdings of cash instruments are sold (``X`` in all); selling ``d`` of them
raises cash by ``d`` and lowers ``Σ|x|`` by ``d``, so once ``C + d ≥ 0`` total assets
``A = G + N + C`` do not move and the floor needs::

    d = c_r·(G + N + C) − C          (clipped to [0, X]; C + d = c_r·A ≥ 0)

Liquidity tiers rank assets by half spread (ascending; 5bp where empty), then ADV
(descending); assets equal in both share a tier. With ``B_t`` the holdings in more liquid
tiers and ``T_t`` those in tier t, a holding ``x_i`` of tier t sells
``x_i·clip((d − B_t)/T_t, 0, 1)``: tier by tier, pro-rata within a tier. Example: cash 0 after
redemptions, G = 1,000 in a government bond (1bp, 400) and two corporate bonds (20bp, 300
each), floor 5%: d = 50, all from the government bond. When even ``d = X`` cannot restore the
floor (``c_r·(G + N + C) − C > X``), the fund sells all of ``X`` and is reported not compliant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, model_validator

from rules._base import HALF_SPREAD_BPS, HOLDER, Book, Level, PositionRule, exceeds
from rules._exprs import A, C, E, G, N, V, X
from rules._space import LinearLimit

_E0 = pl.col(Book.EQUITY_PRE)
_RESERVE = pl.col("cash_reserve")
_RESERVE0 = pl.col(Book.RESERVE_PRE)

#: State: the share of the initial units redeemed, and the cash paid out, so far.
REDEEMED = "redemption.redeemed_share"
PAID = "redemption.paid"


class Redemption(PositionRule):
    """Investors redeem after losses; the fund pays from cash above a floor, then sells a
    slice of its book or its most liquid holdings first."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"loss_sensitivity": 1.5, "min_cash": 0.25},
        {"base_rate": 0.3, "gate": 0.35, "min_cash": 0.3, "restore_cash": 0.35},
        {"loss_sensitivity": 2.0, "min_cash": 0.2, "sale": "waterfall"},
    )

    kind: Literal["redemption"] = "redemption"
    sale: Literal["slice", "waterfall"] = Field(
        "slice", description="slice: every position pro-rata; waterfall: most liquid first"
    )
    base_rate: float = Field(0.0, ge=0, le=1, description="b: share of units redeemed anyway")
    loss_sensitivity: float = Field(
        0.0, ge=0, le=100, description="β⁻: share of units redeemed per unit of loss (e.g. 1.5)"
    )
    gain_sensitivity: float = Field(
        0.0, ge=0, le=100, description="β⁺: fewer redemptions per unit of gain (smaller than β⁻)"
    )
    gate: float = Field(1.0, gt=0, le=1, description="g: most units redeemable in the scenario")
    min_cash: float = Field(0.0, ge=0, lt=1, description="c: cash floor, share of total assets")
    restore_cash: float | None = Field(
        None, ge=0, lt=1, description="c_r ≥ c: cash share rebuilt once it sells (default c)"
    )

    state_columns: ClassVar[dict[str, float]] = {REDEEMED: 0.0, PAID: 0.0}

    @model_validator(mode="after")
    def _restore_above_floor(self) -> Self:
        if self.restore_cash is not None and self.restore_cash < self.min_cash:
            raise ValueError(
                f"restore_cash ({self.restore_cash}) must be at or above min_cash ({self.min_cash})"
            )
        return self

    def _share(self, level: Level) -> float:
        if level is Level.RESTORE and self.restore_cash is not None:
            return self.restore_cash
        return self.min_cash

    # --- outflows -----------------------------------------------------------------------------
    def redeemed_target(self) -> pl.Expr:
        """``ρ*(ret)``, the share of the initial units redeemed over the scenario so far."""
        rho = pl.col(REDEEMED)
        brought_in = _RESERVE0 - _RESERVE + pl.col(Book.CAPITAL_CALLED)
        unit = (E - brought_in) / (_E0 * (1 - rho))
        ret = pl.when((_E0 > 0) & (rho < 1)).then(unit - 1).otherwise(0.0)
        flows = (
            self.base_rate
            + pl.col(Book.REDEMPTION_SHOCK)
            + self.loss_sensitivity * (-ret).clip(lower_bound=0.0)
            - self.gain_sensitivity * ret.clip(lower_bound=0.0)
        )
        return flows.clip(0.0, self.gate)

    def _increment(self) -> pl.Expr:
        """``Δρ``: 0 when ``E ≤ 0`` or every unit is gone (nothing is left to pay)."""
        rho = pl.col(REDEEMED)
        rise = (self.redeemed_target() - rho).clip(lower_bound=0.0)
        return pl.when((E > 0) & (rho < 1)).then(rise).otherwise(0.0)

    def outflow(self) -> pl.Expr:
        """``R = Δρ·E/(1 − ρ)``."""
        rho = pl.col(REDEEMED)
        return pl.when(rho < 1).then(self._increment() * E / (1 - rho)).otherwise(0.0)

    def state_after(self) -> dict[str, pl.Expr]:
        """The state once this round's redemptions are paid."""
        return {REDEEMED: pl.col(REDEEMED) + self._increment(), PAID: pl.col(PAID) + self.outflow()}

    # --- the cash floor -----------------------------------------------------------------------
    def lhs(self) -> pl.Expr:
        return -C

    def bound(self, level: Level) -> pl.Expr:
        return -self._share(level) * A

    @property
    def trades_positions(self) -> bool:
        return self.sale == "waterfall"

    def fraction(self, level: Level) -> pl.Expr:
        if self.trades_positions:  # the waterfall sells positions, not a slice of the book
            return pl.lit(float("inf"))
        c = self._share(level)
        num = (1 - c) * (C + V) - c * N
        den = (1 - c) * V + c * G
        holds = c * A <= C
        return (
            pl.when(den > 0)
            .then(num / den)
            .when(holds)
            .then(float("inf"))
            .otherwise(-1.0)  # scaling raises no cash: no sale complies
        )

    def cure_need(self, level: Level) -> pl.Expr:
        c = self._share(level)
        return (c * (G + N) / (1 - c) - C).clip(lower_bound=0.0)

    def metric(self) -> pl.Expr:
        """Cash as a share of total assets, ``C / A``."""
        return pl.when(A > 0).then(C / A)

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        c = self._share(level)
        return {self.bound_name: (1 - c) * C - c * N}

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        c = self._share(level)
        return {
            self.column("floor"): pl.lit(c),
            self.column("cash_weights"): (1 - c) * pl.col("is_cash").cast(pl.Float64),
        }

    def linear_limits(self) -> tuple[LinearLimit, ...]:
        """``Σ c·|x⁺_i| + w_i·u_i ≤ bound``."""
        c, w = self.column("floor"), self.column("cash_weights")
        name = self.constraint_name("cash>=floor")
        return (LinearLimit(name, self.bound_name, u=w, abs_x_plus=c, nonneg=frozenset({c, w})),)

    # --- the waterfall ------------------------------------------------------------------------
    def asset_columns(self) -> dict[str, pl.Expr]:
        """The asset's liquidity tier: 0 the most liquid (see the module docstring)."""
        spread = pl.col("half_spread_bps").fill_null(HALF_SPREAD_BPS)
        return {self.column("tier"): pl.struct(spread, -pl.col("adv")).rank("dense")}

    def position_columns(self) -> dict[str, pl.Expr]:
        """Eligible holdings ``x_i`` (long cash instruments, else 0), the holdings ``T_t`` of
        the position's tier and ``B_t`` of more liquid tiers, per holder."""
        tier, held = pl.col(self.column("tier")), pl.col(self.column("held"))
        running = pl.col(self.column("running"))  # through the row, in tier order: monotone
        total = pl.col(self.column("tier_total"))
        return {  # each column reads the ones before it
            self.column("held"): pl.when(pl.col("is_cash") & (X > 0)).then(X).otherwise(0.0),
            self.column("running"): held.cum_sum().over(HOLDER, order_by=tier),
            self.column("tier_total"): held.sum().over(HOLDER, tier),
            self.column("before"): running.max().over(HOLDER, tier) - total,
        }

    def holder_sums(self) -> dict[str, pl.Expr]:
        if not self.trades_positions:
            return {}
        return {self.column("sellable"): pl.col(self.column("held")).sum()}

    def _sale(self, level: Level) -> pl.Expr:
        """``c_r·(G + N + C) − C``, before clipping to what can be sold."""
        c = self._share(level)
        return c * (G + N + C) - C

    def attainable(self, level: Level) -> pl.Expr:
        sellable = pl.col(self.column("sellable"))
        return ~exceeds(self._sale(level) - sellable) & (G + N + C >= 0)

    def trade_inputs(self, level: Level) -> dict[str, pl.Expr]:
        sellable = pl.col(self.column("sellable"))
        return {self.column("sold"): self._sale(level).clip(pl.lit(0.0), sellable)}

    def trade(self, level: Level) -> pl.Expr:
        d = pl.col(self.column("sold"))
        before, total = pl.col(self.column("before")), pl.col(self.column("tier_total"))
        share = pl.when(total > 0).then(((d - before) / total).clip(0.0, 1.0)).otherwise(0.0)
        return -share * pl.col(self.column("held"))
