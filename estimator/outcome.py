"""What a run gives back: :class:`RunResult` (its tables and manifest), assembled from what
the run computed (:class:`Computed`) by :func:`assemble`."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from estimator import aggregate, flows, glt, published
from estimator import manifest as mf
from estimator.book import ACCOUNTS
from estimator.cascade import DAY, ROUND, CascadeResult
from estimator.cures import cure_table
from estimator.cures import totals as cure_totals
from estimator.equilibrium import Equilibrium
from estimator.errors import InputWarnings
from estimator.finite import check_manifest, check_tables
from estimator.inputs import scenario_label
from estimator.lock import lock_state
from estimator.market import Market, sha256
from estimator.path import Schedule, day_dates, with_dates
from estimator.report import Format, canonical, write_reports
from estimator.rounds import RoundResult
from estimator.scenario import IndexChange, Scenario
from rules import Book, RuleColumns

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


#: Packages whose versions a run's manifest records (with Python's).
VERSIONS = ("polars", "cvxpy", "pydantic", "clarabel", "numpy")


@dataclass
class RunResult:
    """Everything a run produced, as Polars frames, plus its manifest."""

    scenario: Scenario
    assets: pl.DataFrame  # forced flow per asset
    trades: pl.DataFrame  # per holder × asset
    holders: pl.DataFrame  # per holder: status, rules, balance sheet before/after
    summary: pl.DataFrame  # per holder type × asset class
    manifest: mf.RunManifest
    warnings: InputWarnings = field(default_factory=InputWarnings)
    rounds: pl.DataFrame | None = None  # per round × asset, when the scenario has price impact
    chain: pl.DataFrame | None = None  # who pushed whom past a rule, round by round
    equilibrium: pl.DataFrame | None = None  # per asset: least and greatest fixed points
    days: pl.DataFrame | None = None  # per day × asset: flows and closing prices
    cures: pl.DataFrame | None = None  # per holder, round and rule that fired: cash vs trades
    balance_sheets: pl.DataFrame | None = None  # per round × holder, in a cascade (balance.py)
    flows: pl.DataFrame | None = None  # per flow kind × asset class: sold, bought, net (flows.py)
    daily: pl.DataFrame | None = None  # … per day × holder type too, on a day clock (flows.py)
    volatility: pl.DataFrame | None = None  # per day × asset × estimate: σ̂ the funds read
    published: pl.DataFrame | None = None  # the scenario's published figures beside the run's
    published_days: pl.DataFrame | None = None  # … their estimates by date, on a dated path

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
        if self.published_days is not None:
            tables["published_days"] = self.published_days
        if self.cures is not None:
            tables["cures"] = self.cures
        cascade = {
            "rounds": self.rounds,
            "balance_sheets": self.balance_sheets,
            "chain": self.chain,
            "equilibrium": self.equilibrium,
            "days": self.days,
            "daily": self.daily,
            "volatility": self.volatility,
        }
        return tables | {k: v for k, v in cascade.items() if v is not None}

    def write(
        self,
        out_dir: str | Path,
        fmt: Format = "csv",
        *,
        pages: Mapping[str, str] | None = None,
    ) -> list[Path]:
        """Write every table, ``manifest.json`` and any ``pages`` (file name → text, e.g.
        ``{"report.html": estimator.html.render(result)}``) into ``out_dir`` atomically."""
        return write_reports(Path(out_dir), self.tables(), self.manifest, fmt, pages)


@dataclass(frozen=True)
class Computed:
    """What a run computed, before it is put into tables: the inputs (``spec`` read from
    ``spec_path``, ``market``, the ``shocked`` assets), the result as one round (``result``;
    a cascade's or an equilibrium's, folded), and the cascade, equilibrium and first-order
    measures where the scenario asked for them."""

    spec: Scenario
    spec_path: Path | None
    market: Market
    shocked: pl.DataFrame
    result: RoundResult
    parameters: mf.Parameters
    warnings: InputWarnings
    timings: dict[str, float]
    started: float  # time.perf_counter() at the start of the run
    chain: CascadeResult | None = None
    fixed: Equilibrium | None = None
    first_order: glt.Measures | None = None
    schedule: Schedule | None = None  # a dated path's days and moves


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


def assemble(c: Computed) -> RunResult:
    """The run's tables and manifest from what it computed."""
    spec, market, shocked, result = c.spec, c.market, c.shocked, c.result
    chain, fixed, first_order = c.chain, c.fixed, c.first_order
    trades = flows.classify(result.trades, market.holders, market.mandates)
    kinds = flows.by_kind(trades, shocked)
    by_day = flows.daily(trades, market.holders, shocked) if spec.days is not None else None
    assets = aggregate.asset_flows(trades, shocked, c.parameters.participation)
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
    holder_rounds = chain.holder_rounds if chain is not None else result.holders
    cures = cure_table(holder_rounds, result.trades, market.mandates)
    c.timings["total"] = time.perf_counter() - c.started
    manifest = mf.RunManifest(
        scenario=mf.ScenarioRef(
            name=spec.name,
            path=scenario_label(spec, c.spec_path) if c.spec_path else None,
            sha256=sha256(c.spec_path) if c.spec_path else None,
        ),
        market=mf.MarketRef(
            name=market.name,
            as_of=market.as_of,
            base_currency=market.base_currency,
            inputs=market.sources,
        ),
        parameters=c.parameters,
        versions={p: mf.package_version(p) for p in VERSIONS}
        | {"python": platform.python_version()},
        lock=lock_state(),
        counts=mf.Counts(
            holders=holders.height,
            accounts=float(market.holders[ACCOUNTS].sum()),
            positions=market.positions.height,
            assets=market.assets.height,
            trades=result.trades.height,
            compiled_problems=result.compiled_problems,
        ),
        index_changes=[_change(i) for i in spec.index_changes],
        statuses=dict(sorted(holders.group_by("status").len().iter_rows())),
        cures=mf.Cures(**cure_totals(holder_rounds, cures)),
        totals=mf.Totals(
            sell_value=math.fsum(assets["sell_value"]), buy_value=math.fsum(assets["buy_value"])
        ),
        flows=mf.Flows(headline=flows.headline(kinds), by_kind=flows.totals(kinds)),
        lender_losses=math.fsum(
            holders["loss_lending"].clip(lower_bound=0.0) if "loss_lending" in holders else []
        ),
        cascade=None if chain is None else _cascade_summary(spec, chain),
        days=None if timeline is None else _day_stats(chain),
        glt=None
        if first_order is None
        else mf.GltSummary(aggregate_vulnerability=first_order.aggregate_vulnerability),
        equilibrium=None
        if fixed is None
        else mf.EquilibriumSummary(
            least_iterations=fixed.least.iterations,
            greatest_iterations=fixed.greatest.iterations,
            multiple_equilibria=fixed.multiple,
            tolerance=spec.impact.tolerance,
        ),
        warnings=[str(w) for w in c.warnings.items],
        timings_seconds={k: round(v, 4) for k, v in c.timings.items()},
    )
    rounds, edges, sheets = (
        (chain.rounds, chain.chain, chain.balance_sheets) if chain is not None else (None,) * 3
    )
    vols = None
    if chain is not None and chain.volatility is not None:
        vols = chain.volatility.sort(DAY, "asset_id", "estimator")
    if c.schedule is not None:
        start = c.schedule.days[0]
        update: dict[str, object] = {"path": mf.PathSummary.of(c.schedule)}
        if manifest.days is not None:  # each day's totals with its date
            last = max((r[DAY] for r in manifest.days.per_day), default=0)
            on = day_dates(c.schedule.calendar, start, last)
            per_day = [{**r, "date": on[r[DAY]].isoformat()} for r in manifest.days.per_day]
            update["days"] = manifest.days.model_copy(update={"per_day": per_day})
        manifest = manifest.model_copy(update=update)
        trades, rounds, sheets, timeline, by_day, vols = (
            None if f is None else with_dates(f, c.schedule.calendar, start)
            for f in (trades, rounds, sheets, timeline, by_day, vols)
        )

    def typed(frame: pl.DataFrame | None) -> pl.DataFrame | None:
        return None if frame is None else canonical(frame)

    out = RunResult(
        spec,
        canonical(assets),
        canonical(_with_fraction_sold(trades)),
        canonical(holders),
        canonical(summary),
        manifest,
        c.warnings,
        rounds=typed(rounds),
        chain=typed(edges),
        equilibrium=typed(fixed.table(shocked) if fixed is not None else None),
        days=typed(timeline),
        cures=typed(cures),
        balance_sheets=typed(sheets),
        flows=typed(kinds),
        daily=typed(by_day),
        volatility=typed(vols),
    )
    if spec.published:  # the scenario's published figures beside the run's estimates
        out.published = canonical(published.compare(spec.published, out, market))
        if c.schedule is not None:  # … and day by day
            out.published_days = canonical(published.by_day(spec.published, out, market))
        verdicts = dict(sorted(out.published.group_by("verdict").len().iter_rows()))
        out.manifest = manifest.model_copy(update={"published": verdicts})
    check_tables(out.tables())
    check_manifest(out.manifest.dump())
    return out


