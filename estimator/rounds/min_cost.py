"""Min-cost: the least-cost trades that bring a forced holder back within its rules.

The problem and its compiled form are :mod:`estimator.solve`'s; this stage gathers each chosen
holder's inputs (its rules' levels, its positions' costs by the :class:`CostModel`)
(:func:`plan`); a round solves every mandate's plans in one batch (:func:`solve_plans`, on a
Dask cluster when it is large) and merges each mandate's solved trades with the pro-rata result
of everyone else (:func:`finish`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from estimator import book as bk
from estimator import keys, risk
from estimator.mandates import Mandate
from estimator.rounds.contract import EMPTY_TRADES, OUTCOME_SCHEMA, ROW, MandateRound
from estimator.rounds.decide import decide
from estimator.rounds.frames import asset_reads, position_rules, with_asset_columns
from estimator.solve import Job, Outcome, ProblemCache
from rules import HALF_SPREAD_BPS, Book, Level, RuleColumns, Vec
from rules.estimators import scale_column

#: Trading days a year: ``σ_d = σ / √252``.
TRADING_DAYS = 252


@dataclass(frozen=True)
class CostModel:
    """The cost of trading ``u`` (currency) in asset ``i``: ``h_i·|u| + β_i·|u|^{3/2}``.

    * ``h_i = half_spread_bps_i / 10⁴``, ``half_spread_bps`` where the asset gives none;
    * ``β_i = κ·σ_d,i / √(k·ADV_i)``: the square-root law (impact cost per unit traded
      ``κ·σ_d·√(|u|/ADV)``) with ``σ_d = max(σ/√252, min_daily_vol)`` — the floor keeps the
      objective strictly convex, so the optimal trades are unique — and ``k`` the accounts a
      holder row stands for: ``k`` identical accounts trading ``u/k`` each pay
      ``k·β·|u/k|^{3/2} = β·|u|^{3/2}/√k`` together.
    """

    kappa: float = 1.0
    min_daily_vol: float = 1e-4
    half_spread_bps: float = HALF_SPREAD_BPS

    def columns(self) -> dict[str, pl.Expr]:
        """``half_spread`` (``h``) and ``impact`` (``β``) from a position frame's ``vol``,
        ``adv``, ``half_spread_bps`` and accounts."""
        daily_vol = (pl.col("vol") / math.sqrt(TRADING_DAYS)).clip(lower_bound=self.min_daily_vol)
        return {
            "half_spread": pl.col("half_spread_bps").fill_null(self.half_spread_bps) / 10_000,
            "impact": self.kappa * daily_vol / (pl.col("adv") * pl.col(bk.ACCOUNTS)).sqrt(),
        }


@dataclass(frozen=True)
class Batch:
    """One mandate's min-cost solves: each chosen holder's job, and where its rows are."""

    order: np.ndarray  # holder ids, in job order
    ids: np.ndarray  # holder id of each position row
    assets: np.ndarray  # asset id of each position row
    starts: np.ndarray  # each job's first row
    ends: np.ndarray  # one past its last row
    jobs: list[Job]


def batch(
    chosen: pl.DataFrame,
    pos_m: pl.DataFrame,
    mandate: Mandate,
    assets: pl.DataFrame,
    cost: CostModel,
) -> Batch:
    """The solves of ``chosen`` holders: ``chosen`` are decision rows (book at the start of
    the round, cures applied), ``pos_m`` their position rows; every rule enters at its level
    (restore where it acted, trigger otherwise)."""
    gcols = risk.factor_columns(assets)
    key = next((r.risk_key for r in mandate.rules if r.risk_key is not None), None)
    rows = [risk.SPECIFIC, *gcols]
    estimate = []  # a volatility estimate's rows: its scale, or a factor-level one's own rows
    if key is not None:
        named = [scale_column(key), *(f"{c}@{key}" for c in rows)]
        estimate = [c for c in named if c in assets.columns]
    pos_m = with_asset_columns(pos_m, assets, ["adv", "vol", "half_spread_bps", *rows, *estimate])
    if key is not None:
        pos_m = pos_m.with_columns(bk.estimated_row(pos_m, c, key).alias(c) for c in rows).drop(
            estimate
        )
    scalar_names = sorted({n for r in mandate.rules for n in r.holder_inputs(Level.RESTORE)})
    levels = {}
    for r in mandate.rules:
        active = pl.col(r.col.down)
        if r.col.up in chosen.columns:
            active = active | pl.col(r.col.up)
        restore, trigger = r.position_inputs(Level.RESTORE), r.position_inputs(Level.TRIGGER)
        levels |= {k: pl.when(active).then(restore[k]).otherwise(trigger[k]) for k in restore}
    flags = [c for c in chosen.columns if c.endswith(RuleColumns.FLAGS)]
    sums = [c for r in position_rules(mandate) for c in r.holder_sums()]
    reads = {n for e in levels.values() for n in e.meta.root_names()}  # e.g. a multiplier
    extra = [c for c in chosen.columns if c in reads and c not in pos_m.columns]
    holder_cols = list(
        dict.fromkeys([Book.CASH, Book.NON_TRADABLE, bk.ACCOUNTS, *flags, *sums, *extra])
    )
    mpos = (
        pos_m.join(chosen.select("holder_id", *holder_cols), on="holder_id")
        .with_columns(
            **cost.columns(),
            is_cash_f=pl.col("is_cash").cast(pl.Float64),
            **levels,
        )
        .sort("holder_id", "asset_id")
    )
    vec_cols = {
        Vec.X0: "exposure",
        "half_spread": "half_spread",
        "impact": "impact",
        Vec.IS_CASH: "is_cash_f",
        Vec.RISK_SPECIFIC: risk.SPECIFIC,
        **{k: k for k in levels},
    }
    arrays = {k: mpos[c].to_numpy() for k, c in vec_cols.items()}
    rows = mpos.select(gcols).to_numpy()
    ids = mpos["holder_id"].to_numpy()
    assets = mpos["asset_id"].to_numpy()
    hrows = chosen.sort("holder_id").select("holder_id", Book.EQUITY, *scalar_names)
    order = hrows["holder_id"].to_numpy()
    starts = np.searchsorted(ids, order, side="left")
    ends = np.searchsorted(ids, order, side="right")
    jobs = [
        Job(
            {Book.EQUITY: equity, **dict(zip(scalar_names, svals, strict=True))},
            {k: v[a:b] for k, v in arrays.items()},
            rows[a:b],
        )
        for (equity, *svals), a, b in zip(
            hrows.drop("holder_id").iter_rows(), starts, ends, strict=True
        )
    ]
    return Batch(order, ids, assets, starts, ends, jobs)


def solved(part: Batch, results: list[Outcome]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Trades (holder_id, asset_id, trade_value) and outcomes of a batch's solves."""
    order, ids, assets, starts, ends = part.order, part.ids, part.assets, part.starts, part.ends
    trade_frames, outcomes = [], []
    for hid, res, a, b in zip(order, results, starts, ends, strict=True):
        kinds = sorted({name.split(".", 1)[0] for name in res.binding})
        outcomes.append((hid, res.ok, res.status, ";".join(kinds), ";".join(res.binding)))
        if res.ok:
            trade_frames.append(
                pl.DataFrame({"holder_id": ids[a:b], "asset_id": assets[a:b], "trade_value": res.u})
            )
    trades = pl.concat(trade_frames) if trade_frames else EMPTY_TRADES
    result = pl.DataFrame(outcomes, schema=OUTCOME_SCHEMA, orient="row")
    return trades, result


