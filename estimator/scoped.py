"""Rule inputs that live on positions: per-holder sums, flags before the round, and the
closed-form trades of position rules (:class:`rules.PositionRule`).

Every function works on one mandate's holders: rules are per mandate, so a rule's own columns
(e.g. ``rating_floor.selected``) exist only on that mandate's frames.
"""

from __future__ import annotations

import polars as pl

from estimator import book as bk
from estimator.mandates import Mandate
from rules import Book, Level, PositionRule, RuleBase, book_scale

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
SCALE_BEFORE = "scale_before"  # max(Σ|x|, |E|) before the round, the yardstick of tolerances


def position_rules(mandate: Mandate) -> list[PositionRule]:
    return [r for r in mandate.rules if isinstance(r, PositionRule)]


def scale_rules(mandate: Mandate) -> list[RuleBase]:
    return [r for r in mandate.rules if not isinstance(r, PositionRule)]


def by_mandate(
    pos: pl.DataFrame, book: pl.DataFrame
) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    """Positions and book rows split by the holders' mandate, in mandate-name order."""
    out = {}
    for (name,), rows in sorted(book.partition_by("mandate", as_dict=True).items()):
        mine = pl.col("holder_id").is_in(rows["holder_id"].implode())
        out[name] = (pos.filter(mine), rows)
    return out


def rule_frames(
    pos_m: pl.DataFrame, book_m: pl.DataFrame, mandate: Mandate
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The positions of one mandate's holders (``pos_m``, ``book_m``: see :func:`by_mandate`)
    with its position rules' columns, and the book rows with the rules' per-holder sums (0 for
    holders without flagged positions)."""
    rules = position_rules(mandate)
    if not rules:
        return pos_m, book_m
    pos_m = pos_m.with_columns(**{k: v for r in rules for k, v in r.position_columns().items()})
    aggs = {k: v for r in rules for k, v in r.holder_sums().items()}
    sums = pos_m.group_by("holder_id").agg(**aggs)
    book_m = book_m.join(sums, on="holder_id", how="left").with_columns(
        pl.col(list(aggs)).fill_null(0.0)
    )
    return pos_m, book_m


def annotate(book_m: pl.DataFrame, mandate: Mandate) -> pl.DataFrame:
    """Columns fixed at the start of the round: the balance sheet and every rule's metric before
    (``*_before``), the scale of tolerances, and the position rules' trigger flags."""
    solvent = pl.col(Book.EQUITY) > 0
    return book_m.with_columns(
        *[pl.col(c).alias(f"{c}_before") for c in BEFORE],
        **{SCALE_BEFORE: pl.max_horizontal(book_scale(), 1e-9)},
        **{f"{r.kind}.metric_before": r.metric() for r in mandate.rules},
        **{f"{r.kind}.down": r.triggered() & solvent for r in position_rules(mandate)},
    )


def fixed_columns(annotated: pl.DataFrame) -> list[str]:
    """The columns :func:`annotate` added."""
    return [c for c in annotated.columns if c.endswith(("_before", ".down")) or c == SCALE_BEFORE]


def allocate(
    pos_m: pl.DataFrame, book_m: pl.DataFrame, holders_m: pl.DataFrame, mandate: Mandate
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the position rules' pro-rata trades in turn, re-marking the book after each.

    A rule acts where it triggered at the start of the round (``{kind}.down``) and trades to its
    restore level on the book as the earlier rules left it. Returns the positions (exposure and
    value moved; ``exposure_start``, the exposure at the start of the round, kept) and the
    re-marked book (cash moved), with the annotated columns carried over.
    """
    fixed = book_m.select("holder_id", *fixed_columns(book_m))
    for rule in position_rules(mandate):
        flag = f"{rule.kind}.down"
        joined = pos_m.join(book_m.select("holder_id", *_book_columns(book_m)), on="holder_id")
        trade = pl.when(pl.col(flag)).then(rule.trade(Level.RESTORE)).otherwise(0.0)
        pos_m = (
            joined.with_columns(_trade=trade)
            .select(*pos_m.columns, "_trade")
            .with_columns(exposure=pl.col("exposure") + pl.col("_trade"))
            .with_columns(value=pl.when(pl.col("is_cash")).then(pl.col("exposure")).otherwise(0.0))
        )
        cash_out = pos_m.group_by("holder_id").agg(
            _out=(pl.col("_trade") * pl.col("is_cash")).sum()
        )
        holders_m = (
            holders_m.join(cash_out, on="holder_id", how="left")
            .with_columns(pl.col(Book.CASH) - pl.col("_out").fill_null(0.0))
            .drop("_out")
        )
        pos_m = pos_m.drop("_trade")
        book_m = _remark(pos_m, holders_m, mandate).join(fixed, on="holder_id")
    return pos_m, book_m


def _remark(pos_m: pl.DataFrame, holders_m: pl.DataFrame, mandate: Mandate) -> pl.DataFrame:
    rules = position_rules(mandate)
    own = [k for r in rules for k in r.position_columns()]
    book = bk.holder_book(pos_m.drop(own), holders_m)
    return rule_frames(pos_m.drop(own), book, mandate)[1]


def _book_columns(book_m: pl.DataFrame) -> list[str]:
    """Holder-level columns a position rule's trade may read (the book, its sums and flags)."""
    return [c for c in book_m.columns if c not in ("holder_id", "mandate", "holder_type")]
