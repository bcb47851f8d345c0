"""The cascade's state and its steps: a frozen :class:`State` that each step replaces.

``start`` → for each day: :func:`estimator.cascade.day.dawn`, then rounds
(:func:`estimator.rounds.evaluate_round` on :func:`estimator.cascade.day.books`, then
:func:`step`) until a step says the day or the episode is over, then ``overnight`` →
:func:`report`. Every function here is pure: it returns a new state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

import polars as pl

from estimator import attribution, balance, keys, realised
from estimator import book as bk
from estimator.cascade import losses as ls
from estimator.cascade import prices
from estimator.cascade.pacing import Pacing, pace
from estimator.cascade.result import (
    DAY,
    EMPTY_CHAIN,
    EMPTY_ROUNDS,
    EMPTY_TRADES,
    ROUND,
    CascadeResult,
)
from estimator.days import Days
from estimator.impact import Impact
from estimator.risk import FactorModel
from estimator.rounds import RoundResult
from estimator.status import Status
from rules import STATE_COLUMNS, Book, RuleColumns
from rules.redemption import PAID

#: Rule columns of a round's holder table that the reports read (besides rules' state).
_REPORTED = (*RuleColumns.METRICS, RuleColumns.FLAGS[0], *RuleColumns.CURES)


class Step(Enum):
    """What a round's step leaves to do."""

    TRADED = "traded"  # the round traded: another round follows
    DAY_OVER = "day over"  # nothing more to trade today
    OVER = "over"  # no holder is forced: the episode ends


@dataclass(frozen=True)
class Setting:
    """What does not change over an episode (frames coded, :mod:`estimator.keys`)."""

    impact: Impact
    lender_losses: bool
    days: Days | None
    #: Per index-change column (``index[…].dw``): the day it trades.
    index_days: dict[str, int]
    #: The day clock's per holder (holder_id, pace_horizon, pace_delay, pace_participation).
    pace: pl.DataFrame | None
    #: Per holder, what the scenario's shocks cost it.
    direct: pl.DataFrame
    #: Per holder, redemptions paid before the episode (if any rule pays them).
    paid_before: pl.DataFrame | None
    #: A dated path's moves by day (:func:`estimator.shocks.day_moves`, coded), and its last
    #: day: the episode runs at least that far.
    moves: dict[int, pl.DataFrame] = field(default_factory=dict)
    #: … its holder shocks by day (:func:`estimator.shocks.day_holder_moves`, coded).
    holder_moves: dict[int, pl.DataFrame] = field(default_factory=dict)
    last_path_day: int = 0
    #: The volatility estimators the rules read, by key (:mod:`estimator.realised`), and the
    #: market's factor model, which factor-level ones rescale (:mod:`estimator.factor_vol`).
    estimators: dict[str, realised.Estimate] = field(default_factory=dict)
    factors: FactorModel | None = None
    #: The assets whose estimates the reports follow day by day (:func:`realised.watched`).
    watched: pl.Series | None = None
    #: On a dated path, each day's calendar flags (:data:`rules.Book.MONTH_END`, …) by day.
    calendar: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def index_moves(self) -> list[str]:
        return list(self.index_days)


@dataclass(frozen=True)
class Clock:
    """Where the episode is, and the traded values its stopping rules compare with."""

    round: int = 0
    day: int = 0
    first_value: float = 0.0  # value traded in the episode's first trading round
    first_losses: int = 0  # loss frames booked by the end of that round
    first_required: float = 0.0  # value the rules required in that round (before pacing)
    day_first: float = 0.0  # … in the day's first trading round
    converged: bool = False


@dataclass(frozen=True)
class Log:
    """What the episode reports, one frame per round (losses: per booking)."""

    trades: tuple[pl.DataFrame, ...] = ()
    rounds: tuple[pl.DataFrame, ...] = ()
    tables: tuple[pl.DataFrame, ...] = ()
    losses: tuple[pl.DataFrame, ...] = ()
    edges: tuple[pl.DataFrame, ...] = ()
    estimates: tuple[pl.DataFrame, ...] = ()  # per day: the watched assets' σ̂
    first_table: pl.DataFrame | None = None  # holders at the first evaluation

    def add(self, **frames: pl.DataFrame) -> Log:
        """The log with each frame appended to its list."""
        return replace(self, **{k: (*getattr(self, k), v) for k, v in frames.items()})


