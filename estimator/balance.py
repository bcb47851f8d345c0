"""Balance sheets round by round: each holder's book at the start of every round of a cascade,
what it traded and what it lost there — the table a round-by-round fire-sale paper prints.

Per round ``r`` and holder (amounts in the base currency; :ref:`the README's accounting
<accounting>`)::

    equity          E_r  at the round's start, as its rules read it (after the shocks in round 1)
    total_assets    A_r = G + N + max(C, 0)            (the accounting's gross assets)
    leverage        A_r / E_r                          (empty when E_r ≤ 0, as the next two)
    balance_sheet_leverage  (L⁺ + N + max(C, 0)) / E_r  (the leverage rule's two measures)
    exposure_leverage       (G + N) / E_r
    outflow         cash paid out at the round's start, before its rules read the book
                    (redemptions: the change of ``redemption.paid``)
    sold, bought    value traded in the round, at the round's start prices
    loss_shock      the scenario's shocks: −Σ q⁰·m·(P₀ − P_pre) + (N_pre − N), round 1 only
    loss_impact     −Σ q⁺·m·ΔP_r, the round's price moves marked on the holdings after it
    loss_execution  Σ q·m·(P_x − P_r), trading at the execution price P_x, not P_r
    loss_lending    a shortfall borne as lender (a forgiven one, negative)
    equity_end      E_r + cures − loss_impact − loss_execution − loss_lending

On rounds without a day clock ``equity_end`` of round ``r`` is ``equity + outflow`` of round
``r + 1``: redemptions are paid from cash at a round's start and move equity without a loss.
On a day clock the overnight decay of temporary impact is booked in the day's last round, and
so is, on a dated path, the next open's move (``loss_path``, a column of path scenarios only:
``−Σ q·m·ΔP`` of the path's own price moves, and ``−N·(g − 1)`` of its holder shocks on
non-tradable holdings N growing by g, taken from ``equity_end``).
"""

from __future__ import annotations

import polars as pl

from estimator.keys import CODE
from rules import Book
from rules.redemption import PAID

ROUND, DAY = "round", "day"
LOSSES = ("loss_impact", "loss_execution", "loss_lending")
#: A dated path's moves on the holdings (:mod:`estimator.path`).
PATH = "loss_path"
#: The balance-sheet report's columns, in order.
COLUMNS = [
    ROUND,
    DAY,
    "holder_id",
    "status",
    "equity",
    "total_assets",
    "leverage",
    "balance_sheet_leverage",
    "exposure_leverage",
    "outflow",
    "sold",
    "bought",
    "loss_shock",
    *LOSSES,
    "equity_end",
]


def _per_equity(assets: pl.Expr) -> pl.Expr:
    equity = pl.col(f"{Book.EQUITY}_before")
    return pl.when(equity > 0).then(assets / equity)


def round_losses(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Per (holder, round): the losses of :data:`LOSSES` booked in the round, summed over the
    frames (each with ``holder_id``, ``round`` and some of the loss columns)."""
    empty = pl.DataFrame(schema={"holder_id": CODE, ROUND: pl.Int32} | dict.fromkeys(LOSSES))
    empty = empty.cast(dict.fromkeys(LOSSES, pl.Float64))
    booked = [*LOSSES, *([PATH] if any(PATH in f.columns for f in frames) else [])]
    return (
        pl.concat([empty, *frames], how="diagonal_relaxed")
        .select("holder_id", ROUND, *booked)
        .group_by("holder_id", ROUND)
        .agg(pl.col(booked).fill_null(0.0).sum())
    )


def balance_sheets(
    holder_rounds: pl.DataFrame,
    losses: pl.DataFrame,
    direct: pl.DataFrame,
    paid_before: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The table of the module docstring from a cascade's holder tables (``holder_rounds``:
    one per round, with ``round``, ``day``, ``status``, ``equity_before``, ``equity_after``,
    ``gross_assets_before``, ``gross_exposure_before``, ``cash_before``, ``leverage_before``,
    ``long_cash_exposure``, ``non_tradable``, ``sold``, ``bought``), its losses by round
    (:func:`round_losses`), the shocks' losses (``holder_id``, ``loss_direct``) and the cash
    paid out before the episode (``paid_before``: ``holder_id``, ``redemption.paid``; 0
    without it). Joined by (holder, round); sorted by round, day and holder by the caller."""
    first = holder_rounds[ROUND].min()
    if PAID in holder_rounds.columns:
        before = (
            paid_before.select("holder_id", _start=PAID)
            if paid_before is not None and PAID in paid_before.columns
            else holder_rounds.select("holder_id", _start=pl.lit(0.0)).unique()
        )
        paid = (
            holder_rounds.select("holder_id", ROUND, _paid=pl.col(PAID).fill_null(0.0))
            .join(before, on="holder_id", how="left")
            .sort("holder_id", ROUND)
            .with_columns(
                outflow=pl.col("_paid")
                - pl.col("_paid")
                .shift(1)
                .over("holder_id")
                .fill_null(pl.col("_start").fill_null(0.0))
            )
            .select("holder_id", ROUND, "outflow")
        )
    else:
        paid = holder_rounds.select("holder_id", ROUND, outflow=pl.lit(0.0))
    return (
        holder_rounds.select(
            ROUND,
            DAY,
            "holder_id",
            "status",
            equity=f"{Book.EQUITY}_before",
            total_assets=f"{Book.GROSS_ASSETS}_before",
            leverage="leverage_before",
            balance_sheet_leverage=_per_equity(
                pl.col(Book.LONG_CASH)
                + pl.col(Book.NON_TRADABLE)
                + pl.col(f"{Book.CASH}_before").clip(lower_bound=0.0)
            ),
            exposure_leverage=_per_equity(
                pl.col(f"{Book.GROSS_EXPOSURE}_before") + pl.col(Book.NON_TRADABLE)
            ),
            sold="sold",
            bought="bought",
            _after=f"{Book.EQUITY}_after",
        )
        .join(losses, on=["holder_id", ROUND], how="left")
        .join(paid, on=["holder_id", ROUND], how="left")
        .join(direct, on="holder_id", how="left")
        .with_columns(
            pl.col(*LOSSES, "outflow").fill_null(0.0),
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
        .pipe(_with_path)
    )


def _with_path(table: pl.DataFrame) -> pl.DataFrame:
    """The report's columns; on a dated path also ``loss_path``, the next open's move on the
    holdings (booked in the day's last round), taken from ``equity_end``."""
    if PATH not in table.columns:
        return table.select(COLUMNS)
    at = COLUMNS.index("loss_lending") + 1
    return table.with_columns(
        pl.col(PATH).fill_null(0.0), equity_end=pl.col("equity_end") - pl.col(PATH).fill_null(0.0)
    ).select(*COLUMNS[:at], PATH, *COLUMNS[at:])
