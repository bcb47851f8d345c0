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

Index changes are traded in the first round (their weight changes are then done). With
``lender_losses``, a holder left with negative equity after a round has the shortfall forgiven
and its lender (``lender`` in the holder table) books it as a loss — the prime broker's loss
is the next link of the chain. The cascade
stops when a round forces no trade (``converged``) or after ``max_rounds``.

Amplification: ``Σ_r S_r / S_1`` with ``S_r`` the value sold in round ``r`` at ``P_r``; 1.0
exactly when the first round's trades move no price (no impact): the second round then finds
every holder at its restore level and forces nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from estimator import attribution
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
    holder_rounds: pl.DataFrame  # every round's full holder table, with round
    positions: pl.DataFrame  # books after the last round
    holders_after: pl.DataFrame  # holder table (cash) after the last round
    prices: pl.DataFrame  # asset_id, price_0 (start of the episode), price (after the cascade)
    converged: bool
    rounds_traded: int
    amplification: float
    losses: pl.DataFrame  # per holder: losses by source, systemicness, indirect vulnerability
    chain: pl.DataFrame  # who pushed whom: see attribution.chain_edges; round = the target's
    aggregate_vulnerability: float

    @property
    def holders(self) -> pl.DataFrame:
        """Per round, the holders not ok (forced, cured, …): status and the rules that fired."""
        return self.holder_rounds.filter(pl.col("status") != "ok").select(
            ROUND, "holder_id", "status", "triggered_rules"
        )


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
    direct = _direct_losses(positions, assets)
    cumulative = pl.DataFrame(
        schema={"holder_id": pl.String, "asset_id": pl.String, "episode_q": pl.Float64}
    )
    trades, rounds, tables, losses, edges = [], [], [], [], []
    previous: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None = None
    forced_before = pl.Series("holder_id", [], dtype=pl.String)
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
        tables.append(result.holders.with_columns(pl.lit(r, pl.Int32).alias(ROUND)))
        if result.trades.is_empty():
            converged = True
            holders = result.holders_after  # cures of the last round, if any, stand
            if lender_losses:  # shortfalls no trade of this round has passed on yet
                now = state.select("asset_id", "multiplier", "instrument", "price")
                holders, written_off = _write_off(holders, positions, now)
                losses.append(written_off)
            if r > 1 and result.holders.filter(pl.col("status") != "ok").is_empty():
                tables.pop()  # a round where nothing happens adds nothing to report
            break
        traders = result.trades["holder_id"].unique()
        newly = traders.filter(~traders.is_in(forced_before.implode()))
        if previous is not None and newly.len():
            targets = result.holders.filter(pl.col("holder_id").is_in(newly.implode())).select(
                "holder_id", rules="triggered_rules"
            )
            edges.append(
                attribution.chain_edges(targets, *previous).with_columns(
                    pl.lit(r, pl.Int32).alias(ROUND)
                )
            )
        forced_before = pl.concat([forced_before, newly])
        state = _move_prices(state, result.trades, impact)
        rounds.append(_round_report(state, r))
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
        # trades booked at P_r execute at P_x: cash moves by q·m·(P_r − P_x)
        execution_cash = traded.group_by("holder_id").agg(
            _exec=(
                pl.col("trade_quantity")
                * pl.col("multiplier")
                * (pl.col("p_start") - pl.col("p_exec"))
            ).sum()
        )
        held = result.positions_after.join(marks, on="asset_id")
        margin = (
            held.filter(pl.col("instrument") == "future")
            .group_by("holder_id")
            .agg(
                _vm=(
                    pl.col("quantity")
                    * pl.col("multiplier")
                    * (pl.col("p_end") - pl.col("p_start"))
                ).sum()
            )
        )
        round_q = result.trades.group_by("holder_id", "asset_id").agg(
            round_q=pl.col("trade_quantity").sum()
        )
        cumulative = (
            cumulative.join(round_q, on=["holder_id", "asset_id"], how="full", coalesce=True)
            .with_columns(pl.col("episode_q", "round_q").fill_null(0.0))
            .with_columns(episode_q=pl.col("episode_q") + pl.col("round_q"))
        )
        previous = (
            result.positions_after.select("holder_id", "asset_id", "quantity"),
            marks.select(
                "asset_id",
                "multiplier",
                price=pl.col("p_start"),
                dp=pl.col("p_end") - pl.col("p_start"),
            ),
            attribution.flow_shares(cumulative, impact.mode),
        )
        losses.append(
            attribution.round_losses(*previous).join(
                execution_cash.select("holder_id", loss_execution=-pl.col("_exec")),
                on="holder_id",
                how="full",
                coalesce=True,
            )
        )
        cumulative = cumulative.drop("round_q")
        holders = (
            result.holders_after.join(execution_cash, on="holder_id", how="left")
            .join(margin, on="holder_id", how="left")
            .with_columns(
                pl.col(Book.CASH) + pl.col("_exec").fill_null(0.0) + pl.col("_vm").fill_null(0.0)
            )
            .drop("_exec", "_vm")
        )
        if lender_losses:
            after = marks.select("asset_id", "multiplier", "instrument", price="p_end")
            holders, written_off = _write_off(holders, result.positions_after, after)
            losses.append(written_off)
        positions = result.positions_after
        state = state.with_columns(
            price=pl.col("price_after"), **{c: pl.lit(0.0) for c in index_moves}
        ).drop("round_quantity", "sell_value", "buy_value", "price_after", "execution_price")
    sold = [float(f["sell_value"].sum()) for f in rounds]
    table = _loss_table(direct, losses, tables[0])
    return CascadeResult(
        trades=pl.concat(trades) if trades else _EMPTY_TRADES,
        rounds=pl.concat(rounds) if rounds else _EMPTY_ROUNDS,
        holder_rounds=pl.concat(tables, how="diagonal_relaxed"),
        positions=positions,
        holders_after=holders,
        prices=state.select("asset_id", "price_0", "price"),
        converged=converged,
        rounds_traded=len(rounds),
        amplification=sum(sold) / sold[0] if sold and sold[0] > 0 else 1.0,
        losses=table,
        chain=pl.concat(edges) if edges else _EMPTY_CHAIN,
        aggregate_vulnerability=_aggregate_vulnerability(table),
    )


