"""Rule inputs that live on positions: per-holder sums, flags before the round, and the
closed-form trades of position rules (:class:`rules.PositionRule`).

Every function works on one mandate's holders: rules are per mandate, so a rule's own columns
(e.g. ``rating_floor.selected``) exist only on that mandate's frames.
"""

from __future__ import annotations

import polars as pl

from estimator import book as bk
from estimator import keys
from estimator.mandates import CURE_COLUMNS, Cure, Mandate, available
from rules import (
    Book,
    Level,
    PositionRule,
    RuleBase,
    RuleColumns,
    book_scale,
    placed,
    with_position_columns,
)

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
    table = assets.with_columns(  # per-asset work is done once per asset, not per position
        **{k: v for r in position_rules(mandate) for k, v in r.asset_columns().items()}
    )
    pos_m = with_asset_columns(pos_m, table, asset_reads(mandate, table))
    rules = position_rules(mandate)
    if not rules:
        return pos_m, book_m
    pos_m = with_position_columns(pos_m, rules)
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
        **{r.col.metric_before: r.metric() for r in mandate.rules},
        **{r.col.down: r.triggered() & solvent for r in position_rules(mandate)},
    )


def fixed_columns(annotated: pl.DataFrame) -> list[str]:
    """The columns :func:`annotate` added, and the cures drawn before the position rules
    trade (:func:`cure_positions`)."""
    cures = set(CURE_COLUMNS.values())
    return [
        c
        for c in annotated.columns
        if c.endswith(("_before", RuleColumns.FLAGS[0], *RuleColumns.CURES))
        or c == SCALE_BEFORE
        or c in cures
    ]


def draw_cures(book: pl.DataFrame, mandate: Mandate, rules: list[RuleBase]) -> pl.DataFrame:
    """``book`` with the cash needs of ``rules`` met from the mandate's cure sources, in order.

    Each rule cash can restore (:attr:`rules.RuleBase.cured_with_cash`) whose ``{kind}.down``
    flag is set needs ``k_r`` (its ``cure_need`` at its restore level, on ``book``; reported
    as ``{kind}.cure_need``). Sources are drawn in the mandate's order, each for the rules it
    restores (:attr:`rules.RuleBase.cure_sources`: a credit line adds debt as well as cash, so
    it does not restore a rule on equity): source s gives ``min(room_s, max_r k_r')`` over
    those rules, with ``k_r'`` what rule r still needs, and one draw serves all of them. A
    source's room is what it has left after earlier draws of the round (the ``cure_*``
    columns, if any). Cash rises by the draws, other debt by the credit-line part; each rule's
    share is ``{kind}.cured = k_r − k_r'`` at the end; the balance sheet is restated."""
    cash_rules = [r for r in rules if r.cured_with_cash]
    out = book.with_columns(
        pl.when(pl.col(r.col.down))
        .then(r.cure_need(Level.RESTORE))
        .otherwise(0.0)
        .alias(r.col.cure_need)
        for r in cash_rules
    )
    before = {s: pl.col(c) if c in out.columns else pl.lit(0.0) for s, c in CURE_COLUMNS.items()}
    still = {r.kind: pl.col(r.col.cure_need) for r in cash_rules}
    drawn: dict[Cure, pl.Expr] = {}
    for source in mandate.cure:
        served = [r.kind for r in cash_rules if source.value in r.cure_sources]
        if not served:
            continue
        room = (available(source, mandate) - before[source]).clip(lower_bound=0.0)
        drawn[source] = pl.min_horizontal(room, pl.max_horizontal(still[k] for k in served))
        for k in served:
            still[k] = (still[k] - drawn[source]).clip(lower_bound=0.0)
    new = {f"_{c}": drawn.get(s, pl.lit(0.0)) for s, c in CURE_COLUMNS.items()}
    out = out.with_columns(**new).with_columns(
        *[(before[s] + pl.col(f"_{c}")).alias(c) for s, c in CURE_COLUMNS.items()],
        pl.col(Book.CASH) + pl.sum_horizontal([pl.col(n) for n in new]),
        pl.col(Book.OTHER_DEBT) + pl.col(f"_{CURE_COLUMNS[Cure.CREDIT_LINE]}"),
        *[
            (pl.col(RuleColumns.of(k).cure_need) - v).alias(RuleColumns.of(k).cured)
            for k, v in still.items()
        ],
    )
    return bk.restate(out.drop(list(new)))


def cure_positions(
    book_m: pl.DataFrame, holders_m: pl.DataFrame, mandate: Mandate
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The book and holder rows of one mandate once cash is drawn for its position rules'
    needs (:func:`draw_cures`), before those rules trade: a rule restored by cash sells
    nothing, one part-restored sells less."""
    placed = [r for r in position_rules(mandate) if r.cured_with_cash]
    if not placed:
        return book_m, holders_m
    book_m = draw_cures(book_m, mandate, placed)
    cash = book_m.select("holder_id", Book.CASH, Book.OTHER_DEBT)
    holders_m = (
        holders_m.drop(Book.CASH, Book.OTHER_DEBT)
        .join(cash, on="holder_id", how="left", maintain_order="left")
        .select(holders_m.columns)
    )
    return book_m, holders_m


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
        book_m = _remark(pos_m, holders_m, mandate, assets).join(fixed, on="holder_id")
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
