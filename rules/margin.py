"""``margin`` — a margin account: account equity must cover the margin requirement.

Math. With per-asset maintenance rates ``m_i`` (the asset's own ``margin_rate``, else the rule's
``maintenance_rate``) and ``k_h`` the holder's margin multiplier (a scenario's holder shock, a
broker raising its haircuts for one kind of client; 1 otherwise, and not capped) the
requirement is ``R(x) = k_h·Σ m_i |x_i|``, longs and shorts alike (a short is bought back).
Trades move value into cash one for one, so account equity ``AE`` is unchanged:

* trigger: ``AE < R(x)``;
* restore: ``R(x⁺) ≤ AE / k`` with ``k = 1`` (back to maintenance) or ``k = initial_ratio``
  (back to initial margin, ``initial = k × maintenance``).

Cure first: the cash ``k·R(x) − AE`` needed at the restore level is drawn from the external cash
reserve and the credit line, in the mandate's order; only the rest is traded. Pro-rata, ``R`` is
homogeneous so ``f = AE / (k·R(x))``. Textbook check: a long bought with 50% initial margin
(loan ``0.5·P₀`` per share) is called under 25% maintenance when ``P(1 − 0.25) = 0.5·P₀``, i.e.
``P = P₀·(1 − 0.5)/(1 − 0.25) = ⅔·P₀``; the minimal sale back to maintenance is
``X − AE / 0.25``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import cvxpy as cp
import polars as pl
from pydantic import Field

from rules._base import Book, Level, ProblemSpace, RuleBase

_AE = pl.col(Book.ACCOUNT_EQUITY)


class Margin(RuleBase):
    """Account equity at or above the maintenance margin requirement."""

    kind: Literal["margin"] = "margin"

    @property
    def restores_to_trigger(self) -> bool:
        return self.restore == "maintenance"

    maintenance_rate: float = Field(
        0.25, gt=0, le=1, description="m: maintenance rate for assets without their own margin_rate"
    )
    initial_ratio: float = Field(
        2.0, ge=1, le=100, description="k: initial margin = k × maintenance"
    )
    restore: Literal["maintenance", "initial"] = Field(
        "maintenance", description="level the account is restored to after a call"
    )

    @property
    def rate_name(self) -> str:
        return f"{self.kind}.rate"

    def _k(self, level: Level) -> float:
        return self.initial_ratio if level is Level.RESTORE and self.restore == "initial" else 1.0

    def lhs(self) -> pl.Expr:
        rated = pl.col(Book.MARGIN_RATED) + self.maintenance_rate * pl.col(Book.MARGIN_UNRATED)
        return pl.col(Book.MARGIN_MULTIPLIER) * rated

    def bound(self, level: Level) -> pl.Expr:
        return _AE / self._k(level)

    def fraction(self, level: Level) -> pl.Expr:
        req = self.lhs()
        ok_empty = pl.when(_AE >= 0).then(float("inf")).otherwise(-1.0)
        return pl.when(req > 0).then(self.bound(level) / req).otherwise(ok_empty)

    def cure_need(self, level: Level) -> pl.Expr:
        return self._k(level) * self.breach(level)

    def metric(self) -> pl.Expr:
        """Margin excess: ``AE − R(x)`` (negative means a call)."""
        return _AE - self.lhs()

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        rate = pl.col("margin_rate").fill_null(self.maintenance_rate)
        return {self.rate_name: pl.col(Book.MARGIN_MULTIPLIER) * rate}

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        m = p.vec(self.rate_name, nonneg=True)
        requirement = m @ p.abs_x_plus
        return {self.constraint_name("requirement<=bound"): requirement <= p.param(self.bound_name)}
