"""Rounds of forced trades with price impact: the fire-sale cascade.

State: the holders' books after every trade so far, and the prices. Round ``r`` (1, 2, …):

1. every holder's forced trades at the round's prices ``P_r``, all holders at once
   (:func:`estimator.engine.evaluate_round`: a rule inside its trigger level does not act, even
   above its restore level — hysteresis);
2. the round's net quantity per asset ``q_r = Σ_holders u/(P_r·mult)`` moves the prices to
   ``P_{r+1}`` (:mod:`estimator.impact`; by default as a function of the cumulative
   ``Σ_{s≤r} q_s``);
3. the trades execute at ``P_x = P_r + α·(P_{r+1} − P_r)``: the round booked them at ``P_r``,
   so each holder's cash moves by ``Σ q·mult·(P_r − P_x)`` (a sale receives less when the price
   falls under it);
4. the books are marked to ``P_{r+1}``: cash instruments through their price, futures by
   variation margin ``Σ q⁺·mult·(P_{r+1} − P_r)`` on the positions held after the round.

Index changes are traded in the first round (their weight changes are then done). The cascade
stops when a round forces no trade (``converged``) or after ``max_rounds``.

Amplification: ``Σ_r S_r / S_1`` with ``S_r`` the value sold in round ``r`` at ``P_r``; 1.0
exactly when the first round's trades move no price (no impact): the second round then finds
every holder at its restore level and forces nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from estimator import impact as im
from estimator.engine import evaluate_round
from estimator.impact import Impact
from estimator.mandates import Execution, Mandate
from estimator.solve import ProblemCache
from rules import Book

ROUND = "round"


@dataclass
class CascadeResult:
    trades: pl.DataFrame  # every round's trades, with round and execution_price
    rounds: pl.DataFrame  # per round and asset: flows and prices
    holders: pl.DataFrame  # per round: holders not ok (forced, cured, …), status and rules
    holder_rounds: pl.DataFrame  # every round's full holder table, with round
    positions: pl.DataFrame  # books after the last round
    holders_after: pl.DataFrame  # holder table (cash) after the last round
    prices: pl.DataFrame  # asset_id, price_0 (start of the episode), price (after the cascade)
    converged: bool
    rounds_traded: int
    amplification: float


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
) -> CascadeResult:
    """Run rounds until no holder is forced (see the module docstring). ``assets`` are the
    shocked assets (their ``price`` is ``P₀``), ``holders`` and ``positions`` the books as
    :func:`estimator.run` prepares them; ``max_rounds`` overrides the impact settings' one."""
    max_rounds = max_rounds or impact.max_rounds
    params = impact.parameters(assets)
    index_moves = [c for c in assets.columns if c.startswith("index[") and c.endswith("].dw")]
    state = assets.join(params, on="asset_id").with_columns(
        price_0=pl.col("price"), episode_quantity=pl.lit(0.0)
    )
    trades, rounds, statuses, tables = [], [], [], []
    converged = False
    for r in range(1, max_rounds + 1):
        result = evaluate_round(
            state.select(assets.columns),
            holders,
            positions,
            mandates,
            execution=execution,
            cache=cache,
        )
        if result.trades.is_empty():
            converged = True
            if r == 1:
                tables.append(result.holders.with_columns(pl.lit(r, pl.Int32).alias(ROUND)))
            break
        tables.append(result.holders.with_columns(pl.lit(r, pl.Int32).alias(ROUND)))
        flows = result.trades.group_by("asset_id").agg(
            round_quantity=pl.col("trade_quantity").sum(),
            sell_value=(-pl.col("trade_value")).clip(lower_bound=0).sum(),
            buy_value=pl.col("trade_value").clip(lower_bound=0).sum(),
        )
        state = (
            state.join(flows, on="asset_id", how="left")
            .with_columns(
                pl.col("round_quantity", "sell_value", "buy_value").fill_null(0.0),
                episode_quantity=pl.col("episode_quantity")
                + pl.col("round_quantity").fill_null(0.0),
            )
            .pipe(im.prices_after, impact.mode)
            .with_columns(
                execution_price=im.execution_price(
                    pl.col("price"), pl.col("price_after"), impact.execution_point
                )
            )
        )
        rounds.append(
            state.select(
                pl.lit(r, pl.Int32).alias(ROUND),
                "asset_id",
                "round_quantity",
                "sell_value",
                "buy_value",
                price_start=pl.col("price"),
                price_end=pl.col("price_after"),
                execution_price=pl.col("execution_price"),
            ).filter(
                (pl.col("round_quantity") != 0) | (pl.col("price_end") != pl.col("price_start"))
            )
        )
        marks = state.select(
            "asset_id",
            "multiplier",
            "instrument",
            p_start=pl.col("price"),
            p_end=pl.col("price_after"),
            p_exec=pl.col("execution_price"),
        )
        traded = result.trades.join(marks, on="asset_id")
        trades.append(
            traded.select(
                pl.lit(r, pl.Int32).alias(ROUND),
                *result.trades.columns,
                execution_price=pl.col("p_exec"),
            )
        )
        statuses.append(
            result.holders.select(
                pl.lit(r, pl.Int32).alias(ROUND), "holder_id", "status", "triggered_rules"
            )
        )
        execution_cost = traded.group_by("holder_id").agg(
            _exec=(
                pl.col("trade_quantity")
                * pl.col("multiplier")
                * (pl.col("p_start") - pl.col("p_exec"))
            ).sum()
        )
        margin = (
            result.positions_after.join(marks, on="asset_id")
            .filter(pl.col("instrument") == "future")
            .group_by("holder_id")
            .agg(
                _vm=(
                    pl.col("quantity")
                    * pl.col("multiplier")
                    * (pl.col("p_end") - pl.col("p_start"))
                ).sum()
            )
        )
        holders = (
            result.holders_after.join(execution_cost, on="holder_id", how="left")
            .join(margin, on="holder_id", how="left")
            .with_columns(
                pl.col(Book.CASH) + pl.col("_exec").fill_null(0.0) + pl.col("_vm").fill_null(0.0)
            )
            .drop("_exec", "_vm")
        )
        positions = result.positions_after
        state = state.with_columns(
            price=pl.col("price_after"), **{c: pl.lit(0.0) for c in index_moves}
        ).drop("round_quantity", "sell_value", "buy_value", "price_after", "execution_price")
    sold = [float(f["sell_value"].sum()) for f in rounds]
    return CascadeResult(
        trades=pl.concat(trades) if trades else _EMPTY_TRADES,
        rounds=pl.concat(rounds) if rounds else _EMPTY_ROUNDS,
        holders=pl.concat(statuses) if statuses else _EMPTY_STATUSES,
        holder_rounds=pl.concat(tables, how="diagonal_relaxed"),
        positions=positions,
        holders_after=holders,
        prices=state.select("asset_id", "price_0", "price"),
        converged=converged,
        rounds_traded=len(rounds),
        amplification=sum(sold) / sold[0] if sold and sold[0] > 0 else 1.0,
    )


_EMPTY_TRADES = pl.DataFrame(
    schema={
        ROUND: pl.Int32,
        "holder_id": pl.String,
        "asset_id": pl.String,
        "quantity_before": pl.Float64,
        "trade_quantity": pl.Float64,
        "trade_value": pl.Float64,
        "rules": pl.Categorical,
        "execution_price": pl.Float64,
    }
)
_EMPTY_ROUNDS = pl.DataFrame(
    schema={
        ROUND: pl.Int32,
        "asset_id": pl.String,
        "round_quantity": pl.Float64,
        "sell_value": pl.Float64,
        "buy_value": pl.Float64,
        "price_start": pl.Float64,
        "price_end": pl.Float64,
        "execution_price": pl.Float64,
    }
)
_EMPTY_STATUSES = pl.DataFrame(
    schema={
        ROUND: pl.Int32,
        "holder_id": pl.String,
        "status": pl.String,
        "triggered_rules": pl.String,
    }
)
