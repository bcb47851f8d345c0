"""The first stages of a run: load and check the inputs, apply the scenario, mark the books.

:func:`check` stops there: it makes every check :func:`estimator.run` makes before a rule is
evaluated (``forced-flow validate``), so an input that would fail a run fails here, without
solving or writing anything.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from estimator import book as bk
from estimator import gamma, precheck, realised, stack, trend
from estimator.bounds import finite_problem
from estimator.errors import InputError, InputWarnings, Problem
from estimator.finite import non_finite
from estimator.market import Market, load_market
from estimator.moves import hit
from estimator.path import Schedule, history_returns, schedule, starting_vols
from estimator.paths import DEFAULT_MARKET, resolve_market, resolve_scenario, scenarios_dir
from estimator.scenario import Scenario, load_scenario
from estimator.shocks import apply_scenario, day_holder_moves, day_moves
from estimator.solve import DEFAULT_SOLVER
from estimator.warmup import sized_to_estimates
from rules import Book
from rules.leverage import PRE as LEVERAGE_PRE
from rules.leverage import measured_leverage


def read_scenario(scenario: str | Path | Scenario) -> tuple[Scenario, Path | None]:
    """The scenario (a shipped name, a TOML path or a :class:`Scenario`) and its file."""
    if isinstance(scenario, Scenario):
        return scenario, None
    path = resolve_scenario(scenario)
    return load_scenario(path), path


def scenario_label(spec: Scenario, path: Path | None) -> str:
    """How a scenario is named in messages and manifests: a shipped scenario by its name, a
    file by its path relative to the working directory, an in-memory one by its ``name``."""
    if path is None:
        return spec.name
    if path.resolve().parent == scenarios_dir().resolve():
        return path.stem
    return os.path.relpath(path)


def load_inputs(
    scenario: str | Path | Scenario, market: str | Path | Market | None = None
) -> tuple[Scenario, Path | None, Market]:
    """The scenario (and its file, if any) and the market it runs on: ``market`` as given
    (a bundle folder relative to the working directory), or the scenario's own ``market``
    (relative to the scenario file)."""
    spec, spec_path = read_scenario(scenario)
    if isinstance(market, Market):
        return spec, spec_path, market
    if market is not None:
        return spec, spec_path, load_market(resolve_market(market))
    relative = spec_path.parent if spec_path is not None else None
    return spec, spec_path, load_market(resolve_market(spec.market, relative))


@functools.cache
def usable_solvers() -> list[str]:
    """Installed cvxpy solvers that can solve the minimal-cost problems: conic solvers with
    second-order and power cones (:mod:`estimator.solve`)."""
    import cvxpy as cp  # noqa: PLC0415 (not needed by a run that solves nothing)
    from cvxpy.constraints import SOC, PowCone3D  # noqa: PLC0415
    from cvxpy.reductions.solvers.defines import SOLVER_MAP_CONIC  # noqa: PLC0415

    cones = (PowCone3D, SOC)
    return [
        name
        for name in cp.installed_solvers()
        if name in SOLVER_MAP_CONIC
        and all(c in SOLVER_MAP_CONIC[name].SUPPORTED_CONSTRAINTS for c in cones)
    ]


#: A Dask scheduler's address: a protocol and a host with its port, e.g. ``tcp://host:8786``.
SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://[^\s/]+$")


def check_options(
    participation: float, solver: str, workers: int, scheduler: str | None = None
) -> str:
    """The run options, or an input error naming the option; returns the solver's name as
    cvxpy spells it (``clarabel`` → ``CLARABEL``)."""
    problems = []
    if scheduler is not None and not SCHEDULER_ADDRESS.match(scheduler):
        problems.append(
            Problem(
                "options",
                f"expected a Dask scheduler's address such as tcp://host:8786, got {scheduler!r}",
                field="--scheduler",
            )
        )
    why = finite_problem(participation, 0.0, 1.0, open_low=True)
    if why is not None:
        problems.append(Problem("options", f"{why} (0 < ρ ≤ 1)", field="--participation"))
    if workers < 1:
        problems.append(Problem("options", f"expected ≥ 1, got {workers}", field="--workers"))
    # the default solver is a dependency that solves them; another is looked up in cvxpy
    usable = [DEFAULT_SOLVER] if solver.upper() == DEFAULT_SOLVER else usable_solvers()
    if solver.upper() not in usable:
        problems.append(
            Problem(
                "options",
                f"{solver!r} is not a solver that can solve the minimal-cost problems; "
                f"installed and able to: {', '.join(usable)}",
                field="--solver",
            )
        )
    if problems:
        raise InputError(problems)
    return solver.upper()


def prepare(
    spec: Scenario,
    market: Market,
    label: str,
    warnings: InputWarnings,
    *,
    multiple: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The shocked assets, and the holders with the futures' variation margin of the shocks
    settled to cash and their book before the shocks: leverage (``leverage_pre``, and by each
    measure of the leverage rule, ``balance_sheet_leverage_pre``, ``exposure_leverage_pre``), equity
    (``equity_pre``), gross exposure (``gross_exposure_pre``), cash reserve
    (``cash_reserve_pre``), non-tradable holdings (``non_tradable_pre``), and the equity
    drawdowns are measured from (``reference_equity``: the holder's own where given, else
    ``equity_pre``); and the scenario's holder shocks. ``multiple``: the column of a stacked
    market's assets and holders with each row's multiple of the scenario
    (:mod:`estimator.stack`)."""
    pre = market.book
    shocked = apply_scenario(
        market.assets, spec, label, warnings, market.index_weights, multiple=multiple
    )
    gamma.check_hedgers(shocked, market.holders, market.positions, market.mandates, label)
    futures = shocked.filter(pl.col("instrument") != "cash").select(
        "asset_id", "multiplier", dp=pl.col("price") - pl.col("price_pre")
    )
    before = pre.select(
        "holder_id",
        pl.col("leverage").alias(Book.LEVERAGE_PRE),
        *(measured_leverage(m).alias(column) for m, column in LEVERAGE_PRE.items()),
        pl.col(Book.EQUITY).alias(Book.EQUITY_PRE),
        pl.col(Book.GROSS_EXPOSURE).alias(Book.GROSS_PRE),
    )
    holders = bk.credit_variation_margin(market.holders, market.positions, futures).join(
        before, on="holder_id"
    )
    reference = pl.col(Book.EQUITY_PRE)
    if Book.REFERENCE_EQUITY in holders.columns:  # the holder's own where it has one
        reference = pl.coalesce(Book.REFERENCE_EQUITY, reference)
    holders = holders.with_columns(
        reference.alias(Book.REFERENCE_EQUITY),
        pl.col("cash_reserve").alias(Book.RESERVE_PRE),
        pl.col(Book.NON_TRADABLE).alias(Book.NON_TRADABLE_PRE),
    )
    if multiple is None:
        return shocked, holders.with_columns(**spec.holder_columns(market.holders, warnings, label))
    # a stack (estimator.stack): a holder shock naming a holder selects each of its points
    return shocked, stack.on_base_ids(
        holders,
        "holder_id",
        lambda frame: frame.with_columns(
            **spec.holder_columns(frame, warnings, label, pl.col(multiple))
        ),
    )


