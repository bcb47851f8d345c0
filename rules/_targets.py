"""What the rules that hold positions at targets share: dealers' hedges, trend followers.

Such a rule sets a target ``x*_i`` for each position it holds (:attr:`TargetRule._held`) and
trades to it. The gap ``Σ_i |x*_i − x_i|`` over those positions is its constrained quantity:

* trigger: the gap beyond the rule's bound at the trigger level (rounding noise where it is 0);
* restore: the gap ≤ 0 — all the way to the targets;

the trades ``u_i = x*_i − x_i`` are prescribed (either execution style); its metric is the gap
as a share of equity. In a min-cost solve of another rule of the holder's mandate it enters at
its trigger level, ``Σ_i |m_i·x⁺_i − t_i| ≤ bound`` (``m`` its rows, ``t`` their targets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import polars as pl

from rules._base import Level, PositionRule
from rules._exprs import E, X

if TYPE_CHECKING:
    import cvxpy as cp

    from rules._space import ProblemSpace


class TargetRule(PositionRule):
    """A position rule that holds its positions at targets (see the module docstring)."""

    prescribed = True
    buys = True
    exclusive = True
    convex_levels = (Level.TRIGGER,)

    @property
    def leaves_no_choice(self) -> bool:
        return True

    @property
    def _held(self) -> pl.Expr:
        """True on the positions the rule holds at a target."""
        raise NotImplementedError

    @property
    def _target(self) -> pl.Expr:
        """``x*_i``, on the positions joined with their holder's book row."""
        raise NotImplementedError

    # --- Polars -------------------------------------------------------------------------------
    def position_columns(self) -> dict[str, pl.Expr]:
        gap = pl.when(self._held).then((self._target - X).abs()).otherwise(0.0)
        return {self.column("gap_row"): gap}

    def holder_sums(self) -> dict[str, pl.Expr]:
        return {self.column("gap"): pl.col(self.column("gap_row")).sum()}

    def lhs(self) -> pl.Expr:
        return pl.col(self.column("gap"))

    def bound(self, level: Level) -> pl.Expr:
        return pl.lit(0.0)

    def metric(self) -> pl.Expr:
        """The trades still to make as a share of equity, ``Σ|x* − x| / E``."""
        return pl.when(E > 0).then(self.lhs() / E)

    def trade(self, level: Level) -> pl.Expr:
        """``u_i = x*_i − x_i`` on the rule's positions, at either level."""
        return pl.when(self._held).then(self._target - X).otherwise(0.0)

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        return {
            self.column("member"): self._held.cast(pl.Float64),
            self.column("target"): pl.when(self._held).then(self._target).otherwise(0.0),
        }

    # --- cvxpy --------------------------------------------------------------------------------
    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built)

        member = p.vec(self.column("member"), nonneg=True)
        target = p.vec(self.column("target"))
        gap = cp.sum(cp.abs(cp.multiply(member, p.x_plus) - target))
        return {self.constraint_name("gap<=bound"): gap <= p.param(self.bound_name, nonneg=True)}
