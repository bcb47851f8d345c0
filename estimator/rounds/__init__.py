"""One round: evaluate every rule on the books, cure, decide, trade, re-mark.

:func:`evaluate_round` is a pure function of the market state (shocked assets) and the
holders' books; a cascade calls it again on the new prices and books. Its stages, each a
module:

* :mod:`~estimator.rounds.frames` — the round's frames, split by mandate, with the columns each
  mandate's rules read;
* :mod:`~estimator.rounds.decide` — outflows paid, cures drawn, each holder's scale of its book;
* :mod:`~estimator.rounds.positions` — position rules' closed-form trades, the book re-marked;
* :mod:`~estimator.rounds.min_cost` — least-cost trades by cvxpy, costed by a :class:`CostModel`;
* :mod:`~estimator.rounds.settle` — trades applied, every rule re-checked, statuses;

and :mod:`~estimator.rounds.contract` holds what they share (column names, tolerances,
:class:`RoundResult`).

Trades: ``pro_rata`` ``u = (f − 1)·x`` after the position rules' own trades; ``min_cost`` the
cvxpy solve (:mod:`estimator.solve`) for holders a rule forces to sell.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from estimator import keys, risk
from estimator.errors import InputError, Problem
from estimator.mandates import Execution, Mandate
from estimator.rounds import min_cost
from estimator.rounds.contract import COMMITTED, OUTCOME_SCHEMA, ROW, RoundResult, dust
from estimator.rounds.decide import pay_outflows
from estimator.rounds.frames import annotate, by_mandate, open_round, position_rules, rule_frames
from estimator.rounds.min_cost import CostModel
from estimator.rounds.positions import pro_rata
from estimator.rounds.settle import check_compliance, fill_trades, settle
from estimator.solve import ProblemCache
from rules import Book

__all__ = [
    "COMMITTED",
    "CostModel",
    "RoundResult",
    "check_compliance",
    "dust",
    "evaluate_round",
]


def evaluate_round(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
    *,
    execution: Execution | None = None,
    cache: ProblemCache | None = None,
    cost: CostModel | None = None,
    coded: bool = False,
    timings: dict[str, float] | None = None,
) -> RoundResult:
    """Forced trades of every holder at the given prices (one round, all holders at once).

    ``execution`` overrides every mandate's; ``cost`` prices min-cost trades (default
    :class:`CostModel`). ``coded``: the frames' ids are already codes (:mod:`estimator.keys`,
    as a cascade keeps them from round to round) and so are the result's; otherwise ids go in
    and come out. ``timings``, if given, receives the seconds of the round's two stages:
    ``"trades"`` (every rule evaluated, the trades decided) and ``"settle"`` (the trades
    applied, every rule re-checked on the post-trade book, the result assembled)."""
    started = time.perf_counter()
    if execution is not None:
        mandates = {n: m.model_copy(update={"execution": execution}) for n, m in mandates.items()}
    cache = cache or ProblemCache(k=len(risk.factor_columns(assets)))
    cost = cost or CostModel()
    codes = None if coded else keys.Keys.of(holders, assets)
    if codes is not None:
        assets, holders, positions = (codes.encode(f) for f in (assets, holders, positions))
    _check_pre_columns(holders, mandates)
    frames = open_round(assets, holders, positions, mandates)
    pos = frames.pos
    book, holders = pay_outflows(frames.book, frames.holders, mandates)
    rounds, parts, plans = {}, {}, {}
    trade_value = np.zeros(pos.height)  # u, by row number
    position_value = np.zeros(pos.height)  # the position rules' part of u
    for name, (pos_part, book_part) in by_mandate(pos, book, set(mandates)).items():
        mandate = mandates[name]
        pos_m, book_m = (
            rule_frames(pos_part, book_part, mandate, assets)
            if position_rules(mandate)
            else (None, book_part)
        )
        book_m = annotate(book_m, mandate)
        holders_m = holders.join(book_m.select("holder_id"), on="holder_id", how="semi")
        rounds[name] = pro_rata(pos_m, book_m, holders_m, mandate, assets)
        parts[name] = pos_part
        if mandate.execution is Execution.MIN_COST:
            rows = pos_m if pos_m is not None else pos_part
            work = min_cost.plan(rows, book_m, mandate, rounds[name], assets, cost)
            if work is not None:
                plans[name] = work
    # every min-cost holder of the round in one batch, across mandates
    solved = min_cost.solve_plans(list(plans.values()), cache)
    for (name, work), results in zip(plans.items(), solved, strict=True):
        rounds[name] = min_cost.finish(work, results)
    for name, result in rounds.items():
        fill_trades(trade_value, position_value, parts[name], result)
    decisions = pl.concat([r.decisions for r in rounds.values()], how="diagonal_relaxed").sort(
        "holder_id"
    )
    for col, dtype in OUTCOME_SCHEMA.items():
        if col not in decisions.columns:
            decisions = decisions.with_columns(pl.lit(None, dtype=dtype).alias(col))
    traded = pos.drop(ROW).with_columns(trade_value=trade_value, position_value=position_value)
    known = {n: r.sums_after for n, r in rounds.items() if r.sums_after is not None}
    decided = time.perf_counter()
    result = settle(
        decisions, traded, holders, mandates, assets, frames.pattern, known, cache.compiled
    )
    if timings is not None:
        timings.update(trades=decided - started, settle=time.perf_counter() - decided)
    return result if codes is None else result.decoded(codes)


def _check_pre_columns(holders: pl.DataFrame, mandates: dict[str, Mandate]) -> None:
    """Rules that read the book before the scenario need it on the holders."""
    read = {c for m in mandates.values() for r in m.rules for c in r.reads()}
    if any(m.capital_call is not None for m in mandates.values()):  # its limit is a share of E₀
        read.add(Book.EQUITY_PRE)
    missing = sorted(set(Book.PRE) & read - set(holders.columns))
    if missing:
        why = (
            f"the holders lack {', '.join(missing)}: their book before the scenario, which "
            "estimator.api.prepare adds (estimator.run does)"
        )
        raise InputError([Problem("holders", why, field=missing[0])])
