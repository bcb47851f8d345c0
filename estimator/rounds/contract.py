"""The round's data contract: the names, tolerances and result types every stage shares.

A round works on *coded* frames (:mod:`estimator.keys`): positions in (holder, asset) order,
one book row per holder. Per rule its columns are named by :class:`rules.RuleColumns`; a
holder's outcome is a :class:`~estimator.status.Status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import polars as pl

from estimator import keys
from rules import Book

#: Holder column (optional): True for a holder that has started a forced sale it must finish.
COMMITTED = Book.COMMITTED
#: Index of a position row in the round's frame.
ROW = "row"
#: Relative: breaches smaller than this × scale count as compliant.
TOLERANCE = 1e-7
#: A trade worth less than ``max(DUST_SHARE·G, k·DUST_VALUE)``, with ``G`` the larger of its
#: holder's gross exposure ``Σ|x|`` before the trade and before the scenario and ``k`` the
#: accounts the holder row stands for, is rounding residue (what is left of a book sold in
#: full, the last sliver of a trade paced over days), not a trade: it is not made — the same
#: test for each of ``k`` identical accounts. ``DUST_VALUE`` is one unit of the base currency.
DUST_SHARE = 1e-9
DUST_VALUE = 1.0

#: Balance-sheet columns reported before and after the round.
BEFORE = [
    Book.EQUITY,
    Book.ACCOUNT_EQUITY,
    Book.GROSS_ASSETS,
    Book.GROSS_EXPOSURE,
    Book.CASH,
    Book.RISK,
    "leverage",
]
#: ``max(Σ|x|, |E|)`` before the round, the yardstick of tolerances.
SCALE_BEFORE = "scale_before"

#: The per-holder outcome of a min-cost solve (null for holders not solved).
OUTCOME_SCHEMA = {
    "holder_id": keys.CODE,
    "solved": pl.Boolean,
    "solver_status": pl.String,
    "solver_binding": pl.String,
    "binding_constraints": pl.String,
}
EMPTY_TRADES = pl.DataFrame(
    schema={"holder_id": keys.CODE, "asset_id": keys.CODE, "trade_value": pl.Float64}
)


def dust(value: pl.Expr, gross: pl.Expr, accounts: pl.Expr | None = None) -> pl.Expr:
    """Whether a trade of ``value`` by a holder of size ``gross`` (``G`` above) standing for
    ``accounts`` accounts (default one) is dust."""
    floor = DUST_VALUE if accounts is None else accounts * DUST_VALUE
    return value.abs() < pl.max_horizontal(DUST_SHARE * gross, floor)


@dataclass
class MandateRound:
    """One mandate's decisions and the trades that are not its holders' common scale."""

    decisions: pl.DataFrame
    #: (holder_id, row, trade_value, position_value) for rows whose trade is not ``(f − 1)·x``
    #: — the holder's common scale of its book — because a position rule or a solve set it;
    #: ``position_value`` is the position rules' part ``x¹ − x⁰`` (0 for a solve); None if none.
    traded: pl.DataFrame | None = None
    #: (holder_id, the position rules' holder sums) after the round, for holders whose
    #: positions after the round are those the position rules left (``f = 1``, not solved):
    #: the compliance check reuses them instead of summing the same rows again.
    sums_after: pl.DataFrame | None = None


@dataclass
class RoundResult:
    """What one round did: trades, holder outcomes, and the books it leaves."""

    trades: pl.DataFrame  # holder_id, asset_id, quantity_before, trade_quantity, trade_value, rules
    holders: pl.DataFrame  # decisions, before/after metrics, status
    books_after: pl.DataFrame  # positions after the trades, coded if ``codes`` is given
    holders_after: pl.DataFrame  # holder table with cash/debt after cures and trades
    compiled_problems: int = 0
    codes: keys.Keys | None = None

    def decoded(self, codes: keys.Keys) -> RoundResult:
        """The result of a round on coded frames with its ids back (the books after stay
        coded until :attr:`positions_after` is asked for)."""
        return RoundResult(
            codes.decode(self.trades, order=[keys.HOLDER, keys.ASSET]),
            codes.decode(self.holders, order=[keys.HOLDER]),
            self.books_after,
            codes.decode(self.holders_after, order=[keys.HOLDER]),
            self.compiled_problems,
            codes,
        )

    @cached_property
    def positions_after(self) -> pl.DataFrame:
        """Positions after the trades (holder_id, asset_id, quantity): decoded when first
        asked for — a single round's report does not need the whole book in ids."""
        if self.codes is None:
            return self.books_after
        return self.codes.decode(self.books_after, order=[keys.HOLDER, keys.ASSET])
