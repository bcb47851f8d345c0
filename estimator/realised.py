"""Realised volatility over an episode, as the funds' own estimators see it
(:mod:`rules.estimators` has the definitions and conventions).

Per asset the market carries each estimator's state: for each lookback window ``N`` the last
``N`` squared daily returns (``r2@{N}``, a list), for each EWMA its variance (``var@{key}``),
and for a lagged estimate the last ``L + 1`` estimates (``hist@{key}``). The state starts at
the asset's volatility before the scenario ``σ₀`` (every squared return ``σ₀²/252``: a calm
window at the model's level — an assumption where no series of the days before is given). A
path's ``history`` (daily returns of the days before its start) then runs through the same
recursions, day by day, for the assets it covers (:func:`warm`): the funds start the episode
with the estimates those days gave them. The state then takes one return a day: day 0's is
the scenario's own move (``P/P_pre − 1``, the shocks and day 0's path moves), a later day's the
move from the price at the last update to the price at the day's open (the day before's trading
and its overnight decay, and the day's path move).
After each update every estimate ``σ̂_i`` gives the asset's scale ``σ̂_i/σ_i``
(``vol_scale@{key}``; 0 where the model's ``σ_i`` is 0), from which the book sums each
estimate's portfolio volatility (:func:`estimator.book.holder_book`). A factor-level estimate
(``level = "factor"``) runs the same recursions on one row per factor of the market's factor
model, on the factor returns fitted to the assets' each day, and gives each asset its own
rescaled risk rows instead of a scale (:mod:`estimator.factor_vol`; :func:`warmed_factors`,
:func:`advance`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import polars as pl

from estimator import factor_vol
from estimator.errors import InputError, Problem
from estimator.mandates import Mandate
from estimator.risk import FactorModel
from rules import RuleBase
from rules.estimators import EstimatedRisk, Ewma, Lookback, MaxOf, scale_column

Estimate = Lookback | Ewma | MaxOf

#: Trading days a year: daily variance × 252 is annual.
YEAR = 252
#: The price each update measures the next return from.
REFERENCE = "price_estimated"


def estimators(rules: Iterable[RuleBase]) -> dict[str, Estimate]:
    """The distinct estimators ``rules`` read, by key."""
    out: dict[str, Estimate] = {}
    for rule in rules:
        if isinstance(rule, EstimatedRisk) and rule.estimator is not None:
            out[rule.estimator.key] = rule.estimator
    return dict(sorted(out.items()))


def split(wanted: Mapping[str, Estimate]) -> tuple[dict[str, Estimate], dict[str, Estimate]]:
    """The estimates of assets' volatilities and those of factors' (``level``)."""
    assets = {k: e for k, e in wanted.items() if e.level == "asset"}
    return assets, {k: e for k, e in wanted.items() if e.level == "factor"}


def start(assets: pl.DataFrame, wanted: Mapping[str, Estimate]) -> pl.DataFrame:
    """``assets`` (with ``vol_pre`` and ``price_pre``: before the scenario) with every
    estimator's state at ``σ₀ = vol_pre``, before day 0's return."""
    daily = pl.col("vol_pre") ** 2 / YEAR
    windows = sorted({n for e in wanted.values() for n in e.windows})
    ewmas = _ewmas(wanted)
    lagged = [e for e in wanted.values() if e.lag_days]
    return assets.with_columns(
        *(pl.concat_list([daily] * n).alias(f"r2@{n}") for n in windows),
        *(daily.alias(f"var@{e.key}") for e in ewmas),
        *(
            pl.concat_list([pl.col("vol_pre")] * (e.lag_days + 1)).alias(f"hist@{e.key}")
            for e in lagged
        ),
        pl.col("price_pre").alias(REFERENCE),
    )


#: The column of :func:`warm`'s history: an asset's daily returns before the start, oldest first.
RETURNS = "history_returns"


def warm(
    state: pl.DataFrame, wanted: Mapping[str, Estimate], history: pl.DataFrame
) -> pl.DataFrame:
    """``state`` after the returns of ``history`` (``asset_id``, :data:`RETURNS`: a list of K
    daily returns, oldest first, null on a day the history does not give), each day
    ``r² = r_k²`` through :func:`update`'s recursions (a missing day: ``σ₀²/252``, the calm
    day the state started from). Assets the history does not cover keep their start."""
    if history.is_empty():
        return state
    covered = state.join(history, on="asset_id", how="inner")
    calm = pl.col("vol_pre") ** 2 / YEAR
    days = int(covered[RETURNS].list.len().max() or 0)
    for k in range(days):
        r = pl.col(RETURNS).list.get(k, null_on_oob=True)
        covered = update(covered, wanted, (r**2).fill_null(calm))
    rest = state.join(history, on="asset_id", how="anti")
    warmed = covered.drop(RETURNS).with_columns(pl.col("price_pre").alias(REFERENCE))
    both = pl.concat([rest, warmed.select(rest.columns)])
    return state.select("asset_id").join(both, on="asset_id", maintain_order="left")


def warmed(
    assets: pl.DataFrame,
    wanted: Mapping[str, Estimate],
    history: pl.DataFrame | None,
    starting: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``asset_id`` and every estimator's state before the scenario: started at ``σ₀`` (the
    assets' ``vol``, or ``starting``'s ``vol_start`` for the assets it gives, :func:`start`)
    and, where ``history`` is given, warmed by it (:func:`warm`) — computed once per run, read
    by the sizing of the funds (:mod:`estimator.warmup`) and by :func:`opening`."""
    wanted = split(wanted)[0]
    sigma = pl.col("vol")
    if starting is not None and not starting.is_empty():
        assets = assets.join(starting, on="asset_id", how="left", maintain_order="left")
        sigma = pl.coalesce("vol_start", "vol")
    begun = start(assets.with_columns(vol_pre=sigma, price_pre=pl.col("price")), wanted)
    if history is not None:
        begun = warm(begun, wanted, history)
    return begun.select("asset_id", *(c for c in state_columns(begun) if c != REFERENCE))


