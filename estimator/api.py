"""The library entry point: :func:`run` a scenario on a market and get Polars frames back."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import polars as pl

from estimator import aggregate, flows, glt, published
from estimator.book import ACCOUNTS
from estimator.cascade import DAY, ROUND, CascadeResult, cascade
from estimator.cures import cure_table
from estimator.cures import totals as cure_totals
from estimator.equilibrium import Equilibrium, EquilibriumError, conditions, equilibrium
from estimator.errors import InputWarnings, Problem
from estimator.finite import check_manifest, check_tables
from estimator.inputs import (
    check_books,
    check_options,
    load_inputs,
    prepare,
    scenario_label,
    warn_breaches,
)
from estimator.lock import lock_state
from estimator.mandates import Execution
from estimator.market import Market, sha256
from estimator.report import Format, canonical, write_reports
from estimator.rounds import RoundResult, evaluate_round
from estimator.scenario import Scenario
from estimator.solve import DEFAULT_SOLVER, PARALLEL_MIN_PER_WORKER, ProblemCache
from estimator.status import Status
from rules import STATE_COLUMNS, Book, RuleColumns

HOLDER_COLUMNS = [
    "holder_id",
    "holder_type",
    "accounts",
    "mandate",
    "mandate_execution",
    "status",
    "triggered_rules",
    "binding_rules",
    "binding_constraints",
    "solver_status",
    "equity_before",
    "equity_after",
    "account_equity_before",
    "account_equity_after",
    "gross_assets_before",
    "gross_assets_after",
    "cash_before",
    "cash_after",
    "leverage_pre",
    "leverage_before",
    "leverage_after",
    "vol_before",
    "vol_after",
    "cure_reserve",
    "cure_credit",
    "cure_capital",
    "sold",
    "bought",
    "shortfall",
    "compliant",
    "first_round",
    "rounds_forced",
    "first_day",
    "last_day",
    "pending",
    "forced_by",
    "equity_start",
    "loss_direct",
    "loss_impact",
    "loss_own_impact",
    "loss_others_impact",
    "loss_execution",
    "loss_lending",
    "loss_total",
    "cascade_systemicness",
    "cascade_indirect_vulnerability",
]


@dataclass
class RunResult:
    """Everything a run produced, as Polars frames, plus its manifest."""

    scenario: Scenario
    assets: pl.DataFrame  # forced flow per asset
    trades: pl.DataFrame  # per holder × asset
    holders: pl.DataFrame  # per holder: status, rules, balance sheet before/after
    summary: pl.DataFrame  # per holder type × asset class
    manifest: dict
    warnings: InputWarnings = field(default_factory=InputWarnings)
    rounds: pl.DataFrame | None = None  # per round × asset, when the scenario has price impact
    chain: pl.DataFrame | None = None  # who pushed whom past a rule, round by round
    equilibrium: pl.DataFrame | None = None  # per asset: least and greatest fixed points
    days: pl.DataFrame | None = None  # per day × asset: flows and closing prices
    cures: pl.DataFrame | None = None  # per holder, round and rule that fired: cash vs trades
    balance_sheets: pl.DataFrame | None = None  # per round × holder, in a cascade (balance.py)
    flows: pl.DataFrame | None = None  # per flow kind × asset class: sold, bought, net (flows.py)
    published: pl.DataFrame | None = None  # the scenario's published figures beside the run's

    def tables(self) -> dict[str, pl.DataFrame]:
        tables = {
            "assets": self.assets,
            "trades": self.trades,
            "holders": self.holders,
            "summary": self.summary,
        }
        if self.flows is not None:
            tables["flows"] = self.flows
        if self.published is not None:
            tables["published"] = self.published
        if self.cures is not None:
            tables["cures"] = self.cures
        cascade = {
            "rounds": self.rounds,
            "balance_sheets": self.balance_sheets,
            "chain": self.chain,
            "equilibrium": self.equilibrium,
            "days": self.days,
        }
        return tables | {k: v for k, v in cascade.items() if v is not None}

    def write(
        self, out_dir: str | Path, fmt: Format = "csv", *, html: bool = False, top: int = 15
    ) -> list[Path]:
        """Write every table and ``manifest.json`` into ``out_dir`` atomically, and with
        ``html`` the self-contained ``report.html`` (:mod:`estimator.html`, ``top`` assets)."""
        texts = {"report.html": self.html(top)} if html else None
        return write_reports(Path(out_dir), self.tables(), self.manifest, fmt, texts)

    def html(self, top: int = 15) -> str:
        """The run as one self-contained HTML report (charts and tables)."""
        from estimator.html import render  # noqa: PLC0415 (altair: 0.4 s, only when asked for)

        return render(self, top=top)


def run(
    scenario: str | Path | Scenario,
    market: str | Path | Market | None = None,
    *,
    execution: Execution | str | None = None,
    participation: float = 0.2,
    solver: str = DEFAULT_SOLVER,
    solver_options: dict | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Apply ``scenario`` to ``market`` and estimate every holder's forced trades.

    ``scenario``: a shipped scenario's name, a TOML path, or a :class:`Scenario`.
    ``market``: a :class:`Market` (e.g. from :func:`build_market` on your own frames), a bundle
    folder, or None for the scenario's own ``market``. ``workers``: processes for min-cost
    solves (used for batches of a few hundred holders per process and more). ``progress``: called
    after every round of a cascade with the rounds run so far and the day.
    """
    started = time.perf_counter()
    solver = check_options(participation, solver, workers)
    spec, spec_path, market = load_inputs(scenario, market)
    exec_style = Execution(execution) if execution is not None else None
    timings: dict[str, float] = {"load": time.perf_counter() - started}

    t = time.perf_counter()
    warnings = InputWarnings(list(market.warnings.items))
    label = scenario_label(spec, spec_path)
    shocked, holders = prepare(spec, market, label, warnings)
    check_books(shocked, holders, market, label)
    warn_breaches(market, "holders", warnings)
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
        k=sum(c.startswith("risk_g") for c in shocked.columns),
        solver=solver,
        workers=workers,
        **(solver_options or {}),
    ) as cache:
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
                index_days=spec.index_days,
                codes=codes,
                progress=progress,
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
                f"cvxpy {_version('cvxpy')} lacks what re-solving its compiled problems directly "
                f"needs ({fallback}); every min-cost solve went through Problem.solve instead "
                "(the same problems and answers, slower)",
                field="solver",
            )
        )
    if used < workers:
        warnings.add(
            Problem(
                "options",
                f"{workers} workers asked for, {used} used: min-cost solves go to worker "
                f"processes only in batches of at least {PARALLEL_MIN_PER_WORKER} holders per "
                "process",
                field="workers",
            )
        )

    parameters = {
        "participation": participation,
        "solver": solver,
        "execution_override": exec_style.value if exec_style else None,
        "workers": workers,
        "workers_used": used,
    }
    return _assemble(
        spec,
        spec_path,
        market,
        shocked,
        result,
        parameters,
        warnings,
        timings,
        started,
        chain,
        fixed,
        first_order,
    )


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


