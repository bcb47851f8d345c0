"""``leverage`` — a leverage limit (threshold) or a constant-leverage policy (targeting).

Math. Leverage is assets over equity ``E`` under one of two measures, chosen per rule
(``measure``), with ``N`` non-tradable holdings, ``C`` account cash and ``x`` the exposures
(futures at notional, shorts negative; ``c`` = 1 for cash instruments)::

    balance_sheet   A_bs = L⁺ + N + max(C, 0),   L⁺ = Σ c·max(x, 0)
    exposure        A_x  = G + N,                G = Σ|x|

Balance-sheet leverage is what banks report and the fire-sale literature uses: long holdings of
cash instruments are assets, a future counts 0 (its mark-to-market is already in C) and a short
is a liability whose sale proceeds sit in C. Exposure leverage is the gross method of funds'
regulators: every position at its absolute exposure, futures at notional, cash excluded. A 2×
futures fund holding its collateral in cash (x = 2E, C = E) is 1.0 and 2.0; a long book on
borrowed cash (C ≤ 0) is the same under both. After a trade ``u`` (sale proceeds repay account
borrowing, then become cash; futures move no cash)::

    A_bs(x⁺) = Σ c·max(x⁺, 0) + N + max(C − cᵀu, 0),     A_x(x⁺) = Σ|x⁺| + N

and trades leave ``E`` unchanged.

* threshold mode: trigger ``A > L_max·E``; restore ``A ≤ L_target·E`` (``L_target ≤ L_max``);
* targeting mode: hold ``L₀ = A/E`` before the shocks (by the rule's measure); trigger beyond
  ``L₀(1 ± ε)``; restore to ``L₀``. Moves up (re-levering) run pro-rata only.

Pro-rata, scaling every position by f (``V = Σ c·x``; a short bought back pays from cash)::

    A_bs(f) = f·L⁺ + N + max(C + (1 − f)·V, 0),       A_x(f) = f·G + N

``A_x`` is linear: ``f = (B − N)/G``. A book of futures alone has ``A_bs = N + max(C, 0)``
whatever f: every f complies (``f = ∞``) or none does. Otherwise ``A_bs`` is convex and
piecewise linear in f, so the largest f with ``A_bs(f) ≤ B`` is the larger valid root of its
two pieces: ``f₁ = (B − N)/L⁺`` where
``C + (1 − f₁)V ≤ 0`` (proceeds still repay borrowing), ``f₂ = (B − N − C − V)/(L⁺ − V)``
where ``C + (1 − f₂)V ≥ 0`` (``L⁺ − V`` is the cash shorts' Σ|x|). For a long book on borrowed
cash either measure sells ``A − L_target·E``. No valid root means no sale can comply (a long
book with cash and other debt: selling turns assets into cash one for one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, PositiveFloat, model_validator

from rules._base import Book, Level, RuleBase, exceeds
from rules._exprs import C, E, G, N, V
from rules._space import ONES, LinearLimit, ProblemSpace, Vec

if TYPE_CHECKING:
    import cvxpy as cp

_L = pl.col(Book.LONG_CASH)

Measure = Literal["balance_sheet", "exposure"]
#: Leverage before the scenario's shocks, by measure (added to the holders by ``prepare``).
PRE = {"balance_sheet": Book.BALANCE_SHEET_LEVERAGE_PRE, "exposure": Book.EXPOSURE_LEVERAGE_PRE}


def measured_assets(measure: Measure) -> pl.Expr:
    """``A_bs`` or ``A_x`` (module docstring) on a book."""
    if measure == "exposure":
        return G + N
    return _L + N + C.clip(lower_bound=0.0)


def measured_leverage(measure: Measure) -> pl.Expr:
    """``A/E`` under ``measure``; null when ``E ≤ 0`` (insolvent, not "safe")."""
    return pl.when(E > 0).then(measured_assets(measure) / E)


def scale_for_assets(bound: pl.Expr, measure: Measure) -> pl.Expr:
    """Largest f ≥ 0 with ``A(f) ≤ bound`` under ``measure`` (negative when none), per the
    module docstring."""
    if measure == "exposure":
        best = pl.when(G > 0).then((bound - N) / G)
        best = pl.when(best >= 0).then(best)
    else:
        f1 = pl.when(_L > 0).then((bound - N) / _L)
        ok1 = (f1 >= 0) & (C + (1 - f1) * V <= 0)
        f2 = pl.when(_L - V > 0).then((bound - N - C - V) / (_L - V))
        ok2 = (f2 >= 0) & (C + (1 - f2) * V >= 0)
        best = pl.max_horizontal(pl.when(ok1).then(f1), pl.when(ok2).then(f2))
    assets = measured_assets(measure)
    anything = pl.when(bound >= assets).then(float("inf")).otherwise(-1.0)  # A(f) = A for all f
    fixed = G <= 0
    if measure == "balance_sheet":  # futures only: no cash holdings to scale, A = N + max(C, 0)
        fixed = fixed | ((_L <= 0) & (_L - V <= 0))
    return pl.when(fixed).then(anything).otherwise(best.fill_null(-1.0))


class Leverage(RuleBase):
    """Keep assets over equity below a limit, or at its pre-shock level."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"max": 2.5, "target": 2.0},
        {"max": 3.0, "measure": "exposure"},
        {"mode": "targeting", "tolerance": 0.02},
        {"mode": "targeting", "measure": "exposure"},
    )

    kind: Literal["leverage"] = "leverage"
    measure: Measure = Field(
        "balance_sheet",
        description="balance_sheet: (long cash holdings + N + max(C, 0)) / E; "
        "exposure: (Σ|x| + N) / E, futures at notional",
    )
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
            l0 = pl.col(PRE[self.measure])
            return l0 * (1 + self.tolerance) if level is Level.TRIGGER else l0
        assert self.max is not None
        if level is Level.TRIGGER:
            return pl.lit(self.max)
        return pl.lit(self.target if self.target is not None else self.max)

    @property
    def shape_key(self) -> str:
        return f"{self.kind}:{self.measure}"

    @property
    def flow_kind(self) -> str:
        """A limit is forced; holding leverage constant (targeting) is systematic."""
        return "systematic" if self.mode == "targeting" else "forced"

    def lhs(self) -> pl.Expr:
        return measured_assets(self.measure)

    def bound(self, level: Level) -> pl.Expr:
        return self._multiple(level) * E

    def fraction(self, level: Level) -> pl.Expr:
        return scale_for_assets(self.bound(level), self.measure)

    def triggered_up(self) -> pl.Expr:
        if self.mode != "targeting":
            return pl.lit(False)
        floor = pl.col(PRE[self.measure]) * (1 - self.tolerance) * E
        return (G > 0) & exceeds(floor - self.lhs())

    def metric(self) -> pl.Expr:
        """Leverage ``A / E`` under the rule's measure; null when ``E ≤ 0``."""
        return measured_leverage(self.measure)

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        bound = {self.bound_name: self.bound(level) - N}
        return bound if self.measure == "exposure" else bound | {Vec.CASH0: C}

    def linear_limits(self) -> tuple[LinearLimit, ...] | None:
        """By exposure, ``Σ|x⁺_i| ≤ L·E − N``; on the balance sheet the limit is not linear
        (long cash holdings and positive cash only)."""
        if self.measure != "exposure":
            return None
        name = self.constraint_name("assets<=bound")
        return (LinearLimit(name, self.bound_name, abs_x_plus=ONES),)

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        """The exposure measure's :meth:`linear_limits`; on the balance sheet
        ``Σ c_i·(x⁺_i)⁺ + (C − Σ c_i·u_i)⁺ ≤ L·E − N`` (``c`` 1 for cash instruments)."""
        import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built)

        if self.measure == "exposure":
            return super().constraints(p)
        c = p.vec(Vec.IS_CASH, nonneg=True)
        cash_after = p.param(Vec.CASH0) - c @ p.u
        assets = c @ cp.pos(p.x_plus) + cp.pos(cash_after)
        return {self.constraint_name("assets<=bound"): assets <= p.param(self.bound_name)}
