"""How a forced holder trades: the execution styles a mandate (or a run) chooses between."""

from __future__ import annotations

from enum import StrEnum


class Execution(StrEnum):
    """How a forced holder trades.

    * ``pro_rata`` — every eligible position by one common fraction (fire-sale convention);
    * ``min_cost`` — the cheapest trades that satisfy every rule (cvxpy, strictly convex cost).
    """

    PRO_RATA = "pro_rata"
    MIN_COST = "min_cost"
