"""The library entry point: :func:`run` a scenario on a market and get Polars frames back."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl

from estimator import gamma, glt, risk
from estimator.cascade import DAY, ROUND, CascadeResult, cascade
from estimator.equilibrium import Equilibrium, conditions, equilibrium
from estimator.errors import EquilibriumError, InputWarnings, Problem
from estimator.inputs import (
    check_books,
    check_options,
    load_inputs,
    prepare_run,
    scenario_label,
    warn_breaches,
)
from estimator.mandates import Execution
from estimator.manifest import Parameters, package_version
from estimator.market import Market
from estimator.outcome import HOLDER_COLUMNS, Computed, RunResult, assemble
from estimator.path import Schedule, day_dates
from estimator.rounds import RoundResult, evaluate_round
from estimator.scenario import Scenario
from estimator.solve import DEFAULT_SOLVER, PARALLEL_MIN_PER_WORKER, ProblemCache
from estimator.status import Status
from rules import STATE_COLUMNS

__all__ = ["HOLDER_COLUMNS", "RunResult", "load_inputs", "run"]


def run(
    scenario: str | Path | Scenario,
    market: str | Path | Market | None = None,
    *,
    execution: Execution | str | None = None,
    participation: float = 0.2,
    solver: str = DEFAULT_SOLVER,
    solver_options: dict | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Apply ``scenario`` to ``market`` and estimate every holder's forced trades.

    ``scenario``: a shipped scenario's name, a TOML path, or a :class:`Scenario`.
    ``market``: a :class:`Market` (e.g. from :func:`build_market` on your own frames), a bundle
    folder, or None for the scenario's own ``market``. ``workers``: worker processes of a local
    Dask cluster for min-cost solves (started for batches of a few hundred holders per worker
    and more); ``scheduler``: the address of an existing Dask cluster to solve on instead.
    ``progress``: called after every round of a cascade with the rounds run so far and the day.
    """
    started = time.perf_counter()
    solver = check_options(participation, solver, workers, scheduler)
    spec, spec_path, market = load_inputs(scenario, market)
    exec_style = Execution(execution) if execution is not None else None
    timings: dict[str, float] = {"load": time.perf_counter() - started}

    t = time.perf_counter()
    warnings = InputWarnings(list(market.warnings.items))
    label = scenario_label(spec, spec_path)
    ready = prepare_run(spec, spec_path, market, label, warnings)
    shocked, holders, dated = ready.shocked, ready.holders, ready.schedule
    check_books(shocked, holders, ready.market, label)
    warn_breaches(market, "holders", warnings, spec)  # the market as given
    gamma.warn_unhedged(
        shocked, holders, market.mandates, warnings, label, given=len(spec.dealer_gamma)
    )
    market = ready.market  # a path's history sizes the estimating funds (estimator.warmup)
    first_order = (
        glt.of_scenario(spec.impact, market, shocked, holders, label)
        if spec.attribution == "glt"
        else None
    )
    timings["scenario"] = time.perf_counter() - t

    t = time.perf_counter()
    codes, positions = market.coded
    timings["coding"] = time.perf_counter() - t

    t = time.perf_counter()
    with ProblemCache(
        k=len(risk.factor_columns(shocked)),
        solver=solver,
        workers=workers,
        scheduler=scheduler,
        **(solver_options or {}),
    ) as cache:
        if scheduler is not None:  # an address that cannot be reached fails here, not later
            cache.start()
        fixed = None
        if spec.cascades and spec.impact.method == "equilibrium":
            fixed = _equilibrium(spec, shocked, holders, market, exec_style, cache, warnings)
        if fixed is not None:
            chain = None
            result = RoundResult(
                fixed.required.trades,
                fixed.required.holders,
                fixed.required.positions_after,
                fixed.required.holders_after,
                cache.compiled,
            )
        elif spec.cascades:
            chain = cascade(
                shocked,
                holders,
                positions,
                market.mandates,
                spec.impact,
                execution=exec_style,
                cache=cache,
                lender_losses=spec.lender_losses,
                days=spec.days,
                index_days=ready.index_days,
                codes=codes,
                progress=progress,
                moves=ready.moves,
                holder_moves=ready.holder_moves,
                last_path_day=len(dated.days) - 1 if dated else 0,
                estimators=ready.estimators,
                estimates=ready.estimates,
                factors=market.factors,
                factor_estimates=ready.factor_estimates,
                day_dates=_day_dates(dated, spec),
            )
            result = _cascade_round(chain, cache.compiled, days=spec.days is not None)
        else:
            chain = None
            result = evaluate_round(
                codes.encode(shocked),
                codes.encode(holders),
                positions,
                market.mandates,
                execution=exec_style,
                cache=cache,
                coded=True,
            ).decoded(codes)
        used, fallback = cache.workers_used, cache.fallback
    timings["evaluate_and_solve"] = time.perf_counter() - t
    if fallback is not None:
        warnings.add(
            Problem(
                "solver",
                f"cvxpy {package_version('cvxpy')} lacks what re-solving its compiled problems "
                f"directly needs ({fallback}); every min-cost solve went through Problem.solve "
                "instead "
                "(the same problems and answers, slower)",
                field="solver",
            )
        )
    if used < workers and scheduler is None:
        warnings.add(
            Problem(
                "options",
                f"{workers} workers asked for, {used} used: min-cost solves go to Dask "
                f"workers only in batches of at least {PARALLEL_MIN_PER_WORKER} holders per "
                "worker",
                field="workers",
            )
        )

    parameters = Parameters(
        participation=participation,
        solver=solver,
        execution_override=exec_style.value if exec_style else None,
        workers=workers,
        workers_used=used,
    )
    computed = Computed(
        spec, spec_path, market, shocked, result, parameters, warnings, timings, started
    )
    found = {"chain": chain, "fixed": fixed, "first_order": first_order, "schedule": dated}
    return assemble(replace(computed, **found))