#: The last traded move (held positions, marks, flow shares): what pushed the next forced.
Push = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]


@dataclass(frozen=True)
class State:
    """The holders' books after every trade so far, the market, and what is reported."""

    market: pl.DataFrame  # per asset: prices, the impact so far, index moves
    holders: pl.DataFrame
    positions: pl.DataFrame
    #: (holder_id, asset_id, episode_q[, round_q]): each holder's flow so far, in quantity.
    cumulative: pl.DataFrame
    pacing: Pacing = field(default_factory=Pacing)
    #: The factor-level volatility estimators' state, one row per factor (None without them).
    factor_estimates: pl.DataFrame | None = None
    previous: Push | None = None
    forced_before: pl.Series = field(
        default_factory=lambda: pl.Series("holder_id", [], dtype=keys.CODE)
    )
    clock: Clock = field(default_factory=Clock)
    log: Log = field(default_factory=Log)

    def tick(self, **changes: float | int | bool) -> State:
        return replace(self, clock=replace(self.clock, **changes))

    def book_loss(self, frame: pl.DataFrame) -> State:
        """The state with a frame of losses per holder booked in the current round
        (overnight marks: the day's last round)."""
        booked = frame.with_columns(pl.lit(self.clock.round, pl.Int32).alias(ROUND))
        return replace(self, log=self.log.add(losses=booked))


def start(
    assets: pl.DataFrame, holders: pl.DataFrame, positions: pl.DataFrame, setting: Setting
) -> State:
    """The state at the start of an episode (``assets`` with their impact parameters)."""
    return State(
        market=prices.start(assets, setting.index_moves),
        holders=holders,
        positions=positions,
        cumulative=pl.DataFrame(
            schema={"holder_id": keys.CODE, "asset_id": keys.CODE, "episode_q": pl.Float64}
        ),
    )


def step(state: State, setting: Setting, result: RoundResult) -> tuple[State, Step]:
    """Book one round's result: trade, move prices, mark, attribute."""
    state = state.tick(round=state.clock.round + 1)
    if state.log.first_table is None:  # balance sheets at the start of the episode
        first = result.holders.with_columns(
            pl.lit(1, pl.Int32).alias(ROUND), pl.lit(state.clock.day, pl.Int32).alias(DAY)
        )
        state = replace(state, log=replace(state.log, first_table=first))
    if result.trades.is_empty():
        state = _settle_lenders(_record(state, result), setting, result)
        state = _drop_quiet_round(state, result)
        if _index_pending(state, setting) or (
            setting.days is not None and state.clock.day_first > 0
        ):
            return state, Step.DAY_OVER  # on a day clock the episode ends at a quiet dawn
        return state.tick(converged=True), Step.OVER
    required = float((-result.trades["trade_value"]).clip(lower_bound=0).sum())
    if setting.days is not None:
        assert setting.pace is not None
        c = state.clock
        result, pacing = pace(
            result, state.pacing, setting.pace, state.market, state.positions, c.day
        )
        state = replace(state, pacing=pacing)
        if result.trades.is_empty():  # forced, but nothing to do today
            return state.tick(round=c.round - 1), Step.DAY_OVER
    state = _trade(_record(state, result), setting, result)
    value = float(
        state.log.rounds[-1].select(pl.col("sell_value") + pl.col("buy_value")).sum().item()
    )
    c = state.clock
    if not c.first_value:  # the losses of the shocks and the first round end here
        state = state.tick(first_losses=len(state.log.losses), first_required=required)
    state = state.tick(first_value=c.first_value or value, day_first=c.day_first or value)
    c, tolerance = state.clock, setting.impact.tolerance
    if value <= tolerance * c.day_first:  # the rest of the day is a geometric tail
        if setting.days is None:
            return state.tick(converged=True), Step.OVER
        return state, Step.DAY_OVER
    whole_day = value == c.day_first and value <= tolerance * c.first_value
    if whole_day and not _index_pending(state, setting) and not state.pacing.unfinished(c.day):
        return state.tick(converged=True), Step.OVER  # a whole day's trading is below tolerance
    return state, Step.TRADED