def warn_breaches(
    market: Market, label: str, warnings: InputWarnings, spec: Scenario | None = None
) -> None:
    """Warn of every holder that breaks its rules on the market as given, before any shock
    (:mod:`estimator.precheck`), with the trends ``spec`` says stood when it starts."""
    calm = Scenario(name="calm", trend_start=spec.trend_start if spec is not None else [])
    assets, holders = prepare(calm, market, label, InputWarnings())
    found = precheck.breaches(assets, holders, market.positions, market.mandates)
    precheck.warn(found, label, warnings)


def check_books(shocked: pl.DataFrame, holders: pl.DataFrame, market: Market, label: str) -> None:
    """Every book marked at the shocked prices is finite, or an input error: the numbers the
    rules will read cannot overflow."""
    book = bk.holder_book(bk.position_frame(market.positions, shocked), holders)
    found = non_finite(book) + non_finite(holders)
    if found:
        raise InputError(
            [
                Problem(
                    label,
                    f"the inputs are too large: marked at the scenario's prices, {what} is not "
                    "finite",
                    field="shocks",
                )
                for what in found[:10]
            ]
        )


@dataclass(frozen=True)
class Prepared:
    """A scenario applied to its market: the shocked assets and the holders
    (:func:`prepare`), and for a dated path its schedule and the moves of its later days
    (:func:`estimator.shocks.day_moves`)."""

    shocked: pl.DataFrame
    holders: pl.DataFrame
    #: The market the run starts from: the one given, with a path's history the estimating
    #: vol-target funds sized to their estimates (:mod:`estimator.warmup`).
    market: Market
    schedule: Schedule | None = None
    moves: dict[int, pl.DataFrame] = field(default_factory=dict)
    #: The path's holder shocks of its later days (:func:`estimator.shocks.day_holder_moves`).
    holder_moves: dict[int, pl.DataFrame] = field(default_factory=dict)
    #: The volatility estimators the rules read, by key, and their state per asset after day
    #: 0's return (:mod:`estimator.realised`; ``shocked`` carries their scales).
    estimators: dict[str, realised.Estimate] = field(default_factory=dict)
    estimates: pl.DataFrame | None = None
    #: The factor-level estimators' state per factor after day 0 (None without them).
    factor_estimates: pl.DataFrame | None = None
    #: The day each index's changes trade (:attr:`Scenario.index_days`, dated ones resolved).
    index_days: dict[str, int] = field(default_factory=dict)


