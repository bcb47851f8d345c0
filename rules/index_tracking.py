"""``index_tracking`` — an index fund or ETF follows its index through deletions, additions and
reweights.

Math. An index's weights ``w`` drift with prices (a cap-weighted index): after returns ``r``,
``w_i ← w_i(1 + r_i) / Σ_j w_j(1 + r_j)``, and a holder that matched the index still matches
it, so price moves alone force no trade. An index *change* sets new weights ``w⁺`` (see
:mod:`estimator.indices`); the change per asset is ``Δw_i = w⁺_i − w_i``, over the members
``U`` of the index before or after the change (``Σ_U Δw = 0``).

The holder's tracked assets are its exposure to those members, ``A = Σ_{i ∈ U} x_i``; its own
deviations from the index, ``x_i − A·w_i``, are its business and are kept. When the rule acts
the holder trades to the new index weights::

    u_i = A·Δw_i          (i ∈ U; e.g. a deleted stock: sell A·w_i)

equivalently, it moves to target weights ``τ_i = x_i/A + Δw_i`` of its sleeve. A holding is
never taken short, or further short, for the index's sake: ``τ_i ← max(τ_i, min(x_i/A, 0))``,
and ``τ`` is renormalised to sum to one (it already does unless a holder owns less of a stock
than the index cuts from it).

The tracking gap of a book ``x`` against those targets, as a share ``g`` of the sleeve, is::

    gap(x) = ½·Σ_{i ∈ U} |x_i − A(x)·τ_i|,      A(x) = Σ_{i ∈ U} x_i

At the start of the round ``gap = A·½Σ_U|Δw|``, the one-way turnover of the index change.

* trigger: ``gap > tol·A`` — the tolerance only decides *whether* the holder trades;
* restore: ``gap ≤ 0`` — when it trades, it trades all the way to the new weights.

Whole-book rules of the same mandate then scale the book by one factor, which keeps the sleeve
on its targets (``gap`` is homogeneous of degree one). A holder with ``A ≤ 0`` tracks nothing.

Execution. The trades are prescribed, so a tracker that acts trades them under either
execution style. Where the rule has not acted and another rule forces a solve, the rule enters
the solve at its trigger level, ``½Σ_U|x⁺_i − s·τ_i| ≤ tol·s`` with ``s = Σ_U x⁺_i``: a
tracker sells its index sleeve (near) proportionally, never only the cheapest members.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import polars as pl
from pydantic import Field

from rules._base import HOLDER, Level, PositionRule
from rules._exprs import X
from rules._space import ProblemSpace

if TYPE_CHECKING:
    import cvxpy as cp

_X0 = pl.col("exposure_start")  # exposure at the start of the round


def index_column(index_id: str, what: Literal["member", "dw"]) -> str:
    """Asset-table column of one index: ``member`` (in U) or ``dw`` (Δw)."""
    return f"index[{index_id}].{what}"


class IndexTracking(PositionRule):
    """Trade tracked assets × the change in index weight when the index changes."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"index": "IDX"},
        {"index": "IDY", "tolerance": 0.05},
        {"index": "IDX", "tolerance": 0.1},
    )

    flow = "policy"

    kind: Literal["index_tracking"] = "index_tracking"
    index: str = Field(min_length=1, description="index_id of the index tracked")
    tolerance: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="tracking gap (share of tracked assets) at or below which nothing trades",
    )

    prescribed = True
    buys = True
    exclusive = True
    convex_levels = (Level.TRIGGER,)

    @property
    def tracked_index(self) -> str | None:
        return self.index

    @property
    def _member(self) -> pl.Expr:
        return pl.col(index_column(self.index, "member")).fill_null(False)

    @property
    def _dw(self) -> pl.Expr:
        return pl.col(index_column(self.index, "dw")).fill_null(0.0)

    def _raw_target(self, aum_start: pl.Expr) -> pl.Expr:
        """``max(x⁰_i/A⁰ + Δw_i, min(x⁰_i/A⁰, 0))`` before renormalisation."""
        held = _X0 / aum_start
        return pl.max_horizontal(held + self._dw, held.clip(upper_bound=0.0))

    # --- Polars -------------------------------------------------------------------------------
    def _on_members(self, expr: pl.Expr) -> pl.Expr:
        return pl.when(self._member).then(expr).otherwise(0.0)

    def position_columns(self) -> dict[str, pl.Expr]:
        """Per member: the raw target weight and its share of the gap, ``½|x_i − A·τ_i|``.
        The per-holder totals they need — ``A⁰``, ``A`` and ``Σ raw`` — are windows, each
        computed once as a column of its own (the columns are evaluated in order)."""
        aum_start, sleeve = self.column("row.aum_start"), self.column("row.sleeve")
        raw, total = self.column("raw_target"), self.column("row.target_sum")
        gap = self._on_members(0.5 * (X - pl.col(sleeve) * pl.col(raw) / pl.col(total)).abs())
        return {
            aum_start: self._on_members(_X0).sum().over(HOLDER),
            sleeve: self._on_members(X).sum().over(HOLDER),
            raw: self._on_members(self._raw_target(pl.col(aum_start))),
            total: pl.col(raw).sum().over(HOLDER),
            self.column("gap_share"): pl.when(pl.col(aum_start) > 0).then(gap).otherwise(0.0),
        }

    def holder_sums(self) -> dict[str, pl.Expr]:
        """``A⁰``, ``Σ raw`` and ``A`` are constant over a holder's rows (the windows of
        :meth:`position_columns`): one row's value each; the gap is summed."""
        aum_start = pl.col(self.column("row.aum_start")).first()
        return {
            self.column("aum_start"): aum_start,
            self.column("target_sum"): pl.when(aum_start > 0)
            .then(pl.col(self.column("row.target_sum")).first())
            .otherwise(1.0),
            self.column("sleeve"): pl.col(self.column("row.sleeve")).first(),
            self.column("gap"): pl.col(self.column("gap_share")).sum(),
        }

    def lhs(self) -> pl.Expr:
        return pl.col(self.column("gap"))

    def bound(self, level: Level) -> pl.Expr:
        if level is Level.RESTORE:
            return pl.lit(0.0)
        return self.tolerance * pl.col(self.column("sleeve")).clip(lower_bound=0.0)

    def metric(self) -> pl.Expr:
        """Tracking gap as a share of the sleeve, ``gap / A``."""
        sleeve = pl.col(self.column("sleeve"))
        return pl.when(sleeve > 0).then(self.lhs() / sleeve)

    def _target(self) -> pl.Expr:
        """``τ_i`` on positions joined with their holder's sums."""
        aum_start = pl.col(self.column("aum_start"))
        return self._raw_target(aum_start) / pl.col(self.column("target_sum"))

    def trade(self, level: Level) -> pl.Expr:
        """``u_i = A(x)·τ_i − x_i`` on the sleeve (``A·Δw_i`` from the start of the round) —
        at either level: the tolerance decides whether to trade, not how far."""
        tracks = self._member & (pl.col(self.column("aum_start")) > 0)
        target = pl.col(self.column("sleeve")) * self._target()
        return pl.when(tracks).then(target - X).otherwise(0.0)

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        return {}  # the solve's only number is the tolerance, fixed per compiled shape

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        tracks = self._member & (pl.col(self.column("aum_start")) > 0)
        return {
            self.column("member"): tracks.cast(pl.Float64),
            self.column("target"): pl.when(tracks).then(self._target()).otherwise(0.0),
        }

    # --- cvxpy --------------------------------------------------------------------------------
    @property
    def shape_key(self) -> str:
        return f"{self.kind}:{self.tolerance!r}"

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built)

        member = p.vec(self.column("member"), nonneg=True)
        target = p.vec(self.column("target"))  # negative for a short member
        sleeve = cp.Variable(name="index_sleeve")
        gap = 0.5 * cp.sum(cp.abs(cp.multiply(member, p.x_plus) - cp.multiply(target, sleeve)))
        return {
            self.constraint_name("sleeve"): sleeve == member @ p.x_plus,
            self.constraint_name("gap<=tolerance"): gap <= self.tolerance * sleeve,
        }
