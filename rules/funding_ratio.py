"""``funding_ratio`` — a pension's policy that de-risks when its funding ratio falls.

Math. A defined-benefit pension owes liabilities of present value ``L``; its funding ratio is
``FR = V / L`` with ``V = Σ value + N + C`` its total assets (as in ``rebalancing_band``).
Liabilities are discounted: a change ``Δy`` in their discount rate moves them through their
modified duration ``D_L`` as a liability of constant duration, ``L ← L·exp(−D_L·Δy)``
(scenario holder shocks, ``liability_rate_change_bp``). A fall in yields thus raises ``L`` while
an equity fall lowers ``V``: both cut the funding ratio.

The rule is a rebalancing policy (:mod:`rules.rebalancing`: per-class bands, restore to target
or band edge, purchases funded by overweights) whose target weights depend on the funding
ratio::

    t_c = d_c   if L > 0 and FR < φ      (de-risked policy, e.g. more bonds)
    t_c = w_c   otherwise                 (the normal policy)

with ``φ`` the trigger. Above it, the pension rebalances against the market (contrarian: it
buys what fell); below it, it sells risk assets into the fall — the opposite, and the reason
funding-ratio rules make pensions forced sellers. Trades at market leave ``V`` and so ``FR``
unchanged, so the policy in force does not flip with the trades.

Example: a pension with 60/40 equities/bonds of 100 against liabilities of 95 (duration 10,
FR = 1.05); a de-risking trigger at 0.9 to 30/70. Equities fall 20%: V = 88, FR = 0.926, and
the normal policy buys 4.8 of equities. If discount rates also fall 30bp, ``L = 95·e^0.03 =
97.89`` and FR = 0.899 < 0.9: targets 30/70 of 88, equities 48 → 26.4 (sell 21.6), bonds
40 → 61.6 (buy 21.6).

Liabilities reprice as ``exp(−D_L·Δy)``, bonds as ``−D·Δy + ½·C·Δy²`` with their own
convexity ``C``: the two agree to second order for a bond of the same duration and
``C = D_L²``; with less convexity the bond rises less (at −40bp and ``D = 16``: 6.61% for the
liabilities, 6.40% for a bond without convexity).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, model_validator

from rules._base import Book
from rules.rebalancing import TOTAL_ASSETS, RebalancingBand, check_policy

_L = pl.col(Book.LIABILITIES)


class FundingRatio(RebalancingBand):
    """Policy weights with bands that switch to a de-risked policy below a funding ratio."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "weights": {"equity": 0.6, "equity_future": 0.3},
            "derisked_weights": {"equity": 0.3, "equity_future": 0.1},
            "trigger": 1.0,
        },
        {
            "weights": {"equity": 0.5, "equity_future": 0.2},
            "derisked_weights": {"equity": 0.4, "equity_future": 0.05},
            "trigger": 0.9,
            "band": 0.1,
            "restore": "edge",
        },
    )

    kind: Literal["funding_ratio"] = "funding_ratio"  # type: ignore[assignment]
    trigger: float = Field(gt=0, le=10, description="φ: funding ratio V/L below which it de-risks")
    derisked_weights: dict[str, float] = Field(
        min_length=1, description="d_c: target weights of total assets once below the trigger"
    )

    @model_validator(mode="after")
    def _derisked_policy(self) -> Self:
        check_policy(self.derisked_weights, "derisked_weights")
        return self

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.weights) | set(self.derisked_weights))

    def derisking(self) -> pl.Expr:
        """True where the funding ratio is below the trigger: ``L > 0`` and ``V < φ·L``."""
        funded = TOTAL_ASSETS / _L
        return (_L > 0) & (funded < self.trigger)

    def _target(self, c: str) -> pl.Expr:
        normal, derisked = self.weights.get(c, 0.0), self.derisked_weights.get(c, 0.0)
        return pl.when(self.derisking()).then(derisked).otherwise(normal)

    def metric(self) -> pl.Expr:
        """The funding ratio ``V / L`` (empty without liabilities)."""
        return pl.when(_L > 0).then(TOTAL_ASSETS / _L)