def _record(state: State, result: RoundResult) -> State:
    """Keep the round's holder table as the reports read it: without the rules' working
    columns (sums, bounds, scales), which a large book's rounds would otherwise pile up."""
    table = result.holders
    kept = [c for c in table.columns if "." not in c or c.endswith(_REPORTED) or c in STATE_COLUMNS]
    c = state.clock
    table = table.select(kept).with_columns(
        pl.lit(c.round, pl.Int32).alias(ROUND), pl.lit(c.day, pl.Int32).alias(DAY)
    )
    return replace(state, log=state.log.add(tables=table))


def _index_pending(state: State, setting: Setting) -> bool:
    """Whether an index change or a path's day is still to come: the episode goes on."""
    last = max(setting.last_path_day, *setting.index_days.values(), 0)
    return last > state.clock.day


def _drop_quiet_round(state: State, result: RoundResult) -> State:
    """A round where nothing happens adds nothing to report (the first one excepted)."""
    quiet = result.holders.filter(pl.col("status") != Status.OK).is_empty()
    if state.clock.round > 1 and quiet:
        log = replace(state.log, tables=state.log.tables[:-1])
        return replace(state, log=log).tick(round=state.clock.round - 1)
    return state


def _settle_lenders(state: State, setting: Setting, result: RoundResult) -> State:
    state = replace(state, holders=result.holders_after)  # cures of the last round stand
    if setting.lender_losses:  # shortfalls no trade of this round has passed on yet
        now = state.market.select("asset_id", "multiplier", "instrument", "price")
        holders, written_off = ls.write_off(state.holders, state.positions, now)
        state = replace(state, holders=holders).book_loss(written_off)
    return state


def _trade(state: State, setting: Setting, result: RoundResult) -> State:
    """Move prices by the round's trades, book them at the execution price, mark every book
    to the new prices and attribute the losses."""
    r, day = state.clock.round, state.clock.day
    traders = result.trades["holder_id"].unique()
    newly = traders.filter(~traders.is_in(state.forced_before.implode()))
    log = state.log
    if state.previous is not None and newly.len():
        targets = result.holders.filter(pl.col("holder_id").is_in(newly.implode())).select(
            "holder_id", rules="triggered_rules"
        )
        edges = attribution.chain_edges(targets, *state.previous)
        log = log.add(edges=edges.with_columns(pl.lit(r, pl.Int32).alias(ROUND)))
    market = prices.move(state.market, result.trades, setting.impact, setting.days)
    marks = prices.marks(market, pl.col("execution_price"))
    traded = keys.broadcast(marks, prices.MARKS, result.trades, key="asset_id")
    log = log.add(
        rounds=prices.round_report(market, r, day),
        trades=traded.select(
            pl.lit(r, pl.Int32).alias(ROUND),
            pl.lit(day, pl.Int32).alias(DAY),
            *result.trades.columns,
            execution_price=pl.col("p_exec"),
        ),
    )
    # trades booked at P_r execute at P_x: cash moves by q·m·(P_r − P_x)
    execution_cash = traded.group_by("holder_id").agg(
        _exec=(
            pl.col("trade_quantity") * pl.col("multiplier") * (pl.col("p_start") - pl.col("p_exec"))
        ).sum()
    )
    # the episode's flow, and the last round's (round_q), in (holder, asset) order; a round
    # trades each (holder, asset) once
    round_q = keys.by_holder(result.trades).select(
        "holder_id", "asset_id", episode_q="trade_quantity", round_q="trade_quantity"
    )
    cumulative = keys.add_by_pair(
        state.cumulative.with_columns(round_q=pl.lit(0.0)), round_q, ["episode_q", "round_q"]
    )
    holders = (
        result.holders_after.join(execution_cash, on="holder_id", how="left")
        .with_columns(pl.col(Book.CASH) + pl.col("_exec").fill_null(0.0))
        .drop("_exec")
    )
    state = replace(
        state,
        market=market,
        holders=holders,
        cumulative=cumulative,
        forced_before=pl.concat([state.forced_before, newly]),
        log=log,
    )
    state = state.book_loss(execution_cash.select("holder_id", loss_execution=-pl.col("_exec")))
    state = _mark(state, setting, result.positions_after, marks)
    state = replace(state, positions=result.positions_after)
    if setting.lender_losses:
        after = marks.select("asset_id", "multiplier", "instrument", price="p_end")
        holders, written_off = ls.write_off(state.holders, state.positions, after)
        state = replace(state, holders=holders).book_loss(written_off)
    spent = setting.index_moves  # index changes are done once traded
    if setting.days is None:
        spent = [*spent, *(f"{c}@" for c in setting.index_moves)]
    market = prices.settle(state.market).with_columns(pl.lit(0.0).alias(c) for c in spent)
    return replace(state, market=market)