@dataclass(frozen=True)
class Plan:
    """A min-cost mandate's round before its solves: the pro-rata result it falls back to,
    its decisions, the chosen holders' position rows and their :class:`Batch`."""

    fallback: MandateRound
    decisions: pl.DataFrame
    rows: pl.DataFrame
    batch: Batch
    rules: list


def plan(
    rows: pl.DataFrame,
    book_m: pl.DataFrame,
    mandate: Mandate,
    fallback: MandateRound,
    assets: pl.DataFrame,
    cost: CostModel,
) -> Plan | None:
    """The solves a min-cost mandate needs: holders a rule forces to sell, but not those whose
    prescribed rule acted (:attr:`rules.RuleBase.prescribed`) or whose acting rules all leave
    no choice (:attr:`rules.RuleBase.leaves_no_choice`); None when there are none (the
    pro-rata result stands). ``rows``: position rows that include the mandate's holders."""
    decisions = decide(book_m, mandate)
    prescribed = [pl.col(r.col.down) for r in mandate.rules if r.prescribed]
    choice = [pl.col(r.col.down) for r in mandate.rules if not r.leaves_no_choice]
    chosen = decisions.filter(
        pl.col("any_down")
        & ~pl.col("infeasible")
        & ~pl.col("insolvent")
        & ((pl.col("scale_factor") < 1.0) | pl.col("positions_down"))
        & ~pl.any_horizontal([pl.lit(False), *prescribed])
        & pl.any_horizontal([pl.lit(False), *choice])
    )
    if chosen.is_empty():
        return None
    pos_c = keys.by_holder(rows.filter(pl.col("holder_id").is_in(chosen["holder_id"].implode())))
    pos_c = with_asset_columns(pos_c, assets, asset_reads(mandate, assets))
    work = batch(chosen, pos_c, mandate, assets, cost)
    return Plan(fallback, decisions, pos_c, work, list(mandate.rules))


def solve_plans(plans: list[Plan], cache: ProblemCache) -> list[list[Outcome]]:
    """Every plan's solves in one batch (on the cache's cluster when it is large)."""
    return cache.solve_batches([(p.rules, p.batch.jobs) for p in plans])


def finish(work: Plan, results: list[Outcome]) -> MandateRound:
    """The mandate's round: solved holders' trades; the pro-rata result for everyone else, and
    for any holder whose solve fails (status ``solver_failed``)."""
    fallback, pos_c = work.fallback, work.rows
    trades, outcomes = solved(work.batch, results)
    solved_ids = outcomes.filter(pl.col("solved")).select("holder_id")
    merged = pl.concat(
        [
            work.decisions.join(solved_ids, on="holder_id", how="semi"),
            fallback.decisions.join(solved_ids, on="holder_id", how="anti"),
        ],
        how="diagonal_relaxed",
    ).join(outcomes, on="holder_id", how="left")
    merged = merged.with_columns(  # a solved trade is one, by every binding rule
        binding_rules=pl.when(pl.col("solved"))
        .then(pl.col("solver_binding"))
        .otherwise(pl.col("binding_rules")),
        position_rules=pl.when(pl.col("solved")).then(pl.lit("")).otherwise("position_rules"),
    )
    solved_rows = (
        pos_c.join(solved_ids, on="holder_id", how="semi")
        .join(trades, on=["holder_id", "asset_id"], how="left")
        .select("holder_id", ROW, pl.col("trade_value").fill_null(0.0), position_value=pl.lit(0.0))
    )
    if fallback.traded is not None:
        kept = fallback.traded.join(solved_ids, on="holder_id", how="anti")
        solved_rows = pl.concat([kept, solved_rows])
    sums = fallback.sums_after
    if sums is not None:
        sums = sums.join(solved_ids, on="holder_id", how="anti")
    return MandateRound(merged, solved_rows, sums)