def _holder_table(result: RoundResult, market: Market) -> pl.DataFrame:
    def per_equity(col: str, when: str) -> pl.Expr:
        equity = pl.col(f"equity_{when}")
        return pl.when(equity > 0).then(pl.col(f"{col}_{when}") / equity)

    h = result.holders.with_columns(
        pl.col("binding_constraints", "solver_status").fill_null(""),
        vol_before=per_equity(Book.RISK, "before"),
        vol_after=per_equity(Book.RISK, "after"),
    )
    rule_metrics = sorted(c for c in h.columns if c.endswith(RuleColumns.METRICS))
    state = {k for m in market.mandates.values() for r in m.rules for k in r.state_columns}
    if any(m.capital_call is not None for m in market.mandates.values()):
        called = result.holders_after.select("holder_id", Book.CAPITAL_CALLED)
        h = h.drop(Book.CAPITAL_CALLED, strict=False).join(called, on="holder_id", how="left")
        state.add(Book.CAPITAL_CALLED)  # over the whole scenario
    cols = [c for c in HOLDER_COLUMNS if c in h.columns] + rule_metrics + sorted(state)
    return h.select(cols).sort("holder_id")


def _assemble(
    spec,
    spec_path,
    market,
    shocked,
    result,
    parameters,
    warnings,
    timings,
    started,
    chain: CascadeResult | None = None,
    fixed: Equilibrium | None = None,
    first_order: glt.Measures | None = None,
) -> RunResult:
    trades = flows.classify(result.trades, market.holders, market.mandates)
    kinds = flows.by_kind(trades, shocked)
    assets = aggregate.asset_flows(result.trades, shocked, parameters["participation"])
    end = chain.prices if chain is not None else fixed.least.prices if fixed is not None else None
    if end is not None:  # the price each asset ends at after the rounds / at the equilibrium
        assets = assets.join(
            end.select("asset_id", price_end="price"), on="asset_id", how="left"
        ).with_columns(price_change=pl.col("price_end") / pl.col("price") - 1)
    if chain is not None:  # the first round beside the whole cascade
        first = chain.rounds.filter(pl.col(ROUND) == 1).select(
            "asset_id",
            first_round_sell_value="sell_value",
            first_round_net_value=pl.col("buy_value") - pl.col("sell_value"),
            first_round_price_change=pl.col("price_end") / pl.col("price_start") - 1,
        )
        assets = assets.join(first, on="asset_id", how="left").with_columns(
            pl.col(
                "first_round_sell_value", "first_round_net_value", "first_round_price_change"
            ).fill_null(0.0)
        )
    timeline = None
    if chain is not None and spec.days is not None:
        assets = assets.join(
            chain.prices.select("asset_id", "price_rebound"), on="asset_id", how="left"
        ).with_columns(rebound=pl.col("price_rebound") / pl.col("price_end") - 1)
        timeline = _timeline(chain, shocked)
    summary = aggregate.by_type_and_class(result.trades, market.holders, shocked)
    holders = _holder_table(result, market)
    if first_order is not None:  # GLT's measures of the pre-shock book, beside the run's
        holders = holders.join(first_order.holders, on="holder_id", how="left")
        assets = assets.join(first_order.assets, on="asset_id", how="left").with_columns(
            pl.col("glt_net_sales", "glt_price_change").fill_null(0.0)
        )
    statuses = dict(sorted(holders.group_by("status").len().iter_rows()))
    holder_rounds = chain.holder_rounds if chain is not None else result.holders
    cures = cure_table(holder_rounds, result.trades, market.mandates)
    timings["total"] = time.perf_counter() - started
    manifest = {
        "tool": "forced-flow",
        "version": _version("forced-flow"),
        "scenario": {
            "name": spec.name,
            "path": scenario_label(spec, spec_path) if spec_path else None,
            "sha256": sha256(spec_path) if spec_path else None,
        },
        "market": {
            "name": market.name,
            "as_of": market.as_of,
            "base_currency": market.base_currency,
            "inputs": market.sources,
        },
        "parameters": parameters,
        "versions": {p: _version(p) for p in ("polars", "cvxpy", "pydantic", "clarabel", "numpy")}
        | {"python": platform.python_version()},
        "lock": lock_state(),
        "counts": {
            "holders": holders.height,
            "accounts": float(market.holders[ACCOUNTS].sum()),
            "positions": market.positions.height,
            "assets": market.assets.height,
            "trades": result.trades.height,
            "compiled_problems": result.compiled_problems,
        },
        "index_changes": [c.model_dump() for c in spec.index_changes],
        "statuses": statuses,
        "cures": cure_totals(holder_rounds, cures),
        "totals": {
            "sell_value": math.fsum(assets["sell_value"]),
            "buy_value": math.fsum(assets["buy_value"]),
        },
        "flows": {"headline": flows.headline(kinds), "by_kind": flows.totals(kinds)},
        "lender_losses": math.fsum(
            holders["loss_lending"].clip(lower_bound=0.0) if "loss_lending" in holders else []
        ),
        "cascade": None
        if chain is None
        else {
            "mode": spec.impact.mode,
            "execution_point": spec.impact.execution_point,
            "rounds_traded": chain.rounds_traded,
            "converged": chain.converged,
            "amplification": chain.amplification,
            "loss_amplification": chain.loss_amplification,
            "aggregate_vulnerability": chain.aggregate_vulnerability,
            "lender_losses": spec.lender_losses,
            "rounds": chain.round_summary.to_dicts(),
        },
        "days": None if timeline is None else _day_stats(chain),
        "glt": None
        if first_order is None
        else {"aggregate_vulnerability": first_order.aggregate_vulnerability},
        "equilibrium": None
        if fixed is None
        else {
            "least_iterations": fixed.least.iterations,
            "greatest_iterations": fixed.greatest.iterations,
            "multiple_equilibria": fixed.multiple,
            "tolerance": spec.impact.tolerance,
        },
        "warnings": [str(w) for w in warnings.items],
        "timings_seconds": {k: round(v, 4) for k, v in timings.items()},
    }
    rounds, edges, sheets = (
        (chain.rounds, chain.chain, chain.balance_sheets) if chain is not None else (None,) * 3
    )

    def typed(frame: pl.DataFrame | None) -> pl.DataFrame | None:
        return None if frame is None else canonical(frame)

    result = RunResult(
        spec,
        canonical(assets),
        canonical(_with_fraction_sold(trades)),
        canonical(holders),
        canonical(summary),
        manifest,
        warnings,
        rounds=typed(rounds),
        chain=typed(edges),
        equilibrium=typed(fixed.table(shocked) if fixed is not None else None),
        days=typed(timeline),
        cures=typed(cures),
        balance_sheets=typed(sheets),
        flows=typed(kinds),
    )
    if spec.published:  # the scenario's published figures beside the run's estimates
        result.published = canonical(published.compare(spec.published, result, market))
        manifest["published"] = dict(sorted(result.published.group_by("verdict").len().iter_rows()))
    check_tables(result.tables())
    check_manifest(manifest)
    return result