def _mark(
    state: State, setting: Setting, held: pl.DataFrame, marks: pl.DataFrame, *, traded: bool = True
) -> State:
    """Futures' variation margin on a price move to cash, and the move's losses; a move made
    by trades (``traded``) is what pushes holders in the next round."""
    futures = marks.filter(pl.col("instrument") == "future").with_columns(
        dp=pl.col("p_end") - pl.col("p_start")
    )
    holders = bk.credit_variation_margin(state.holders, held, futures)
    moved_by = (
        held.select("holder_id", "asset_id", "quantity"),
        marks.select(
            "asset_id",
            "multiplier",
            price=pl.col("p_start"),
            dp=pl.col("p_end") - pl.col("p_start"),
        ),
        attribution.flow_shares(state.cumulative, setting.impact.mode),
    )
    state = replace(state, holders=holders).book_loss(attribution.round_losses(*moved_by))
    return replace(state, previous=moved_by) if traded else state


def overnight(state: State, setting: Setting) -> State:
    """Temporary impact decays: prices move back towards their permanent level."""
    assert setting.days is not None
    if setting.days.permanent_share == 1:
        return state
    market = prices.overnight(state.market, setting.days)
    marks = prices.marks(market, pl.col("price_after"))  # nothing trades overnight
    state = _mark(replace(state, market=market), setting, state.positions, marks, traded=False)
    market = state.market.with_columns(price=pl.col("price_after")).drop("price_after")
    return replace(state, market=market)


def report(state: State, setting: Setting, trades: list[pl.DataFrame]) -> CascadeResult:
    """The episode's result (coded), with ``trades`` the trade log (the state's own is let
    go of first: it is most of the episode's memory)."""
    log, c = state.log, state.clock
    sold = [float(f["sell_value"].sum()) for f in log.rounds]
    assert log.first_table is not None
    table = ls.loss_table(setting.direct, list(log.losses), log.first_table)
    holder_rounds = pl.concat(log.tables or [log.first_table], how="diagonal_relaxed")
    first_losses = list(log.losses[: c.first_losses or len(log.losses)])
    return CascadeResult(
        trades=pl.concat(trades) if trades else EMPTY_TRADES,
        rounds=pl.concat(log.rounds) if log.rounds else EMPTY_ROUNDS,
        holder_rounds=holder_rounds,
        balance_sheets=balance.balance_sheets(
            holder_rounds,
            balance.round_losses(list(log.losses)),
            setting.direct,
            setting.paid_before,
        ),
        positions=state.positions,
        holders_after=state.holders,
        prices=state.market.select(
            "asset_id", "price_0", "price", price_rebound=prices.rest(setting.impact, setting.days)
        ),
        converged=c.converged,
        rounds_traded=len(log.rounds),
        amplification=ls.ratio(sum(sold), c.first_required if setting.days else sold[0])
        if sold
        else 1.0,
        loss_amplification=ls.ratio(
            ls.total_loss(setting.direct, list(log.losses)),
            ls.total_loss(setting.direct, first_losses),
        ),
        losses=table,
        chain=pl.concat(log.edges) if log.edges else EMPTY_CHAIN,
        aggregate_vulnerability=ls.aggregate_vulnerability(table),
        volatility=pl.concat(log.estimates) if log.estimates else None,
    )


def setting(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    impact: Impact,
    *,
    lender_losses: bool,
    days: Days | None,
    index_days: dict[str, int],
    pace: pl.DataFrame | None,
    index_moves: list[str],
) -> Setting:
    """An episode's setting on coded frames (``assets`` shocked)."""
    return Setting(
        impact=impact,
        lender_losses=lender_losses,
        days=days,
        index_days={c: index_days.get(c, 0) if days else 0 for c in index_moves},
        pace=pace,
        direct=ls.direct_losses(positions, assets, holders),
        paid_before=holders.select("holder_id", PAID) if PAID in holders.columns else None,
    )
