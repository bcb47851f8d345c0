"""Rounds of forced trades with price impact: the fire-sale cascade.

State: the holders' books after every trade so far, and the prices. Round ``r`` (1, 2, …):

1. every holder's forced trades at the round's prices ``P_r``, all holders at once
   (:func:`estimator.rounds.evaluate_round`: a rule inside its trigger level does not act, even
   above its restore level — hysteresis);
2. the round's net quantity per asset ``q_r = Σ_holders u/(P_r·mult)`` moves the prices to
   ``P_{r+1}`` (:mod:`estimator.impact`; by default as a function of the cumulative
   ``Σ_{s≤r} q_s``);
3. the trades execute at ``P_x = P_r + α·(P_{r+1} − P_r)``: the round booked them at ``P_r``,
   so each holder's cash moves by ``Σ q·mult·(P_r − P_x)`` (a sale receives less when the price
   falls under it);
4. the books are marked to ``P_{r+1}``: cash instruments through their price, futures by
   variation margin ``Σ q⁺·mult·(P_{r+1} − P_r)`` on the positions held after the round.

Index changes are traded in the first round (their weight changes are then done). With
``lender_losses``, a holder left with negative equity after a round has the shortfall forgiven
and its lender (``lender`` in the holder table) books it as a loss — the prime broker's loss
is the next link of the chain. The cascade stops (``converged``) when a round forces no trade or
after a round whose traded value is at most ``tolerance`` × the first round's (a holder sitting
on its limit while its own sales keep moving the price sells ever smaller amounts, a
geometric tail), else after ``max_rounds``.

Amplification: ``Σ_r S_r / S_1`` with ``S_r`` the value sold in round ``r`` at ``P_r``; 1.0
exactly when the first round's trades move no price (no impact): the second round then finds
every holder at its restore level and forces nothing.

The package: :mod:`~estimator.cascade.episode` (the state and its steps), :mod:`.prices`
(moves, execution, overnight decay), :mod:`.pacing` (the day clock), :mod:`.losses` and
:mod:`.result` (:class:`CascadeResult`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import replace

import polars as pl

from estimator import indices, keys, realised
from estimator.cascade import day as day_start
from estimator.cascade import episode as ep
from estimator.cascade.result import DAY, ROUND, CascadeResult, decoded
from estimator.days import Days
from estimator.impact import Impact
from estimator.mandates import Execution, Mandate
from estimator.risk import FactorModel
from estimator.rounds import evaluate_round
from estimator.solve import ProblemCache
from rules import Book

__all__ = ["DAY", "ROUND", "CascadeResult", "cascade"]


def cascade(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
    impact: Impact,
    *,
    max_rounds: int | None = None,
    execution: Execution | None = None,
    cache: ProblemCache | None = None,
    lender_losses: bool = False,
    days: Days | None = None,
    index_days: dict[str, int] | None = None,
    codes: keys.Keys | None = None,
    progress: Callable[[int, int], None] | None = None,
    moves: dict[int, pl.DataFrame] | None = None,
    holder_moves: dict[int, pl.DataFrame] | None = None,
    last_path_day: int = 0,
    estimators: dict[str, realised.Estimate] | None = None,
    estimates: pl.DataFrame | None = None,
    factors: FactorModel | None = None,
    factor_estimates: pl.DataFrame | None = None,
    day_dates: list[dt.date] | None = None,
) -> CascadeResult:
    """Run rounds until no holder is forced (see the module docstring). ``assets`` are the
    shocked assets (their ``price`` is ``P₀``), ``holders`` and ``positions`` the books as
    :func:`estimator.run` prepares them; ``max_rounds`` overrides the impact settings' one.

    With ``days`` (:mod:`estimator.days`) the rounds run within days: forced trades are paced
    by each holder's horizon, grace period and participation cap, temporary impact decays
    overnight, and index changes trade on their day (``index_days``: day per ``dw`` column).

    ``codes``: the keys ``positions`` are already coded with (:attr:`Market.coded`); by
    default the positions carry ids and are coded here. ``progress``, if given, is called
    after every round with the rounds run so far and the day. ``moves``: a dated path's moves
    by day (:func:`estimator.shocks.day_moves`) and ``holder_moves`` its holder shocks
    (:func:`estimator.shocks.day_holder_moves`), applied at each day's open; the episode runs
    through ``last_path_day`` at least. ``estimators`` and ``estimates``: the volatility
    estimators the rules read and their state after day 0 (:mod:`estimator.realised`), updated
    at each later day's open; ``factors`` and ``factor_estimates``: the market's factor model
    and the factor-level estimators' state after day 0 (:mod:`estimator.factor_vol`).
    ``day_dates``: on a dated path, the date of every day the episode may reach and the next,
    from which each day's calendar flags are set (a month's or a quarter's last trading day:
    :func:`calendar_flags`)."""
    if codes is None:  # the rounds work on integer keys throughout
        codes = keys.Keys.of(holders, assets)
        positions = codes.encode(positions)
    pace = codes.encode(days.holder_pace(holders)) if days else None
    params = codes.encode(impact.parameters(assets))  # selectors read ids
    assets, holders = (codes.encode(f) for f in (assets, holders))
    market = assets.join(params, on="asset_id")
    if estimates is not None:
        market = market.join(codes.encode(estimates), on="asset_id", how="left")
    setting = ep.setting(
        market,
        holders,
        positions,
        impact,
        lender_losses=lender_losses,
        days=days,
        index_days=index_days or {},
        pace=pace,
        index_moves=indices.weight_changes(assets.columns),
    )
    setting = replace(
        setting,
        moves={d: codes.encode(m) for d, m in (moves or {}).items()},
        holder_moves={d: codes.encode(h) for d, h in (holder_moves or {}).items()},
        last_path_day=last_path_day,
        estimators=estimators or {},
        factors=None if factors is None else _coded(factors, codes),
        calendar=calendar_flags(day_dates) if day_dates else {},
        watched=_watched(holders, positions, mandates) if estimators else None,
    )
    state = replace(
        ep.start(market, holders, positions, setting), factor_estimates=factor_estimates
    )
    max_rounds = max_rounds or impact.max_rounds
    for day in range(max(days.max_days, last_path_day + 1) if days else 1):
        state = day_start.dawn(state, setting, day)
        for _ in range(max_rounds):
            result = evaluate_round(
                state.market.select(assets.columns),
                day_start.books(state, setting),
                state.positions,
                mandates,
                execution=execution,
                cache=cache,
                coded=True,
            )
            traded = len(state.log.rounds)
            state, step = ep.step(state, setting, result)
            if progress is not None and len(state.log.rounds) > traded:  # a round that traded
                progress(state.clock.round, day)
            if step is not ep.Step.TRADED:
                break
        else:
            step = ep.Step.DAY_OVER
        if step is ep.Step.OVER:
            break
        if days is not None:
            state = ep.overnight(state, setting)
    # the trade log is most of the episode's memory: decoded round by round, each round's
    # coded frame let go once decoded (the state that held it is let go first)
    coded = list(state.log.trades)
    state = replace(state, log=replace(state.log, trades=()))
    trades = []
    while coded:  # a round's rows share its round and day: sorted by holder, asset
        trades.append(codes.decode(coded.pop(0), [keys.HOLDER, keys.ASSET]))
    return decoded(ep.report(state, setting, trades), codes, done={"trades"})


def _coded(factors: FactorModel, codes: keys.Keys) -> FactorModel:
    """The factor model on the market's asset codes (assets the market lacks left out)."""
    mine = pl.col("asset_id").is_in(codes.assets.implode())
    return replace(
        factors,
        loadings=codes.encode(factors.loadings.filter(mine)),
        specific=codes.encode(factors.specific.filter(mine)),
    )


def _watched(
    holders: pl.DataFrame, positions: pl.DataFrame, mandates: dict[str, Mandate]
) -> pl.Series | None:
    """The assets whose estimates are logged day by day (None when no estimating fund holds
    any: no table)."""
    held = realised.watched(holders, positions, mandates)
    return held if held.len() else None


def calendar_flags(days: list[dt.date]) -> dict[int, dict[str, float]]:
    """Per day ``d`` (all but the last of ``days``, consecutive trading days): 1.0 where it is
    the last trading day of its month (the next is in another month), and of its quarter."""
    flags = {}
    for d, (today, following) in enumerate(itertools.pairwise(days)):
        month_end = following.month != today.month
        flags[d] = {
            Book.MONTH_END: float(month_end),
            Book.QUARTER_END: float(month_end and today.month % 3 == 0),
        }
    return flags
