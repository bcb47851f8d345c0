"""The day clock's share of a round: what each forced holder may trade today.

A holder first forced on day ``d`` starts after its grace period (``pace_delay``) and has
``pace_horizon`` days to finish (:mod:`estimator.days`); each day it trades at most its
participation cap × ADV per asset (:func:`estimator.days.paced`). Prescribed trades (an index
change on its effective day: :attr:`rules.RuleBase.prescribed`) are done in full, at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from estimator import keys
from estimator.cascade.result import BOUGHT, SOLD
from estimator.days import paced
from estimator.rounds import RoundResult, dust
from rules import RULE_TYPES, Book

#: Rule kinds whose trades are prescribed: the day clock does not pace them.
PRESCRIBED = "|".join(t.model_fields["kind"].default for t in RULE_TYPES if t.prescribed)

EMPTY_DONE = pl.DataFrame(
    schema={
        "holder_id": keys.CODE,
        "asset_id": keys.CODE,
        "done": pl.Float64,
        "done_value": pl.Float64,
    }
)
EMPTY_SCHEDULE = pl.DataFrame(
    schema={"holder_id": keys.CODE, "start": pl.Int64, "deadline": pl.Int64, "rules": pl.String}
)
_PAIR = ["holder_id", "asset_id"]


@dataclass(frozen=True)
class Pacing:
    """The day clock's state: ``schedule`` (holder_id, start, deadline, and the rules that
    started it, ``;``-separated) of the holders part-way through a forced sale, and
    ``done_today`` (holder_id, asset_id, done, done_value), what they have traded so far
    today."""

    schedule: pl.DataFrame = field(default_factory=EMPTY_SCHEDULE.clear)
    done_today: pl.DataFrame = field(default_factory=EMPTY_DONE.clear)

    def unfinished(self, day: int) -> bool:
        """Whether a holder has a sale to finish after ``day``."""
        return not self.schedule.filter(pl.col("deadline") > day).is_empty()


def pace(
    result: RoundResult,
    pacing: Pacing,
    holder_pace: pl.DataFrame,
    market: pl.DataFrame,
    positions: pl.DataFrame,
    day: int,
) -> tuple[RoundResult, Pacing]:
    """What the day clock lets the round trade of what the rules require (``holder_pace``:
    holder_id, pace_horizon, pace_delay, pace_participation), and the clock after it."""
    required = result.trades.select("holder_id", "asset_id", "trade_quantity")
    forced = required.select("holder_id").unique()
    known = pacing.schedule.join(forced, on="holder_id")  # those no longer forced start over
    new = forced.join(known, on="holder_id", how="anti").join(holder_pace, on="holder_id")
    started_by = (
        result.trades.join(new.select("holder_id"), on="holder_id", how="semi")
        .group_by("holder_id")
        .agg(rules=pl.col("rules").cast(pl.String).unique().sort().str.join(";"))
    )
    schedule = pl.concat(
        [
            known,
            new.join(started_by, on="holder_id", how="left").select(
                "holder_id",
                start=day + pl.col("pace_delay"),
                deadline=day + pl.col("pace_delay") + pl.col("pace_horizon") - 1,
                rules=pl.col("rules").fill_null(""),
            ),
        ]
    )
    caps = (
        required.join(holder_pace.select("holder_id", "pace_participation"), on="holder_id")
        .join(market.select("asset_id", "adv", "price", "multiplier"), on="asset_id")
        .select(
            "holder_id",
            "asset_id",
            "trade_quantity",
            unit_value=pl.col("price") * pl.col("multiplier"),
            cap=pl.col("pace_participation") * pl.col("adv"),
        )
    )
    prescribed = result.trades.filter(
        pl.col("rules").cast(pl.String).str.contains(PRESCRIBED)
    ).select(*_PAIR, "trade_quantity")
    paced_part = paced(caps, pacing.done_today, schedule, day).join(
        prescribed, on=_PAIR, how="anti"
    )
    sizes = [f"{Book.GROSS_EXPOSURE}_before", Book.GROSS_PRE]
    gross = result.holders.select(
        "holder_id", gross=pl.max_horizontal(c for c in sizes if c in result.holders.columns)
    )
    today = (
        pl.concat([paced_part, prescribed])
        .join(caps.select(*_PAIR, "unit_value"), on=_PAIR)
        .join(gross, on="holder_id", how="left")
        .filter(  # what is left of a trade done over days may be dust
            ~dust(pl.col("trade_quantity") * pl.col("unit_value"), pl.col("gross"))
        )
        .drop("gross")
    )
    done = today.select(
        *_PAIR,
        done="trade_quantity",
        done_value=pl.col("trade_quantity") * pl.col("unit_value"),
    )
    done_today = (
        pl.concat([pacing.done_today, done]).group_by(_PAIR).agg(pl.col("done", "done_value").sum())
    )
    today = today.drop("unit_value")
    return execute(result, today, positions, market), Pacing(schedule, done_today)


def execute(
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
        sold=SOLD,
        bought=BOUGHT,
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