def _day_dates(dated: Schedule | None, spec: Scenario) -> list[dt.date] | None:
    """The dates of every day a dated episode may reach, and the next."""
    if dated is None or spec.days is None:
        return None
    last = max(spec.days.max_days, len(dated.days))
    return day_dates(dated.calendar, dated.days[0], last)


def _equilibrium(
    spec: Scenario,
    shocked: pl.DataFrame,
    holders: pl.DataFrame,
    market: Market,
    execution: Execution | None,
    cache: ProblemCache,
    warnings: InputWarnings,
) -> Equilibrium | None:
    """The equilibria, or None (with a warning saying why) when the run falls back to rounds."""
    reasons = conditions(holders, market.mandates, spec.impact, spec.lender_losses)
    if spec.path is not None:  # its later days, calendars and estimates run day by day
        reasons.append("a dated path runs in rounds, day by day")
    if not reasons:
        try:
            return equilibrium(
                shocked,
                holders,
                market.positions,
                market.mandates,
                spec.impact,
                execution=execution,
                cache=cache,
            )
        except EquilibriumError as exc:
            reasons = [str(exc)]
    message = "equilibrium mode does not apply: " + "; ".join(reasons) + "; ran rounds instead"
    warnings.add(Problem(spec.name, message, field="impact.method"))
    return None


def _forced_by(chain: CascadeResult) -> pl.DataFrame:
    """``forced_by`` per holder that traded: ``scenario`` for the first round, else the
    largest pushes, e.g. ``HF_1 (EQ_A, round 1, 67%)``."""
    pushed = chain.chain.sort(
        ROUND, "target_id", "contribution", "source_id", descending=[False, False, True, False]
    )
    described = pushed.group_by("target_id", maintain_order=True).agg(
        forced_by=pl.format(
            "{} ({}, round {}, {}%)",
            "source_id",
            "asset_id",
            pl.col(ROUND) - 1,
            (100 * pl.col("share")).round(0).cast(pl.Int64),
        ).str.join("; ")
    )
    first = chain.trades.filter(pl.col(ROUND) == 1).select("holder_id").unique()
    return pl.concat(
        [
            first.with_columns(forced_by=pl.lit("scenario")),
            described.rename({"target_id": "holder_id"}),
        ]
    )


def _cascade_round(chain: CascadeResult, compiled: int, *, days: bool = False) -> RoundResult:
    """The cascade as one result: every round's trades, and each holder's row from the last
    round it was forced in (round 1 for holders never forced), with the rounds it was forced."""
    tables = chain.holder_rounds
    on_days = [pl.col(DAY).min().alias("first_day"), pl.col(DAY).max().alias("last_day")]
    counts = chain.trades.group_by("holder_id").agg(  # rounds in which the holder traded
        *(on_days if days else []),
        first_round=pl.col(ROUND).min(),
        rounds_forced=pl.col(ROUND).n_unique().cast(pl.Int64),
    )
    traded = chain.trades.group_by("holder_id").agg(  # over every round
        sold=(-pl.col("trade_value")).clip(lower_bound=0).sum(),
        bought=pl.col("trade_value").clip(lower_bound=0).sum(),
    )
    pick = pl.when(pl.col("status") != Status.OK).then(pl.col(ROUND)).otherwise(-pl.col(ROUND))
    holders = (
        tables.sort("holder_id", pick)
        .group_by("holder_id", maintain_order=True)
        .last()
        .drop("sold", "bought")
        .join(traded, on="holder_id", how="left")
        .join(counts, on="holder_id", how="left")
        .join(chain.losses.drop("loss_caused"), on="holder_id", how="left")
        .join(_forced_by(chain), on="holder_id", how="left")
        .with_columns(pl.col("sold", "bought").fill_null(0.0), pl.col("rounds_forced").fill_null(0))
        .sort("holder_id")
    )
    state = [c for c in STATE_COLUMNS if c in holders.columns and c in chain.holders_after.columns]
    if state:  # a fund that keeps paying outflows from cash is not forced: its last state stands
        final = chain.holders_after.select("holder_id", *state)
        holders = holders.drop(state).join(final, on="holder_id", how="left")
    return RoundResult(chain.trades, holders, chain.positions, chain.holders_after, compiled)
