"""Decide: pay outflows, draw cures, and give each holder its scale of the book.

Decision per holder (vectorised per mandate):

1. ``E ≤ 0`` → ``insolvent``: liquidate everything tradable, shortfall ``−E``.
2. Triggered rules (breach at the trigger level) that cash restores may first be cured (reserve,
   credit line, capital call, in the mandate's order) up to what the restore level needs:
   position rules' needs before they trade, whole-book rules' after (:func:`draw_cures`).
3. Each rule r gives ``f_r``, the largest scale of the whole book at which it holds — at its
   restore level if triggered, at its trigger level otherwise. ``f* = min_r f_r``.
   De-risking: ``f = clip(f*, 0, 1)``; ``f* < 0`` means no sale complies → liquidate.
   Re-risking only (no rule forces a sale): ``f = max(f*, 1)``. A scale within ``NOISE`` of 1
   is 1: a cure that exactly meets the need leaves nothing to sell.
"""

from __future__ import annotations

import polars as pl

from estimator import book as bk
from estimator.mandates import CURE_COLUMNS, Cure, Mandate, available
from estimator.rounds.contract import COMMITTED
from estimator.rounds.frames import position_rules, scale_rules
from rules import NOISE, Book, Level, RuleBase, RuleColumns, exceeds


def _names(flags: dict[str, pl.Expr]) -> pl.Expr:
    if not flags:
        return pl.lit("")
    parts = [pl.when(v).then(pl.lit(k)) for k, v in flags.items()]
    return pl.concat_str(parts, separator=";", ignore_nulls=True)  # "" when no flag is set


def at_level(rule: RuleBase, active: pl.Expr, method: str) -> pl.Expr:
    """``rule.method`` at its restore level where ``active``, at its trigger level elsewhere."""
    fn = getattr(rule, method)
    return pl.when(active).then(fn(Level.RESTORE)).otherwise(fn(Level.TRIGGER))


def decide(book: pl.DataFrame, mandate: Mandate, *, cure_positions: bool = True) -> pl.DataFrame:
    """Decisions for the holders of one mandate (``book``: their rows, annotated by
    :func:`~estimator.rounds.frames.annotate`).

    Position rules come with their trigger flags (``{kind}.down``); whole-book rules are
    evaluated here on ``book`` and give the common scale. Cures are drawn for the whole-book
    rules' needs and, with ``cure_positions``, for the position rules' too (without: they were
    drawn before the position rules traded, :func:`draw_cures`).
    """
    rules = scale_rules(mandate)
    placed = position_rules(mandate)
    E = pl.col(Book.EQUITY)
    # a holder part-way through a paced sale (the day clock) goes on to its restore level
    committed = pl.col(COMMITTED) if COMMITTED in book.columns else pl.lit(False)
    out = book.with_columns(
        insolvent=E <= 0,
        **{
            r.col.down: (r.triggered() | (committed & exceeds(r.breach(Level.RESTORE)))) & (E > 0)
            for r in rules
        },
        **{r.col.up: r.triggered_up() & (E > 0) for r in rules},
    )
    kinds = [r.kind for r in mandate.rules]
    any_down = pl.any_horizontal([pl.col(RuleColumns.of(k).down) for k in kinds])
    any_up = pl.any_horizontal([pl.lit(False), *[pl.col(r.col.up) for r in rules]])
    out = out.with_columns(
        any_down=any_down,
        any_up=any_up & ~any_down,
        positions_down=pl.any_horizontal([pl.lit(False), *[pl.col(r.col.down) for r in placed]]),
    )
    out = draw_cures(out, mandate, [*rules, *(placed if cure_positions else [])])
    active = {r.kind: pl.col(r.col.down) | pl.col(r.col.up) for r in rules}
    active |= {r.kind: pl.col(r.col.down) for r in placed}
    out = out.with_columns(
        **{r.col.f: at_level(r, active[r.kind], "fraction") for r in rules},
    )
    for r in mandate.rules:
        restore, trigger = r.holder_inputs(Level.RESTORE), r.holder_inputs(Level.TRIGGER)
        out = out.with_columns(
            pl.when(active[r.kind]).then(restore[name]).otherwise(trigger[name]).alias(name)
            for name in restore
        )
    f_star = pl.min_horizontal([pl.lit(float("inf")), *[pl.col(r.col.f) for r in rules]])
    f = (
        pl.when(pl.col("insolvent"))
        .then(0.0)
        .when((f_star - 1.0).abs() <= NOISE)
        .then(1.0)
        .when(pl.col("any_down"))
        .then(f_star.clip(0.0, 1.0))
        .when(pl.col("any_up"))
        .then(pl.max_horizontal(f_star, 1.0))
        .otherwise(1.0)
    )
    out = out.with_columns(f_star=f_star).with_columns(
        scale_factor=f,
        infeasible=pl.col("any_down") & (pl.col("f_star") < 0)
        | pl.any_horizontal(
            [
                pl.lit(False),
                *[pl.col(r.col.down) & ~r.attainable(Level.RESTORE) for r in placed],
            ]
        ),
    )
    tight = {
        r.kind: (pl.col("scale_factor") != 1.0)
        & ~pl.col("insolvent")
        & ((pl.col(r.col.f) - pl.col("f_star")).abs() <= 1e-9 * pl.col("f_star").abs().clip(1.0))
        for r in rules
    }
    tight |= {r.kind: pl.col(r.col.down) & ~pl.col("insolvent") for r in placed}
    return out.with_columns(
        triggered_rules=_names({k: active[k] for k in kinds}),
        binding_rules=_names({k: tight[k] for k in kinds}),
        position_rules=_names({r.kind: tight[r.kind] for r in placed}),
        mandate_execution=pl.lit(mandate.execution.value),
    )


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


def pay_outflows(
    book: pl.DataFrame, holders: pl.DataFrame, mandates: dict[str, Mandate]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pay the round's outflows (:meth:`rules.RuleBase.outflow`, e.g. redemptions) out of cash
    before any rule is evaluated: ``C ← C − R`` on the book (re-stated: ``E``, ``AE``, ``A``
    fall with it) and on the holders, whose rule state moves on (:meth:`state_after`)."""
    paying = {name: [r for r in m.rules if r.outflow() is not None] for name, m in mandates.items()}
    paying = {name: rules for name, rules in paying.items() if rules}
    if not paying:
        return book, holders
    mine = {name: pl.col("mandate") == name for name in paying}
    outflow = pl.lit(0.0)
    state: dict[str, pl.Expr] = {}
    for name, rules in paying.items():
        for rule in rules:
            outflow = outflow + pl.when(mine[name]).then(rule.outflow()).otherwise(0.0)
            for col, expr in rule.state_after().items():
                state[col] = pl.when(mine[name]).then(expr).otherwise(state.get(col, pl.col(col)))
    paid = book.select("holder_id", _paid=outflow.fill_null(0.0), **state)
    book = bk.restate(  # every expression reads the book as it was: state before the payment
        book.with_columns(**state, **{Book.CASH: pl.col(Book.CASH) - outflow.fill_null(0.0)})
    )
    holders = (
        holders.drop(*state)
        .join(paid, on="holder_id", how="left", maintain_order="left")
        .with_columns(pl.col(Book.CASH) - pl.col("_paid").fill_null(0.0))
        .select(holders.columns)
    )
    return book, holders