def warmed_factors(
    assets: pl.DataFrame,
    wanted: Mapping[str, Estimate],
    model: FactorModel | None,
    history: pl.DataFrame | None,
) -> pl.DataFrame | None:
    """The factors' state before the scenario (one row per factor, :func:`factor_vol.frame`):
    started at each factor's ``σ_k`` and, where ``history`` is given, warmed by the factor
    returns fitted day by day to the returns of the assets it covers (None without
    factor-level estimates)."""
    wanted = split(wanted)[1]
    if not wanted:
        return None
    if model is None:
        why = "a volatility estimator at level 'factor' needs a market with a factor model"
        raise InputError([Problem("mandates", why, field="estimator")])
    state = start(factor_vol.frame(model), wanted)
    if history is None or history.is_empty():
        return state
    covered = assets.select("asset_id").join(history, on="asset_id", how="inner")
    for k in range(int(covered[RETURNS].list.len().max() or 0)):
        f, known = factor_vol.returns(covered, model, pl.col(RETURNS).list.get(k, null_on_oob=True))
        state = update(state, wanted, factor_vol.squared(model, f, known))
    return state


def opening(
    shocked: pl.DataFrame,
    wanted: Mapping[str, Estimate],
    before: pl.DataFrame | None = None,
    model: FactorModel | None = None,
    factors_before: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None]:
    """The shocked assets with each estimate's scale (and a factor estimate's risk rows)
    after day 0's return, from the state ``before`` the scenario (:func:`warmed`, and the
    factors' :func:`warmed_factors`; by default started at ``σ₀``), the estimators' state per
    asset and per factor (None without estimators)."""
    if not wanted:
        return shocked, None, None
    mine, theirs = split(wanted)
    if before is None:
        begun = start(shocked, mine)
    else:
        begun = shocked.join(before, on="asset_id", how="left", maintain_order="left")
        begun = begun.with_columns(pl.col("price_pre").alias(REFERENCE))
    if theirs:
        if factors_before is None:
            factors_before = warmed_factors(shocked, theirs, model, None)
        assert model is not None and factors_before is not None
        begun, factors = _factor_day(begun, theirs, model, factors_before)
    else:
        factors = None
    state = update(begun, mine)
    kept = state_columns(state)
    return state.drop(kept), state.select("asset_id", *kept), factors


