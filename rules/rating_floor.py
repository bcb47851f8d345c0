"""``rating_floor`` — a minimum credit rating (investment-grade-only funds and the like).

Math. A position is *below the floor* when its composite rating (:mod:`rules.ratings`: the
lowest of the agencies' notches, or the index-style middle) is worse than the floor's notch —
or when no agency rates it and the mandate treats unrated as a breach. Only long holdings of
cash instruments count: a short or a derivative is not a holding of the issuer. With
``B = Σ_{below} x_i`` the exposure below the floor and ``A`` total (gross) assets, the rule is::

    B ≤ s·A          (s: tolerated share; 0 = nothing below the floor)

* trigger: ``B > s·A``; restore: ``B⁺ ≤ s_r·A⁺`` with ``s_r ≤ s`` (default ``s_r = s``);
* ``calendar``: ``breach`` sells on the day a holding falls below the floor; ``month_end`` on
  the month's last trading day, when bond indices drop their fallen angels and funds that
  follow them sell (on a dated path; an undated day counts as one). Between month ends the
  limit binds no min-cost solve (at the trigger level its weights are 0 and its bound
  ``G + N + |C|``, always met with room).

Selling ``d`` of the below-floor holdings lowers ``Σ|x|`` by ``d`` and raises cash by ``d``, so
with ``A = Σ|x| + N + max(C, 0)``::

    A(d) = A₀ − d + max(C + d, 0),   A₀ = Σ|x| + N

Total assets are unchanged when the holder has no borrowing (``C ≥ 0``); while proceeds repay
borrowing they shrink one for one. ``B − d ≤ s·A(d)`` is monotone in ``d``, so the least sale is

* ``d = (B − s·A₀) / (1 − s)`` when that leaves ``C + d ≤ 0`` (still repaying borrowing),
* ``d = B − s·(A₀ + C)`` otherwise (cash ≥ 0 after the sale; for ``C ≥ 0`` this is ``B − s·A``),

clipped to ``[0, B]``. Pro-rata, every below-floor holding is sold by the common fraction
``d / B``. With ``s = 0`` the whole position goes; a downgrade *to* the floor is not below it.

Minimal cost (convex because trades never flip a sign, so ``|x⁺_i| = sign(x_i)·x⁺_i``)::

    Σ_i (b_i − s·sign(x_i))·x⁺_i + s·κ·Σ_i c_i·u_i  ≤  s·(N + κ·C)

with ``b_i`` the below-floor flag, ``c_i`` the cash-instrument flag and ``κ = 1`` when ``C ≥ 0``
(then ``max(C⁺, 0) = C⁺``, exact) or ``κ = 0`` when the holder borrows (``max(C⁺, 0) ≥ 0``:
conservative — the solve may sell slightly more than the least sale).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, field_validator, model_validator

from rules._base import Book, Level, PositionRule
from rules._exprs import A, C, G, N, X
from rules._space import LinearLimit
from rules.ratings import AGENCY_COLUMNS, Composite, composite_expr, notch


class RatingFloor(PositionRule):
    """Keep the share of total assets rated below a floor at or under a tolerated share."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {},
        {"floor": "Baa3", "share": 0.1, "composite": "middle"},
        {"floor": "A-", "share": 0.3, "restore_share": 0.2},
        {"floor": "BBB", "share": 0.05, "unrated": "breach"},
        {"share": 0.02, "calendar": "month_end"},
    )

    kind: Literal["rating_floor"] = "rating_floor"

    @property
    def restores_to_trigger(self) -> bool:
        return self.restore_share is None or self.restore_share == self.share

    floor: str = Field(
        "BBB-", description="lowest acceptable rating, any agency's scale (BBB- = Baa3)"
    )
    share: float = Field(
        0.0, ge=0, lt=1, description="s: tolerated share of total assets below the floor"
    )
    restore_share: float | None = Field(
        None, ge=0, lt=1, description="s_r ≤ s: share restored to once triggered (default s)"
    )
    composite: Composite = Field(
        "lowest", description="lowest: worst agency; middle: middle of 3, lower of 2 (indices)"
    )
    unrated: Literal["exempt", "breach"] = Field(
        "exempt", description="unrated holdings (empty, NR, WR): allowed, or below the floor"
    )
    calendar: Literal["breach", "month_end"] = Field(
        "breach",
        description="when holdings below the floor are sold: on the day (breach), or on the "
        "month's last trading day, as bond indices drop fallen angels (on a dated path)",
    )

    fixed_signs = True

    @field_validator("floor")
    @classmethod
    def _known_rating(cls, value: str) -> str:
        notch(value)  # raises with the accepted scales
        return value

    @model_validator(mode="after")
    def _levels(self) -> Self:
        if self.restore_share is not None and self.restore_share > self.share:
            raise ValueError(
                f"`restore_share` ({self.restore_share}) must be at or below `share` ({self.share})"
            )
        return self

    @property
    def leaves_no_choice(self) -> bool:
        """With no tolerated share at the restore level every below-floor holding goes."""
        return self._share(Level.RESTORE) == 0

    def _share(self, level: Level) -> float:
        if level is Level.RESTORE and self.restore_share is not None:
            return self.restore_share
        return self.share

    @property
    def below(self) -> str:
        return self.column("below")

    @property
    def selected(self) -> str:
        return self.column("selected")

    # --- Polars -------------------------------------------------------------------------------
    def asset_columns(self) -> dict[str, pl.Expr]:
        rating = composite_expr(list(AGENCY_COLUMNS), self.composite)
        worse = rating > notch(self.floor)
        if self.unrated == "breach":
            worse = worse.fill_null(True)
        return {self.column("rated_below"): worse.fill_null(False)}

    def position_columns(self) -> dict[str, pl.Expr]:
        held = pl.col("is_cash") & (X > 0)
        return {self.selected: held & pl.col(self.column("rated_below"))}

    def holder_sums(self) -> dict[str, pl.Expr]:
        return {self.below: X.filter(pl.col(self.selected)).sum()}

    def lhs(self) -> pl.Expr:
        return pl.col(self.below)

    def bound(self, level: Level) -> pl.Expr:
        return self._share(level) * A

    def sale(self, level: Level) -> pl.Expr:
        """``d``, the least sale of below-floor holdings (module docstring), in currency."""
        s, B = self._share(level), pl.col(self.below)
        a0 = G + N
        repaying = (B - s * a0) / (1 - s)
        d = pl.when((C < 0) & (repaying <= -C)).then(repaying).otherwise(B - s * (a0 + C))
        return d.clip(pl.lit(0.0), B)

    def trade_inputs(self, level: Level) -> dict[str, pl.Expr]:
        """``d / B``, the common fraction of the below-floor holdings sold."""
        B = pl.col(self.below)
        return {self.column("sold_share"): pl.when(B > 0).then(self.sale(level) / B).otherwise(0.0)}

    def trade(self, level: Level) -> pl.Expr:
        sold_share = pl.col(self.column("sold_share"))
        return pl.when(pl.col(self.selected)).then(-sold_share * X).otherwise(0.0)

    def metric(self) -> pl.Expr:
        """Share of total assets below the floor, ``B / A``."""
        return pl.when(A > 0).then(pl.col(self.below) / A)

    def triggered(self) -> pl.Expr:
        """Below the floor beyond the tolerated share, on a selling day of the ``calendar``."""
        breached = super().triggered()
        return breached if self.calendar == "breach" else breached & (pl.col(Book.MONTH_END) > 0)

    def _on(self, level: Level) -> pl.Expr:
        """1 where the limit binds a solve at ``level``; 0 at the trigger level between a
        month-end rule's dates, where every weight is 0 and the bound ``G + N + |C|`` (``0 ≤``
        a positive amount: always met, and never reported as binding)."""
        if level is Level.TRIGGER and self.calendar == "month_end":
            return (pl.col(Book.MONTH_END) > 0).cast(pl.Float64)
        return pl.lit(1.0)

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        kappa = (C >= 0).cast(pl.Float64)
        on = self._on(level)
        slack = G + N + C.abs()
        return {self.bound_name: on * self._share(level) * (N + kappa * C) + (1 - on) * slack}

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        s, on = self._share(level), self._on(level)
        kappa = (C >= 0).cast(pl.Float64)
        return {
            self.column("weights"): on * (pl.col(self.selected).cast(pl.Float64) - s * X.sign()),
            self.column("cash_weights"): on * s * kappa * pl.col("is_cash").cast(pl.Float64),
        }

    # --- cvxpy --------------------------------------------------------------------------------
    def linear_limits(self) -> tuple[LinearLimit, ...]:
        """``Σ w_i·x⁺_i + cw_i·u_i ≤ bound``."""
        w, cw = self.column("weights"), self.column("cash_weights")
        name = self.constraint_name("below_floor<=share")
        return (LinearLimit(name, self.bound_name, x_plus=w, u=cw, nonneg=frozenset({cw})),)
