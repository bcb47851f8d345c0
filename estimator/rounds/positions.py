"""Positions: the position rules' closed-form trades, each on the book the earlier ones left,
and the pro-rata scale of the re-marked book (:class:`rules.PositionRule`)."""

from __future__ import annotations

import polars as pl

from estimator import book as bk
from estimator import keys
from estimator.mandates import Mandate
from estimator.rounds.contract import ROW, MandateRound
from estimator.rounds.decide import cure_positions, decide
from estimator.rounds.frames import fixed_columns, position_rules, rule_frames
from rules import Book, Level, RuleColumns


def pro_rata(
    pos_m: pl.DataFrame | None,
    book_m: pl.DataFrame,
    holders_m: pl.DataFrame,
    mandate: Mandate,
    assets: pl.DataFrame,
) -> MandateRound:
    """Position rules' trades, then the common scale of the re-marked book:
    ``u = f·x¹ − x⁰ = (x¹ − x⁰) + (f − 1)·x¹`` with ``x¹`` the exposures after the position
    rules (``pos_m`` is None for a mandate without position rules: then ``x¹ = x⁰``); the
    first term is the position rules' part of the trade, the second the whole-book scaling's."""
    if pos_m is None:
        return MandateRound(decide(book_m, mandate))
    book_m, holders_m = cure_positions(book_m, holders_m, mandate)
    pos1, book1, moved = allocate(pos_m, book_m, holders_m, mandate, assets)
    decisions = decide(book1, mandate, cure_positions=False)
    decisions = (  # cash before any trade (cures included); the trades settle in the settle stage
        decisions.join(moved, on="holder_id", how="left")
        .with_columns(pl.col(Book.CASH) + pl.col("cash_moved").fill_null(0.0))
        .drop("cash_moved")
    )
    traded = keys.broadcast(decisions, ["scale_factor"], pos1).select(
        "holder_id",
        ROW,
        trade_value=pl.col("scale_factor") * pl.col("exposure") - pl.col("exposure_start"),
        position_value=pl.col("exposure") - pl.col("exposure_start"),
    )
    unscaled = decisions.filter(pl.col("scale_factor") == 1.0).select("holder_id")
    sums = book1.join(unscaled, on="holder_id", how="semi").select(
        "holder_id", *sums_names(mandate)
    )
    return MandateRound(decisions, traded, sums)


def sums_names(mandate: Mandate) -> list[str]:
    """Names of the position rules' per-holder sums."""
    return [k for r in position_rules(mandate) for k in r.holder_sums()]


def allocate(
    pos_m: pl.DataFrame,
    book_m: pl.DataFrame,
    holders_m: pl.DataFrame,
    mandate: Mandate,
    assets: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Apply the position rules' pro-rata trades in turn, re-marking the book after each.

    A rule acts where it triggered at the start of the round (``{kind}.down``) and trades to its
    restore level on the book as the earlier rules left it. Returns the positions (exposure
    moved; ``exposure_start``, the exposure at the start of the round, kept) and the
    re-marked book (cash moved), with the annotated columns carried over, and per holder the
    cash the trades moved out, ``cash_moved = Σ u·c`` (``c`` = 1 for cash instruments).
    """
    fixed = book_m.select("holder_id", *fixed_columns(book_m))
    moved = []
    for rule in position_rules(mandate):
        flag = rule.col.down
        trade = pl.when(pl.col(flag)).then(rule.trade(Level.RESTORE)).otherwise(0.0)
        inputs = book_m.with_columns(**rule.trade_inputs(Level.RESTORE))
        joined = keys.broadcast(inputs, _book_columns(inputs, trade), pos_m)
        pos_m = (
            joined.with_columns(_trade=trade)
            .select(*pos_m.columns, "_trade")
            .with_columns(exposure=pl.col("exposure") + pl.col("_trade"))
        )
        cash_out = pos_m.group_by("holder_id").agg(
            _out=(pl.col("_trade") * pl.col("is_cash")).sum()
        )
        moved.append(cash_out)
        holders_m = (
            holders_m.join(cash_out, on="holder_id", how="left")
            .with_columns(pl.col(Book.CASH) - pl.col("_out").fill_null(0.0))
            .drop("_out")
        )
        pos_m = pos_m.drop("_trade")
        remarked = _remark(pos_m, holders_m, mandate, assets)
        memo = [c for c in remarked.columns if c.endswith(RuleColumns.MEMO)]  # the round's own
        book_m = remarked.drop(memo).join(fixed, on="holder_id")
    cash = (
        moved[0] if len(moved) == 1 else pl.concat(moved).group_by("holder_id").agg(pl.sum("_out"))
    )
    return pos_m, book_m, cash.rename({"_out": "cash_moved"})


def _remark(
    pos_m: pl.DataFrame, holders_m: pl.DataFrame, mandate: Mandate, assets: pl.DataFrame
) -> pl.DataFrame:
    rules = position_rules(mandate)
    own = [k for r in rules for k in r.position_columns()]
    book = bk.holder_book(pos_m.drop(own), holders_m, assets)
    return rule_frames(pos_m.drop(own), book, mandate, assets)[1]


def _book_columns(book_m: pl.DataFrame, trade: pl.Expr) -> list[str]:
    """Holder-level columns (the book, its sums and flags) a position rule's trade reads."""
    roots = set(trade.meta.root_names())
    return [c for c in book_m.columns if c in roots and c != "holder_id"]
