"""Balance sheets round by round: each holder's book at the start of every round of a cascade,
what it traded and what it lost there — the table a round-by-round fire-sale paper prints.

Per round ``r`` and holder (amounts in the base currency; :ref:`the README's accounting
<accounting>`)::

    equity          E_r  at the round's start, as its rules read it (after the shocks in round 1)
    total_assets    A_r = G + N + max(C, 0)
    leverage        A_r / E_r                          (empty when E_r ≤ 0)
    sold, bought    value traded in the round, at the round's start prices
    loss_shock      the scenario's shocks: −Σ q⁰·m·(P₀ − P_pre) + (N_pre − N), round 1 only
    loss_impact     −Σ q⁺·m·ΔP_r, the round's price moves marked on the holdings after it
    loss_execution  Σ q·m·(P_x − P_r), trading at the execution price P_x, not P_r
    loss_lending    a shortfall borne as lender (a forgiven one, negative)
    equity_end      E_r + cures − loss_impact − loss_execution − loss_lending

On rounds without a day clock ``equity_end`` of round ``r`` is ``equity`` of round ``r + 1``
for a holder paying no outflow (redemptions are paid from cash at a round's start and move
equity without a loss). On a day clock the overnight decay of temporary impact is booked in
the day's last round.
"""

from __future__ import annotations

import polars as pl

from estimator.keys import CODE
from rules import Book

ROUND, DAY = "round", "day"
LOSSES = ("loss_impact", "loss_execution", "loss_lending")
#: The balance-sheet report's columns, in order.
COLUMNS = [
    ROUND,
    DAY,
    "holder_id",
    "status",
    "equity",
    "total_assets",
    "leverage",
    "sold",
    "bought",
    "loss_shock",
    *LOSSES,
    "equity_end",
]


def round_losses(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Per (holder, round): the losses of :data:`LOSSES` booked in the round, summed over the
    frames (each with ``holder_id``, ``round`` and some of the loss columns)."""
    empty = pl.DataFrame(schema={"holder_id": CODE, ROUND: pl.Int32} | dict.fromkeys(LOSSES))
    empty = empty.cast(dict.fromkeys(LOSSES, pl.Float64))
    return (
        pl.concat([empty, *frames], how="diagonal_relaxed")
        .select("holder_id", ROUND, *LOSSES)
        .group_by("holder_id", ROUND)
        .agg(pl.col(LOSSES).fill_null(0.0).sum())
    )


def balance_sheets(
    holder_rounds: pl.DataFrame, losses: pl.DataFrame, direct: pl.DataFrame
) -> pl.DataFrame:
    """The table of the module docstring from a cascade's holder tables (``holder_rounds``:
    one per round, with ``round``, ``day``, ``status``, ``equity_before``, ``equity_after``,
    ``gross_assets_before``, ``leverage_before``, ``sold``, ``bought``), its losses by round
    (:func:`round_losses`) and the shocks' losses (``holder_id``, ``loss_direct``). Joined by
    (holder, round); sorted by round, day and holder by the caller."""
    first = holder_rounds[ROUND].min()
    return (
        holder_rounds.select(
            ROUND,
            DAY,
            "holder_id",
            "status",
            equity=f"{Book.EQUITY}_before",
            total_assets=f"{Book.GROSS_ASSETS}_before",
            leverage="leverage_before",
            sold="sold",
            bought="bought",
            _after=f"{Book.EQUITY}_after",
        )
        .join(losses, on=["holder_id", ROUND], how="left")
        .join(direct, on="holder_id", how="left")
        .with_columns(
            pl.col(LOSSES).fill_null(0.0),
            loss_shock=pl.when(pl.col(ROUND) == first)
            .then(pl.col("loss_direct").fill_null(0.0))
            .otherwise(0.0),
        )
        .with_columns(
            equity_end=pl.col("_after")
            - pl.col("loss_impact")
            - pl.col("loss_execution")
            - pl.col("loss_lending")
        )
        .select(COLUMNS)
    )