def _move_prices(state: pl.DataFrame, trades: pl.DataFrame, impact: Impact) -> pl.DataFrame:
    """The round's flows per asset, the prices after them and the execution prices."""
    flows = trades.group_by("asset_id").agg(
        round_quantity=pl.col("trade_quantity").sum(),
        sell_value=(-pl.col("trade_value")).clip(lower_bound=0).sum(),
        buy_value=pl.col("trade_value").clip(lower_bound=0).sum(),
    )
    return (
        state.join(flows, on="asset_id", how="left")
        .with_columns(
            pl.col("round_quantity", "sell_value", "buy_value").fill_null(0.0),
            episode_quantity=pl.col("episode_quantity") + pl.col("round_quantity").fill_null(0.0),
        )
        .pipe(im.prices_after, impact.mode)
        .with_columns(
            execution_price=im.execution_price(
                pl.col("price"), pl.col("price_after"), impact.execution_point
            )
        )
    )


def _round_report(state: pl.DataFrame, r: int) -> pl.DataFrame:
    return state.select(
        pl.lit(r, pl.Int32).alias(ROUND),
        "asset_id",
        "round_quantity",
        "sell_value",
        "buy_value",
        price_start=pl.col("price"),
        price_end=pl.col("price_after"),
        execution_price=pl.col("execution_price"),
    ).filter((pl.col("round_quantity") != 0) | (pl.col("price_end") != pl.col("price_start")))


