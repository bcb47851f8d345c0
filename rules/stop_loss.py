"""``stop_loss`` — a drawdown stop: past a loss threshold the risk committee cuts the book.

Math. The drawdown from a reference equity ``E_ref`` (the holder's ``reference_equity``, e.g. a
high-water mark, where given; otherwise its equity before the scenario's shocks ``E₀``)::

    D = 1 − E / E_ref

Once ``D > d`` (the threshold) the committee cuts gross exposure by the fraction ``κ`` of its
level before the scenario, ``G₀``: the rule is a discrete action, not a limit the book drifts
against. Trigger and restore coincide::

    Σ|x⁺| ≤ (1 − κ)·G₀   while D > d   (no bound otherwise)

The bound is fixed by the book before the scenario, so the cut is made once: a later round at the
same or a deeper drawdown finds the book at the bound and trades again only if prices take its
gross back above it (e.g. a short leg that rises), and a book whose prices alone have taken its
gross below ``(1 − κ)·G₀`` sells nothing. Trades leave ``E`` unchanged, so they cannot undo the
trigger, and a reserve or credit line drawn in the round cannot cure it (borrowed or reserved
cash does not undo a loss). Pro-rata: ``Σ|f·x| = f·G``, so ``f = (1 − κ)·G₀ / G``. Example:
a book of gross 400 before the scenario, 360 after a 12% drawdown against a 10% stop with
κ = ½, is cut to 200: f = 200/360.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import polars as pl
from pydantic import Field

from rules._base import Book, Level, RuleBase, exceeds
from rules._exprs import E, G, gross, ratio_or_inf
from rules._space import ProblemSpace

if TYPE_CHECKING:
    import cvxpy as cp

_E_REF = pl.col(Book.REFERENCE_EQUITY)
_G0 = pl.col(Book.GROSS_PRE)

#: The bound handed to the solver while the stop is not hit: far above any gross a de-risking
#: trade reaches (the constraint is then slack), since a solver parameter cannot be infinite.
_SLACK = 10.0


class StopLoss(RuleBase):
    """Past a drawdown threshold, cut gross exposure by a fraction of its pre-scenario level."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"threshold": 0.1, "cut": 0.5},
        {"threshold": 0.2, "cut": 0.2},
    )

    kind: Literal["stop_loss"] = "stop_loss"
    threshold: float = Field(gt=0, lt=1, description="d: drawdown that stops the book, e.g. 0.1")
    cut: float = Field(gt=0, le=1, description="κ: share of gross exposure cut (1 = close out)")

    def drawdown(self) -> pl.Expr:
        """``D = 1 − E/E_ref``; null where ``E_ref`` is not positive."""
        return pl.when(_E_REF > 0).then(1 - E / _E_REF)

    def _hit(self) -> pl.Expr:
        """``D > d``, as ``(1 − d)·E_ref − E`` beyond rounding noise (:func:`exceeds`): a drawdown
        equal to the threshold up to an ulp does not stop the book."""
        return ((_E_REF > 0) & exceeds((1 - self.threshold) * _E_REF - E)).fill_null(False)

    def lhs(self) -> pl.Expr:
        return G

    def bound(self, level: Level) -> pl.Expr:
        return pl.when(self._hit()).then((1 - self.cut) * _G0).otherwise(float("inf"))

    def fraction(self, level: Level) -> pl.Expr:
        return ratio_or_inf(self.bound(level), G)

    def metric(self) -> pl.Expr:
        """The drawdown ``D``."""
        return self.drawdown()

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        slack = _SLACK * pl.max_horizontal(G, _G0)
        return {self.bound_name: pl.when(self._hit()).then(self.bound(level)).otherwise(slack)}

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        bound = p.param(self.bound_name, nonneg=True)
        return {self.constraint_name("gross<=bound"): gross(p) <= bound}