def advance(
    market: pl.DataFrame,
    wanted: Mapping[str, Estimate],
    model: FactorModel | None,
    factors: pl.DataFrame | None,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The market and the factors' state after a later day's return (the assets' through
    :func:`update`, the factors' through the day's fitted factor returns)."""
    mine, theirs = split(wanted)
    if theirs:
        assert model is not None and factors is not None
        market, factors = _factor_day(market, theirs, model, factors)
    return update(market, mine), factors


def _factor_day(
    market: pl.DataFrame, wanted: Mapping[str, Estimate], model: FactorModel, state: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The factors' state after the day's return ``P/P_ref − 1`` of the assets of
    ``market``, and ``market`` with the estimates' risk rows (:func:`factor_vol.rows`)."""
    f, known = factor_vol.returns(market, model, pl.col("price") / pl.col(REFERENCE) - 1)
    state = update(state, wanted, factor_vol.squared(model, f, known))
    return factor_vol.rows(market, model, factor_scales(state, wanted)), state


def factor_scales(state: pl.DataFrame, wanted: Mapping[str, Estimate]) -> dict[str, np.ndarray]:
    """Per factor estimate, ``d_k = σ̂_k/σ_k`` in the factors' order."""
    return {k: state[scale_column(k)].to_numpy() for k in wanted}


def update(
    market: pl.DataFrame, wanted: Mapping[str, Estimate], r2: pl.Expr | None = None
) -> pl.DataFrame:
    """The state after one day's return ``r = P/P_ref − 1`` (``P_ref`` the price at the last
    update; or the squared return ``r2`` given), and every estimate's scale column."""
    if r2 is None:
        r2 = (pl.col("price") / pl.col(REFERENCE) - 1) ** 2
    windows = sorted({n for e in wanted.values() for n in e.windows})
    ewmas = _ewmas(wanted)
    market = market.with_columns(
        *(
            pl.concat_list([pl.col(f"r2@{n}").list.slice(1, n - 1), r2]).alias(f"r2@{n}")
            for n in windows
        ),
        *(
            (e.decay * pl.col(f"var@{e.key}") + (1 - e.decay) * r2).alias(f"var@{e.key}")
            for e in ewmas
        ),
        pl.col("price").alias(REFERENCE),
    )
    estimates = {k: _estimate(e) for k, e in wanted.items()}
    lagged = [(k, e) for k, e in wanted.items() if e.lag_days]
    market = market.with_columns(
        pl.concat_list([pl.col(f"hist@{k}").list.slice(1, e.lag_days), estimates[k]]).alias(
            f"hist@{k}"
        )
        for k, e in lagged
    )
    return with_scales(market, wanted)


def with_scales(market: pl.DataFrame, wanted: Mapping[str, Estimate]) -> pl.DataFrame:
    """``market`` with each estimate's scale ``σ̂/σ`` as its state gives it: the estimate, or
    for a lagged one the oldest of its last ``L + 1`` (0 where the model's ``σ`` is 0)."""
    read = {
        k: pl.col(f"hist@{k}").list.first() if e.lag_days else _estimate(e)
        for k, e in wanted.items()
    }
    model = pl.col("vol")
    return market.with_columns(
        pl.when(model > 0).then(sigma / model).otherwise(0.0).alias(scale_column(k))
        for k, sigma in read.items()
    )


def _ewmas(wanted: Mapping[str, Estimate]) -> list[Ewma]:
    """Every EWMA the estimates need, those inside a max included, once each."""
    found = {}
    for e in wanted.values():
        for part in e.of if isinstance(e, MaxOf) else [e]:
            if isinstance(part, Ewma):
                found[part.key] = part
    return list(found.values())


def _estimate(e: Estimate) -> pl.Expr:
    """``σ̂`` of one asset under ``e`` from the state (:mod:`rules.estimators`)."""
    if isinstance(e, Lookback):
        return (pl.col(f"r2@{e.days}").list.sum() * (YEAR / e.days)).sqrt()
    if isinstance(e, MaxOf):
        return pl.max_horizontal([_estimate(part) for part in e.of])
    return (pl.col(f"var@{e.key}") * YEAR).sqrt()


def watched(
    holders: pl.DataFrame, positions: pl.DataFrame, mandates: Mapping[str, Mandate]
) -> pl.Series:
    """The assets (``asset_id``, unique, sorted) held by a holder whose mandate reads an
    estimator: those whose estimates the funds trade on."""
    reading = [name for name, m in mandates.items() if estimators(m.rules)]
    funds = holders.filter(pl.col("mandate").is_in(reading))["holder_id"].implode()
    held = positions.filter(pl.col("holder_id").is_in(funds) & (pl.col("quantity") != 0))
    return held["asset_id"].unique().sort()


#: Columns of :func:`readings`.
READINGS = ("asset_id", "estimator", "vol_estimate", "vol_model")


def readings(
    market: pl.DataFrame, wanted: Mapping[str, Estimate], assets: pl.Series
) -> pl.DataFrame:
    """Per asset of ``assets`` and estimate: ``σ̂`` as the rules read it that day (for a lagged
    estimate, the one of ``L`` days before), ``σ̂ = scale·σ`` with ``σ`` the model's
    volatility (``vol_model``); long format, estimate by estimate (keys sorted), each in the
    market's row order."""
    rows = market.filter(pl.col("asset_id").is_in(assets.implode()))
    return pl.concat(
        rows.select(
            "asset_id",
            estimator=pl.lit(key),
            vol_estimate=pl.col(scale_column(key)) * pl.col("vol"),
            vol_model=pl.col("vol"),
        )
        for key in sorted(wanted)
    ).select(READINGS)


def state_columns(frame: pl.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold estimators' state (not read by the rules)."""
    prefixes = ("r2@", "var@", "hist@")
    return [c for c in frame.columns if c.startswith(prefixes) or c == REFERENCE]


__all__ = [
    "READINGS",
    "RETURNS",
    "YEAR",
    "advance",
    "estimators",
    "factor_scales",
    "opening",
    "readings",
    "split",
    "start",
    "state_columns",
    "update",
    "warm",
    "warmed",
    "warmed_factors",
    "watched",
    "with_scales",
]