def _with_fraction_sold(trades: pl.DataFrame) -> pl.DataFrame:
    """``fraction_sold = −q_trade / q_before``: the share of the position at the round's start
    sold (a short: bought back); negative where a trade adds to a position, empty where
    there was none."""
    before = pl.col("quantity_before")
    return trades.with_columns(
        fraction_sold=pl.when(before != 0).then(-pl.col("trade_quantity") / before)
    )


def _timeline(chain: CascadeResult, assets: pl.DataFrame) -> pl.DataFrame:
    """Per day and asset: flows, % of ADV (that day's and cumulative) and the closing price."""
    pct = 100 * pl.col("net_value").abs() / pl.col("adv")
    return (
        chain.day_flows.join(assets.select("asset_id", "adv"), on="asset_id")
        .sort(DAY)
        .with_columns(
            pct_adv=pct,
            cumulative_pct_adv=100
            * pl.col("net_value").cum_sum().over("asset_id").abs()
            / pl.col("adv"),
        )
        .drop("adv")
        .sort(DAY, "asset_id")
    )


def _day_stats(chain: CascadeResult) -> dict:
    """The peak day (most value sold), the capitulation day (the last with forced selling)
    and the per-day totals."""
    days = chain.day_summary
    selling = days.filter(pl.col("sell_value") > 0)
    peak = selling.sort("sell_value", DAY, descending=[True, False]).head(1)
    return {
        "days_traded": days.height,
        "peak_day": peak[DAY].item() if peak.height else None,
        "peak_sell_value": float(peak["sell_value"].item()) if peak.height else 0.0,
        "capitulation_day": selling[DAY].max() if selling.height else None,
        "per_day": days.to_dicts(),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
