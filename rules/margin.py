"""``margin`` — a margin account: account equity must cover the margin requirement.

Math. With per-asset maintenance rates ``m_i`` (the asset's own ``margin_rate``, else the rule's
``maintenance_rate``) and ``k_h`` the holder's margin multiplier (a scenario's holder shock, a
broker raising its haircuts for one kind of client; 1 otherwise, and not capped) the
requirement is ``R(x) = k_h·Σ m_i |x_i|``, longs and shorts alike (a short is bought back).
Trades move value into cash one for one, so account equity ``AE`` is unchanged:

* trigger: ``AE < R(x)``;
* restore: ``R(x⁺) ≤ AE`` (back to maintenance) or ``max(I(x⁺), R(x⁺)) ≤ AE`` (back to
  initial margin, and to maintenance where an initial rate is below the maintenance one), with
  the initial requirement ``I(x) = k_h·Σ ι_i |x_i|``: ``ι_i`` the asset's own
  ``initial_margin_rate``, else the rule's ``initial_rate``, else ``initial_ratio × m_i`` (the
  ratio form: ``I = initial_ratio × R`` when no rate is given). Reg T's initial requirement is
  50% of a long's value and, for a short sale, 150% of its value — the proceeds, already in the
  account's cash, plus 50% — so ``initial_rate = 0.5`` is Reg T for longs and shorts alike.

Cure first: the cash ``max(I, R)(x) − AE`` (or ``R(x) − AE``) needed at the restore level is
drawn from the external cash reserve and the credit line, in the mandate's order; only the rest
is traded. Pro-rata, both requirements are homogeneous so ``f = AE / max(I(x), R(x))`` (or
``AE / R(x)``).
Textbook check: a long bought with 50% initial margin
(loan ``0.5·P₀`` per share) is called under 25% maintenance when ``P(1 − 0.25) = 0.5·P₀``, i.e.
``P = P₀·(1 − 0.5)/(1 − 0.25) = ⅔·P₀``; the minimal sale back to maintenance is
``X − AE / 0.25``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import Field

from rules._base import Book, Level, RuleBase, _positive_part
from rules._space import LinearLimit

_AE = pl.col(Book.ACCOUNT_EQUITY)


class Margin(RuleBase):
    """Account equity at or above the maintenance margin requirement."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"maintenance_rate": 0.6},
        {"maintenance_rate": 0.4, "restore": "initial", "initial_ratio": 1.6},
        {"maintenance_rate": 0.3, "restore": "initial", "initial_rate": 0.5},
    )

    kind: Literal["margin"] = "margin"

    @property
    def restores_to_trigger(self) -> bool:
        return self.restore == "maintenance"

    maintenance_rate: float = Field(
        0.25, gt=0, le=1, description="m: maintenance rate for assets without their own margin_rate"
    )
    initial_ratio: float = Field(
        2.0,
        ge=1,
        le=100,
        description="k: initial margin = k × maintenance, for assets without an initial rate",
    )
    initial_rate: float | None = Field(
        None,
        gt=0,
        le=1,
        description="ι: initial margin rate for assets without their own initial_margin_rate "
        "(Reg T: 0.5); default initial_ratio × maintenance",
    )
    restore: Literal["maintenance", "initial"] = Field(
        "maintenance", description="level the account is restored to after a call"
    )

    @property
    def rate_name(self) -> str:
        return f"{self.kind}.rate"

    @property
    def initial_rate_name(self) -> str:
        return f"{self.kind}.initial_rate"

    @property
    def shape_key(self) -> str:
        return f"{self.kind}:{self.restore}"

    def _initial(self, level: Level) -> bool:
        return level is Level.RESTORE and self.restore == "initial"

    def lhs(self) -> pl.Expr:
        """The maintenance requirement ``R(x)``."""
        rated = pl.col(Book.MARGIN_RATED) + self.maintenance_rate * pl.col(Book.MARGIN_UNRATED)
        return pl.col(Book.MARGIN_MULTIPLIER) * rated

    def initial(self) -> pl.Expr:
        """The initial requirement ``I(x)``."""
        if self.initial_rate is not None:
            free = self.initial_rate * pl.col(Book.INITIAL_FREE)
        else:
            free = self.initial_ratio * (
                pl.col(Book.INITIAL_FREE_RATED)
                + self.maintenance_rate * pl.col(Book.INITIAL_FREE_UNRATED)
            )
        return pl.col(Book.MARGIN_MULTIPLIER) * (pl.col(Book.INITIAL_RATED) + free)

    def requirement(self, level: Level) -> pl.Expr:
        """``R(x)``; at the restore level of a rule restoring to initial margin
        ``max(I(x), R(x))``: back to initial margin and, where an initial rate is below the
        maintenance one (a haircut shock raises only maintenance rates), to maintenance too."""
        if not self._initial(level):
            return self.lhs()
        return pl.max_horizontal(self.initial(), self.lhs())

    def bound(self, level: Level) -> pl.Expr:
        return _AE

    def breach(self, level: Level) -> pl.Expr:
        return _positive_part(self.requirement(level) - _AE)

    def fraction(self, level: Level) -> pl.Expr:
        req = self.requirement(level)
        ok_empty = pl.when(_AE >= 0).then(float("inf")).otherwise(-1.0)
        return pl.when(req > 0).then(_AE / req).otherwise(ok_empty)

    def cure_need(self, level: Level) -> pl.Expr:
        return self.breach(level)

    def metric(self) -> pl.Expr:
        """Margin excess: ``AE − R(x)`` (negative means a call)."""
        return _AE - self.lhs()

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        """Per position ``k_h·m_i`` and, for a rule restoring to initial margin, ``k_h·ι_i``
        at the restore level (``k_h·m_i`` again at the trigger level, where only maintenance
        holds)."""
        k = pl.col(Book.MARGIN_MULTIPLIER)
        rate = pl.col("margin_rate").fill_null(self.maintenance_rate)
        out = {self.rate_name: k * rate}
        if self.restore == "initial":
            fallback = (
                self.initial_rate if self.initial_rate is not None else self.initial_ratio * rate
            )
            iota = (
                pl.col("initial_margin_rate").fill_null(fallback) if self._initial(level) else rate
            )
            out[self.initial_rate_name] = k * iota
        return out

    def linear_limits(self) -> tuple[LinearLimit, ...]:
        """``Σ k_h·m_i·|x⁺_i| ≤ AE``, and ``Σ k_h·ι_i·|x⁺_i| ≤ AE`` restoring to initial."""
        rates = [("requirement<=bound", self.rate_name)]
        if self.restore == "initial":
            rates.append(("initial<=bound", self.initial_rate_name))
        return tuple(
            LinearLimit(
                self.constraint_name(label),
                self.bound_name,
                abs_x_plus=rate,
                nonneg=frozenset({rate}),
            )
            for label, rate in rates
        )