def _cascade_summary(spec: Scenario, chain: CascadeResult) -> mf.CascadeSummary:
    return mf.CascadeSummary(
        mode=spec.impact.mode,
        execution_point=spec.impact.execution_point,
        rounds_traded=chain.rounds_traded,
        converged=chain.converged,
        amplification=chain.amplification,
        loss_amplification=chain.loss_amplification,
        aggregate_vulnerability=chain.aggregate_vulnerability,
        lender_losses=spec.lender_losses,
        rounds=chain.round_summary.to_dicts(),
    )


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


def _change(change: IndexChange) -> dict[str, object]:
    """An index change as the manifest lists it (its date only where it has one)."""
    out = change.model_dump(mode="json")
    if change.effective_date is None:
        del out["effective_date"]
    return out


def _day_stats(chain: CascadeResult) -> mf.DaySummary:
    """The peak day (most value sold), the capitulation day (the last with forced selling)
    and the per-day totals."""
    days = chain.day_summary
    selling = days.filter(pl.col("sell_value") > 0)
    peak = selling.sort("sell_value", DAY, descending=[True, False]).head(1)
    return mf.DaySummary(
        days_traded=days.height,
        peak_day=peak[DAY].item() if peak.height else None,
        peak_sell_value=float(peak["sell_value"].item()) if peak.height else 0.0,
        capitulation_day=selling[DAY].max() if selling.height else None,  # type: ignore[arg-type]
        per_day=days.to_dicts(),
    )