def _write_off(
    holders: pl.DataFrame, positions: pl.DataFrame, prices: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Shortfalls passed to lenders: a holder with a lender and equity ``E < 0`` (its book at
    ``prices``: asset_id, multiplier, instrument, price) has ``−E`` forgiven (its cash rises
    to ``E = 0``) and its lender books it as other debt — repeated while a lender's loss leaves
    it short in turn (at most once per holder in the chain). Returns the holders and
    ``loss_lending`` per holder (the lender's loss; the borrower's gain, negative)."""
    value = (
        positions.join(prices, on="asset_id")
        .filter(pl.col("instrument") == "cash")
        .group_by("holder_id")
        .agg(_value=(pl.col("quantity") * pl.col("multiplier") * pl.col("price")).sum())
    )
    passed = []
    for _ in range(holders.height):
        equity = holders.join(value, on="holder_id", how="left").with_columns(
            _equity=pl.col("_value").fill_null(0.0)
            + pl.col(Book.CASH)
            + pl.col(Book.NON_TRADABLE)
            - pl.col(Book.OTHER_DEBT)
        )
        gone = equity.filter((pl.col("_equity") < 0) & pl.col("lender").is_not_null()).select(
            "holder_id", "lender", forgiven=-pl.col("_equity")
        )
        if gone.is_empty():
            break
        borne = gone.group_by("lender").agg(borne=pl.col("forgiven").sum())
        holders = (
            holders.join(gone.select("holder_id", "forgiven"), on="holder_id", how="left")
            .join(borne.rename({"lender": "holder_id"}), on="holder_id", how="left")
            .with_columns(
                pl.col(Book.CASH) + pl.col("forgiven").fill_null(0.0),
                pl.col(Book.OTHER_DEBT) + pl.col("borne").fill_null(0.0),
            )
            .drop("forgiven", "borne")
        )
        passed += [
            gone.select("holder_id", loss_lending=-pl.col("forgiven")),
            borne.select(holder_id="lender", loss_lending="borne"),
        ]
    losses = pl.concat(
        [pl.DataFrame(schema={"holder_id": pl.String, "loss_lending": pl.Float64}), *passed]
    )
    return holders, losses


def _direct_losses(positions: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """``−Σ q·m·(P₀ − P_pre)``: what the scenario's shocks cost each holder."""
    if "price_pre" not in assets.columns:
        return pl.DataFrame(schema={"holder_id": pl.String, "loss_direct": pl.Float64})
    moved = positions.join(
        assets.select("asset_id", "multiplier", "price", "price_pre"), on="asset_id"
    )
    return moved.group_by("holder_id").agg(
        loss_direct=(
            -pl.col("quantity") * pl.col("multiplier") * (pl.col("price") - pl.col("price_pre"))
        ).sum()
    )


def _loss_table(
    direct: pl.DataFrame, losses: list[pl.DataFrame], first: pl.DataFrame
) -> pl.DataFrame:
    """Per holder: the losses of :mod:`estimator.attribution` over all rounds, the direct loss,
    systemicness and indirect vulnerability (``E_h``: equity at the start, before cures)."""
    start = first.select("holder_id", equity_start=pl.col("equity_before"))
    columns = [*attribution.LOSS_COLUMNS, "loss_execution", "loss_lending"]
    empty = pl.DataFrame(schema={"holder_id": pl.String} | dict.fromkeys(columns, pl.Float64))
    summed = (
        pl.concat([empty, *losses], how="diagonal_relaxed")
        .group_by("holder_id")
        .agg(pl.col(columns).fill_null(0.0).sum())
    )
    total_equity = pl.col("equity_start").clip(lower_bound=0.0).sum()
    return (
        start.join(direct, on="holder_id", how="left")
        .join(summed, on="holder_id", how="left")
        .with_columns(pl.col("loss_direct", *columns).fill_null(0.0))
        .with_columns(
            loss_others_impact=pl.col("loss_impact") - pl.col("loss_own_impact"),
            loss_total=pl.col("loss_direct")
            + pl.col("loss_impact")
            + pl.col("loss_execution")
            + pl.col("loss_lending"),
            systemicness=pl.col("loss_caused") / total_equity,
            indirect_vulnerability=pl.when(pl.col("equity_start") > 0).then(
                pl.col("loss_impact") / pl.col("equity_start")
            ),
        )
        .sort("holder_id")
    )


def _aggregate_vulnerability(table: pl.DataFrame) -> float:
    """``Σ_h L_h / E``."""
    total = table["equity_start"].clip(lower_bound=0.0).sum()
    return float(table["loss_impact"].sum() / total) if total > 0 else 0.0


_EMPTY_CHAIN = pl.DataFrame(
    schema={
        "target_id": pl.String,
        "source_id": pl.String,
        "asset_id": pl.String,
        "price_return": pl.Float64,
        "contribution": pl.Float64,
        "share": pl.Float64,
        "target_rules": pl.String,
        ROUND: pl.Int32,
    }
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
