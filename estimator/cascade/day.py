"""A trading day's start on the day clock: the open's moves of a dated path (prices, holder
shocks), the volatility estimates' update, the calendar's flags and the day's index changes
(:func:`dawn`), and the books the day's rounds see (:func:`books`): holders part-way through a
paced trade are committed to finish it."""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from estimator import book as bk
from estimator import realised, trend
from estimator.cascade.episode import Setting, State
from estimator.cascade.pacing import EMPTY_DONE
from estimator.cascade.result import DAY
from estimator.moves import GROWN, hit
from estimator.rounds import COMMITTED
from rules import LATCHING_KINDS, Book, RuleColumns


def books(state: State, setting: Setting) -> pl.DataFrame:
    """The holders as the next round sees them: on a day clock, those part-way through a
    forced sale — up to its deadline — are committed to finish it (to the restore level, even
    back inside the trigger); after it a holder is held to its trigger again."""
    if setting.days is None:
        return state.holders
    started, by_rule = _under_way(state.pacing.schedule, state.clock.day)
    return state.holders.with_columns(
        pl.col("holder_id").is_in(started).alias(COMMITTED), **by_rule
    )


def _under_way(schedule: pl.DataFrame, day: int) -> tuple[pl.Series, dict[str, pl.Expr]]:
    """The holders part-way through a paced trade on ``day`` (its deadline not passed), and
    per latching rule kind the flag of those it started (:meth:`rules.Book.committed_by`)."""
    under_way = schedule.filter(pl.col("deadline") >= day)
    named = under_way.select("holder_id", kinds=pl.col("rules").str.split(";"))
    by_rule = {
        Book.committed_by(kind): pl.col("holder_id")
        .is_in(named.filter(pl.col("kinds").list.contains(kind))["holder_id"].implode())
        .cast(pl.Float64)
        for kind in LATCHING_KINDS
    }
    return under_way["holder_id"].implode(), by_rule


def dawn(state: State, setting: Setting, day: int) -> State:
    """Start ``day``: the path's moves of the day, if any, at the open; the volatility
    estimates and the trailing returns take the day's return (and the watched assets'
    estimates are logged); the rules' memory is kept only where a paced trade they started
    goes on (:func:`_forget`); index changes effective today are traded today."""
    if day in setting.moves:
        state = _open(state, setting.moves[day])
    if day in setting.holder_moves:
        state = _hit(state, setting.holder_moves[day])
    if day > 0 and setting.estimators:  # the day's return enters the estimates
        market, factors = realised.advance(
            state.market, setting.estimators, setting.factors, state.factor_estimates
        )
        state = replace(state, market=market, factor_estimates=factors)
    if day > 0:  # … and the trend followers' trailing returns
        state = replace(state, market=trend.advance(state.market))
    if day in setting.calendar:  # a dated day: is it a month's or a quarter's last?
        flags = setting.calendar[day]
        holders = state.holders.with_columns(pl.lit(v).alias(k) for k, v in flags.items())
        state = replace(state, holders=holders)
    market = state.market.with_columns(
        pl.col(f"{c}@").alias(c) if setting.index_days[c] == day else pl.lit(0.0).alias(c)
        for c in setting.index_moves
    )
    if day > 0:
        state = _forget(state, day)
    pacing = replace(state.pacing, done_today=EMPTY_DONE)
    log = state.log
    if setting.estimators and setting.watched is not None:  # the estimates the day trades on
        seen = realised.readings(market, setting.estimators, setting.watched)
        log = log.add(estimates=seen.select(pl.lit(day, pl.Int32).alias(DAY), pl.all()))
    return replace(state, market=market, pacing=pacing, log=log).tick(day=day, day_first=0.0)


def _forget(state: State, day: int) -> State:
    """The rules' memory (:meth:`rules.RuleBase.memory`) at the open of ``day``: kept for the
    holders on whom a paced trade the rule started is still under way, forgotten (null) for
    the others."""
    memo = [c for c in state.holders.columns if c.endswith(RuleColumns.MEMO)]
    if not memo:
        return state
    by_rule = _under_way(state.pacing.schedule, day)[1]
    forgotten = [  # a memory column is its rule kind's: ``{kind}.{…}.memo``
        pl.when(by_rule[Book.committed_by(c.split(".", 1)[0])] > 0).then(c).otherwise(None).alias(c)
        for c in memo
    ]
    return replace(state, holders=state.holders.with_columns(forgotten))


def _open(state: State, move: pl.DataFrame) -> State:
    """The market at the open after a path's day move (asset_id, ``price_factor`` and the
    columns it sets; :func:`estimator.shocks.day_moves`): every price and its impact model's
    ``P₀`` times the factor, the other columns replaced; the books marked — futures' variation
    margin to cash, the move's loss ``−Σ q·m·ΔP`` on the holdings booked as ``loss_path`` in
    the round before. What pushed holders now is the market, not a traded flow."""
    columns = [c for c in move.columns if c != "asset_id" and c in state.market.columns]
    market = state.market.join(
        move.select("asset_id", "price_factor", *columns), on="asset_id", how="left", suffix="@path"
    ).with_columns(pl.col("price_factor").fill_null(1.0))
    moved = market.select(
        "asset_id", "multiplier", "instrument", dp=pl.col("price") * (pl.col("price_factor") - 1)
    )
    held = state.positions.select("holder_id", "asset_id", "quantity").join(moved, on="asset_id")
    loss = held.group_by("holder_id").agg(
        loss_path=(-pl.col("quantity") * pl.col("multiplier") * pl.col("dp")).sum()
    )
    futures = moved.filter(pl.col("instrument") == "future")
    holders = bk.credit_variation_margin(state.holders, state.positions, futures)
    market = market.with_columns(
        pl.col("price", "price_0") * pl.col("price_factor"),
        *(pl.coalesce(f"{c}@path", c).alias(c) for c in columns),
    ).drop("price_factor", *(f"{c}@path" for c in columns))
    state = replace(state, market=market, holders=holders, previous=None)
    return state.book_loss(loss)


def _hit(state: State, effects: pl.DataFrame) -> State:
    """The holders at the open after a path's holder shocks of the day
    (:func:`estimator.moves.hit`); the change in the non-tradable holdings of those hit,
    ``−N·(grown − 1)``, is booked as ``loss_path``."""
    loss = state.holders.join(effects, on="holder_id").select(
        "holder_id", loss_path=-pl.col(Book.NON_TRADABLE) * (pl.col(GROWN) - 1)
    )
    holders = hit(state.holders, effects)  # what pushed holders now is a shock, not a flow
    return replace(state, holders=holders, previous=None).book_loss(loss)
