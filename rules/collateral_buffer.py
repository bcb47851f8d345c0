"""``collateral_buffer`` — a leveraged liability-driven investment (LDI) fund's yield buffer.

Math. An LDI fund holds long-dated government bonds bought with borrowed cash (repo) and
bond futures, so its equity is a thin slice of a large duration exposure. With ``D_i`` the
modified duration of asset i (0 where none) and ``x_i`` its exposure, the book's duration
exposure and its value of a basis point are::

    DD = Σ_i D_i·x_i,      DV01 = DD / 10⁴      (currency lost per 1bp rise in yields)

The *yield buffer* is the rise in yields, in basis points, that would wipe out the equity::

    b = E / DV01 = 10⁴·E / DD      (DD > 0; no buffer is needed when DD ≤ 0)

The mandate keeps it at or above a floor ``β``: ``DD ≤ 10⁴·E/β``.

* trigger: ``b < β``; restore: ``b⁺ ≥ β_r`` with ``β_r ≥ β`` (default ``β``).
* cure first — investors recapitalise (the mandate's capital call, up to its limit and speed,
  see :class:`estimator.mandates.CapitalCall`), or a cash reserve: cash ``k`` raises ``E`` by
  ``k``, and restores the buffer from ``k = β_r·DV01 − E`` (a credit line raises debt as much
  as cash, leaves ``E`` where it was, and is not drawn for this rule);
* then sell for the rest: selling at market leaves ``E`` unchanged and scaling the book by ``f``
  scales ``DD``, so ``f = 10⁴·E / (β_r·DD)``. Minimal cost: the linear constraint
  ``Σ_i D_i·x⁺_i ≤ 10⁴·E/β_r`` (the solve sells the cheapest duration: long bonds first).

Example: gilts of 1,000 at duration 20 on 800 of repo: E = 200, DV01 = 2, b = 100bp. Yields
rise 30bp: the gilts lose 60 (first order), E = 140, DV01 = 1.88 (DD = 18,800), b = 74.5bp
against a 100bp floor. With no capital the fund sells 1 − 74.5/100 of its gilts; investors
who can put in 48 (k = 100·1.88 − 140) restore the buffer without a sale.
Source of the mechanism: Bank of England, Financial Stability Report, December 2022 (the
September 2022 gilt episode); its Financial Policy Committee recommended in March 2023 that LDI
funds withstand a 250bp rise in gilt yields.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, model_validator

from rules._base import Book, Level, RuleBase
from rules._exprs import E
from rules._space import LinearLimit

_DD = pl.col(Book.DURATION_EXPOSURE)
BP = 1e-4  # one basis point


class CollateralBuffer(RuleBase):
    """Keep the yield rise the equity can absorb above a floor, in basis points."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"floor_bp": 2000.0},
        {"floor_bp": 1500.0, "restore_bp": 2500.0},
    )

    kind: Literal["collateral_buffer"] = "collateral_buffer"
    floor_bp: float = Field(gt=0, le=10_000, description="β: least yield buffer, bp (e.g. 250)")
    restore_bp: float | None = Field(
        None, gt=0, le=10_000, description="β_r ≥ β: buffer rebuilt once it acts, bp (default β)"
    )

    #: A credit line raises cash and debt alike: equity, and so the buffer, do not move.
    cure_sources: ClassVar[frozenset[str]] = frozenset({"cash_reserve", "capital_call"})

    @model_validator(mode="after")
    def _levels(self) -> Self:
        if self.restore_bp is not None and self.restore_bp < self.floor_bp:
            raise ValueError(
                f"`restore_bp` ({self.restore_bp}) must be at or above `floor_bp` ({self.floor_bp})"
            )
        return self

    @property
    def restores_to_trigger(self) -> bool:
        return self.restore_bp is None or self.restore_bp == self.floor_bp

    def _buffer(self, level: Level) -> float:
        if level is Level.RESTORE and self.restore_bp is not None:
            return self.restore_bp
        return self.floor_bp

    # --- Polars -------------------------------------------------------------------------------
    def lhs(self) -> pl.Expr:
        """``DD = Σ D_i·x_i``."""
        return _DD

    def bound(self, level: Level) -> pl.Expr:
        """``10⁴·E/β``: the duration exposure the equity supports at the floor."""
        return E / (self._buffer(level) * BP)

    def fraction(self, level: Level) -> pl.Expr:
        return pl.when(_DD > 0).then(self.bound(level) / _DD).otherwise(float("inf"))

    def cure_need(self, level: Level) -> pl.Expr:
        """``k = β_r·DV01 − E``."""
        return (self._buffer(level) * BP * _DD - E).clip(lower_bound=0.0)

    def metric(self) -> pl.Expr:
        """The yield buffer ``b = 10⁴·E/DD`` in bp (empty when ``DD ≤ 0``)."""
        return pl.when(_DD > 0).then(E / (_DD * BP))

    def position_inputs(self, level: Level) -> dict[str, pl.Expr]:
        return {self.column("duration"): pl.col("duration").fill_null(0.0)}

    # --- cvxpy --------------------------------------------------------------------------------
    def linear_limits(self) -> tuple[LinearLimit, ...]:
        """``Σ D_i·x⁺_i ≤ bound``."""
        duration = self.column("duration")
        name = self.constraint_name("duration<=bound")
        return (LinearLimit(name, self.bound_name, x_plus=duration, nonneg=frozenset({duration})),)
