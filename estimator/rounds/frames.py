"""The round's frames: positions and books split by mandate, with the columns each mandate's
rules read.

Every function but :func:`open_round` works on one mandate's holders: rules are per mandate,
so a rule's own columns (e.g. ``rating_floor.selected``) exist only on that mandate's frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from estimator import book as bk
from estimator import indices, keys
from estimator.mandates import CURE_COLUMNS, Mandate
from estimator.rounds.contract import BEFORE, ROW, SCALE_BEFORE
from rules import (
    Book,
    Level,
    PositionRule,
    RuleBase,
    RuleColumns,
    book_scale,
    exceeds,
    placed,
    with_position_columns,
)


@dataclass(frozen=True)
class Opened:
    """A round's frames before any rule is read: ``pos`` the position rows in (holder, asset)
    order (coded; ``exposure_start`` kept, ``row`` numbered), ``pattern`` their
    :class:`~estimator.book.Pattern`, ``book`` one row per holder, ``holders`` with defaults."""

    pos: pl.DataFrame
    pattern: bk.Pattern
    book: pl.DataFrame
    holders: pl.DataFrame


def open_round(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
) -> Opened:
    """The frames of a round on coded ``assets``, ``holders`` and ``positions``: index
    trackers' missing constituents padded in at zero, every position valued, every book
    summed."""
    positions = indices.pad_positions(positions, holders, mandates, assets)  # (holder, asset)
    pos = bk.position_frame(positions, assets, columns=[]).with_columns(  # keeps the order
        pl.col(keys.HOLDER).set_sorted(), exposure_start=pl.col("exposure")
    )
    pos = pos.with_row_index(ROW)
    pattern = bk.Pattern(pos)  # the same rows before and after the trades
    holders = with_memory(bk.with_defaults(holders), mandates)
    return Opened(pos, pattern, bk.holder_book(pos, holders, assets, pattern), holders)


def with_memory(holders: pl.DataFrame, mandates: dict[str, Mandate]) -> pl.DataFrame:
    """``holders`` with every rule's memory column (:meth:`rules.RuleBase.memory`), null
    where none is remembered yet."""
    names = sorted({k for m in mandates.values() for r in m.rules for k in r.memory()})
    missing = [k for k in names if k not in holders.columns]
    return holders.with_columns(pl.lit(None, pl.Float64).alias(k) for k in missing)


def position_rules(mandate: Mandate) -> list[PositionRule]:
    return [r for r in mandate.rules if placed(r)]


def scale_rules(mandate: Mandate) -> list[RuleBase]:
    return [r for r in mandate.rules if not placed(r)]


def asset_reads(mandate: Mandate, assets: pl.DataFrame) -> list[str]:
    """The asset columns the mandate's position-level expressions read (e.g. ratings, asset
    class, index weights): the roots of its rules' position columns, sums, trades and
    per-position solve inputs."""
    exprs: list[pl.Expr] = []
    for rule in mandate.rules:
        for level in Level:
            exprs += rule.position_inputs(level).values()
        if placed(rule):
            exprs += [*rule.position_columns().values(), *rule.holder_sums().values()]
            exprs += [rule.trade(level) for level in Level]
    roots = {name for e in exprs for name in e.meta.root_names()}
    return [c for c in assets.columns if c in roots and c != "asset_id"]


def with_asset_columns(pos_m: pl.DataFrame, assets: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """``pos_m`` with the asset columns ``names`` it does not carry yet, joined by asset_id."""
    missing = [c for c in names if c not in pos_m.columns]
    return keys.broadcast(assets, missing, pos_m, key=keys.ASSET)


def by_mandate(
    pos: pl.DataFrame, book: pl.DataFrame, with_rows: set[str]
) -> dict[str, tuple[pl.DataFrame | None, pl.DataFrame]]:
    """Book rows split by the holders' mandate, in mandate-name order (coded frames), with
    the position rows of the mandates in ``with_rows`` (in (holder, asset) order; None for
    the other mandates, whose rules read only the book).

    Holder codes number holders mandate by mandate (:mod:`estimator.keys`), so a mandate's
    rows are a contiguous slice of ``pos`` when it is in holder order: found by binary search
    and taken without a copy. Otherwise they are filtered."""
    books = book.partition_by("mandate", as_dict=True)
    holder = pos["holder_id"]
    ordered = holder.flags["SORTED_ASC"] and not holder.has_nulls()
    out = {}
    for (name,), rows in sorted(books.items()):
        if name not in with_rows:
            out[name] = (None, rows)
            continue
        lo, hi = rows["holder_id"].min(), rows["holder_id"].max()
        if ordered and hi - lo + 1 == rows.height:  # one row per holder: a block
            start, stop = keys.span(pos, lo, hi)
            out[name] = (pos.slice(start, stop - start), rows)
        else:
            mine = pl.col("holder_id").is_in(rows["holder_id"].implode())
            out[name] = (keys.by_holder(pos.filter(mine)), rows)
    return out


def rule_frames(
    pos_m: pl.DataFrame, book_m: pl.DataFrame, mandate: Mandate, assets: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The positions of one mandate's holders (``pos_m``, ``book_m``: see :func:`by_mandate`)
    with the asset columns and position rules' columns the mandate reads, and the book rows
    with the rules' per-holder sums (0 for holders without flagged positions)."""
    if "price_pre" not in assets.columns:  # a book under no scenario: no price has moved
        assets = assets.with_columns(price_pre=pl.col("price"))
    table = assets.with_columns(  # per-asset work is done once per asset, not per position
        **{k: v for r in position_rules(mandate) for k, v in r.asset_columns().items()}
    )
    pos_m = with_asset_columns(pos_m, table, asset_reads(mandate, table))
    rules = position_rules(mandate)
    if not rules:
        return pos_m, book_m
    # the holder columns the flags read (e.g. the accounts a row stands for)
    reads = {n for r in rules for e in r.position_columns().values() for n in e.meta.root_names()}
    held = [c for c in book_m.columns if c in reads and c not in pos_m.columns]
    pos_m = with_position_columns(keys.broadcast(book_m, held, pos_m), rules)
    aggs = {k: v for r in rules for k, v in r.holder_sums().items()}
    sums = pos_m.group_by("holder_id").agg(**aggs)
    book_m = book_m.join(sums, on="holder_id", how="left").with_columns(
        pl.col(list(aggs)).fill_null(0.0)
    )
    return pos_m, book_m


