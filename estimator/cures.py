"""How much of each deficiency was cured with cash and how much was left to forced trades.

One row per holder, round and rule that fired (``{kind}.down`` in the round's holder table):

* ``need`` — the cash that, brought in, would restore the rule on its own (its
  :meth:`~rules.RuleBase.cure_need`, on the book the rule is decided on: for whole-book rules
  under pro-rata execution, after the position rules' trades); empty for rules cash cannot
  restore (a volatility target, a leverage limit, a rating floor, …);
* ``cured`` — the part of it the cash the holder drew that round (reserve, credit line,
  capital call, in the mandate's order, from the sources that restore the rule) covered: one
  draw serves every rule it restores (:func:`estimator.rounds.decide.draw_cures`);
* ``remaining = need − cured`` — the part of the deficiency, in cash, left to forced trades;
* ``traded`` — the value of the holder's trades that round that name the rule, ``Σ |u|`` over
  trades whose ``rules`` include it (a trade naming two rules counts for both).

:func:`totals` sums, per holder and round, the cash drawn and the largest remaining deficiency
(the cash one more draw would have needed to spare every forced trade a rule cash can restore).
"""

from __future__ import annotations

import math

import polars as pl

from estimator.mandates import CURE_COLUMNS, Mandate
from rules import RuleColumns

ROUND = "round"
COLUMNS = ["holder_id", ROUND, "rule", "need", "cured", "remaining", "traded"]
SCHEMA = {
    "holder_id": pl.String,
    ROUND: pl.Int32,
    "rule": pl.String,
    "need": pl.Float64,
    "cured": pl.Float64,
    "remaining": pl.Float64,
    "traded": pl.Float64,
}


def cure_table(
    holder_rounds: pl.DataFrame, trades: pl.DataFrame, mandates: dict[str, Mandate]
) -> pl.DataFrame:
    """The table of the module docstring from the rounds' holder tables and trades (both with
    a ``round`` column, or none for a single round)."""
    if ROUND not in holder_rounds.columns:
        holder_rounds = holder_rounds.with_columns(pl.lit(1, pl.Int32).alias(ROUND))
    if ROUND not in trades.columns:
        trades = trades.with_columns(pl.lit(1, pl.Int32).alias(ROUND))
    kinds = sorted({r.kind for m in mandates.values() for r in m.rules})
    cash = {r.kind for m in mandates.values() for r in m.rules if r.cured_with_cash}
    parts = []
    for kind in kinds:
        col = RuleColumns.of(kind)
        flag = col.down
        if flag not in holder_rounds.columns:
            continue
        need_col, cured_col = col.cure_need, col.cured
        known = kind in cash and need_col in holder_rounds.columns
        need = pl.col(need_col).fill_null(0.0) if known else pl.lit(None, pl.Float64)
        cured = pl.col(cured_col).fill_null(0.0) if known else pl.lit(None, pl.Float64)
        parts.append(
            holder_rounds.filter(pl.col(flag).fill_null(False)).select(
                "holder_id",
                pl.col(ROUND).cast(pl.Int32),
                rule=pl.lit(kind),
                need=need,
                cured=cured,
            )
        )
    if not parts:
        return pl.DataFrame(schema=SCHEMA)
    traded = (
        trades.select(
            "holder_id",
            pl.col(ROUND).cast(pl.Int32),
            rule=pl.col("rules").cast(pl.String).str.split(";"),
            value=pl.col("trade_value").abs(),
        )
        .explode("rule")
        .group_by("holder_id", ROUND, "rule")
        .agg(traded=pl.col("value").sum())
    )
    return (
        pl.concat(parts)
        .with_columns(remaining=pl.col("need") - pl.col("cured"))
        .join(traded, on=["holder_id", ROUND, "rule"], how="left")
        .with_columns(pl.col("traded").fill_null(0.0))
        .select(COLUMNS)
        .sort("holder_id", ROUND, "rule")
    )


def totals(holder_rounds: pl.DataFrame, cures: pl.DataFrame) -> dict[str, float]:
    """``drawn``: the cash drawn over every holder and round; ``short``: per holder and round
    the largest remaining deficiency a rule cash can restore, summed."""
    sources = [c for c in CURE_COLUMNS.values() if c in holder_rounds.columns]
    drawn = math.fsum(v for c in sources for v in holder_rounds[c].drop_nulls())
    largest = cures.group_by("holder_id", ROUND).agg(pl.col("remaining").max())["remaining"]
    return {"drawn": drawn, "short": math.fsum(largest.drop_nulls())}  # in any row order
