"""Applying a scenario's shocks to the asset table, in file order, compounding.

Effects of one shock on the selected assets (all optional, several may be combined):

* ``price_return`` r: ``P ← P·(1 + r)``;
* ``yield_change_bp`` / ``spread_change_bp`` Δy (bp, ``Δy = bp / 10 000``): a bond with
  modified duration ``D`` and, where given, convexity ``C`` is the bullet of
  :mod:`estimator.bonds` with that duration and convexity at its yield ``y₀`` (the ``yield``
  column, else a default by asset class) and coupon frequency ``f``; its price moves by
  ``B(y + Δy)/B(y)``, with ``y`` its yield after the shocks before — monotone and positive for
  any ``y + Δy > −f``, and equal to ``1 − D·Δy + ½·C·Δy²`` to second order. Two rate shocks
  on one bond compound exactly: ``B(y₀ + Δy₁ + Δy₂)/B(y₀)``. The shocked table's ``yield`` is
  the yield after the shocks;
* ``vol_multiplier`` k and ``vol_change`` Δσ: ``σ ← max(k·σ + Δσ, 0)``; the asset's risk-model
  row is rescaled by the same ratio, keeping correlations;
* ``margin_rate_multiplier`` and ``margin_rate_change``: ``m ← clip(k·m + Δm, 0, 1)`` on assets
  with a margin rate; with ``margin_vol_elasticity`` e, ``k`` is also multiplied by
  ``(σ'/σ)^e``, the shock's own vol change (procyclical margins: e = 1 keeps a margin rate
  proportional to volatility);
* rating actions: ``rating_sp``, ``rating_moodys``, ``rating_fitch`` set an agency's rating;
  ``downgrade_notches`` n moves every agency rating n notches down its scale (negative: up),
  clamped at AAA/Aaa and C; unrated and defaulted ratings stay as they are.

Shocks apply one after another, so two price shocks on one asset compound:
``(1 + r₁)(1 + r₂) − 1``. A selector that matches nothing is a warning.

The scenario's index changes are applied after the shocks (:mod:`estimator.indices`).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from estimator import gamma, indices, rates, risk, stack, trend
from estimator.bounds import MAX_PRICE, MAX_VOL
from estimator.errors import InputError, InputWarnings, Problem
from estimator.moves import NO_EFFECT, HolderShock, holder_effects
from estimator.path import MarketPath, Schedule
from estimator.scenario import Scenario, Shock
from rules.ratings import AGENCY_COLUMNS, shift_expr


def apply_scenario(
    assets: pl.DataFrame,
    scenario: Scenario,
    label: str = "scenario",
    warnings: InputWarnings | None = None,
    index_weights: pl.DataFrame | None = None,
    *,
    multiple: str | None = None,
) -> pl.DataFrame:
    """Shocked assets with ``price_pre`` and ``vol_pre`` kept beside the new values, and the
    member and weight-change columns of every index in ``index_weights``.

    ``multiple`` names a column of ``assets`` that holds each row's own multiple ``m > 0`` of
    the scenario (:meth:`Shock.scaled_fields`; events whole): the table is then a stack of
    copies of one market (:mod:`estimator.stack`), whose index ids name their copy and whose
    index columns are named by the index alone."""
    warnings = warnings if warnings is not None else InputWarnings()

    def opened(frame: pl.DataFrame, scale: pl.Expr | None = None) -> pl.DataFrame:
        shocked = _shock(frame, scenario.shocks, label, warnings, scale)
        shocked = gamma.with_profiles(shocked, scenario.dealer_gamma, label)
        return trend.opening(shocked, scenario.trend_start, label, warnings)

    if multiple is None:
        shocked = opened(assets)
    else:  # a selector naming an asset selects each of its copies
        shocked = stack.on_base_ids(assets, "asset_id", lambda f: opened(f, pl.col(multiple)))
    weights = index_weights if index_weights is not None else indices.EMPTY
    changes = scenario.changes_frame()
    later = (
        changes.filter(pl.col("effective_day") > 0) if scenario.days is None else changes.clear()
    )
    for entry, day in later.select("entry", "effective_day").iter_rows():
        warnings.add(
            Problem(
                label,
                f"effective_day {day}: without a [days] clock the change is traded now",
                field=f"index_changes.{entry}",
            )
        )
    unknown = changes.join(assets.select("asset_id"), on="asset_id", how="anti")
    problems = [
        Problem(label, f"unknown asset {asset!r}", field=f"index_changes.{entry}")
        for entry, asset in unknown.select("entry", "asset_id").iter_rows()
    ]
    state, more = indices.changed(indices.drifted(weights, shocked), changes, label)
    if problems or more:
        raise InputError(problems + more)
    if multiple is not None:
        state = state.with_columns(stack.base("index_id"))
    return indices.asset_columns(state, shocked)


#: Asset columns a path's day moves besides the price (with the risk model's rows).
MOVED = ("vol", "margin_rate", "yield", *AGENCY_COLUMNS)


def day_moves(
    shocked: pl.DataFrame, schedule: Schedule, label: str, warnings: InputWarnings
) -> dict[int, pl.DataFrame]:
    """Per later day ``d ≥ 1`` of a path with moves: ``asset_id``, ``price_factor``
    ``P_d / P_{d−1}`` of the path alone and the asset columns of :data:`MOVED` and the risk
    model after the day's shocks — which apply to the assets after the days before them,
    starting from ``shocked`` (the scenario's shocks and day 0's moves)."""
    out: dict[int, pl.DataFrame] = {}
    state = shocked
    for day in sorted(d for d in schedule.shocks if d > 0):
        where = f"{label}, path {schedule.days[day]}"
        state = _shock(state, schedule.shocks[day], where, warnings)
        columns = [*MOVED, *risk.factor_columns(state), risk.SPECIFIC]
        kept = [c for c in columns if c in state.columns]
        factor = (pl.col("price") / pl.col("price_pre")).alias("price_factor")
        out[day] = state.select("asset_id", factor, *kept)
    return out


def day_holder_moves(
    holders: pl.DataFrame,
    path: MarketPath,
    schedule: Schedule,
    label: str,
    warnings: InputWarnings,
) -> dict[int, pl.DataFrame]:
    """Per day ``d`` of a path with holder shocks (``[[path.holder_shocks]]``): the holders
    they hit (``holder_id``) and what the day's shocks do to them
    (:func:`estimator.moves.holder_effects`: ``redemption`` added to the redemption shock,
    ``margin`` and ``credit`` multiplying the margin multiplier and the credit line, ``dy``
    the liabilities' rate change and ``grown`` the non-tradables' growth). A shock that
    selects no holder is a warning naming it (``path.holder_shocks.N``)."""
    index = {day: d for d, day in enumerate(schedule.days)}
    by_day: dict[int, list[int]] = {}
    for i, h in enumerate(path.holder_shocks):
        by_day.setdefault(index[h.date], []).append(i)
    out: dict[int, pl.DataFrame] = {}
    for day, numbers in sorted(by_day.items()):
        shocks: list[HolderShock] = [path.holder_shocks[i] for i in numbers]
        fields = [f"path.holder_shocks.{i}" for i in numbers]
        where = f"{label}, path {schedule.days[day]}"
        effects = holder_effects(shocks, holders, warnings, where, fields)
        frame = holders.select("holder_id", **effects)
        out[day] = frame.filter(pl.any_horizontal(pl.col(c) != v for c, v in NO_EFFECT.items()))
    return out


def _shock(
    assets: pl.DataFrame,
    shocks: Sequence[Shock],
    label: str,
    warnings: InputWarnings,
    scale: pl.Expr | None = None,
) -> pl.DataFrame:
    y = rates.yields(assets)  # ("yield" is a Python keyword: the columns are named by alias)
    out = assets.with_columns(
        price_pre=pl.col("price"), vol_pre=pl.col("vol"), yield_pre=y, **{"yield": y}
    )
    problems: list[Problem] = []
    for i, shock in enumerate(shocks):
        where = f"shocks.{i}"
        hit = shock.select.expr()
        n_hit = out.select(hit.sum()).item()
        if n_hit == 0:
            warnings.add(
                Problem(label, "selector matches no asset; shock has no effect", field=where)
            )
            continue
        if shock.rate_bp:
            no_dur = out.filter(hit & pl.col("duration").is_null())["asset_id"].to_list()
            if no_dur:
                rate = "yield_change_bp" if shock.yield_change_bp else "spread_change_bp"
                problems.append(
                    Problem(
                        label,
                        f"yield/spread shock hits assets without duration: {no_dur[:10]}",
                        field=f"{where}.{rate}",
                    )
                )
                continue
        v = shock.scaled_fields(scale) if scale is not None else dict(shock)
        if shock.rate_bp:
            dy = _or_zero(v["yield_change_bp"]) + _or_zero(v["spread_change_bp"])
            step = (dy if isinstance(dy, pl.Expr) else pl.lit(dy)) / 10_000
            out = rates.reprice(out, hit, step, label, where, warnings)
        out = out.with_columns(_shocked(shock, v, hit))
        margin_moves = (
            shock.margin_rate_change is not None
            or shock.margin_rate_multiplier is not None
            or shock.margin_vol_elasticity is not None
        )
        if margin_moves:
            no_rate = out.filter(hit & pl.col("margin_rate").is_null()).height
            if no_rate:
                warnings.add(
                    Problem(
                        label,
                        f"{no_rate} selected asset(s) have no margin_rate; unchanged",
                        field=where,
                    )
                )
    if problems:
        raise InputError(problems)
    bad = out.filter(pl.col("price") <= 0)["asset_id"].to_list()
    if bad:
        raise InputError(
            [Problem(label, f"shocks drive prices to zero or below: {bad[:10]}", field="shocks")]
        )
    for column, high in (("price", MAX_PRICE), ("vol", MAX_VOL)):
        big = out.filter(~(pl.col(column) <= high))["asset_id"].to_list()  # NaN included
        if big:
            raise InputError(
                [
                    Problem(
                        label,
                        f"too large: the shocks drive {column} above {high:g} for {big[:10]}",
                        field="shocks",
                    )
                ]
            )
    ratio = pl.when(pl.col("vol_pre") > 0).then(pl.col("vol") / pl.col("vol_pre")).otherwise(1.0)
    scaled = [pl.col(c) * ratio for c in [*risk.factor_columns(out), risk.SPECIFIC]]
    return out.with_columns(scaled)


def _or_zero(x: float | pl.Expr | None) -> float | pl.Expr:
    return 0.0 if x is None else x


def _shocked(shock: Shock, v: dict, hit: pl.Expr) -> list[pl.Expr]:
    """The shock's effects on the rows ``hit``; ``v`` its (scaled) numbers by field."""
    exprs = []
    if v["price_return"] is not None:  # (a rate shock has repriced the bonds: _reprice)
        grown = pl.col("price") * (1 + v["price_return"])
        exprs.append(pl.when(hit).then(grown).otherwise(pl.col("price")).alias("price"))
    vol = pl.col("vol")
    if shock.moves_vol:
        k = v["vol_multiplier"] if v["vol_multiplier"] is not None else 1.0
        vol = (pl.col("vol") * k + _or_zero(v["vol_change"])).clip(lower_bound=0.0)
        exprs.append(pl.when(hit).then(vol).otherwise(pl.col("vol")).alias("vol"))
    margin_moves = (
        shock.margin_rate_multiplier is not None
        or shock.margin_rate_change is not None
        or shock.margin_vol_elasticity is not None
    )
    if margin_moves:
        k = v["margin_rate_multiplier"] if v["margin_rate_multiplier"] is not None else 1.0
        if shock.margin_vol_elasticity is not None:  # procyclical: rates follow volatility
            ratio = pl.when(pl.col("vol") > 0).then(vol / pl.col("vol")).otherwise(1.0)
            k = k * ratio**shock.margin_vol_elasticity
        rate = (pl.col("margin_rate") * k + _or_zero(v["margin_rate_change"])).clip(0.0, 1.0)
        exprs.append(pl.when(hit).then(rate).otherwise(pl.col("margin_rate")).alias("margin_rate"))
    for column in AGENCY_COLUMNS:
        rating = pl.col(column)
        if shock.downgrade_notches:
            rating = shift_expr(column, shock.downgrade_notches)
        if getattr(shock, column) is not None:
            rating = pl.lit(getattr(shock, column))
        exprs.append(pl.when(hit).then(rating).otherwise(pl.col(column)).alias(column))
    return exprs