def prepare_run(
    spec: Scenario, spec_path: Path | None, market: Market, label: str, warnings: InputWarnings
) -> Prepared:
    """:func:`prepare`, with a dated path's day-0 moves among the shocks and its later days'
    moves worked out (its table read relative to the scenario file), and the volatility
    estimates the rules read after day 0's return — on a dated path only: without one (a
    one-shot scenario, or a ``[days]`` clock alone) rules read the risk model as the shocks
    leave it (``vol_multiplier``)."""
    dated, opening = None, spec
    if spec.path is not None:
        folder = spec_path.parent if spec_path is not None else None
        dated = schedule(spec.path, folder, market.assets["asset_id"].to_list())
        moved = [*spec.shocks, *dated.shocks.get(0, [])]  # day 0's moves join the shocks
        changes = spec.dated_changes()  # dated index changes on their trading day
        opening = spec.model_copy(update={"shocks": moved, "index_changes": changes})
    wanted, before, factors = {}, None, None  # estimates need days: one-shot, the risk model
    if dated is not None:
        wanted = realised.estimators(r for m in market.mandates.values() for r in m.rules)
        history = history_returns(market.assets, dated.history)
        market = replace(market, assets=trend.warm(market.assets, history, realised.RETURNS))
        if wanted:
            levels = starting_vols(market.assets, dated.starting_vol)
            before = realised.warmed(market.assets, wanted, history, levels)
            factors = realised.warmed_factors(market.assets, wanted, market.factors, history)
            if not (history.is_empty() and levels.is_empty()):  # the days before are known:
                # funds start sized to them
                market = sized_to_estimates(market, wanted, before, factors)
    shocked, holders = prepare(opening, market, label, warnings)
    moves, holder_moves = {}, {}
    if dated is not None:
        assert spec.path is not None
        moves = day_moves(shocked, dated, label, warnings)
        holder_moves = day_holder_moves(market.holders, spec.path, dated, label, warnings)
        if 0 in holder_moves:  # day 0's join the scenario's holder shocks
            holders = hit(holders, holder_moves.pop(0))
    shocked, estimates, factors = realised.opening(shocked, wanted, before, market.factors, factors)
    return Prepared(
        shocked,
        holders,
        market,
        dated,
        moves,
        holder_moves,
        wanted,
        estimates,
        factors,
        opening.index_days,
    )


@dataclass(frozen=True)
class Checked:
    """What :func:`check` loaded: the market, the scenario's label (None without one) and
    every warning."""

    market: Market
    scenario: str | None
    warnings: InputWarnings


def check(
    scenario: str | Path | Scenario | None = None, market: str | Path | Market | None = None
) -> Checked:
    """Load and check every input as :func:`estimator.run` does before evaluating any rule:
    the market's tables, indices, risk model and mandates; with a scenario, the scenario
    applied to the market (shocks, index changes, holder shocks) and the books marked at its
    prices. Raises :class:`InputError` listing every problem; nothing is solved or written."""
    if scenario is None:
        loaded = (
            market
            if isinstance(market, Market)
            else load_market(resolve_market(market or DEFAULT_MARKET))
        )
        warnings = InputWarnings(list(loaded.warnings.items))
        warn_breaches(loaded, "holders", warnings)
        return Checked(loaded, None, warnings)
    spec, path, loaded = load_inputs(scenario, market)
    label = scenario_label(spec, path)
    warnings = InputWarnings(list(loaded.warnings.items))
    ready = prepare_run(spec, path, loaded, label, warnings)
    check_books(ready.shocked, ready.holders, ready.market, label)
    warn_breaches(loaded, "holders", warnings)
    return Checked(loaded, label, warnings)