def annotate(book_m: pl.DataFrame, mandate: Mandate) -> pl.DataFrame:
    """Columns fixed at the start of the round: the balance sheet and every rule's metric before
    (``*_before``), the scale of tolerances, and the position rules' trigger flags, after the
    rules' memory is set for the round (:meth:`rules.RuleBase.memory`) — on a day
    clock, a position rule whose paced trade is under way (:meth:`rules.Book.committed_by`)
    goes on to its restore level."""
    solvent = pl.col(Book.EQUITY) > 0
    memory = {k: v for r in mandate.rules for k, v in r.memory().items()}
    if memory:  # the decisions the rules read this round
        book_m = book_m.with_columns(**memory)
    return book_m.with_columns(
        *[pl.col(c).alias(f"{c}_before") for c in BEFORE],
        **{SCALE_BEFORE: pl.max_horizontal(book_scale(), 1e-9)},
        **{r.col.metric_before: r.metric() for r in mandate.rules},
        **{r.col.down: _down(r) & solvent for r in position_rules(mandate)},
    )


def _down(rule: PositionRule) -> pl.Expr:
    """``down = triggered ∨ (committed_r ∧ breach_r(restore) > ε)``: the rule acts when it is
    triggered, or while a paced trade it started is under way and its restore level is not
    met (a rebalancing band also latches its classes to target itself, ``_latched``)."""
    going = pl.col(Book.committed_by(rule.kind)) > 0
    return rule.triggered() | (going & exceeds(rule.breach(Level.RESTORE)))


def fixed_columns(annotated: pl.DataFrame) -> list[str]:
    """The columns :func:`annotate` added, and the cures drawn before the position rules
    trade (:func:`cure_positions`)."""
    cures = set(CURE_COLUMNS.values())
    return [
        c
        for c in annotated.columns
        if c.endswith(("_before", RuleColumns.FLAGS[0], *RuleColumns.CURES, RuleColumns.MEMO))
        or c == SCALE_BEFORE
        or c in cures
    ]
