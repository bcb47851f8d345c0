"""Rounds of forced trades with price impact: the fire-sale cascade.

State: the holders' books after every trade so far, and the prices. Round ``r`` (1, 2, …):

1. every holder's forced trades at the round's prices ``P_r``, all holders at once
   (:func:`estimator.rounds.evaluate_round`: a rule inside its trigger level does not act, even
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
is the next link of the chain. The cascade stops (``converged``) when a round forces no trade or
after a round whose traded value is at most ``tolerance`` × the first round's (a holder sitting
on its limit while its own sales keep moving the price sells ever smaller amounts, a
geometric tail), else after ``max_rounds``.

Amplification: ``Σ_r S_r / S_1`` with ``S_r`` the value sold in round ``r`` at ``P_r``; 1.0
exactly when the first round's trades move no price (no impact): the second round then finds
every holder at its restore level and forces nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from enum import Enum

import polars as pl

from estimator import attribution, balance, keys
from estimator import book as bk
from estimator import impact as im
from estimator.days import Days, paced
from estimator.impact import Impact
from estimator.mandates import Execution, Mandate
from estimator.rounds import COMMITTED, RoundResult, dust, evaluate_round
from estimator.solve import ProblemCache
from estimator.status import Status
from rules import RULE_TYPES, STATE_COLUMNS, Book, RuleColumns
from rules.redemption import PAID

ROUND = "round"
#: Rule columns of a round's holder table that the reports read (besides rules' state).
_REPORTED = (*RuleColumns.METRICS, RuleColumns.FLAGS[0], *RuleColumns.CURES)
DAY = "day"


@dataclass
class CascadeResult:
    trades: pl.DataFrame  # every round's trades, with round and execution_price
    rounds: pl.DataFrame  # per round and asset: flows and prices
    holder_rounds: pl.DataFrame  # every round's full holder table, with round
    balance_sheets: pl.DataFrame  # per round and holder: book, trades, losses (balance.py)
    positions: pl.DataFrame  # books after the last round
    holders_after: pl.DataFrame  # holder table (cash) after the last round
    prices: pl.DataFrame  # asset_id, price_0 (start of the episode), price (after the cascade)
    converged: bool
    rounds_traded: int
    amplification: float
    loss_amplification: float  # all losses over those of the shocks and the first round
    losses: pl.DataFrame  # per holder: losses by source, cascade systemicness and vulnerability
    chain: pl.DataFrame  # who pushed whom: see attribution.chain_edges; round = the target's
    aggregate_vulnerability: float

    @property
    def round_summary(self) -> pl.DataFrame:
        """Per round: value sold and bought (at the round's start prices), the holders that
        traded and those trading for the first time (newly forced)."""
        return _by_period(self.trades, ROUND, DAY).rename({"holders_trading": "holders_forced"})

    @property
    def day_flows(self) -> pl.DataFrame:
        """Per day and asset: value sold and bought, net value and the closing price (after
        the day's last round, before temporary impact decays overnight)."""
        close = (
            self.rounds.sort(ROUND)
            .group_by(DAY, "asset_id")
            .agg(price_close=pl.col("price_end").last())
        )
        return (
            self.trades.group_by(DAY, "asset_id")
            .agg(sell_value=_SOLD, buy_value=_BOUGHT, net_value=pl.col("trade_value").sum())
            .join(close, on=[DAY, "asset_id"], how="left")
            .sort(DAY, "asset_id")
        )

    @property
    def day_summary(self) -> pl.DataFrame:
        """Per day: value sold and bought, the holders that traded and those newly forced."""
        return _by_period(self.trades, DAY)

    @property
    def holders(self) -> pl.DataFrame:
        """Per round, the holders not ok (forced, cured, …): status and the rules that fired."""
        return self.holder_rounds.filter(pl.col("status") != Status.OK).select(
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
    days: Days | None = None,
    index_days: dict[str, int] | None = None,
    codes: keys.Keys | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CascadeResult:
    """Run rounds until no holder is forced (see the module docstring). ``assets`` are the
    shocked assets (their ``price`` is ``P₀``), ``holders`` and ``positions`` the books as
    :func:`estimator.run` prepares them; ``max_rounds`` overrides the impact settings' one.

    With ``days`` (:mod:`estimator.days`) the rounds run within days: forced trades are paced
    by each holder's horizon, grace period and participation cap, temporary impact decays
    overnight, and index changes trade on their day (``index_days``: day per ``dw`` column).

    ``codes``: the keys ``positions`` are already coded with (:attr:`Market.coded`); by
    default the positions carry ids and are coded here. ``progress``, if given, is called
    after every round with the rounds run so far and the day."""
    if codes is None:  # the rounds work on integer keys throughout
        codes = keys.Keys.of(holders, assets)
        positions = codes.encode(positions)
    pace = codes.encode(days.holder_pace(holders)) if days else None
    params = codes.encode(impact.parameters(assets))  # selectors read ids
    assets, holders = (codes.encode(f) for f in (assets, holders))
    episode = _Episode(
        assets.join(params, on="asset_id"),
        holders,
        positions,
        impact,
        lender_losses,
        days,
        index_days or {},
        pace,
    )
    max_rounds = max_rounds or impact.max_rounds
    for day in range(days.max_days if days else 1):
        episode.dawn(day)
        for _ in range(max_rounds):
            result = evaluate_round(
                episode.state.select(assets.columns),
                episode.books(),
                episode.positions,
                mandates,
                execution=execution,
                cache=cache,
                coded=True,
            )
            traded = len(episode.rounds)
            step = episode.step(result)
            if progress is not None and len(episode.rounds) > traded:  # a round that traded
                progress(episode.round, day)
            if step is not _Step.TRADED:
                break
        else:
            step = _Step.DAY_OVER
        if step is _Step.OVER:
            break
        if days is not None:
            episode.overnight()
    return episode.result(codes)


class _Step(Enum):
    TRADED = "traded"  # the round traded: another round follows
    DAY_OVER = "day over"  # nothing more to trade today
    OVER = "over"  # no holder is forced: the episode ends


class _Episode:
    """The cascade's state (books, prices) and what it reports, round by round."""

    def __init__(
        self,
        assets: pl.DataFrame,
        holders: pl.DataFrame,
        positions: pl.DataFrame,
        impact: Impact,
        lender_losses: bool,
        days: Days | None,
        index_days: dict[str, int],
        pace: pl.DataFrame | None,
    ) -> None:
        """``assets`` with their impact parameters, ``pace`` the day clock's per holder; all
        frames coded (:mod:`estimator.keys`)."""
        self.impact, self.lender_losses, self.days = impact, lender_losses, days
        self.holders, self.positions = holders, positions
        self.index_moves = [
            c for c in assets.columns if c.startswith("index[") and c.endswith("].dw")
        ]
        self.index_days = {c: index_days.get(c, 0) if days else 0 for c in self.index_moves}
        self.state = assets.with_columns(
            price_0=pl.col("price"),
            episode_quantity=pl.lit(0.0),
            impact_now=pl.lit(0.0),  # I(Q) at the cumulative flow so far
            impact_day=pl.lit(0.0),  # … at the end of the previous day
            impact_carry=pl.lit(0.0),  # temporary impact of previous days, decayed
            **{f"{c}@": pl.col(c) for c in self.index_moves},  # traded on their day
        )
        self.direct = _direct_losses(positions, assets, holders)
        self.paid_before = holders.select("holder_id", PAID) if PAID in holders.columns else None
        self.cumulative = pl.DataFrame(
            schema={"holder_id": keys.CODE, "asset_id": keys.CODE, "episode_q": pl.Float64}
        )
        self.pace = pace  # holder_id, pace_horizon, pace_delay, pace_participation
        self.schedule = pl.DataFrame(
            schema={"holder_id": keys.CODE, "start": pl.Int64, "deadline": pl.Int64}
        )
        self.trades: list[pl.DataFrame] = []
        self.rounds: list[pl.DataFrame] = []
        self.tables: list[pl.DataFrame] = []
        self.losses: list[pl.DataFrame] = []
        self.edges: list[pl.DataFrame] = []
        self.previous: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None = None
        self.forced_before = pl.Series("holder_id", [], dtype=keys.CODE)
        self.converged = False
        self.round = 0
        self.day = 0
        self.first_value = 0.0  # value traded in the episode's first trading round
        self.first_losses = 0  # loss frames booked by the end of that round
        self.first_required = 0.0  # value the rules required in that round (before pacing)
        self.first_table: pl.DataFrame | None = None  # holders at the first evaluation
        self.day_first = 0.0  # … in the day's first trading round
        self.done_today = _EMPTY_DONE

    def books(self) -> pl.DataFrame:
        """The holders as the next round sees them: on a day clock, those part-way through a
        forced sale are committed to finish it (to the restore level, even back inside the
        trigger)."""
        if self.days is None:
            return self.holders
        started = self.schedule["holder_id"].implode()
        return self.holders.with_columns(pl.col("holder_id").is_in(started).alias(COMMITTED))

    def dawn(self, day: int) -> None:
        """Start ``day``: index changes effective today are traded today."""
        self.day, self.day_first, self.done_today = day, 0.0, _EMPTY_DONE
        self.state = self.state.with_columns(
            pl.col(f"{c}@").alias(c) if self.index_days[c] == day else pl.lit(0.0).alias(c)
            for c in self.index_moves
        )

    def step(self, result: RoundResult) -> _Step:
        """Book one round's result: trade, move prices, mark, attribute."""
        self.round += 1
        if self.first_table is None:  # balance sheets at the start of the episode
            self.first_table = result.holders.with_columns(
                pl.lit(1, pl.Int32).alias(ROUND), pl.lit(self.day, pl.Int32).alias(DAY)
            )
        if result.trades.is_empty():
            self._record(result)
            self._settle_lenders(result)
            self._drop_quiet_round(result)
            if self._index_pending() or (self.days is not None and self.day_first > 0):
                return _Step.DAY_OVER  # on a day clock the episode ends at a quiet dawn
            return self._over()
        required = float((-result.trades["trade_value"]).clip(lower_bound=0).sum())
        if self.days is not None:
            result = self._paced(result)
            if result.trades.is_empty():  # forced, but nothing to do today
                self.round -= 1
                return _Step.DAY_OVER
        self._record(result)
        self._trade(result)
        value = float(
            self.rounds[-1].select(pl.col("sell_value") + pl.col("buy_value")).sum().item()
        )
        if not self.first_value:  # the losses of the shocks and the first round end here
            self.first_losses = len(self.losses)
            self.first_required = required
        self.first_value = self.first_value or value
        self.day_first = self.day_first or value
        tolerance = self.impact.tolerance
        if value <= tolerance * self.day_first:  # the rest of the day is a geometric tail
            return self._over() if self.days is None else _Step.DAY_OVER
        if value == self.day_first and value <= tolerance * self.first_value:
            unfinished = self.schedule.filter(pl.col("deadline") > self.day)
            if not self._index_pending() and unfinished.is_empty():
                return self._over()  # a whole day's trading is below the tolerance
        return _Step.TRADED

    def _record(self, result: RoundResult) -> None:
        """Keep the round's holder table as the reports read it: without the rules' working
        columns (sums, bounds, scales), which a large book's rounds would otherwise pile up."""
        table = result.holders
        kept = [
            c for c in table.columns if "." not in c or c.endswith(_REPORTED) or c in STATE_COLUMNS
        ]
        self.tables.append(
            table.select(kept).with_columns(
                pl.lit(self.round, pl.Int32).alias(ROUND), pl.lit(self.day, pl.Int32).alias(DAY)
            )
        )

    def _book_loss(self, frame: pl.DataFrame) -> None:
        """Keep a frame of losses per holder (:func:`_loss_table`'s columns), with the round
        it was booked in (overnight marks: the day's last round)."""
        self.losses.append(frame.with_columns(pl.lit(self.round, pl.Int32).alias(ROUND)))

    def _index_pending(self) -> bool:
        return max(self.index_days.values(), default=0) > self.day

    def _over(self) -> _Step:
        self.converged = True
        return _Step.OVER

    def _drop_quiet_round(self, result: RoundResult) -> None:
        """A round where nothing happens adds nothing to report (the first one excepted)."""
        quiet = result.holders.filter(pl.col("status") != Status.OK).is_empty()
        if self.round > 1 and quiet:
            self.tables.pop()
            self.round -= 1

    def _settle_lenders(self, result: RoundResult) -> None:
        self.holders = result.holders_after  # cures of the last round, if any, stand
        if self.lender_losses:  # shortfalls no trade of this round has passed on yet
            now = self.state.select("asset_id", "multiplier", "instrument", "price")
            self.holders, written_off = _write_off(self.holders, self.positions, now)
            self._book_loss(written_off)

    def _paced(self, result: RoundResult) -> RoundResult:
        """What the day clock lets the round trade of what the rules require."""
        assert self.days is not None and self.pace is not None
        required = result.trades.select("holder_id", "asset_id", "trade_quantity")
        forced = required.select("holder_id").unique()
        known = self.schedule.join(forced, on="holder_id")  # those no longer forced start over
        new = forced.join(known, on="holder_id", how="anti").join(self.pace, on="holder_id")
        self.schedule = pl.concat(
            [
                known,
                new.select(
                    "holder_id",
                    start=self.day + pl.col("pace_delay"),
                    deadline=self.day + pl.col("pace_delay") + pl.col("pace_horizon") - 1,
                ),
            ]
        )
        caps = (
            required.join(self.pace.select("holder_id", "pace_participation"), on="holder_id")
            .join(self.state.select("asset_id", "adv", "price", "multiplier"), on="asset_id")
            .select(
                "holder_id",
                "asset_id",
                "trade_quantity",
                unit_value=pl.col("price") * pl.col("multiplier"),
                cap=pl.col("pace_participation") * pl.col("adv"),
            )
        )
        keys = ["holder_id", "asset_id"]
        # prescribed trades (an index change on its effective day) are done in full, at once
        prescribed = result.trades.filter(
            pl.col("rules").cast(pl.String).str.contains(_PRESCRIBED)
        ).select(*keys, "trade_quantity")
        paced_part = paced(caps, self.done_today, self.schedule, self.day).join(
            prescribed, on=keys, how="anti"
        )
        sizes = [f"{Book.GROSS_EXPOSURE}_before", Book.GROSS_PRE]
        gross = result.holders.select(
            "holder_id", gross=pl.max_horizontal(c for c in sizes if c in result.holders.columns)
        )
        today = (
            pl.concat([paced_part, prescribed])
            .join(caps.select(*keys, "unit_value"), on=keys)
            .join(gross, on="holder_id", how="left")
            .filter(  # what is left of a trade done over days may be dust
                ~dust(pl.col("trade_quantity") * pl.col("unit_value"), pl.col("gross"))
            )
            .drop("gross")
        )
        done = today.select(
            *keys,
            done="trade_quantity",
            done_value=pl.col("trade_quantity") * pl.col("unit_value"),
        )
        self.done_today = (
            pl.concat([self.done_today, done])
            .group_by(keys)
            .agg(pl.col("done", "done_value").sum())
        )
        today = today.drop("unit_value")
        return _execute(result, today, self.positions, self.state)

    def _trade(self, result: RoundResult) -> None:
        """Move prices by the round's trades, book them at the execution price, mark every
        book to the new prices and attribute the losses."""
        r = self.round
        traders = result.trades["holder_id"].unique()
        newly = traders.filter(~traders.is_in(self.forced_before.implode()))
        if self.previous is not None and newly.len():
            targets = result.holders.filter(pl.col("holder_id").is_in(newly.implode())).select(
                "holder_id", rules="triggered_rules"
            )
            self.edges.append(
                attribution.chain_edges(targets, *self.previous).with_columns(
                    pl.lit(r, pl.Int32).alias(ROUND)
                )
            )
        self.forced_before = pl.concat([self.forced_before, newly])
        self.state = _move_prices(self.state, result.trades, self.impact, self.days)
        self.rounds.append(_round_report(self.state, r, self.day))
        marks = _marks(self.state, pl.col("execution_price"))
        traded = keys.broadcast(marks, _MARKS, result.trades, key="asset_id")
        self.trades.append(
            traded.select(
                pl.lit(r, pl.Int32).alias(ROUND),
                pl.lit(self.day, pl.Int32).alias(DAY),
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
        # the episode's flow, and the last round's (round_q), in (holder, asset) order; a
        # round trades each (holder, asset) once
        round_q = keys.by_holder(result.trades).select(
            "holder_id", "asset_id", episode_q="trade_quantity", round_q="trade_quantity"
        )
        self.cumulative = keys.add_by_pair(
            self.cumulative.with_columns(round_q=pl.lit(0.0)), round_q, ["episode_q", "round_q"]
        )
        self.holders = result.holders_after.join(
            execution_cash, on="holder_id", how="left"
        ).with_columns(pl.col(Book.CASH) + pl.col("_exec").fill_null(0.0))
        self._book_loss(execution_cash.select("holder_id", loss_execution=-pl.col("_exec")))
        self.holders = self.holders.drop("_exec")
        self._mark(result.positions_after, marks)
        self.positions = result.positions_after
        if self.lender_losses:
            after = marks.select("asset_id", "multiplier", "instrument", price="p_end")
            self.holders, written_off = _write_off(self.holders, self.positions, after)
            self._book_loss(written_off)
        self.state = self.state.with_columns(price=pl.col("price_after")).drop(
            "round_quantity", "sell_value", "buy_value", "price_after", "execution_price"
        )
        if self.days is None:  # index changes are done once traded
            self.state = self.state.with_columns(
                pl.lit(0.0).alias(c)
                for c in [*self.index_moves, *(f"{c}@" for c in self.index_moves)]
            )
        else:
            self.state = self.state.with_columns(pl.lit(0.0).alias(c) for c in self.index_moves)

    def _mark(self, held: pl.DataFrame, marks: pl.DataFrame, *, traded: bool = True) -> None:
        """Futures' variation margin on a price move to cash, and the move's losses; a move
        made by trades (``traded``) is what pushes holders in the next round."""
        futures = marks.filter(pl.col("instrument") == "future").with_columns(
            dp=pl.col("p_end") - pl.col("p_start")
        )
        self.holders = bk.credit_variation_margin(self.holders, held, futures)
        moved_by = (
            held.select("holder_id", "asset_id", "quantity"),
            marks.select(
                "asset_id",
                "multiplier",
                price=pl.col("p_start"),
                dp=pl.col("p_end") - pl.col("p_start"),
            ),
            attribution.flow_shares(self.cumulative, self.impact.mode),
        )
        self._book_loss(attribution.round_losses(*moved_by))
        if traded:
            self.previous = moved_by

    def overnight(self) -> None:
        """Temporary impact decays: prices move back towards their permanent level."""
        assert self.days is not None
        if self.days.permanent_share == 1:
            return
        share, decay = self.days.permanent_share, self.days.decay
        self.state = self.state.with_columns(
            impact_carry=(pl.col("impact_carry") + pl.col("impact_now") - pl.col("impact_day"))
            * decay,
            impact_day=pl.col("impact_now"),
        ).with_columns(
            price_after=pl.col("price_0")
            * (1 + share * pl.col("impact_now") + (1 - share) * pl.col("impact_carry")).clip(
                lower_bound=im.MIN_PRICE_RATIO
            )
        )
        marks = _marks(self.state, pl.col("price_after"))  # nothing trades overnight
        self._mark(self.positions, marks, traded=False)
        self.state = self.state.with_columns(price=pl.col("price_after")).drop("price_after")

    def result(self, codes: keys.Keys) -> CascadeResult:
        """The episode's reports, ids decoded. The trade log is decoded round by round, each
        round's coded frame let go once decoded: the log is most of the episode's memory."""
        decoded = []
        while self.trades:  # a round's rows share its round and day: sorted by holder, asset
            decoded.append(codes.decode(self.trades.pop(0), [keys.HOLDER, keys.ASSET]))
        self.trades = decoded
        return _decoded(self._report(), codes, done={"trades"})

    def _report(self) -> CascadeResult:
        sold = [float(f["sell_value"].sum()) for f in self.rounds]
        assert self.first_table is not None
        table = _loss_table(self.direct, self.losses, self.first_table)
        holder_rounds = pl.concat(self.tables or [self.first_table], how="diagonal_relaxed")
        return CascadeResult(
            trades=pl.concat(self.trades) if self.trades else _EMPTY_TRADES,
            rounds=pl.concat(self.rounds) if self.rounds else _EMPTY_ROUNDS,
            holder_rounds=holder_rounds,
            balance_sheets=balance.balance_sheets(
                holder_rounds, balance.round_losses(self.losses), self.direct, self.paid_before
            ),
            positions=self.positions,
            holders_after=self.holders,
            prices=self.state.select("asset_id", "price_0", "price", price_rebound=self._rest()),
            converged=self.converged,
            rounds_traded=len(self.rounds),
            amplification=_ratio(sum(sold), self.first_required if self.days else sold[0])
            if sold
            else 1.0,
            loss_amplification=_ratio(
                _total_loss(self.direct, self.losses),
                _total_loss(self.direct, self.losses[: self.first_losses or len(self.losses)]),
            ),
            losses=table,
            chain=pl.concat(self.edges) if self.edges else _EMPTY_CHAIN,
            aggregate_vulnerability=_aggregate_vulnerability(table),
        )

    def _rest(self) -> pl.Expr:
        """``P_∞ = P₀·(1 + π·I(Q))``, the price once temporary impact has decayed."""
        if self.days is None or self.days.permanent_share == 1 or self.impact.mode != "cumulative":
            return pl.col("price")
        return pl.col("price_0") * (1 + self.days.permanent_share * pl.col("impact_now"))


def _decoded(result: CascadeResult, codes: keys.Keys, done: set[str]) -> CascadeResult:
    """``result`` with ids, its holder tables in (round, day, holder, asset) order (the frames
    named in ``done`` are so already)."""
    order = [ROUND, DAY, keys.HOLDER, keys.ASSET]
    frames = {
        f.name: codes.decode(
            getattr(result, f.name), order if keys.HOLDER in getattr(result, f.name) else ()
        )
        for f in fields(result)
        if isinstance(getattr(result, f.name), pl.DataFrame) and f.name not in done
    }
    return replace(result, **frames)


#: Rule kinds whose trades are prescribed: the day clock does not pace them.
_PRESCRIBED = "|".join(t.model_fields["kind"].default for t in RULE_TYPES if t.prescribed)
_MARKS = ["multiplier", "instrument", "p_start", "p_end", "p_exec"]


def _marks(state: pl.DataFrame, execution: pl.Expr) -> pl.DataFrame:
    """Per asset: the price before (``p_start``) and after (``p_end``) a move, and where
    trades executed (``p_exec``)."""
    return state.select(
        "asset_id",
        "multiplier",
        "instrument",
        p_start=pl.col("price"),
        p_end=pl.col("price_after"),
        p_exec=execution,
    )


_SOLD = (-pl.col("trade_value")).clip(lower_bound=0).sum()
_BOUGHT = pl.col("trade_value").clip(lower_bound=0).sum()


def _by_period(trades: pl.DataFrame, period: str, *also: str) -> pl.DataFrame:
    """Per ``period`` (round or day): value sold and bought, the holders that traded and
    those trading for the first time."""
    first = trades.group_by("holder_id").agg(pl.col(period).min().alias("_first"))
    return (
        trades.join(first, on="holder_id")
        .group_by(period, *also)
        .agg(
            sell_value=_SOLD,
            buy_value=_BOUGHT,
            holders_trading=pl.col("holder_id").n_unique(),
            holders_newly_forced=pl.col("holder_id")
            .filter(pl.col(period) == pl.col("_first"))
            .n_unique(),
        )
        .sort(period)
    )


_EMPTY_DONE = pl.DataFrame(
    schema={
        "holder_id": keys.CODE,
        "asset_id": keys.CODE,
        "done": pl.Float64,
        "done_value": pl.Float64,
    }
)


def _execute(
    result: RoundResult, today: pl.DataFrame, positions: pl.DataFrame, state: pl.DataFrame
) -> RoundResult:
    """The round's result with only ``today``'s trades done: the rest is left undone (the
    books' cash gets back what the undone sales would have paid, or keeps what undone
    purchases would have cost)."""
    prices = state.select("asset_id", "price", "multiplier", is_cash=pl.col("instrument") == "cash")
    done = (
        result.trades.drop("trade_quantity", "trade_value")
        .join(today, on=["holder_id", "asset_id"])
        .join(prices, on="asset_id")
        .with_columns(trade_value=pl.col("trade_quantity") * pl.col("price") * pl.col("multiplier"))
    )
    undone = (
        result.trades.join(
            done.select("holder_id", "asset_id", _done="trade_value"),
            on=["holder_id", "asset_id"],
            how="left",
        )
        .join(prices, on="asset_id")
        .group_by("holder_id")
        .agg(
            _back=(
                (pl.col("trade_value") - pl.col("_done").fill_null(0.0)) * pl.col("is_cash")
            ).sum(),
            pending=(pl.col("trade_value") - pl.col("_done").fill_null(0.0)).abs().sum(),
        )
    )
    traded = done.group_by("holder_id").agg(
        sold=_SOLD,
        bought=_BOUGHT,
    )
    holders_after = (
        result.holders_after.join(undone.select("holder_id", "_back"), on="holder_id", how="left")
        .with_columns(pl.col(Book.CASH) + pl.col("_back").fill_null(0.0))
        .drop("_back")
    )
    after = (
        positions.join(
            done.select("holder_id", "asset_id", "trade_quantity"),
            on=["holder_id", "asset_id"],
            how="full",
            coalesce=True,
        )
        .with_columns(
            quantity=pl.col("quantity").fill_null(0.0) + pl.col("trade_quantity").fill_null(0.0)
        )
        .filter(pl.col("quantity") != 0)
        .select("holder_id", "asset_id", "quantity")
        .pipe(keys.by_holder)  # a position bought into comes last from the join
    )
    holders = (
        result.holders.drop("sold", "bought")
        .join(traded, on="holder_id", how="left")
        .join(undone.select("holder_id", "pending"), on="holder_id", how="left")
        .with_columns(pl.col("sold", "bought", "pending").fill_null(0.0))
        .with_columns(  # a holder with trades still to do is not compliant yet
            compliant=pl.col("compliant")
            & (pl.col("pending") <= 1e-9 * (pl.col("sold") + pl.col("bought") + 1.0))
        )
    )
    trades = done.select(result.trades.columns)
    return RoundResult(trades, holders, after, holders_after, result.compiled_problems)


def _move_prices(
    state: pl.DataFrame, trades: pl.DataFrame, impact: Impact, days: Days | None
) -> pl.DataFrame:
    """The round's flows per asset, the prices after them and the execution prices; with a
    temporary part of impact (``days``), ``P = P₀·(1 + π·I + (1 − π)·(carry + I − I_day))``."""
    flows = trades.group_by("asset_id").agg(
        round_quantity=pl.col("trade_quantity").sum(),
        sell_value=_SOLD,
        buy_value=_BOUGHT,
    )
    moved = (
        state.join(flows, on="asset_id", how="left")
        .with_columns(
            pl.col("round_quantity", "sell_value", "buy_value").fill_null(0.0),
            episode_quantity=pl.col("episode_quantity") + pl.col("round_quantity").fill_null(0.0),
        )
        .pipe(im.prices_after, impact.mode)
    )
    if impact.mode == "cumulative":
        moved = moved.with_columns(impact_now=pl.col("price_after") / pl.col("price_0") - 1)
        if days is not None and days.permanent_share < 1:
            share = days.permanent_share
            moved = moved.with_columns(
                price_after=pl.col("price_0")
                * (
                    1
                    + share * pl.col("impact_now")
                    + (1 - share)
                    * (pl.col("impact_carry") + pl.col("impact_now") - pl.col("impact_day"))
                ).clip(lower_bound=im.MIN_PRICE_RATIO)
            )
    return moved.with_columns(
        execution_price=im.execution_price(
            pl.col("price"), pl.col("price_after"), impact.execution_point
        )
    )


def _round_report(state: pl.DataFrame, r: int, day: int) -> pl.DataFrame:
    return state.select(
        pl.lit(r, pl.Int32).alias(ROUND),
        pl.lit(day, pl.Int32).alias(DAY),
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
        [pl.DataFrame(schema={"holder_id": keys.CODE, "loss_lending": pl.Float64}), *passed]
    )
    return holders, losses


def _direct_losses(
    positions: pl.DataFrame, assets: pl.DataFrame, holders: pl.DataFrame
) -> pl.DataFrame:
    """``−Σ q·m·(P₀ − P_pre) + (N_pre − N)``: what the scenario's shocks cost each holder, on
    its positions and on its non-tradable holdings (holder shocks' ``non_tradable_return``)."""
    parts = [pl.DataFrame(schema={"holder_id": keys.CODE, "loss_direct": pl.Float64})]
    if "price_pre" in assets.columns:
        moved = positions.join(
            assets.select("asset_id", "multiplier", "price", "price_pre"), on="asset_id"
        )
        parts.append(
            moved.group_by("holder_id").agg(
                loss_direct=(
                    -pl.col("quantity")
                    * pl.col("multiplier")
                    * (pl.col("price") - pl.col("price_pre"))
                ).sum()
            )
        )
    if Book.NON_TRADABLE_PRE in holders.columns:
        parts.append(
            holders.select(
                "holder_id", loss_direct=pl.col(Book.NON_TRADABLE_PRE) - pl.col(Book.NON_TRADABLE)
            ).filter(pl.col("loss_direct") != 0)
        )
    return pl.concat(parts).group_by("holder_id").agg(pl.col("loss_direct").sum())


def _total_loss(direct: pl.DataFrame, frames: list[pl.DataFrame]) -> float:
    """Direct losses plus the impact, execution and lending losses in ``frames``."""
    booked = ("loss_impact", "loss_execution", "loss_lending")
    parts = [direct["loss_direct"], *(f[c] for f in frames for c in booked if c in f.columns)]
    return math.fsum(v for part in parts for v in part.drop_nulls())  # in any row order


def _ratio(final: float, first: float) -> float:
    return final / first if first > 0 else 1.0


def _loss_table(
    direct: pl.DataFrame, losses: list[pl.DataFrame], first: pl.DataFrame
) -> pl.DataFrame:
    """Per holder: the losses of :mod:`estimator.attribution` over all rounds, the direct loss,
    systemicness and indirect vulnerability (``E_h``: equity at the start, before cures)."""
    start = first.select("holder_id", equity_start=pl.col("equity_before"))
    columns = [*attribution.LOSS_COLUMNS, "loss_execution", "loss_lending"]
    empty = pl.DataFrame(schema={"holder_id": keys.CODE} | dict.fromkeys(columns, pl.Float64))
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
            # undefined (empty) where no holder had equity at the start
            cascade_systemicness=pl.when(total_equity > 0).then(
                pl.col("loss_caused") / total_equity
            ),
            cascade_indirect_vulnerability=pl.when(pl.col("equity_start") > 0).then(
                pl.col("loss_impact") / pl.col("equity_start")
            ),
        )
        .sort("holder_id")
    )


def _aggregate_vulnerability(table: pl.DataFrame) -> float:
    """``Σ_h L_h / E``."""
    total = math.fsum(table["equity_start"].clip(lower_bound=0.0))
    return math.fsum(table["loss_impact"]) / total if total > 0 else 0.0


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
        DAY: pl.Int32,
        "holder_id": pl.String,
        "asset_id": pl.String,
        "quantity_before": pl.Float64,
        "trade_quantity": pl.Float64,
        "trade_value": pl.Float64,
        "position_share": pl.Float64,
        "rules": pl.Categorical,
        "position_rules": pl.Categorical,
        "execution_price": pl.Float64,
    }
)
_EMPTY_ROUNDS = pl.DataFrame(
    schema={
        ROUND: pl.Int32,
        DAY: pl.Int32,
        "asset_id": pl.String,
        "round_quantity": pl.Float64,
        "sell_value": pl.Float64,
        "buy_value": pl.Float64,
        "price_start": pl.Float64,
        "price_end": pl.Float64,
        "execution_price": pl.Float64,
    }
)
